/**
 * The simulated phone against our Peripheral on the virtual air, for behaviours the scenarios do not
 * isolate: the Pairing Request as the wearable receives it, Apple's connection parameter rules,
 * Numeric Comparison with one prompt, a Security Request to a bonded phone, and a profile override
 * (corrected from a capture) changing the verdict's expectation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Peripheral, type PeripheralOptions } from '../../src/host.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { WearableProfile } from '../../src/gatt/profile.js';
import { HealthUuid } from '../../src/gatt/profile.js';
import { VirtualAir } from '../../src/sim/air.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';
import type { PairingFeatures } from '../../src/smp/pdu.js';
import { SimulatedPhone, type PhoneUser } from '../../src/phone/phone.js';
import { phoneProfile, type PhoneBehaviour, type PhoneName } from '../../src/phone/profiles.js';
import { eventsOf, smpTrail, type ScenarioEvent } from '../../src/phone/events.js';
import { runScenario } from '../../src/phone/runner.js';

const log = silentLogger();

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 60_000): Promise<T> {
  return clock.drive(p, maxMs);
}

async function world(name: PhoneName, o: { overrides?: Partial<PhoneBehaviour>; peripheral?: Partial<PeripheralOptions>; user?: Partial<PhoneUser> } = {}) {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: `phone-${name}`, log });
  const [wh, wc] = createMemoryTransportPair('w', 'wc');
  const [ph, pc] = createMemoryTransportPair('p', 'pc');
  air.createController({ name: 'w', seed: 'w' }).attach(wc);
  air.createController({ name: 'p', seed: 'p' }).attach(pc);
  const app = new WearableProfile({ deviceName: 'Noira Band' });
  const wearableBonds = new MemoryBondStore();
  const peripheral = new Peripheral({ transport: wh, clock, random: seededRandom('w'), log, bonds: wearableBonds, db: app.db, name: 'Noira Band', connectionParameters: false, ...o.peripheral });
  const requests: PairingFeatures[] = [];
  peripheral.on('connected', (l) => l.smp.on('pairingRequestReceived', (r) => requests.push(r.request)));
  const events: ScenarioEvent[] = [];
  const phone = new SimulatedPhone({
    profile: phoneProfile(name, o.overrides ?? {}),
    transport: ph,
    clock,
    random: seededRandom('p'),
    log,
    bonds: new MemoryBondStore(),
    user: { thinkMs: 500, ...o.user },
  });
  phone.on('event', (e) => events.push(e));
  await drive(clock, peripheral.start());
  await drive(clock, phone.start());
  return {
    clock,
    app,
    peripheral,
    phone,
    wearableBonds,
    requests,
    events,
    async close() {
      await drive(clock, phone.stop()).catch(() => undefined);
      await drive(clock, peripheral.stop()).catch(() => undefined);
      air.close();
    },
  };
}

for (const [name, dist, authReq] of [['ios', 0x03, 0x0d], ['android', 0x0f, 0x2d]] as const) {
  test(`${name}: the wearable receives key distribution 0x${dist.toString(16).padStart(2, '0')}/0x${dist.toString(16).padStart(2, '0')} and the pairing still completes (key distribution is not an f6 input)`, async () => {
    const w = await world(name);
    const s = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
    await drive(w.clock, s.discover());
    const record = await drive(w.clock, s.read(HealthUuid.record));
    assert.equal(record.length, 0, 'no record yet: an empty value, read after pairing');
    assert.equal(w.requests.length, 1);
    assert.deepEqual(w.requests[0], { ioCapability: 0x04, oobDataFlag: 0, authReq, maxKeySize: 16, initiatorKeyDist: dist, responderKeyDist: dist });
    assert.equal(s.link.security.level, 2);
    assert.equal(w.wearableBonds.list().length, 1);
    await w.close();
  });
}

test("iOS rejects a connection parameter request that breaks Apple's rules (12.5 ms interval); Android accepts the same request", async () => {
  const params = { intervalMin: 10, intervalMax: 20, latency: 0, timeout: 400 };
  for (const [name, outcome] of [['ios', 'rejected'], ['android', 'accepted']] as const) {
    const w = await world(name, { peripheral: { connectionParameters: params, connectionParametersDelayMs: 500 } });
    const outcomes: string[] = [];
    w.peripheral.on('connected', (l) => l.l2cap.on('parameterUpdateResult', (r) => outcomes.push(r.outcome)));
    await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
    await w.clock.advance(2000);
    assert.deepEqual(outcomes, [outcome], name);
    assert.deepEqual(eventsOf(w.events, 'parameter-request').map((e) => e.accepted), [outcome === 'accepted']);
    await w.close();
  }
});

test('Numeric Comparison with a wearable that can confirm: one prompt, an authenticated LE Secure Connections key (level 4)', async () => {
  const w = await world('android', { peripheral: { policy: { ioCapability: 0x01, confirmNumericComparison: async () => true } } });
  const s = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  await drive(w.clock, s.discover());
  await drive(w.clock, s.read(HealthUuid.record));
  assert.equal(eventsOf(w.events, 'prompt').length, 1);
  assert.equal(s.link.security.level, 4);
  await w.close();
});

test('a bonded phone that does not encrypt on its own answers the Security Request by encrypting with the bond, not by pairing', async () => {
  const w = await world('ios', { overrides: { encryptsBondedLinkOnConnect: false }, peripheral: { policy: { securityRequest: 'on-connect' } } });
  const s1 = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  await drive(w.clock, s1.discover());
  await w.clock.advance(3000);
  assert.equal(s1.link.security.level, 2, 'the first Security Request made it pair');
  await drive(w.clock, s1.disconnect());
  const before = w.events.length;
  const s2 = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  assert.ok(await w.clock.runUntil(() => s2.link.security.encrypted, 5000));
  const later = w.events.slice(before);
  assert.deepEqual(smpTrail(later), ['wearable:securityRequest']);
  assert.deepEqual(eventsOf(later, 'encrypt-with-bond').map((e) => e.why), ['security-request']);
  await w.close();
});

test('a rule corrected from a capture changes the expectation: an iOS that re-pairs after losing its bond', async () => {
  const r = await runScenario({ profile: 'ios', scenario: 'peripheral-lost-bond', overrides: { lostBond: 're-pair' }, seed: 'override' });
  assert.equal(r.verdict, 'pass', r.observed);
  assert.match(r.expected, /pairs again/);
  assert.equal(eventsOf(r.events, 'paired').filter((e) => e.side === 'phone').length, 2);
});

test('a user who does not answer a Numeric Comparison prompt leaves the pairing to the SMP timeout', async () => {
  const w = await world('ios', { user: { answer: 'no-answer' }, peripheral: { policy: { ioCapability: 0x01, confirmNumericComparison: async () => true } } });
  const s = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  await drive(w.clock, s.discover());
  const err = await drive(w.clock, s.read(HealthUuid.record).then(() => undefined, (e: unknown) => e), 60_000);
  assert.match(String(err), /SMP timeout/);
  assert.equal(w.wearableBonds.list().length, 0);
  await w.close();
});

test('a Security Request that arrives while the bonded phone is already encrypting is ignored: one LE Enable Encryption, no pairing', async () => {
  const w = await world('android', { peripheral: { policy: { securityRequest: 'on-connect' } } });
  const s1 = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  await drive(w.clock, s1.discover());
  await w.clock.advance(3000);
  assert.equal(s1.link.security.level, 2);
  await drive(w.clock, s1.disconnect());
  const before = w.events.length;
  let enableEncryption = 0;
  w.phone.central.hci.on('packet', (dir, p) => {
    if (dir === 'sent' && p[0] === 0x01 && p[1] === 0x19 && p[2] === 0x20) enableEncryption++;
  });
  const s2 = await drive(w.clock, w.phone.connect({ name: 'Noira Band' }));
  assert.ok(await w.clock.runUntil(() => s2.link.security.encrypted, 5000));
  await w.clock.advance(1000);
  const later = w.events.slice(before);
  assert.equal(s2.link.security.level, 2, 'the key of the bond, not an unknown one');
  assert.equal(s2.link.security.secureConnections, true, 'the key of the bond (LE Secure Connections), not an unknown one');
  assert.equal(enableEncryption, 1);
  assert.deepEqual(smpTrail(later), ['wearable:securityRequest(ignored)']);
  await w.close();
});
