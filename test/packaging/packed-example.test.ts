/**
 * The package as users get it: `npm pack` makes the tarball, which is installed into a temporary
 * directory next to a copy of examples/hil-test; the example is type-checked against the packed
 * .d.ts and its test runs under `node --test` (a child process that must exit by itself), the
 * packed bin answers, and every name docs/api.md lists is exported (and typed) by the packed
 * package.
 *
 * The install is done by hand so it is offline, quick and deterministic: the tarball is unpacked
 * to node_modules/wearable-host (as npm would), the bin is linked into node_modules/.bin, and only
 * the runtime dependencies the packed package.json declares are linked from this checkout's
 * node_modules (a dependency missing from package.json fails the import), plus typescript and
 * @types/node for the check.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = new URL('../../../', import.meta.url).pathname;
let dir = '';
let app = '';
let pkgDir = '';
let tscResult: ReturnType<typeof spawnSync> | undefined;

function run(cmd: string, args: string[], cwd: string, timeout = 120_000) {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env });
}

function link(name: string): void {
  const from = join(root, 'node_modules', name);
  assert.ok(existsSync(from), `${name} is not installed in the checkout`);
  const to = join(app, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(from, to, 'dir');
}

/** The names docs/api.md lists in "Every public name", with their kind. */
function documentedNames(): { name: string; kind: string }[] {
  const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Every public name'));
  return [...section.matchAll(/^\| `([A-Za-z_][A-Za-z0-9_]*)` \| (class|type|function|value) \|$/gm)].map((m) => ({ name: m[1] as string, kind: m[2] as string }));
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wh-pack-'));
  const r = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root);
  assert.equal(r.status, 0, r.stderr);
  const packed = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
  const tarball = join(dir, (packed[0] as { filename: string }).filename);
  app = join(dir, 'app');
  cpSync(join(root, 'examples', 'hil-test'), app, { recursive: true, filter: (src) => !/[/\\](node_modules|dist)$/.test(src) });
  // The example depends on the tarball (file:...tgz); point it at this one.
  const appPkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.match(appPkg.dependencies['wearable-host'] ?? '', /^file:.*\.tgz$/, 'the example depends on the packed tarball');
  appPkg.dependencies['wearable-host'] = `file:${tarball}`;
  writeFileSync(join(app, 'package.json'), JSON.stringify(appPkg, null, 2));
  pkgDir = join(app, 'node_modules', 'wearable-host');
  mkdirSync(pkgDir, { recursive: true });
  const x = run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'], app);
  assert.equal(x.status, 0, x.stderr);
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; bin: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies)) link(dep);
  link('typescript');
  link('@types/node');
  mkdirSync(join(app, 'node_modules', '.bin'), { recursive: true });
  for (const [name, rel] of Object.entries(pkg.bin)) symlinkSync(join('..', 'wearable-host', rel), join(app, 'node_modules', '.bin', name));
  // Every documented name imported from the package, compiled with the example: tsc fails on a
  // name the packed .d.ts does not export (TS2305), a value or a type.
  const names = documentedNames();
  const values = names.filter((n) => n.kind !== 'type').map((n) => n.name);
  const types = names.filter((n) => n.kind === 'type').map((n) => n.name);
  writeFileSync(
    join(app, 'test', 'names.ts'),
    `import { ${values.join(', ')} } from 'wearable-host';\nimport type { ${types.join(', ')} } from 'wearable-host';\n` +
      `export const values: unknown[] = [${values.join(', ')}];\n`,
  );
  // The 20-line test at the top of docs/api.md, compiled (not run) with the example.
  const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  const snippet = /```ts\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(snippet && snippet.split('\n').length <= 24, 'docs/api.md starts with a short HIL test');
  writeFileSync(join(app, 'test', 'api-doc-snippet.ts'), snippet);
  tscResult = run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball ships the entry module, its .d.ts, the bin and the docs, and no tests', () => {
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/lib/wearable.d.ts', 'bin/wearable-host', 'docs/api.md']) assert.ok(existsSync(join(pkgDir, f)), f);
  assert.ok(!existsSync(join(pkgDir, 'dist', 'test')), 'no compiled tests in the package');
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; types: string };
  assert.deepEqual(Object.keys(pkg.exports), ['.', './package.json']);
  assert.equal(pkg.types, './dist/src/index.d.ts');
});

test('every name docs/api.md lists is exported by the packed package, and typed; its opening HIL test compiles', () => {
  assert.equal(tscResult?.status, 0, `tsc of the example, the docs' HIL test and an import of every documented name:\n${String(tscResult?.stdout)}${String(tscResult?.stderr)}`);
  const names = documentedNames();
  assert.ok(names.length >= 40, `found ${names.length} names in docs/api.md`);
  const values = names.filter((n) => n.kind !== 'type').map((n) => n.name);
  const r = run(process.execPath, ['--input-type=module', '-e', `const m = await import('wearable-host'); console.log(JSON.stringify(Object.keys(m).sort()));`], app, 30_000);
  assert.equal(r.status, 0, r.stderr);
  const exported = JSON.parse(r.stdout) as string[];
  for (const v of values) assert.ok(exported.includes(v), `${v} is documented but not exported at run time`);
  for (const e of exported) assert.ok(values.includes(e), `${e} is exported but not listed in docs/api.md`);
});

test('the example type-checks against the packed .d.ts, and its node --test run passes and exits by itself', () => {
  assert.equal(tscResult?.status, 0, `tsc:\n${String(tscResult?.stdout)}${String(tscResult?.stderr)}`);
  const files = readdirSync(join(app, 'dist', 'test')).filter((f) => f.endsWith('.test.js')).map((f) => join('dist', 'test', f));
  assert.deepEqual(files, [join('dist', 'test', 'hil.test.js')]);
  // Not on DKs here even when the variables are set for the HIL suite.
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  delete env['WEARABLE_HOST_PORT'];
  delete env['WEARABLE_HOST_PHONE_PORT'];
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...files], { cwd: app, encoding: 'utf8', timeout: 25_000, env });
  // About 3 s; below the helpers' 30-40 s default timeouts, so a leaked deadline timer shows.
  assert.equal(r.signal, null, `node --test was killed after 25 s: it did not exit by itself\n${r.stdout}`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 2\n/);
  assert.match(r.stdout, /# fail 0\n/);
});

test('the packed bin runs', () => {
  const r = run(join(app, 'node_modules', '.bin', 'wearable-host'), ['--version'], app, 30_000);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
});
