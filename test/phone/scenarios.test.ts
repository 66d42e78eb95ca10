/**
 * Every scenario with both phone profiles on the virtual air: the verdict, and the key events in
 * order (SMP PDUs as the phone saw them both ways, the ATT error codes it got, the Encryption
 * Change statuses on each side, who ended a failed pairing and why).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario, type ScenarioResult } from '../../src/phone/runner.js';
import { eventsOf, smpTrail } from '../../src/phone/events.js';
import { SCENARIO_NAMES, connectionEvents, type ScenarioName } from '../../src/phone/scenarios.js';
import type { PhoneName } from '../../src/phone/profiles.js';
import { FIRMWARE_NAMES, type FirmwareName } from '../../src/sim/firmware.js';

const cache = new Map<string, Promise<ScenarioResult>>();
/** One run per firmware, phone and scenario (both controllers run the same firmware). */
function result(profile: PhoneName, scenario: ScenarioName, firmware: FirmwareName = 'ncs'): Promise<ScenarioResult> {
  const key = `${firmware}/${profile}/${scenario}`;
  let r = cache.get(key);
  if (!r) cache.set(key, (r = runScenario({ profile, scenario, seed: 'scenario-tests', firmware })));
  return r;
}

/** LE Secure Connections Just Works, central-initiated, both sides distributing IdKey. Core 5.4 Vol 3 Part H 2.3.5.6.2, 3.6.1. */
const PAIRING = [
  'phone:pairingRequest',
  'wearable:pairingResponse',
  'phone:pairingPublicKey',
  'wearable:pairingPublicKey',
  'wearable:pairingConfirm',
  'phone:pairingRandom',
  'wearable:pairingRandom',
  'phone:pairingDhKeyCheck',
  'wearable:pairingDhKeyCheck',
  'wearable:identityInformation',
  'wearable:identityAddressInformation',
  'phone:identityInformation',
  'phone:identityAddressInformation',
];
/** Up to the nonces: where the consent prompt sits. */
const UNTIL_PROMPT = PAIRING.slice(0, 7);

interface Expect {
  smp: string[];
  att: number[];
  enc: string[];
  failures: string[];
}

const EXPECTED: Record<ScenarioName, (p: PhoneName) => Expect> = {
  'first-pairing': () => ({ smp: PAIRING, att: [0x05], enc: ['phone:0x00', 'wearable:0x00'], failures: [] }),
  reconnect: () => ({ smp: PAIRING, att: [0x05], enc: ['phone:0x00', 'wearable:0x00', 'phone:0x00', 'wearable:0x00'], failures: [] }),
  'peripheral-lost-bond': (p) =>
    p === 'ios'
      ? { smp: PAIRING, att: [0x05], enc: ['phone:0x00', 'wearable:0x00', 'phone:0x06'], failures: [] }
      : { smp: [...PAIRING, ...PAIRING], att: [0x05, 0x05], enc: ['phone:0x00', 'wearable:0x00', 'phone:0x06', 'phone:0x00', 'wearable:0x00'], failures: [] },
  'phone-forgot-device': () => ({
    smp: [...PAIRING, 'phone:pairingRequest', 'wearable:pairingFailed(0x03)'],
    att: [0x05, 0x0f],
    enc: ['phone:0x00', 'wearable:0x00'],
    failures: ['wearable:local:0x03', 'phone:peer:0x03'],
  }),
  'phone-forgot-device-replace': () => ({
    smp: [...PAIRING, ...PAIRING],
    att: [0x05, 0x0f],
    enc: ['phone:0x00', 'wearable:0x00', 'phone:0x00', 'wearable:0x00'],
    failures: [],
  }),
  'security-request-ignored': (p) => ({
    smp: [p === 'ios' ? 'wearable:securityRequest(ignored)' : 'wearable:securityRequest', ...PAIRING],
    att: [0x05],
    enc: ['phone:0x00', 'wearable:0x00'],
    failures: [],
  }),
  'user-cancelled': (p) => ({
    smp: [...UNTIL_PROMPT, p === 'ios' ? 'phone:pairingFailed(0x08)' : 'phone:pairingFailed(0x0c)'],
    att: [0x05],
    enc: [],
    failures: [p === 'ios' ? 'wearable:peer:0x08' : 'wearable:peer:0x0c'],
  }),
  'prompt-timeout': () => ({ smp: UNTIL_PROMPT, att: [0x05], enc: [], failures: ['wearable:timeout:-', 'phone:timeout:-'] }),
  'legacy-only-central': () => ({ smp: ['phone:pairingRequest', 'wearable:pairingFailed(0x03)'], att: [0x05], enc: [], failures: ['wearable:local:0x03'] }),
  'rpa-rotated': () => ({ smp: PAIRING, att: [0x05], enc: ['phone:0x00', 'wearable:0x00', 'phone:0x00', 'wearable:0x00'], failures: [] }),
};

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

