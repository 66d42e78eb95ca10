/**
 * The Central composition on the virtual air against our Peripheral: scanning with decoded
 * reports, connect by name and by address, timeout and cancel (LE Create Connection Cancel),
 * LESC pairing with identity distribution, re-encryption with the stored key from a new RPA,
 * resolving a peripheral's RPA with a bond's IRK, and the peripheral's parameter request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CentralError, type Advertisement } from '../../src/central/central.js';
import { Hci } from '../../src/hci/driver.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { AdType, encodeAdStructures } from '../../src/hci/advertising.js';
import { HciStatus } from '../../src/hci/status.js';
import { generateIrk, generateRpa } from '../../src/privacy/rpa.js';
import { AttError } from '../../src/att/types.js';
import { HealthUuid } from '../../src/gatt/profile.js';
import { GattUuid } from '../../src/gatt/uuid.js';
import { seededRandom } from '../../src/util/random.js';
import { isResolvablePrivateAddress, type Address } from '../../src/util/address.js';
import { drive, log, world } from './helpers.js';
import { FIRMWARE_NAMES } from '../../src/sim/firmware.js';

test('a scan decodes the wearable advertisement: complete name, 16-bit service UUIDs, connectable', async () => {
  const w = await world();
  const adv = await drive(w.clock, w.central.find({ name: 'Noira Band' }, 5000));
  assert.equal(adv.name, 'Noira Band');
  assert.equal(adv.data.nameComplete, true);
  assert.deepEqual(adv.data.serviceUuids16, [0x180d]);
  assert.equal(adv.connectable, true);
  assert.deepEqual(adv.address, w.peripheral.identity?.address);
  assert.equal(w.central.isScanning, false, 'find() stops the scan it started');
  await w.clock.advance(5000);
  const cached = w.central.seen.find((a) => a.name === 'Noira Band');
  assert.ok(cached && w.clock.now() - cached.seenAt >= 5000, 'the cache keeps when the report was seen');
  await w.close();
});

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: connect by name, discover, pair on 0x05 (LESC Just Works), read the encrypted record, bonds on both sides keyed by identity`, async () => {
    const w = await world({ firmware, central: { privacy: 'rpa', policy: { ioCapability: 0x04 } } });
    w.profile.appendHealthRecord({ note: 'x'.repeat(200) }).catch(() => undefined);
    const link = await drive(w.clock, w.central.connect({ name: 'Noira Band' }, { timeoutMs: 5000 }));
    assert.ok(isResolvablePrivateAddress(link.localAddress), 'the central connected from an RPA');
    assert.equal(await drive(w.clock, link.gatt.exchangeMtu()), 517);
    const remote = await drive(w.clock, link.gatt.discoverAll());
    const record = remote.characteristic(HealthUuid.record);
    assert.ok(record);
    const err = await drive(w.clock, link.gatt.read(record.valueHandle).then(() => undefined, (e: unknown) => e));
    assert.ok(err instanceof AttError && err.code === 0x05, 'no bond: Insufficient Authentication');
    const info = await drive(w.clock, link.smp.pair());
    assert.equal(info.level, 2);
    assert.equal(info.bonded, true);
    assert.equal(info.model, 'justWorks');
    const value = await drive(w.clock, link.gatt.read(record.valueHandle));
    assert.equal(value.length, JSON.stringify({ note: 'x'.repeat(200) }).length);
    // The peripheral stored the bond under our identity (static address), with our IRK.
    const pb = w.periphBonds.list();
    assert.equal(pb.length, 1);
    assert.deepEqual(pb[0]!.peer, w.central.identity!.address);
    assert.deepEqual(pb[0]!.peerIrk, w.central.identity!.irk);
    // And we stored the wearable's identity.
    assert.deepEqual(w.centralBonds.list()[0]!.peer, w.peripheral.identity!.address);
    await w.close();
  });
}

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: after reconnecting from a new RPA the stored key encrypts the link without pairing, and the CCCD comes back`, async () => {
    const w = await world({ firmware, central: { privacy: 'rpa', policy: { ioCapability: 0x04 } } });
    const first = await drive(w.clock, w.central.connect({ name: 'Noira Band' }));
    const remote = await drive(w.clock, first.gatt.discoverAll());
    const periphPaired = w.peripheral.wait('paired');
    await drive(w.clock, first.smp.pair());
    await drive(w.clock, periphPaired);
    const hr = remote.characteristic(GattUuid.heartRateMeasurement)!;
    await drive(w.clock, first.gatt.subscribe(hr, 'notify'));
    await drive(w.clock, first.disconnect());
    let pairings = 0;
    w.peripheral.on('paired', () => pairings++);
    const second = await drive(w.clock, w.central.connect({ address: w.peripheral.identity!.address }));
    assert.notDeepEqual(second.localAddress, first.localAddress);
    assert.ok(isResolvablePrivateAddress(second.localAddress));
    assert.equal(second.smp.encryptWithBond(), true);
    assert.ok(await w.clock.runUntil(() => second.smp.encrypted && w.peripheral.connections[0]?.smp.encrypted === true, 5000), 're-encrypted');
    assert.deepEqual(w.periphBonds.list()[0]!.cccd, { [hr.cccdHandle!]: 1 }, 'the CCCD was kept with the bond');
    assert.equal(w.peripheral.connections[0]!.att.cccdOf(hr.valueHandle), 1, 'restored on encryption');
    const got: Uint8Array[] = [];
    second.gatt.on('notification', (h, v) => h === hr.valueHandle && got.push(v));
    await drive(w.clock, w.profile.setHeartRate(71));
    assert.ok(await w.clock.runUntil(() => got.length === 1, 2000), 'notification without re-subscribing');
    assert.equal(got[0]![1], 71);
    assert.equal(pairings, 0);
    const periphLink = w.peripheral.connections[0]!;
    assert.deepEqual(periphLink.smp.peerIdentity, w.central.identity!.address, 'the wearable resolved the new RPA to our identity');
    await w.close();
  });
}

test('connecting to an address nobody advertises times out: LE Create Connection Cancel, then CentralError timeout', async () => {
  const w = await world();
  const ghost: Advertisement = {
    address: { type: 'random', address: 'C0:00:00:00:00:01' },
    identity: undefined,
    rssi: -50,
    connectable: true,
    data: (await drive(w.clock, w.central.find({ name: 'Noira Band' }, 5000))).data,
    name: 'ghost',
    seenAt: w.clock.now(),
  };
  const sent: string[] = [];
  w.central.hci.on('packet', (dir, p) => {
    if (dir === 'sent' && p[0] === 0x01) sent.push(((p[1] as number) | ((p[2] as number) << 8)).toString(16));
  });
  const t0 = w.clock.now();
  const err = await drive(w.clock, w.central.connect(ghost, { timeoutMs: 3000 }).then(() => undefined, (e: unknown) => e));
  assert.ok(err instanceof CentralError && err.kind === 'timeout', String(err));
  assert.ok(w.clock.now() - t0 >= 3000);
  assert.ok(sent.includes('200d') && sent.includes('200e'), 'LE Create Connection then LE Create Connection Cancel');
  // The controller is free again: a real connection works.
  const link = await drive(w.clock, w.central.connect({ name: 'Noira Band' }));
  assert.equal(link.open, true);
  await w.close();
});

test('cancelConnect() ends a pending attempt with CentralError cancelled', async () => {
  const w = await world();
  const ghost: Advertisement = {
    address: { type: 'random', address: 'C0:00:00:00:00:02' },
    identity: undefined,
    rssi: -50,
    connectable: true,
    data: (await drive(w.clock, w.central.find({ name: 'Noira Band' }, 5000))).data,
    name: 'ghost',
    seenAt: w.clock.now(),
  };
  const p = w.central.connect(ghost, { timeoutMs: 60_000 }).then(() => undefined, (e: unknown) => e);
  await w.clock.advance(500);
  await w.central.cancelConnect();
  const err = await drive(w.clock, p);
  assert.ok(err instanceof CentralError && err.kind === 'cancelled');
  await w.close();
});

test('a name nobody advertises is not found within the timeout', async () => {
  const w = await world();
  const err = await drive(w.clock, w.central.connect({ name: 'Other Band' }, { timeoutMs: 2000 }).then(() => undefined, (e: unknown) => e));
  assert.ok(err instanceof CentralError && err.kind === 'not-found');
  assert.match(err.message, /"Other Band" was not seen advertising within 2 s/);
  await w.close();
});

test("a peripheral advertising from an RPA is found by its identity when a bond holds its IRK", async () => {
  const w = await world();
  const [h, c] = createMemoryTransportPair('rpa-host', 'rpa-ctrl');
  w.air.createController({ name: 'rpa-periph', seed: 'rpa' }).attach(c);
  const hci = new Hci(h, { clock: w.clock, log });
  await drive(w.clock, hci.init());
  const irk = generateIrk(seededRandom('rpa-irk'));
  const rpa = generateRpa(irk, seededRandom('rpa-prand'));
  const identity: Address = { type: 'random', address: 'D1:22:33:44:55:66' };
  await drive(w.clock, hci.command('LeSetRandomAddress', { address: rpa.address }));
  await drive(w.clock, hci.command('LeSetAdvertisingParameters', {
    intervalMin: 160, intervalMax: 160, advertisingType: 0, ownAddressType: 1, peerAddressType: 0, peerAddress: '00:00:00:00:00:00', channelMap: 7, filterPolicy: 0,
  }));
  await drive(w.clock, hci.command('LeSetAdvertisingData', { data: encodeAdStructures([{ type: AdType.CompleteLocalName, data: new TextEncoder().encode('Private Band') }]) }));
  await drive(w.clock, hci.command('LeSetAdvertisingEnable', { enable: true }));
  const now = new Date(w.clock.now()).toISOString();
  await w.centralBonds.put({
    peer: identity, ltk: new Uint8Array(16).fill(7), ediv: 0, rand: 0n, keySize: 16, authenticated: false, secureConnections: true,
    peerIrk: irk, cccd: {}, gatt: { clientFeatures: 0, changeAware: true }, createdAt: now, lastSeenAt: now,
  });
  const adv = await drive(w.clock, w.central.find({ address: identity }, 5000));
  assert.deepEqual(adv.address, rpa);
  assert.deepEqual(adv.identity, identity);
  const link = await drive(w.clock, w.central.connect(adv));
  assert.deepEqual(link.peer, rpa);
  assert.deepEqual(link.peerIdentity, identity, 'the SMP session resolved the RPA to the bonded identity');
  hci.close();
  await w.close();
});

test("the wearable's connection parameter request is accepted and applied with LE Connection Update", async () => {
  const w = await world({ peripheral: { connectionParameters: { intervalMin: 12, intervalMax: 24, latency: 4, timeout: 500 }, connectionParametersDelayMs: 1000 } });
  const requests: boolean[] = [];
  w.central.on('parameterRequest', (_l, _p, accepted) => requests.push(accepted));
  const link = await drive(w.clock, w.central.connect({ name: 'Noira Band' }));
  const updated = new Promise<number>((resolve) => w.central.hci.once('connectionUpdated', (_c, status) => resolve(status)));
  assert.equal(await drive(w.clock, updated, 10_000), HciStatus.Success);
  assert.deepEqual(requests, [true]);
  assert.equal(link.hci.interval, 24);
  assert.equal(link.hci.latency, 4);
  await w.close();
});

test('a rejecting acceptParameters hook answers the request with result 1 and nothing changes', async () => {
  const w = await world({
    central: { acceptParameters: () => false },
    peripheral: { connectionParameters: { intervalMin: 12, intervalMax: 24, latency: 4, timeout: 500 }, connectionParametersDelayMs: 1000 },
  });
  const outcomes: string[] = [];
  const link = await drive(w.clock, w.central.connect({ name: 'Noira Band' }));
  w.peripheral.connections[0]!.l2cap.on('parameterUpdateResult', (r) => outcomes.push(r.outcome));
  await w.clock.advance(3000);
  assert.deepEqual(outcomes, ['rejected']);
  assert.equal(link.hci.interval, 24);
  assert.equal(link.hci.latency, 0);
  await w.close();
});

test(
  'a CCCD written right after the central completed pairing is kept with the bond',
  async () => {
    const w = await world({ central: { policy: { ioCapability: 0x04 } } });
    const link = await drive(w.clock, w.central.connect({ name: 'Noira Band' }));
    const remote = await drive(w.clock, link.gatt.discoverAll());
    await drive(w.clock, link.smp.pair());
    const hr = remote.characteristic(GattUuid.heartRateMeasurement)!;
    await drive(w.clock, link.gatt.subscribe(hr, 'notify'));
    await w.clock.advance(100);
    try {
      assert.deepEqual(w.periphBonds.list()[0]?.cccd, { [hr.cccdHandle!]: 1 });
    } finally {
      await w.close();
    }
  },
);
