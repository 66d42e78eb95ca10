/**
 * Start-up errors of the real CLI: each bond-file problem is reported with its message and the
 * process exits non-zero at once, holding neither the serial port nor the lock. Runs
 * `bin/wearable-host --port tcp://...` against a virtual controller served in this process.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveControllers, type ServedControllers } from '../../src/sim/serve.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { parseWearableSettings, startWearable } from '../../src/lib/session.js';
import type { MainCliOptions } from '../../src/lib/options.js';
import { BondStoreError } from '../../src/bonds/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { startCli } from './fixtures/cli-process.js';

let served: ServedControllers;
let dir: string;
const isRoot = process.getuid?.() === 0;

before(async () => {
  served = await serveControllers({ count: 2, tcp: 0, seed: 'startup-errors', log: silentLogger() });
  dir = mkdtempSync(join(tmpdir(), 'wh-startup-'));
});
after(async () => {
  await served.close();
  rmSync(dir, { recursive: true, force: true });
});

const port = (i: number): string => `tcp://127.0.0.1:${served.controllers[i]!.port}`;

/** Runs the CLI on controller 0 with `--bonds path` and checks it fails fast with `message`. */
async function expectStartupFailure(bonds: string, message: RegExp): Promise<void> {
  const cli = startCli(['--port', port(0), '--bonds', bonds, '--log-json'], { hangMs: 10_000 });
  const r = await cli.exited;
  assert.equal(r.hung, false, `the CLI hung after a start-up error (killed after 10 s):\n${cli.output()}`);
  assert.notEqual(r.code, 0, `a start-up error exits non-zero:\n${cli.output()}`);
  assert.match(cli.output(), message);
  assert.doesNotMatch(cli.output(), /is advertising/, 'the wearable never came up');
}

test('a corrupt bond file: its message, then a non-zero exit at once', async () => {
  const f = join(dir, 'corrupt.json');
  writeFileSync(f, '{"version": 1, "bonds": [', { mode: 0o600 });
  await expectStartupFailure(f, /corrupt\.json is not valid JSON.*left untouched/s);
});

test('an unreadable bond file (a directory, a FIFO that would block the read): named, then a non-zero exit', async () => {
  const d = join(dir, 'is-a-dir.json');
  mkdirSync(d);
  await expectStartupFailure(d, /is-a-dir\.json is a directory, not a bond file/);
  const fifo = join(dir, 'fifo.json');
  execFileSync('mkfifo', [fifo]);
  await expectStartupFailure(fifo, /fifo\.json is not a regular file, not a bond file/);
});

test('EACCES on the bond file\'s directory: the permission message, then a non-zero exit', async () => {
  // Root ignores permission bits; sysfs refuses new files even to root (EACCES).
  let bonds: string;
  if (isRoot) {
    bonds = '/sys/wearable-host-bonds.json';
  } else {
    const locked = join(dir, 'no-access');
    mkdirSync(locked);
    chmodSync(locked, 0o500);
    bonds = join(locked, 'bonds.json');
  }
  await expectStartupFailure(bonds, /permission denied \(EACCES\)|file system is read-only/);
});

test('ENOTDIR: a part of the bonds path is a file', async () => {
  const f = join(dir, 'plain-file');
  writeFileSync(f, 'x');
  await expectStartupFailure(join(f, 'bonds.json'), /plain-file\/bonds\.json: .*is a file, not a directory \(ENOTDIR\)|plain-file is not a directory \(ENOTDIR\)/);
});

test('a bonds path under /proc: a message and a non-zero exit, no spinning', async () => {
  await expectStartupFailure('/proc/wearable-host/bonds.json', /cannot create the directory \/proc\/wearable-host .*refuses new directories/);
});

test('a bond file locked by another running wearable-host: the holder is named, exit non-zero at once; the holder keeps running', async () => {
  const f = join(dir, 'shared.json');
  const holder = startCli(['--port', port(1), '--bonds', f, '--log-json']);
  try {
    await holder.waitFor(/is advertising/);
    await expectStartupFailure(f, new RegExp(`shared\\.json is in use by process ${holder.child.pid}`));
    assert.equal(holder.child.exitCode, null, 'the holder still runs');
  } finally {
    holder.child.kill('SIGTERM');
    await holder.exited;
  }
});

test('startWearable closes the port it was given when the bond file cannot be used', async () => {
  const f = join(dir, 'corrupt-lib.json');
  writeFileSync(f, 'not json');
  const [host, far] = createMemoryTransportPair('wearable', 'controller');
  void far;
  const settings = parseWearableSettings({
    baud: '1000000', rtscts: true, chunkSize: '64', name: 'Noira Band', logLevel: 'silent', maxBonds: '16', mtu: '517',
    securityRequest: 'never', securityRequestDelay: '0', repair: 'reject', minKeySize: '16', ioCapability: 'no-input-no-output',
    connParams: true, simulatedValues: false, bonds: f,
  } satisfies MainCliOptions);
  await assert.rejects(startWearable({ settings, transport: host, log: silentLogger() }), (e: unknown) => e instanceof BondStoreError && e.code === 'syntax');
  assert.equal(host.isOpen, false, 'the transport was closed');
});

test('--port naming a regular file or a directory: says it is not a serial port and what to give instead', async () => {
  const f = join(dir, 'not-a-port');
  writeFileSync(f, '');
  for (const [path, what] of [[f, 'a regular file'], [dir, 'a directory']] as const) {
    const cli = startCli(['--port', path, '--bonds', join(dir, 'port-test.json')], { hangMs: 10_000 });
    const r = await cli.exited;
    assert.equal(r.hung, false, cli.output());
    assert.notEqual(r.code, 0);
    assert.match(cli.output(), new RegExp(`--port ${path.replace(/[/.]/g, '\\$&')} is ${what}, not a serial port\\. Give the DK's port \\(ls -l /dev/serial/by-id/`));
    assert.match(cli.output(), /wearable-host doctor/);
    assert.doesNotMatch(cli.output(), /ioctl|EISDIR/);
  }
});
