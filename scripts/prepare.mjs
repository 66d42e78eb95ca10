#!/usr/bin/env node
// `npm install`'s prepare step: builds dist/ unless it was already built from exactly these sources.
//
// Why: in a checkout, `npx wearable-host` finds our own package.json's bin and (npm >= 7, libnpmexec)
// installs the checkout into npx's cache as a link, which runs `prepare` again: a full rebuild
// (10 s and more) before the first line of output. The build is skipped when the fingerprint of
// its inputs (every .ts under src/, test/, bench/, tsconfig.json, the TypeScript version) matches
// the one written after the last build by this script, and dist/src/cli/main.js exists.
// `npm run build` always rebuilds; WEARABLE_HOST_REBUILD=1 forces a build here too.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const stampPath = join(root, 'dist', '.build-fingerprint');

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function fingerprint() {
  const h = createHash('sha256');
  const files = ['src', 'test', 'bench'].flatMap((d) => walk(join(root, d), []));
  files.push(join(root, 'tsconfig.json'));
  const tsPkg = join(root, 'node_modules', 'typescript', 'package.json');
  if (existsSync(tsPkg)) files.push(tsPkg);
  for (const f of files) {
    h.update(relative(root, f));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex');
}

const want = fingerprint();
const have = existsSync(stampPath) ? readFileSync(stampPath, 'utf8').trim() : '';
if (!process.env.WEARABLE_HOST_REBUILD && have === want && existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
  console.log('wearable-host: dist/ is up to date with the sources (set WEARABLE_HOST_REBUILD=1 to rebuild)');
  process.exit(0);
}
const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync(stampPath, `${want}\n`);
