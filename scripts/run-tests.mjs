#!/usr/bin/env node
// Runs the compiled test files with node's built-in test runner.
// `--hil` runs the hardware-in-the-loop files (test/**/*.hil.test.ts) instead of the normal suite.
// Node 20's --test does not expand globs, so the file list is built here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const hil = process.argv.includes('--hil');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const root = new URL('../dist/test/', import.meta.url).pathname;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = walk(root)
  .filter((f) => (hil ? f.endsWith('.hil.test.js') : !f.endsWith('.hil.test.js')))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files found under ${root}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, WEARABLE_HOST_TEST: '1' },
});
process.exit(r.status ?? 1);
