#!/usr/bin/env node
// Removes dist/ before a build, so a renamed or deleted source or test never leaves a stale
// compiled copy behind (the test runner would still run it).
import { rmSync } from 'node:fs';
rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true });