for (const firmware of FIRMWARE_NAMES) {
for (const scenario of SCENARIO_NAMES) {
  for (const profile of ['ios', 'android'] as const) {
    test(`${scenario} with ${profile} on ${firmware} controllers: pass, with the expected SMP PDUs, ATT errors and encryption statuses in order`, async () => {
      const r = await result(profile, scenario, firmware);
      assert.equal(r.verdict, 'pass', r.observed);
      assert.equal(r.error, undefined);
      const want = EXPECTED[scenario](profile);
      assert.deepEqual(smpTrail(r.events), want.smp);
      assert.deepEqual(eventsOf(r.events, 'att-error').map((e) => e.code), want.att);
      assert.deepEqual(eventsOf(r.events, 'encryption').map((e) => `${e.side}:${hex2(e.status)}`), want.enc);
      assert.deepEqual(
        eventsOf(r.events, 'pairing-failed').map((e) => `${e.side}:${e.by}:${e.reason === undefined ? '-' : hex2(e.reason)}`),
        want.failures,
      );
    });
  }
}
}

test("the phones' Pairing Requests carry the profile's IO capability, AuthReq (iOS 0x0d, Android 0x2d with CT2) and key distribution", async () => {
  const ios = eventsOf((await result('ios', 'first-pairing')).events, 'smp').find((e) => e.pdu === 'pairingRequest');
  const android = eventsOf((await result('android', 'first-pairing')).events, 'smp').find((e) => e.pdu === 'pairingRequest');
  assert.deepEqual([ios?.ioCapability, ios?.authReq, ios?.initiatorKeyDist, ios?.responderKeyDist], [0x04, 0x0d, 0x03, 0x03]);
  assert.deepEqual([android?.ioCapability, android?.authReq, android?.initiatorKeyDist, android?.responderKeyDist], [0x04, 0x2d, 0x0f, 0x0f]);
  assert.ok(!eventsOf((await result('android', 'first-pairing')).events, 'note').some((e) => /AuthReq/.test(e.text)), 'no workaround note any more');
});

test('the MTU each phone asks for: iOS 185, Android 517', async () => {
  assert.deepEqual(eventsOf((await result('ios', 'first-pairing')).events, 'mtu').map((e) => [e.asked, e.mtu]), [[185, 185]]);
  assert.deepEqual(eventsOf((await result('android', 'first-pairing')).events, 'mtu').map((e) => [e.asked, e.mtu]), [[517, 517]]);
});

test('peripheral-lost-bond with iOS ends with no pairing, the phone reporting "Peer removed pairing information", and the advice to forget the device', async () => {
  const r = await result('ios', 'peripheral-lost-bond');
  assert.ok(eventsOf(r.events, 'phone-error').some((e) => e.message.includes('Peer removed pairing information')));
  assert.match(r.advice ?? '', /Forget This Device/);
  const second = connectionEvents(r.events, 1);
  assert.ok(second.length > 0);
  assert.equal(second.filter((e) => e.kind === 'smp').length, 0, 'no SMP at all on the second connection');
});

test('phone-forgot-device explains --repair replace', async () => {
  const r = await result('android', 'phone-forgot-device');
  assert.match(r.advice ?? '', /--repair replace/);
});

test('prompt-timeout: the wearable gives up 30 s after its Pairing Random', async () => {
  const r = await result('ios', 'prompt-timeout');
  const rnd = eventsOf(r.events, 'smp').filter((e) => e.from === 'wearable' && e.pdu === 'pairingRandom')[0]!;
  const fail = eventsOf(r.events, 'pairing-failed').find((e) => e.side === 'wearable')!;
  assert.ok(Math.abs(fail.at - rnd.at - 30_000) < 100, `${fail.at - rnd.at} ms`);
});

test("the wearable's capture of each scenario diagnoses as the situation it reproduces", async () => {
  const want: Record<ScenarioName, string[]> = {
    'first-pairing': [],
    reconnect: [],
    'peripheral-lost-bond': ['phone-kept-stale-bond'],
    'phone-forgot-device': ['repairing-refused'],
    'phone-forgot-device-replace': [],
    'security-request-ignored': [],
    'user-cancelled': ['pairing-cancelled'],
    'prompt-timeout': ['pairing-cancelled'],
    'legacy-only-central': ['legacy-pairing-refused'],
    'rpa-rotated': [],
  };
  for (const s of SCENARIO_NAMES) {
    for (const p of ['ios', 'android'] as const) {
      assert.deepEqual((await result(p, s)).findings.map((f) => f.rule), want[s], `${p} ${s}`);
    }
  }
});

test('the same seed gives the same session, byte for byte in the transcript', async () => {
  const a: string[] = [];
  const b: string[] = [];
  await runScenario({ profile: 'android', scenario: 'rpa-rotated', seed: 7, out: { write: (s) => a.push(s) } });
  await runScenario({ profile: 'android', scenario: 'rpa-rotated', seed: 7, out: { write: (s) => b.push(s) } });
  assert.deepEqual(a, b);
  assert.ok(a.join('').includes('verdict: PASS'));
});
