/**
 * Tier 6: the real CLI as a child process with --port on a pty pair.
 * - against the scripted nRF5340 controller on the other end of a socat pty pair: bring-up and
 *   advertising succeed, and closing that end makes the CLI report the lost port clearly;
 * - against `sim-controller` served on ptys: the CLI advertises and a second host on the same
 *   virtual air sees the advertisement; Ctrl-C shuts down cleanly and the btsnoop trace reads back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialTransport } from '../../src/hci/serial-transport.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { Hci } from '../../src/hci/driver.js';
import { parseAdvertisement } from '../../src/hci/advertising.js';
import { readBtsnoop } from '../../src/hci/btsnoop.js';
import { serveControllers } from '../../src/sim/serve.js';
import { ScriptedController } from '../hci/fixtures/scripted-controller.js';
import { RealClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';

const BIN = new URL('../../../bin/wearable-host', import.meta.url).pathname;
const hasSocat = spawnSync('sh', ['-c', 'command -v socat']).status === 0;

interface Cli {
  child: ChildProcess;
  output: () => string;
  waitFor: (re: RegExp, ms?: number) => Promise<string>;
  exited: Promise<number | null>;
}

function startCli(args: string[]): Cli {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_STATE_HOME: tmpdir() } });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited,
    waitFor: (re, ms = 15_000) =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = (): void => {
          const m = re.exec(out);
          if (m) return resolve(m[0]);
          if (child.exitCode !== null || Date.now() - started > ms) return reject(new Error(`CLI output never matched ${re}:\n${out}`));
          setTimeout(poll, 25);
        };
        poll();
      }),
  };
}

async function ptyPair(dir: string): Promise<{ a: string; b: string; socat: ChildProcess }> {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !(existsSync(a) && existsSync(b)); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(existsSync(a) && existsSync(b), 'socat made the pty pair');
  return { a: realpathSync(a), b: realpathSync(b), socat };
}

test('the CLI brings up a scripted nRF5340 controller over a pty and reports the lost port when it closes', { skip: hasSocat ? false : 'socat not installed: apt-get install socat' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-cli-'));
  const { a, b, socat } = await ptyPair(dir);
  const far = await SerialTransport.open(b, { rtscts: false, lock: false });
  const ctrl = new ScriptedController(far, {});
  const cli = startCli(['--port', a, '--no-rtscts', '--bonds', join(dir, 'bonds.json'), '--log-level', 'info']);
  try {
    await cli.waitFor(/is advertising on \/dev\/pts\/\d+/);
    assert.ok(ctrl.commands.some((c) => c.name === 'Reset'), 'the controller saw HCI Reset');
    assert.ok(ctrl.commands.some((c) => c.name === 'LeSetAdvertisingEnable'), 'advertising was enabled');
    socat.kill('SIGKILL');
    const code = await cli.exited;
    assert.notEqual(code, 0, 'a lost port is a failure');
    assert.match(cli.output(), new RegExp(`lost the controller on ${a.replace(/\//g, '\\/')}`));
    assert.match(cli.output(), /wearable-host doctor/);
  } finally {
    cli.child.kill('SIGKILL');
    socat.kill('SIGKILL');
    await far.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI advertises on a sim-controller pty and a second host on the same air sees it; Ctrl-C leaves a readable trace', { skip: hasSocat ? false : 'socat not installed: apt-get install socat' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-cli-'));
  const served = await serveControllers({ count: 2, pty: true, seed: 'cli-pty', log: silentLogger() });
  const trace = join(dir, 'trace.btsnoop');
  const cli = startCli(['--port', served.controllers[0]!.pty!, '--no-rtscts', '--bonds', join(dir, 'bonds.json'), '--btsnoop', trace, '--name', 'Pty Band']);
  const clock = new RealClock();
  const scannerTransport = await TcpTransport.connect(`tcp://127.0.0.1:${served.controllers[1]!.port}`);
  const scanner = new Hci(scannerTransport, { clock, log: silentLogger() });
  try {
    await cli.waitFor(/is advertising/);
    await scanner.init();
    const names: string[] = [];
    scanner.on('advertisingReport', (r) => {
      const n = parseAdvertisement(r.data).name;
      if (n) names.push(n);
    });
    await scanner.command('LeSetScanParameters', { scanType: 1, interval: 0x30, window: 0x30, ownAddressType: 1, filterPolicy: 0 });
    await scanner.command('LeSetScanEnable', { enable: true, filterDuplicates: false });
    for (let i = 0; i < 200 && !names.includes('Pty Band'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(names.includes('Pty Band'), `the scanner saw the CLI's advertisement (saw ${JSON.stringify([...new Set(names)])})`);
    cli.child.kill('SIGINT');
    assert.equal(await cli.exited, 0, 'Ctrl-C is a clean exit');
    assert.match(cli.output(), /Ctrl-C: stopping/);
    const file = readBtsnoop(new Uint8Array(readFileSync(trace)));
    assert.ok(file.records.length >= 10, 'the trace holds the bring-up');
    assert.equal(file.records[0]!.packet[0], 0x01, 'first record is a command');
    assert.equal(Buffer.from(file.records[0]!.packet).toString('hex'), '01030c00', 'the first command is HCI Reset');
  } finally {
    cli.child.kill('SIGKILL');
    scanner.close();
    await scannerTransport.close().catch(() => undefined);
    await served.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
