/**
 * Bring-up through a flaky serial line: one controller-to-host packet dropped, garbled or inserted
 * during bring-up must not abort start-up; the driver starts again from HCI Reset (bounded) and the
 * wearable comes up advertising. A controller whose answers keep getting lost still fails, with a
 * message naming the port and the next step. Virtual time throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Hci } from '../../src/hci/driver.js';
import { HciError } from '../../src/hci/hci-error.js';
import { Peripheral } from '../../src/host.js';
import { buildGattDatabase } from '../../src/gatt/database.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';
import { ScriptedController } from './fixtures/scripted-controller.js';
import { createFaultProxy, type Fault } from './fixtures/fault-proxy.js';

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 60_000): Promise<T> {
  return clock.drive(p, maxMs);
}

/** Controller-to-host packets of a clean start-up (bring-up, identity, advertising on). */
async function cleanStartPackets(): Promise<number> {
  const { clock, proxy, p } = peripheralThrough('drop', Infinity, 'clean');
  await drive(clock, p.start());
  const n = proxy.packets;
  await drive(clock, p.stop());
  return n;
}

function peripheralThrough(fault: Fault, at: number, seed: string) {
  const clock = new VirtualClock();
  const proxy = createFaultProxy({ fault, at, seed });
  const ctrl = new ScriptedController(proxy.controller, { clock });
  const db = buildGattDatabase({ services: [{ uuid: 0x180f, characteristics: [{ uuid: 0x2a19, properties: ['read'], value: Uint8Array.of(90) }] }] });
  const p = new Peripheral({ transport: proxy.host, clock, random: seededRandom(seed), log: silentLogger(), bonds: new MemoryBondStore(), db, connectionParameters: false });
  return { clock, proxy, ctrl, p };
}

test('a dropped Command Complete during bring-up (Read Local Version Information) does not abort start-up: bring-up starts again from HCI Reset and the wearable advertises', async () => {
  const { clock, proxy, ctrl, p } = peripheralThrough('drop', 2, 'drop-2');
  await drive(clock, p.start());
  assert.ok(proxy.applied);
  // The dropped packet was the answer to the second command, Read Local Version Information (0x1001).
  assert.deepEqual([...proxy.injected!.original.subarray(0, 7)], [0x04, 0x0e, proxy.injected!.original[2]!, 0x01, 0x01, 0x10, 0x00]);
  assert.equal(ctrl.commands.filter((c) => c.name === 'Reset').length, 2, 'a second bring-up from HCI Reset');
  assert.ok(p.advertising);
  assert.equal(ctrl.advertising, true, 'the controller advertises');
  await drive(clock, p.stop());
});

test('every single dropped, garbled or inserted packet during start-up (seeded) still ends with the controller up and advertising', async () => {
  const n = await cleanStartPackets();
  assert.ok(n >= 10, `start-up exchanges ${n} packets`);
  const failures: string[] = [];
  for (const fault of ['drop', 'garble', 'insert'] as const) {
    for (let at = 1; at <= n; at++) {
      const seed = `${fault}-${at}`;
      const { clock, proxy, ctrl, p } = peripheralThrough(fault, at, seed);
      try {
        await drive(clock, p.start());
        if (!ctrl.advertising) failures.push(`${seed}: not advertising`);
      } catch (err) {
        failures.push(`${seed}: ${(err as Error).message}`);
      }
      assert.ok(proxy.applied, `${seed}: the fault was applied`);
      await drive(clock, p.stop()).catch(() => undefined);
    }
  }
  assert.deepEqual(failures, []);
});

test('a controller whose bring-up answers keep getting lost fails after the bounded attempts, naming the port and the next step', async () => {
  const clock = new VirtualClock();
  const proxy = createFaultProxy({ fault: 'drop', at: Infinity, seed: 'lossy' });
  const ctrl = new ScriptedController(proxy.controller, { clock });
  // Read Local Version Information is never answered: every attempt gets past Reset, then times out.
  ctrl.on('ReadLocalVersionInformation', () => 'silent');
  const hci = new Hci(proxy.host, { clock, log: pino({ level: 'silent' }), bringUpAttempts: 3 });
  const err = await drive(clock, hci.init()).then(
    () => assert.fail('bring-up should fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof HciError);
  assert.equal(err.kind, 'timeout');
  assert.equal(ctrl.commands.filter((c) => c.name === 'Reset').length, 3, 'three bring-ups, each from HCI Reset');
  assert.match(err.message, /Bring-up of the controller on memory:wearable failed 3 times/);
  assert.match(err.message, /0x1001/);
  assert.match(err.message, /RESET button/);
  assert.equal(hci.state, 'failed');
  hci.close();
  await proxy.host.close();
});
