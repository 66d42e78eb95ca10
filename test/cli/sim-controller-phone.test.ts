/**
 * `sim-controller --phone`: a simulated phone on the served air exercises a wearable-host that
 * attaches to a served controller from outside (here over TCP, as another process would).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { registerSimControllerCommand } from '../../src/cli/sim-controller-command.js';
import { parseWearableSettings, startWearable } from '../../src/cli/run-wearable.js';
import type { MainCliOptions } from '../../src/cli/options.js';
import type { ServedControllers } from '../../src/sim/serve.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { silentLogger } from '../../src/util/log.js';

const DEFAULTS: MainCliOptions = {
  baud: '1000000', rtscts: true, chunkSize: '64', name: 'Noira Band', logLevel: 'silent', maxBonds: '16', mtu: '517',
  securityRequest: 'never', securityRequestDelay: '0', repair: 'reject', minKeySize: '16', ioCapability: 'no-input-no-output',
  connParams: true, simulatedValues: true,
};

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

test('sim-controller --phone ios pairs with a wearable that attached to a served controller over TCP, and prints a PASS verdict', async () => {
  let served: ServedControllers | undefined;
  let stop: (sig: string) => void = () => undefined;
  let out = '';
  const program = new Command().exitOverride();
  registerSimControllerCommand(program, {
    out: (t) => void (out += t),
    logger: () => silentLogger(),
    waitForStop: () => new Promise((resolve) => (stop = resolve)),
    onServing: (s) => (served = s),
  });
  const savedExit = process.exitCode;
  const run = program.parseAsync(['node', 'wearable-host', 'sim-controller', '--tcp', '0', '--phone', 'ios', '--seed', 'phone-test', '--log-level', 'silent']);
  assert.ok(await until(() => served !== undefined, 5000), 'controllers served');
  const transport = await TcpTransport.connect(`tcp://127.0.0.1:${served!.controllers[0]!.port}`);
  const session = await startWearable({ settings: parseWearableSettings(DEFAULTS), transport, log: silentLogger(), bonds: new MemoryBondStore(), simulateValues: true });
  try {
    assert.ok(await until(() => out.includes('verdict:'), 30_000), `the phone finished:\n${out}`);
    assert.match(out, /^PHONE ios on the same air, looking for "Noira Band"/m);
    assert.match(out, /iOS -> wearable: SMP Pairing Request IO KeyboardDisplay, AuthReq 0x0d/);
    assert.match(out, /verdict: PASS/);
    assert.equal(session.bonds.list().length, 1, 'the wearable stored the phone\'s bond');
  } finally {
    await session.close();
    stop('SIGINT');
    await run;
  }
  assert.equal(process.exitCode, 0, 'exit code is the verdict');
  process.exitCode = savedExit;
});
