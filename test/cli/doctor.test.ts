/**
 * `wearable-host doctor` as a commander command: text and JSON output, and a thrown
 * DoctorFailure (non-zero exit) exactly when the DK is not usable. Runs against the virtual
 * controller on in-memory transports and a VirtualClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { VirtualClock } from '../../src/util/clock.js';
import { WearableHostError } from '../../src/util/errors.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { VirtualAir } from '../../src/sim/index.js';
import { hciSession } from '../../src/doctor/session.js';
import { DoctorFailure, registerDoctorCommand } from '../../src/cli/doctor.js';
import type { DoctorReport } from '../../src/doctor/types.js';
import { fakeEnv } from '../doctor/fixtures.js';

const PORT = '/dev/serial/by-id/usb-SEGGER_J-Link_001050012345-if00';

async function runCli(args: string[], opts: { powered: boolean }): Promise<{ out: string; error: unknown }> {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: 'doctor-cli' });
  const ctrl = air.createController({ name: 'dk' });
  if (!opts.powered) ctrl.powerOff();
  const env = fakeEnv({
    clock,
    machine: {
      dirs: { '/dev': ['ttyACM0'], '/dev/serial/by-id': ['usb-SEGGER_J-Link_001050012345-if00'], '/proc': [] },
      real: { [PORT]: '/dev/ttyACM0' },
      nodes: { '/dev/ttyACM0': { uid: 0, gid: 20, mode: 0o20660 } },
    },
    openPort: async () => {
      const [host, end] = createMemoryTransportPair('host', 'dk');
      if (ctrl.isPowered) ctrl.attach(end);
      return host;
    },
    openController: (t, o) => hciSession(t, { clock, timeoutMs: o.timeoutMs }),
  });
  const out: string[] = [];
  const program = new Command().exitOverride();
  registerDoctorCommand(program, { out: (s) => void out.push(s), env: () => env });
  let finished = false;
  let error: unknown;
  const p = program
    .parseAsync(['doctor', ...args], { from: 'user' })
    .catch((e: unknown) => {
      error = e;
    })
    .finally(() => (finished = true));
  assert.ok(await clock.runUntil(() => finished, 30 * 60_000));
  await p;
  air.close();
  return { out: out.join(''), error };
}

test('doctor --json prints the whole report as JSON and does not fail when the DK is usable', async () => {
  const { out, error } = await runCli(['--port', PORT, '--json', '--probe-timeout', '300'], { powered: true });
  assert.equal(error, undefined);
  const report = JSON.parse(out) as DoctorReport;
  assert.equal(report.usable, true);
  assert.equal(report.port, PORT);
  assert.deepEqual(report.working, { baudRate: 1_000_000, rtscts: true });
  assert.deepEqual(
    report.findings.map((f) => [f.check, f.severity]).filter(([c]) => ['link', 'identity', 'le-encrypt'].includes(c as string)),
    [
      ['link', 'ok'],
      ['identity', 'ok'],
      ['le-encrypt', 'ok'],
    ],
  );
});

test('doctor prints the text report, then throws DoctorFailure (exit code 1) naming the first failure and its fix', async () => {
  const { out, error } = await runCli(['--port', PORT, '--probe-timeout', '300'], { powered: false });
  assert.match(out, /^wearable-host doctor: \/dev\/serial\/by-id\/usb-SEGGER_J-Link_001050012345-if00\n/);
  assert.match(out, /\[FAIL\] link/);
  assert.match(out, /Result: NOT usable/);
  assert.ok(error instanceof DoctorFailure);
  assert.ok(error instanceof WearableHostError);
  assert.equal(error.layer, 'cli');
  assert.equal(error.exitCode, 1);
  assert.match(error.message, /doctor: the DK is not usable: no HCI Reset answer on .*\. Fix: check that hci_uart runs on the network core/);
  assert.equal(error.report.usable, false);
});

test('a bad --probe-timeout is a CLI error, not a run', async () => {
  const { out, error } = await runCli(['--port', PORT, '--probe-timeout', 'soon'], { powered: true });
  assert.equal(out, '');
  assert.ok(error instanceof WearableHostError);
  assert.match((error as Error).message, /--probe-timeout must be a positive whole number, got "soon"/);
});
