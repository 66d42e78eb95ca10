import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattServer } from '../../src/gatt/server.js';
import {
  BodySensorLocation,
  HealthUuid,
  SimulatedFeeder,
  WearableProfile,
  encodeHeartRateMeasurement,
  joinRecordSegments,
  segmentRecord,
} from '../../src/gatt/profile.js';
import { Uuid } from '../../src/gatt/uuid.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { FakeLower, LINKS, exchange } from '../att/helpers.js';

function h16(v: number): string {
  return toHex(Uint8Array.of(v & 0xff, v >> 8));
}

function connect(profile: WearableProfile, link: keyof typeof LINKS = 'L2') {
  const lower = new FakeLower();
  lower.security.set(LINKS[link]);
  const clock = new VirtualClock();
  const server = new GattServer({ db: profile.db, lower, clock });
  return { lower, server, clock };
}

test('Heart Rate Measurement encoding follows HRS 3.1.1 (flags, UINT8/UINT16, energy, RR-intervals)', () => {
  assert.equal(toHex(encodeHeartRateMeasurement(72, undefined)), '0048');
  assert.equal(toHex(encodeHeartRateMeasurement(72, 0, { contact: true, rrIntervals: [853] })), '1e4800005503');
  assert.equal(toHex(encodeHeartRateMeasurement(300, 10, { contact: false })), '0d2c010a00');
});

test('the profile database: HRS, BAS, DIS and the 128-bit health service, GAP and GATT first', () => {
  const p = new WearableProfile({ deviceName: 'wrist' });
  const uuids = p.db.services.map((s) => s.uuid.toString());
  assert.deepEqual(uuids, ['0x1800', '0x1801', '0x180D', '0x180F', '0x180A', HealthUuid.service]);
  assert.equal(p.db.attribute(p.db.characteristic('hrs.measurement')?.cccdHandle as number)?.permissions.write, 'encrypted');
  assert.equal(p.db.attribute(p.db.characteristic('health.record')?.cccdHandle as number)?.permissions.write, 'encrypted');
  assert.equal(toHex(p.db.value('hrs.location')), '02');
  assert.equal(BodySensorLocation.wrist, 2);
  assert.equal(Uuid.parse(HealthUuid.record).toString(), HealthUuid.record);
  assert.equal(new TextDecoder().decode(p.db.value('gap.deviceName')), 'wrist');
  // Deterministic handles: two builds, one layout and one hash.
  assert.equal(new WearableProfile({ deviceName: 'wrist' }).db.hashHex, p.db.hashHex);
});

test('subscribing to heart rate on an unencrypted link asks for pairing (0x05); once encrypted it works and setHeartRate notifies', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p, 'L1');
  const cccd = p.db.characteristic('hrs.measurement')?.cccdHandle as number;
  const value = p.db.handle('hrs.measurement');
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0100`), `0112${h16(cccd)}05`);
  assert.deepEqual(lower.rejections, [0x05]);
  lower.security.set(LINKS.L2);
  server.onSecurityChanged();
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0100`), '13');
  assert.deepEqual(await p.setHeartRate(64, { contact: true }), { notified: 1, indicated: 0, skipped: 0 });
  assert.deepEqual(lower.take(), [`1b${h16(value)}0e400000`]);
  assert.equal(p.heartRate, 64);
});

test('Heart Rate Control Point: 0x01 resets Energy Expended; any other value is 0x80', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p);
  const cp = p.db.handle('hrs.controlPoint');
  p.addEnergy(42);
  let resets = 0;
  p.on('energyReset', () => resets++);
  assert.equal(await exchange(server, lower, `12${h16(cp)}02`), `0112${h16(cp)}80`);
  assert.equal(p.energyExpended, 42);
  assert.equal(await exchange(server, lower, `12${h16(cp)}01`), '13');
  assert.equal(p.energyExpended, 0);
  assert.equal(resets, 1);
});

