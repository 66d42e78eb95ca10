/**
 * The composition root across controller faults: a Hardware Error mid-run re-initialises the
 * controller; the wearable drops the links the controller lost, keeps its identity and its bonds,
 * and advertises again. Runs against the scripted nRF5340 hci_uart controller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Peripheral } from '../src/host.js';
import { createMemoryTransportPair } from '../src/hci/memory-transport.js';
import { buildGattDatabase } from '../src/gatt/database.js';
import { MemoryBondStore } from '../src/bonds/memory.js';
import { VirtualClock } from '../src/util/clock.js';
import { seededRandom } from '../src/util/random.js';
import { silentLogger } from '../src/util/log.js';
import { fromHex } from '../src/util/bytes.js';
import { ScriptedController, DK_STATIC_ADDRESS } from './hci/fixtures/scripted-controller.js';
import { createFaultProxy } from './hci/fixtures/fault-proxy.js';
import { HciError } from '../src/hci/hci-error.js';
import type { BondRecord } from '../src/bonds/types.js';

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 10_000): Promise<T> {
  return clock.drive(p, maxMs);
}

const PHONE = { type: 'random' as const, address: 'C4:12:34:56:78:9A' };

/** A Secure Connections bond with PHONE whose LTK is the byte `ltkByte` sixteen times. */
function phoneBond(ltkByte: string): BondRecord {
  return {
    peer: PHONE,
    ltk: fromHex(ltkByte.repeat(16)),
    ediv: 0,
    rand: 0n,
    keySize: 16,
    authenticated: false,
    secureConnections: true,
    cccd: {},
    gatt: { clientFeatures: 0, changeAware: true },
    createdAt: '2026-01-01T00:00:00.000Z',
    lastSeenAt: '2026-01-01T00:00:00.000Z',
  };
}

test('a Hardware Error mid-run: the controller is reset and brought up again, the lost link is dropped, identity and bonds are kept, advertising resumes', async () => {
  const clock = new VirtualClock();
  const [host, far] = createMemoryTransportPair('wearable', 'scripted-dk');
  const ctrl = new ScriptedController(far, { clock });
  const bond = phoneBond('11');
  const bonds = new MemoryBondStore({ bonds: [bond] });
  const db = buildGattDatabase({ services: [{ uuid: 0x180f, characteristics: [{ uuid: 0x2a19, properties: ['read'], value: Uint8Array.of(90) }] }] });
  const p = new Peripheral({ transport: host, clock, random: seededRandom('recovery'), log: silentLogger(), bonds, db, connectionParameters: false });
  await drive(clock, p.start());
  const identity = p.identity;
  assert.equal(identity?.address.address, DK_STATIC_ADDRESS);
  assert.ok(p.advertising);

  await drive(clock, ctrl.connect({ handle: 0x40, peer: PHONE }));
  assert.equal(p.connections.length, 1);
  const disconnected: number[] = [];
  p.on('disconnected', (_l, reason) => disconnected.push(reason));

  const resetsBefore = ctrl.commands.filter((c) => c.name === 'Reset').length;
  const enablesBefore = ctrl.commands.filter((c) => c.name === 'LeSetAdvertisingEnable').length;
  await drive(clock, ctrl.hardwareError(0x01));
  assert.ok(await clock.runUntil(() => ctrl.commands.filter((c) => c.name === 'LeSetAdvertisingEnable').length > enablesBefore, 10_000), 'advertising enabled again');
  assert.equal(ctrl.commands.filter((c) => c.name === 'Reset').length, resetsBefore + 1, 'one HCI Reset re-initialised the controller');
  assert.equal(p.connections.length, 0, 'the link the controller lost is gone');
  assert.deepEqual(disconnected, [0x03], 'reported with reason 0x03 Hardware Failure');
  assert.deepEqual(p.identity, identity, 'same identity');
  assert.equal(bonds.list().length, 1, 'the bond is kept');
  assert.ok(p.advertising, 'advertising again');
  const setAddr = ctrl.commands.filter((c) => c.name === 'LeSetRandomAddress').at(-1);
  assert.deepEqual(setAddr?.params, { address: DK_STATIC_ADDRESS }, 'the static identity address is set again after the reset');
  await drive(clock, p.stop());
});

