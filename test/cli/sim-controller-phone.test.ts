/**
 * `sim-controller --phone`: a simulated phone on the served air exercises a wearable-host that
 * attaches to a served controller from outside (here over TCP, as another process would).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulatedPhoneController } from '../../src/cli/sim-controller-command.js';
import { serveSimulatedPhone } from './fixtures/served-phone.js';
import { VirtualAir } from '../../src/sim/air.js';
import { parseWearableSettings, startWearable } from '../../src/lib/session.js';
import type { MainCliOptions } from '../../src/lib/options.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { silentLogger } from '../../src/util/log.js';
import { JsonFileBondStore } from '../../src/bonds/json-store.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DEFAULTS: MainCliOptions = {
  baud: '1000000', rtscts: true, chunkSize: '64', name: 'Noira Band', logLevel: 'silent', maxBonds: '16', mtu: '517',
  securityRequest: 'never', securityRequestDelay: '0', repair: 'reject', minKeySize: '16', ioCapability: 'no-input-no-output',
  connParams: true, simulatedValues: true,
};

test('sim-controller --phone ios pairs with a wearable that attached to a served controller over TCP, and prints a PASS verdict', async () => {
  const savedExit = process.exitCode;
  const phone = await serveSimulatedPhone(['--phone', 'ios', '--seed', 'phone-test']);
  const transport = await TcpTransport.connect(phone.url);
  const session = await startWearable({ settings: parseWearableSettings(DEFAULTS), transport, log: silentLogger(), bonds: new MemoryBondStore(), simulateValues: true });
  try {
    assert.ok(await phone.verdict(30_000), `the phone finished:\n${phone.out()}`);
    const out = phone.out();
    assert.match(out, /^PHONE ios on the same air, looking for "Noira Band"/m);
    assert.match(out, /iOS -> wearable: SMP Pairing Request IO KeyboardDisplay, AuthReq 0x0d/);
    assert.match(out, /verdict: PASS/);
    assert.equal(session.bonds.list().length, 1, 'the wearable stored the phone\'s bond');
  } finally {
    await session.close();
    await phone.stop();
  }
  assert.equal(process.exitCode, 0, 'exit code is the verdict');
  process.exitCode = savedExit;
});

/** One run of the README recipe: sim-controller --phone ios, a wearable attached with its bond file; resolves with stdout. */
async function runRecipeOnce(bondsFile: string, extra: readonly string[] = []): Promise<{ out: string; exitCode: number | undefined; wearableBonds: number }> {
  const savedExit = process.exitCode;
  process.exitCode = undefined;
  const phone = await serveSimulatedPhone(['--phone', 'ios', ...extra]);
  const transport = await TcpTransport.connect(phone.url);
  const bonds = await JsonFileBondStore.open(bondsFile, { logger: silentLogger() });
  const session = await startWearable({ settings: parseWearableSettings(DEFAULTS), transport, log: silentLogger(), bonds, simulateValues: true });
  let wearableBonds = 0;
  try {
    await phone.verdict(30_000);
    wearableBonds = session.bonds.list().length;
  } finally {
    await session.close();
    await phone.stop();
  }
  const exitCode = typeof process.exitCode === 'number' ? process.exitCode : undefined;
  process.exitCode = savedExit;
  return { out: phone.out(), exitCode, wearableBonds };
}

test('the README recipe run twice against a wearable that kept its bond file: the second phone pairs too (no identity claimed with a different IRK)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sim-phone-twice-'));
  try {
    const file = join(dir, 'bonds.json');
    const first = await runRecipeOnce(file);
    assert.match(first.out, /verdict: PASS/, first.out);
    assert.equal(first.wearableBonds, 1);
    const second = await runRecipeOnce(file);
    assert.doesNotMatch(second.out, /Pairing Failed|Unspecified Reason|Authentication Requirements/i, second.out);
    assert.match(second.out, /iOS -> wearable: SMP Pairing Request IO KeyboardDisplay, AuthReq 0x0d/);
    assert.match(second.out, /verdict: PASS/, second.out);
    assert.equal(second.exitCode, 0, 'exit code is the verdict');
    // A fresh phone each run: its own bond next to the first one, the first phone's bond untouched.
    assert.equal(second.wearableBonds, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the simulated phone\'s address and IRK come from one source: the same pair for the same --seed, a new pair without one', async () => {
  const ids = [];
  for (const seed of ['night-run', 'night-run', undefined, undefined]) {
    const air = new VirtualAir({ seed: 'served' });
    try {
      const { controller, identity } = simulatedPhoneController(air, 'phone-ios', seed);
      assert.equal(identity.address.address, controller.staticAddress, 'the identity address is the controller\'s static address');
      assert.equal(identity.irk.length, 16);
      ids.push({ address: identity.address.address, irk: Buffer.from(identity.irk).toString('hex') });
    } finally {
      await air.close();
    }
  }
  assert.deepEqual(ids[0], ids[1], 'same seed: same address, same IRK');
  assert.notEqual(ids[2]!.address, ids[3]!.address, 'no seed: a new address each run');
  assert.notEqual(ids[2]!.irk, ids[3]!.irk, 'no seed: a new IRK each run');
  assert.notEqual(ids[0]!.irk, ids[2]!.irk);
});
