/**
 * The doctor over a real tty: the virtual controller served on a pseudo-terminal by
 * src/sim/serve.ts (socat), opened through the real SerialTransport and Hci driver. A pty ignores
 * baud rate and RTS/CTS, so the firmware's line settings are simulated on the host side with the
 * paced link (garbling for a wrong baud, dropped output for CTS never asserted). A silent
 * controller is a pty pair with nothing on the other end. Skipped when socat is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealClock } from '../../src/util/clock.js';
import { serveControllers } from '../../src/sim/index.js';
import { nodeDoctorEnv, nodeDoctorFs, type DoctorEnv } from '../../src/doctor/env.js';
import { hciSession, openPortWith } from '../../src/doctor/session.js';
import { runDoctor } from '../../src/doctor/run.js';
import { formatReport } from '../../src/doctor/format.js';
import { DK_LINK, type DoctorReport, type LinkSettings } from '../../src/doctor/types.js';
import { simulatedLine } from './fixtures.js';

function hasSocat(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v socat'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const SKIP = 'socat not installed: apt-get install socat';

/**
 * This machine (its /dev, /proc, groups), with the serial line's settings simulated on top of the
 * real SerialTransport. socat keeps the pty's other side open; the doctor recognises that bridge.
 */
function ptyEnv(clock: RealClock, firmware: LinkSettings): DoctorEnv {
  return nodeDoctorEnv({
    clock,
    fs: nodeDoctorFs,
    listPorts: async () => [],
    openPort: async (port, settings) => simulatedLine(await openPortWith(port, settings, { clock }), settings, firmware, clock),
    openController: (t, o) => hciSession(t, { clock, timeoutMs: o.timeoutMs }),
  });
}

async function doctorOnServedPty(firmware: LinkSettings): Promise<DoctorReport> {
  const clock = new RealClock();
  const served = await serveControllers({ count: 1, pty: true, seed: 'doctor-pty', clock });
  try {
    const pty = served.controllers[0]?.pty as string;
    return await runDoctor(ptyEnv(clock, firmware), { port: pty, probeTimeoutMs: 400, commandTimeoutMs: 2000, baudRates: [1_000_000, 115_200] });
  } finally {
    await served.close();
  }
}

test('pty, happy path: the served virtual controller answers at the DK settings and passes every check', async (t) => {
  if (!hasSocat()) return t.skip(SKIP);
  const report = await doctorOnServedPty(DK_LINK);
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, DK_LINK);
  for (const check of ['link', 'identity', 'features', 'buffers', 'le-encrypt'] as const) {
    assert.equal(report.findings.find((f) => f.check === check)?.severity, 'ok', `${check}: ${formatReport(report, { verbose: true })}`);
  }
  assert.equal(report.controller?.aclPacketLength, 251);
  assert.equal(report.findings.find((f) => f.check === 'exclusive')?.severity, 'info', 'the socat bridge is recognised, not reported as busy');
});

test('pty, wrong baud: with the firmware at 115200 the doctor finds 115200 and says so', async (t) => {
  if (!hasSocat()) return t.skip(SKIP);
  const report = await doctorOnServedPty({ baudRate: 115_200, rtscts: true });
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, { baudRate: 115_200, rtscts: true });
  const link = report.findings.find((f) => f.check === 'link');
  assert.equal(link?.severity, 'warn');
  assert.match(link?.fix ?? '', /--baud 115200/);
});

test('pty, flow control off on the firmware side: found with RTS/CTS off, and the warning says --no-rtscts', async (t) => {
  if (!hasSocat()) return t.skip(SKIP);
  const report = await doctorOnServedPty({ baudRate: 1_000_000, rtscts: false });
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, { baudRate: 1_000_000, rtscts: false });
  assert.match(report.findings.find((f) => f.check === 'link')?.fix ?? '', /--no-rtscts/);
});

test('pty, silent controller: nothing on the other end of the pty; not usable, each attempt reported silent', async (t) => {
  if (!hasSocat()) return t.skip(SKIP);
  const dir = mkdtempSync(join(tmpdir(), 'wh-doctor-pty-'));
  const a = join(dir, 'host');
  const b = join(dir, 'nobody');
  const proc = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    for (let i = 0; i < 250 && !(existsSync(a) && existsSync(b)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(a), 'socat made the pty pair');
    const clock = new RealClock();
    const report = await runDoctor(ptyEnv(clock, DK_LINK), { port: realpathSync(a), probeTimeoutMs: 300, baudRates: [1_000_000, 115_200] });
    assert.equal(report.usable, false);
    assert.equal(report.working, undefined);
    // DK settings, again after the zero flush, 1 Mbaud without flow control, 115200 with and without.
    assert.deepEqual(
      report.probes.map((p) => `${p.settings.baudRate}/${p.settings.rtscts ? 'on' : 'off'}${p.resynced ? '+resync' : ''}:${p.outcome}`),
      ['1000000/on:silent', '1000000/on+resync:silent', '1000000/off:silent', '115200/on:silent', '115200/off:silent'],
    );
    const link = report.findings.find((f) => f.check === 'link');
    assert.equal(link?.severity, 'fail');
    assert.match(link?.title ?? '', /the controller is silent/);
  } finally {
    proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
