/**
 * The diagnosis on traces of the real stack: our peripheral (src/host.ts) and a central built from
 * our layers on the virtual air, each side's HCI traffic recorded as a capture. A clean pairing and
 * bonded reconnection must raise nothing from either perspective; a bond lost by the accessory must
 * be recognised from both, and live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Peripheral } from '../../src/host.js';
import { buildSmpLower } from '../../src/stack/link.js';
import { Hci, type PacketDirection } from '../../src/hci/driver.js';
import type { HciConnection } from '../../src/hci/connection.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { L2capConnection, FixedCid } from '../../src/l2cap/connection.js';
import { SecurityManager } from '../../src/smp/security-manager.js';
import { buildGattDatabase } from '../../src/gatt/database.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { VirtualAir } from '../../src/sim/air.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';
import { addressTypeToByte } from '../../src/util/address.js';
import type { CapturedPacket } from '../../src/diagnose/capture.js';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { diagnose, renderReport, type Finding } from '../../src/diagnose/diagnose.js';
import { LiveDiagnoser } from '../../src/diagnose/live.js';
import type { AccessRequirement } from '../../src/gatt/permissions.js';

const log = silentLogger();

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 10_000): Promise<T> {
  return clock.drive(p, maxMs);
}

function recorder(clock: VirtualClock, live?: LiveDiagnoser): { packets: CapturedPacket[]; trace: (dir: PacketDirection, h4: Uint8Array) => void } {
  const packets: CapturedPacket[] = [];
  return {
    packets,
    trace: (dir, h4) => {
      const direction = dir === 'sent' ? 'host->controller' : 'controller->host';
      packets.push({ number: packets.length + 1, time: clock.now(), direction, h4: h4.slice() });
      live?.feed(direction, h4);
    },
  };
}

async function world(opts: { secretRead?: AccessRequirement } = {}) {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: 'diagnose-e2e', log });
  const [hostA, ctrlA] = createMemoryTransportPair('periph-host', 'periph-ctrl');
  const [hostB, ctrlB] = createMemoryTransportPair('central-host', 'central-ctrl');
  air.createController({ name: 'periph', seed: 'p' }).attach(ctrlA);
  air.createController({ name: 'central', seed: 'c' }).attach(ctrlB);
  const db = buildGattDatabase({
    gap: { deviceName: 'Noira Band' },
    services: [
      {
        uuid: 0x180d,
        characteristics: [{ uuid: 0x2a39, id: 'secret', properties: ['read'], permissions: { read: opts.secretRead ?? 'encrypted' }, value: Uint8Array.of(0xca, 0xfe) }],
      },
    ],
  });
  const live = new LiveDiagnoser({ clock });
  const accessory = recorder(clock, live);
  const phone = recorder(clock);
  const periphBonds = new MemoryBondStore();
  const peripheral = new Peripheral({ transport: hostA, clock, random: seededRandom('periph'), log, bonds: periphBonds, db, connectionParameters: false, trace: accessory.trace });
  const hci = new Hci(hostB, { clock, log, trace: phone.trace });
  const security = new SecurityManager({ bonds: new MemoryBondStore(), clock, random: seededRandom('central'), log });
  await drive(clock, peripheral.start());
  await drive(clock, hci.init());
  return { clock, air, peripheral, hci, db, periphBonds, security, accessory, phone, live };
}

type World = Awaited<ReturnType<typeof world>>;

async function connect(w: World) {
  const target = w.peripheral.identity!.address;
  const connected = w.hci.wait('connected');
  await drive(w.clock, w.hci.command('LeCreateConnection', {
    scanInterval: 0x60, scanWindow: 0x30, initiatorFilterPolicy: 0,
    peerAddressType: addressTypeToByte(target.type), peerAddress: target.address,
    ownAddressType: 1, connIntervalMin: 24, connIntervalMax: 24, maxLatency: 0, supervisionTimeout: 400,
    minCeLength: 0, maxCeLength: 0,
  }));
  assert.ok(await w.clock.runUntil(() => w.hci.connections.length > 0, 5000), 'connection established');
  const [c] = (await connected) as [HciConnection];
  const l2 = new L2capConnection({ handle: c.handle, role: 'central', clock: w.clock, log, lower: { send: (f) => w.hci.sendAcl(c.handle, f) } });
  let responses = 0;
  l2.setHandler(FixedCid.Att, () => void responses++);
  const smp = w.security.createSession(buildSmpLower(w.hci, c, l2, w.hci.info!.identityAddress));
  l2.setHandler(FixedCid.Smp, (p) => smp.onPdu(p));
  w.hci.on('acl', (h, f) => h === c.handle && l2.onFrame(f));
  w.hci.on('encryptionChanged', (cc, ch) => cc.handle === c.handle && smp.onEncryptionChange(ch.status, ch.enabled));
  smp.start();
  const handle = w.db.handle('secret');
  const readSecret = async (): Promise<void> => {
    const before = responses;
    await drive(w.clock, l2.sendFixed(FixedCid.Att, Uint8Array.of(0x0a, handle & 0xff, handle >> 8)));
    assert.ok(await w.clock.runUntil(() => responses > before, 5000), 'ATT response');
  };
  return { c, smp, readSecret };
}

async function disconnect(w: World, c: HciConnection): Promise<void> {
  await drive(w.clock, w.hci.disconnect(c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 5000), 'advertising again');
}

async function close(w: World): Promise<void> {
  w.live.stop();
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
}

test('real stack: a pairing after 0x05 and a bonded reconnection raise no finding from the accessory trace, the phone trace, or live', async () => {
  const w = await world();
  const first = await connect(w);
  await first.readSecret(); // 0x05
  const paired = first.smp.pair();
  assert.ok(await w.clock.runUntil(() => first.smp.encrypted, 10_000));
  await drive(w.clock, paired);
  await first.readSecret();
  await disconnect(w, first.c);
  const second = await connect(w);
  await second.readSecret(); // 0x0F
  assert.equal(second.smp.encryptWithBond(), true);
  assert.ok(await w.clock.runUntil(() => second.smp.encrypted, 5000));
  await second.readSecret();
  await disconnect(w, second.c);
  await w.clock.advance(60_000);

  for (const [side, packets] of [['accessory', w.accessory.packets], ['phone', w.phone.packets]] as const) {
    const r = diagnose(buildTimeline(packets));
    assert.equal(r.perspective, side);
    assert.deepEqual(r.findings.map((f) => f.rule), [], side);
    assert.deepEqual(r.connections.map((c) => c.security.outcome), ['paired', 'encrypted'], side);
    assert.equal(r.decodeErrors.count, 0, side);
  }
  assert.deepEqual(w.live.findings(), []);
  await close(w);
});

test('real stack: the accessory lost its bond; the phone encrypts with its old key: stale bond from both traces and live', async () => {
  const w = await world();
  const fired: Finding[] = [];
  w.live.on('finding', (f) => fired.push(f));
  const first = await connect(w);
  const paired = first.smp.pair();
  assert.ok(await w.clock.runUntil(() => first.smp.encrypted, 10_000));
  await drive(w.clock, paired);
  await disconnect(w, first.c);
  await drive(w.clock, w.periphBonds.clear());
  const second = await connect(w);
  assert.equal(second.smp.encryptWithBond(), true);
  await w.clock.runUntil(() => w.hci.connections.length === 0, 10_000);
  await w.clock.advance(5_000);

  const acc = diagnose(buildTimeline(w.accessory.packets));
  assert.deepEqual(acc.findings.map((f) => [f.rule, f.connection]), [['phone-kept-stale-bond', 2]]);
  assert.match(acc.findings[0]?.evidence[1]?.what ?? '', /Negative Reply/);
  const ph = diagnose(buildTimeline(w.phone.packets));
  if (process.env.SHOW_REPORT) console.log(renderReport(ph), renderReport(acc));
  assert.deepEqual(ph.findings.map((f) => [f.rule, f.connection]), [['phone-kept-stale-bond', 2]]);
  assert.deepEqual(fired.map((f) => f.rule), ['phone-kept-stale-bond']);
  await close(w);
});

test('real stack: a characteristic that requires authentication on the NoInputNoOutput wearable: encrypted after Just Works, still 0x05, named from both traces', async () => {
  const w = await world({ secretRead: 'authenticated' });
  const first = await connect(w);
  await first.readSecret(); // 0x05: not encrypted
  const paired = first.smp.pair();
  assert.ok(await w.clock.runUntil(() => first.smp.encrypted, 10_000));
  await drive(w.clock, paired);
  await first.readSecret(); // 0x05 again: the key is unauthenticated
  await disconnect(w, first.c);
  await w.clock.advance(5_000);
  for (const [side, packets] of [['accessory', w.accessory.packets], ['phone', w.phone.packets]] as const) {
    const r = diagnose(buildTimeline(packets));
    assert.deepEqual(r.findings.map((f) => f.rule), ['authentication-unreachable'], side);
    assert.match(r.findings[0]?.detail ?? '', /accessory NoInputNoOutput: Just Works/, side);
  }
  await close(w);
});
