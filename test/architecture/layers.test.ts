/**
 * The layer order of src/, checked on the imports themselves: a folder may import only from
 * folders below it. The order is the one README's "Architecture" section draws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first. Folders on one line are peers: neither imports the other. */
const LAYERS: readonly (readonly string[])[] = [
  ['util'],
  ['crypto'],
  ['hci'],
  ['l2cap'],
  ['bonds'],
  ['smp'],
  ['att'],
  ['gatt'],
  ['privacy'],
  ['stack'],
  ['host.ts', 'central'],
  ['sim', 'diagnose', 'doctor'],
  ['phone'],
  ['lib'],
  ['cli'],
  ['index.ts'],
];

const root = fileURLToPath(new URL('../../../', import.meta.url));
const srcDir = join(root, 'src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The top-level entry of src/ a file belongs to: a folder name, or a file name directly in src/. */
function unitOf(file: string): string {
  return relative(srcDir, file).split(sep)[0] as string;
}

/** Relative module specifiers of every import/export ... from '...' (type-only imports count too). */
function importsOf(code: string): string[] {
  const specs: string[] = [];
  for (const m of code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gm)) specs.push(m[1] as string);
  for (const m of code.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)) specs.push(m[1] as string);
  return specs;
}

function rankOf(unit: string): number | undefined {
  const i = LAYERS.findIndex((peers) => peers.includes(unit));
  return i < 0 ? undefined : i;
}

test('every folder of src/ has a place in the layer order', () => {
  const units = new Set(sourceFiles(srcDir).map(unitOf));
  assert.ok(units.size > 10, `expected the source tree under ${srcDir}`);
  const unplaced = [...units].filter((u) => rankOf(u) === undefined);
  assert.deepEqual(unplaced, [], 'add the new folder to LAYERS and to README "Architecture"');
});

test('no import runs from a lower layer (or a peer) to a higher one', () => {
  const offending: string[] = [];
  let checked = 0;
  for (const file of sourceFiles(srcDir)) {
    const from = unitOf(file);
    const fromRank = rankOf(from);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      if (!target.startsWith(srcDir + sep)) continue;
      const to = unitOf(target);
      if (to === from) continue;
      checked++;
      const toRank = rankOf(to);
      if (fromRank === undefined || toRank === undefined || toRank >= fromRank) {
        offending.push(`${relative(root, file)} imports ${spec} (${from} -> ${to})`);
      }
    }
  }
  assert.ok(checked > 100, `expected many cross-folder imports, checked ${checked}`);
  assert.deepEqual(offending, []);
});

test('src/crypto imports nothing of ours (only @noble and its own files)', () => {
  const outside: string[] = [];
  for (const file of sourceFiles(join(srcDir, 'crypto'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bfrom\s+'([^']+)'/g)) {
      const spec = m[1] as string;
      const ours = spec.startsWith('.') && !resolve(dirname(file), spec).startsWith(join(srcDir, 'crypto') + sep);
      if (ours || (!spec.startsWith('.') && !spec.startsWith('@noble/'))) outside.push(`${relative(root, file)}: ${spec}`);
    }
  }
  assert.deepEqual(outside, []);
});