test('battery: read and notify', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p, 'L1');
  const h = p.db.handle('bas.level');
  const cccd = p.db.characteristic('bas.level')?.cccdHandle as number;
  assert.equal(await exchange(server, lower, `0a${h16(h)}`), '0b64');
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0100`), '13');
  await p.setBattery(87);
  assert.deepEqual(lower.take(), [`1b${h16(h)}57`]);
  assert.throws(() => p.setBattery(101), /0\.\.100/);
});

test('health records need encryption, are read whole with Read Blob at MTU 23, and are notified in MTU-sized segments', async () => {
  const p = new WearableProfile();
  const record = { t: '2026-01-01T00:00:00.000Z', hr: 71, steps: 1234, spo2: 98, note: 'a record longer than one ATT_MTU of 23 bytes' };
  const bytes = new TextEncoder().encode(JSON.stringify(record));
  const h = p.db.handle('health.record');
  const cccd = p.db.characteristic('health.record')?.cccdHandle as number;

  const plain = connect(p, 'L1ltk');
  assert.equal(await exchange(plain.server, plain.lower, `0a${h16(h)}`), `010a${h16(h)}0f`);
  assert.equal(await exchange(plain.server, plain.lower, `12${h16(cccd)}0100`), `0112${h16(cccd)}0f`);

  const small = connect(p);
  const big = connect(p);
  await exchange(big.server, big.lower, '02 f700');
  assert.equal(await exchange(small.server, small.lower, `12${h16(cccd)}0100`), '13');
  assert.equal(await exchange(big.server, big.lower, `12${h16(cccd)}0100`), '13');
  assert.deepEqual(await p.appendHealthRecord(record), { delivered: 2, skipped: 1 });

  const segs = (l: FakeLower) => l.take().map((x) => fromHex(x).subarray(3));
  const smallSegs = segs(small.lower);
  assert.equal(smallSegs.length, Math.ceil(bytes.length / 19));
  for (const s of smallSegs.slice(0, -1)) assert.equal(s.length, 20);
  assert.equal((smallSegs.at(-1)?.[0] ?? 0) & 0x80, 0x80);
  assert.equal(toHex(joinRecordSegments(smallSegs)), toHex(bytes));
  const bigSegs = segs(big.lower);
  assert.equal(bigSegs.length, 1);
  assert.equal(toHex(joinRecordSegments(bigSegs)), toHex(bytes));

  // Long read at MTU 23.
  const parts: string[] = [];
  let r = await exchange(small.server, small.lower, `0a${h16(h)}`);
  parts.push(r.slice(2));
  for (let off = 22; r.length === 2 + 44; off += 22) {
    r = await exchange(small.server, small.lower, `0c${h16(h)}${h16(off)}`);
    parts.push(r.slice(2));
  }
  assert.equal(parts.join(''), toHex(bytes));
});

test('Record Control Point selects a record per connection, reports Out of Range and unknown opcodes, and clears', async () => {
  const p = new WearableProfile();
  for (let i = 0; i < 3; i++) await p.appendHealthRecord(Uint8Array.of(0xa0 + i));
  const a = connect(p);
  const b = connect(p);
  const cp = p.db.handle('health.controlPoint');
  const rec = p.db.handle('health.record');
  const count = p.db.handle('health.count');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(count)}`), '0b0300');
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}010000`), '13');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(rec)}`), '0ba0');
  assert.equal(await exchange(b.server, b.lower, `0a${h16(rec)}`), '0ba2');
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}010300`), `0112${h16(cp)}ff`);
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}09`), `0112${h16(cp)}80`);
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}01`), `0112${h16(cp)}0d`);
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}02`), '13');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(rec)}`), '0ba2');
  assert.equal(await exchange(a.server, a.lower, `12${h16(cp)}03`), '13');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(count)}`), '0b0000');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(rec)}`), '0b');
});

test('the annotation takes a long write (Prepare + Execute) at MTU 23', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p);
  const h = p.db.handle('health.annotation');
  const text = 'slept badly; morning run 5 km; resting heart rate lower than usual';
  const bytes = new TextEncoder().encode(text);
  const seen: string[] = [];
  p.on('annotation', (t) => seen.push(t));
  for (let o = 0; o < bytes.length; o += 18) {
    const part = toHex(bytes.subarray(o, o + 18));
    assert.equal(await exchange(server, lower, `16${h16(h)}${h16(o)}${part}`), `17${h16(h)}${h16(o)}${part}`);
  }
  assert.equal(await exchange(server, lower, '1801'), '19');
  assert.deepEqual(seen, [text]);
  assert.equal(p.annotation, text);
});

test('segmentRecord splits into header + data parts and joinRecordSegments restores the record', () => {
  const r = Uint8Array.from({ length: 45 }, (_, i) => i);
  const s = segmentRecord(r, 20);
  assert.deepEqual(
    s.map((x) => x[0]),
    [0x00, 0x01, 0x82],
  );
  assert.equal(toHex(joinRecordSegments(s)), toHex(r));
  assert.equal(toHex(segmentRecord(new Uint8Array(0), 20)[0] ?? new Uint8Array()), '80');
});

test('the simulated feeder drives heart rate every second, battery every minute and a record every 30 s on a VirtualClock, and stops cleanly', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p);
  await exchange(server, lower, `12${h16(p.db.characteristic('hrs.measurement')?.cccdHandle as number)}0100`);
  const clock = new VirtualClock();
  const feeder = new SimulatedFeeder(p, clock);
  feeder.start();
  await clock.advance(61_000);
  const sent = lower.take();
  const hrm = h16(p.db.handle('hrs.measurement'));
  assert.equal(sent.filter((x) => x.startsWith(`1b${hrm}`)).length, 61);
  assert.equal(p.battery, 99);
  assert.equal(p.healthRecords.length, 2);
  const rec = JSON.parse(new TextDecoder().decode(p.healthRecords[0])) as { t: string; note: string; hr: number };
  assert.equal(rec.t, '2026-01-01T00:00:30.000Z');
  assert.equal(rec.note, 'simulated');
  assert.ok(p.heartRate >= 58 && p.heartRate <= 86, `heart rate ${p.heartRate}`);
  feeder.stop();
  assert.equal(clock.pendingCount, 0);
  server.onDisconnected();
});

test('the feeder skips a tick whose previous update is still waiting for the link (back-pressure, no queue)', async () => {
  const p = new WearableProfile();
  const { lower, server } = connect(p);
  await exchange(server, lower, `12${h16(p.db.characteristic('hrs.measurement')?.cccdHandle as number)}0100`);
  lower.hold = true;
  const clock = new VirtualClock();
  const feeder = new SimulatedFeeder(p, clock, { batteryIntervalMs: 3_600_000, recordIntervalMs: 3_600_000 });
  feeder.start();
  await clock.advance(5_000);
  assert.equal(lower.sent.length, 1);
  assert.equal(feeder.skipped, 4);
  lower.release();
  await settle();
  await clock.advance(1_000);
  assert.equal(lower.sent.length, 2);
  feeder.stop();
  lower.release();
  server.onDisconnected();
});

test('the feeder with initialRecord appends one health record at start, then one every 30 s', async () => {
  const p = new WearableProfile();
  const clock = new VirtualClock();
  const feeder = new SimulatedFeeder(p, clock, { initialRecord: true });
  feeder.start();
  await clock.advance(0);
  assert.equal(p.healthRecords.length, 1, 'a record to read right away');
  const rec = JSON.parse(new TextDecoder().decode(p.healthRecords[0])) as { t: string };
  assert.equal(rec.t, '2026-01-01T00:00:00.000Z');
  await clock.advance(30_000);
  assert.equal(p.healthRecords.length, 2);
  feeder.stop();
  assert.equal(clock.pendingCount, 0);
});