test('an HCI command timeout after bring-up (its answer lost on the line): the controller is re-initialised from HCI Reset, the lost link is dropped, identity and bonds are kept, advertising resumes', async () => {
  const clock = new VirtualClock();
  const proxy = createFaultProxy({ fault: 'drop', at: Infinity, seed: 'timeout' });
  const ctrl = new ScriptedController(proxy.controller, { clock });
  const bond = phoneBond('22');
  const bonds = new MemoryBondStore({ bonds: [bond] });
  const db = buildGattDatabase({ services: [] });
  const p = new Peripheral({ transport: proxy.host, clock, random: seededRandom('timeout'), log: silentLogger(), bonds, db, connectionParameters: false });
  await drive(clock, p.start());
  const identity = p.identity;
  await drive(clock, ctrl.connect({ handle: 0x40, peer: PHONE }));
  assert.equal(p.connections.length, 1);
  const disconnected: number[] = [];
  p.on('disconnected', (_l, reason) => disconnected.push(reason));
  const resetsBefore = ctrl.commands.filter((c) => c.name === 'Reset').length;
  const enablesBefore = ctrl.commands.filter((c) => c.name === 'LeSetAdvertisingEnable').length;

  // The controller answers LE Rand, but the answer is lost on the line.
  proxy.armNext('drop');
  const err = await drive(clock, p.hci.command('LeRand', {})).then(
    () => assert.fail('the command should time out'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof HciError && err.kind === 'timeout');
  assert.deepEqual([...proxy.injected!.original.subarray(3, 6)], [0x01, 0x18, 0x20], 'the dropped packet was the Command Complete for LE Rand (0x2018)');
  assert.ok(await clock.runUntil(() => ctrl.commands.filter((c) => c.name === 'LeSetAdvertisingEnable').length > enablesBefore && p.hci.ready, 10_000), 'advertising enabled again');
  assert.equal(ctrl.commands.filter((c) => c.name === 'Reset').length, resetsBefore + 1, 'one HCI Reset re-initialised the controller');
  assert.equal(p.connections.length, 0, 'the link the controller lost is gone');
  assert.deepEqual(disconnected, [0x03]);
  assert.deepEqual(p.identity, identity, 'same identity');
  assert.equal(bonds.list().length, 1, 'the bond is kept');
  assert.ok(p.advertising);
  assert.equal(ctrl.advertising, true, 'the controller advertises again');
  await drive(clock, p.stop());
});

test('a peer cannot make the wearable buffer an L2CAP frame longer than its largest ATT PDU: reassembly stops and the frame is dropped', async () => {
  const clock = new VirtualClock();
  const [host, far] = createMemoryTransportPair('wearable', 'scripted-dk');
  const ctrl = new ScriptedController(far, { clock });
  const db = buildGattDatabase({ services: [] });
  const p = new Peripheral({ transport: host, clock, random: seededRandom('bounds'), log: silentLogger(), bonds: new MemoryBondStore(), db, mtu: 247, connectionParameters: false });
  await drive(clock, p.start());
  await drive(clock, ctrl.connect({ handle: 0x40, peer: PHONE }));
  const dropsBefore = p.hci.aclStats().rx.dropped;
  // A first fragment announcing a 4000-byte ATT frame (limit: 4 + 247).
  await drive(clock, ctrl.sendAcl(0x40, 0b10, fromHex('a00f0400' + '0a'.repeat(20))));
  assert.ok(await clock.runUntil(() => p.hci.aclStats().rx.dropped > dropsBefore, 1000), 'the oversized frame was dropped at its first fragment');
  // The link still works: a normal Read Request is answered.
  await drive(clock, ctrl.sendAcl(0x40, 0b10, fromHex('030004000a0100')));
  assert.ok(await clock.runUntil(() => ctrl.aclPackets.length > 0, 1000), 'the next request is answered');
  const rsp = ctrl.aclPackets[0]!.data;
  // L2CAP header, then ATT Read Response (0x0b) with the GAP service declaration's value, 0x1800.
  assert.equal(Buffer.from(rsp).toString('hex'), '030004000b0018');
  await drive(clock, p.stop());
});
