/**
 * The failure modes of issue 12, each named from the three captures a field engineer gets: the
 * accessory's btsnoop, the phone's btsnoop (Android btsnoop_hci.log: the phone is the central, LTK
 * requests become LE Enable Encryption, directions are reversed) and the phone's PacketLogger file.
 * Each mode has a near-miss that must not fire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readCapture } from '../../src/diagnose/formats/index.js';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { diagnose, type Finding, type Report } from '../../src/diagnose/diagnose.js';
import { smpReasonName, type PairingFeatures } from '../../src/smp/pdu.js';
import {
  ACCESSORY_PAIRING_RESPONSE,
  ANDROID,
  IOS,
  PHONE_RPA_1,
  PHONE_RPA_2,
  Scenario,
  captureForms,
  cleanFirstPairing,
  type CaptureForm,
  type Side,
} from './builders.js';

function read(bytes: Uint8Array, form: CaptureForm): Report {
  const cap = readCapture(bytes, { fileName: form.endsWith('pklg') ? 'session.pklg' : 'session.btsnoop' });
  return diagnose(buildTimeline(cap.packets));
}

function rules(r: Report): string[] {
  return r.findings.map((f) => f.rule);
}

function only(r: Report, rule: string, form: string): Finding {
  assert.deepEqual(rules(r), [rule], `${form}: ${JSON.stringify(r.findings.map((f) => [f.rule, f.title, f.evidence.map((e) => e.number)]))}`);
  return r.findings[0] as Finding;
}

const LEGACY_REQUEST: PairingFeatures = { ioCapability: 0x04, oobDataFlag: 0, authReq: 0x01, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 };
const LEGACY_RESPONSE: PairingFeatures = { ...ACCESSORY_PAIRING_RESPONSE, authReq: 0x01 };

// ---- 1. legacy pairing used ----

test('legacy-pairing-used: a legacy pairing the accessory went along with is named from all three captures', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.protectedRead(0x05);
    const p = s.pair({ request: LEGACY_REQUEST, response: LEGACY_RESPONSE });
    s.protectedRead();
    s.disconnect(0x13);
    return { s, marks: [p.request, p.response, p.encrypted] };
  })) {
    const f = only(read(c.bytes, c.form), 'legacy-pairing-used', c.form);
    assert.deepEqual(f.evidence.map((e) => e.number), c.marks, c.form);
    assert.match(f.detail ?? '', /Secure Connections bit is clear in the AuthReq of the phone and the accessory/);
    assert.ok(f.fixes.some((x) => x.where === 'firmware' && x.text.includes('CONFIG_BT_SMP_SC_PAIR_ONLY=y')));
  }
});

test('legacy-pairing-used: a bonded reconnection with a legacy key (non-zero EDIV/Rand) is a warning; an LESC reconnection is not', () => {
  for (const c of captureForms((side) => {
    const s = cleanFirstPairing(side);
    s.wait(60_000);
    s.connect({ phone: PHONE_RPA_2 });
    const { encrypted } = s.reconnectEncrypted(0x1234, 0x0102030405060708n);
    return { s, marks: encrypted };
  })) {
    const r = read(c.bytes, c.form);
    const f = only(r, 'legacy-pairing-used', c.form);
    assert.equal(f.connection, 2);
    assert.equal(f.severity, 'warning');
    assert.equal(f.evidence[1]?.number, c.marks);
  }
});

test('legacy-pairing-used does not fire when the accessory refuses the legacy request (near miss: legacy-pairing-refused)', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.smp('phone', { type: 'pairingRequest', ...LEGACY_REQUEST });
    s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
    return { s, marks: 0 };
  })) {
    assert.deepEqual(rules(read(c.bytes, c.form)), ['legacy-pairing-refused'], c.form);
  }
});

// ---- 2. short key ----

test('key-size-too-short: the negotiated size is min(request, response) even when the controller does not implement Read Encryption Key Size', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    const p = s.pair({ response: { ...ACCESSORY_PAIRING_RESPONSE, maxKeySize: 7 }, keySize: 'unsupported' });
    s.protectedRead();
    return { s, marks: [p.request, p.response, p.encrypted] };
  })) {
    const r = read(c.bytes, c.form);
    const f = only(r, 'key-size-too-short', c.form);
    assert.deepEqual(f.evidence.map((e) => e.number), c.marks, c.form);
    assert.match(f.detail ?? '', /Negotiated key size 7 bytes: min\(16 from the phone, 7 from the accessory\)/);
    assert.equal(r.connections[0]?.security.keySize, 7, 'the report shows the negotiated size');
  }
});

test('key-size-too-short: a controller that reports 16 does not hide a 7-byte negotiation', () => {
  const s = new Scenario('accessory');
  s.connect();
  s.pair({ request: { ...IOS.pairingRequest, maxKeySize: 7 }, keySize: 16 });
  const f = only(read(s.btsnoop(), 'accessory btsnoop'), 'key-size-too-short', 'accessory');
  assert.match(f.detail ?? '', /min\(7 from the phone, 16 from the accessory\).*The controller reports 16; the negotiation is what counts/);
});

test('key-size-too-short near misses: 16/16 with an Unknown HCI Command for Read Encryption Key Size; a short request the accessory refused with 0x06', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.pair({ keySize: 'unsupported' });
    s.protectedRead();
    return { s, marks: 0 };
  })) {
    const r = read(c.bytes, c.form);
    assert.deepEqual(rules(r), [], c.form);
    assert.equal(r.connections[0]?.security.keySize, 16, c.form);
  }
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest, maxKeySize: 7 });
    s.smp('accessory', { type: 'pairingFailed', reason: 0x06 });
    return { s, marks: 0 };
  })) {
    const f = only(read(c.bytes, c.form), 'pairing-failed', c.form);
    assert.match(f.title, /0x06 Encryption Key Size from the accessory/);
  }
});

// ---- 3. Pairing Request never answered ----

test('pairing-unanswered: the accessory never answers the Pairing Request; the phone gives up after 30 s (all three captures, each saying what it can tell)', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.mtu(185);
    s.protectedRead(0x05);
    const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.wait(30_500);
    const down = s.disconnect(0x13);
    return { s, marks: [req, down] };
  })) {
    const f = only(read(c.bytes, c.form), 'pairing-unanswered', c.form);
    assert.deepEqual(f.evidence.map((e) => e.number), c.marks, c.form);
    assert.match(f.detail ?? '', c.side === 'accessory' ? /reached the accessory's host, which did not answer/ : /cannot tell whether it reached the accessory's host/, c.form);
    assert.ok(f.fixes.some((x) => x.text.includes('bt_conn_auth_pairing_confirm')));
  }
});

test('pairing-unanswered near misses: a late but real answer; an open link only 5 s after the request', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.wait(0);
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.wait(2500);
    s.smp('accessory', { type: 'pairingResponse', ...ACCESSORY_PAIRING_RESPONSE });
    s.smp('phone', { type: 'pairingPublicKey', publicKey: new Uint8Array(64).fill(1) });
    s.smp('accessory', { type: 'pairingPublicKey', publicKey: new Uint8Array(64).fill(2) });
    s.smp('accessory', { type: 'pairingConfirm', confirm: new Uint8Array(16).fill(3) });
    s.smp('phone', { type: 'pairingRandom', random: new Uint8Array(16).fill(4) });
    s.smp('accessory', { type: 'pairingRandom', random: new Uint8Array(16).fill(5) });
    s.smp('phone', { type: 'pairingDhKeyCheck', check: new Uint8Array(16).fill(6) });
    s.smp('accessory', { type: 'pairingDhKeyCheck', check: new Uint8Array(16).fill(7) });
    s.startEncryption();
    s.ltkReply(true);
    s.encryptionChange(0);
    return { s, marks: 0 };
  })) {
    assert.deepEqual(rules(read(c.bytes, c.form)), [], c.form);
  }
  const s = new Scenario('accessory');
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  s.wait(5000);
  s.mtu(185);
  assert.deepEqual(rules(read(s.btsnoop(), 'accessory btsnoop')), []);
  // The link is lost (supervision timeout) 20 ms after the request: no time to answer.
  for (const c of captureForms((side) => {
    const lost = new Scenario(side);
    lost.connect();
    lost.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    lost.wait(20);
    lost.disconnect(0x08);
    return { s: lost, marks: 0 };
  })) {
    assert.deepEqual(rules(read(c.bytes, c.form)), [], c.form);
  }
});

// ---- 4. pairing without bonding ----

test('pairing-without-bonding: the phone clears the Bonding flag; the next connection pairs again (all three captures)', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    const marks: number[] = [];
    for (let i = 0; i < 2; i++) {
      s.connect({ phone: PHONE_RPA_1 }); // 10 s later the phone still has the same private address
      s.protectedRead(0x05);
      const p = s.pair({ request: { ...IOS.pairingRequest, authReq: 0x0c }, response: { ...ACCESSORY_PAIRING_RESPONSE, initiatorKeyDist: 0, responderKeyDist: 0 } });
      marks.push(p.request, p.response, p.encrypted);
      s.protectedRead();
      s.disconnect(0x13);
      s.wait(10_000);
    }
    return { s, marks };
  })) {
    const r = read(c.bytes, c.form);
    assert.deepEqual(rules(r), ['pairing-without-bonding', 'pairing-without-bonding'], c.form);
    assert.deepEqual(r.findings.map((f) => f.evidence.map((e) => e.number)).flat(), c.marks, c.form);
    assert.match(r.findings[0]?.detail ?? '', /No Bonding in the AuthReq of the phone \(Pairing Request\)/);
    assert.match(r.findings[1]?.detail ?? '', /already paired on connection\(s\) 1: it pairs again every time/);
  }
});

test('pairing-without-bonding: bonding agreed but the phone kept its IRK, so the accessory cannot recognise its next private address (accessory capture); near miss: the usual iOS and Android pairings', () => {
  const s = new Scenario('accessory');
  s.connect({ phone: PHONE_RPA_1 });
  const p = s.pair({ response: { ...ACCESSORY_PAIRING_RESPONSE, initiatorKeyDist: 0x00, responderKeyDist: 0x02 } });
  const f = only(read(s.btsnoop(), 'accessory btsnoop'), 'pairing-without-bonding', 'accessory');
  assert.deepEqual(f.evidence.map((e) => e.number), [p.request, p.response]);
  assert.match(f.detail ?? '', /none \(phone\) \/ IdKey \(accessory\).*IdKey \(IRK and identity address\) was not distributed/);
  for (const phone of [IOS, ANDROID]) {
    for (const c of captureForms((side) => ({ s: cleanFirstPairing(side, phone), marks: 0 }))) assert.deepEqual(rules(read(c.bytes, c.form)), [], `${phone.name} ${c.form}`);
  }
});

// ---- 5. every Pairing Failed reason from either side ----

/** A pairing that fails with `reason` sent by `from`, after the Pairing Response (or right after the request when the accessory refuses). */
function failing(side: Side, from: Side, reason: number, request: PairingFeatures = IOS.pairingRequest): Scenario {
  const s = new Scenario(side);
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ...request });
  if (from === 'phone' || ![0x03, 0x05, 0x06, 0x08, 0x09, 0x0a].includes(reason)) s.smp('accessory', { type: 'pairingResponse', ...ACCESSORY_PAIRING_RESPONSE });
  s.smp(from, { type: 'pairingFailed', reason });
  s.wait(100);
  s.disconnect(0x13);
  return s;
}

test('pairing-failed: every reason 0x01-0x0F from either side is named with its own meaning and fix, in all three captures', () => {
  /** Failures a more specific rule names. */
  const specific: Record<string, string> = {
    'accessory:3': 'repairing-refused',
    'accessory:5': 'pairing-not-accepted',
    'accessory:9': 'pairing-not-accepted',
    'phone:8': 'pairing-cancelled',
    // On a Just Works pairing there is no passkey or comparison: 0x01/0x0C from the phone is its Cancel (Android sends 0x0C).
    'phone:1': 'pairing-cancelled',
    'phone:12': 'pairing-cancelled',
  };
  for (const from of ['phone', 'accessory'] as const) {
    const causes = new Map<string, number>();
    for (let reason = 0x01; reason <= 0x0f; reason++) {
      for (const c of captureForms((side) => ({ s: failing(side, from, reason), marks: 0 }))) {
        const r = read(c.bytes, c.form);
        const want = specific[`${from}:${reason}`] ?? 'pairing-failed';
        const f = only(r, want, `${from} 0x${reason.toString(16)} ${c.form}`);
        if (want !== 'pairing-failed') continue;
        assert.equal(f.title, `Pairing failed: 0x${reason.toString(16).padStart(2, '0')} ${smpReasonName(reason)} from the ${from}`, c.form);
        assert.ok(f.fixes.length > 0);
        assert.equal(f.evidence[f.evidence.length - 2]?.what.includes(`Pairing Failed 0x${reason.toString(16).padStart(2, '0')}`), true, c.form);
        if (c.form === 'accessory btsnoop') causes.set(f.cause, reason);
      }
    }
    // Each reason has its own meaning.
    const distinct = 15 - Object.keys(specific).filter((k) => k.startsWith(from)).length;
    assert.equal(causes.size, distinct, `${from}: ${[...causes.values()].join(',')}`);
  }
});

test('pairing-failed 0x08 from the accessory: "requires bonding" only when the phone asked for No Bonding (Zephyr CONFIG_BT_BONDING_REQUIRED), in all three captures', () => {
  for (const c of captureForms((side) => ({ s: failing(side, 'accessory', 0x08, { ...IOS.pairingRequest, authReq: 0x0c }), marks: 0 }))) {
    const noBond = only(read(c.bytes, c.form), 'pairing-failed', `no bonding ${c.form}`);
    assert.match(noBond.cause, /CONFIG_BT_BONDING_REQUIRED=y/);
    if (c.side === 'phone') assert.match(noBond.detail ?? '', /Seen from the phone/);
  }
  for (const c of captureForms((side) => ({ s: failing(side, 'accessory', 0x08), marks: 0 }))) {
    const bonding = only(read(c.bytes, c.form), 'pairing-failed', `bonding ${c.form}`);
    assert.doesNotMatch(bonding.cause, /BONDING_REQUIRED/);
  }
});

test('pairing-failed 0x0C from the phone on a real Numeric Comparison (the accessory claimed DisplayYesNo) names the firmware fix; on Just Works it is a cancelled prompt', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.smp('accessory', { type: 'pairingResponse', ...ACCESSORY_PAIRING_RESPONSE, ioCapability: 0x01, authReq: 0x0d });
    s.smp('phone', { type: 'pairingFailed', reason: 0x0c });
    return { s, marks: 0 };
  })) {
    const f = only(read(c.bytes, c.form), 'pairing-failed', c.form);
    assert.match(f.cause, /the accessory claimed a display it may not have/);
    assert.ok(f.fixes.some((x) => x.where === 'firmware' && x.text.includes('NoInputNoOutput')));
  }
  only(read(failing('accessory', 'phone', 0x0c).btsnoop(), 'accessory btsnoop'), 'pairing-cancelled', 'just works');
});

test('pairing-failed: a reserved reason code is named as such', () => {
  const f = only(read(failing('phone', 'phone', 0x42).btsnoop(), 'phone btsnoop'), 'pairing-failed', 'reserved');
  assert.match(f.title, /0x42 Reserved \(0x42\) from the phone/);
});

// ---- 6. authentication the IO capabilities cannot give ----

test('authentication-unreachable: encrypted after Just Works, reads still get 0x05 (all three captures)', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.mtu(185);
    s.protectedRead(0x05);
    const p = s.pair();
    const e1 = s.protectedRead(0x05);
    s.wait(1000);
    const e2 = s.protectedRead(0x05);
    s.wait(5000);
    s.disconnect(0x13);
    return { s, marks: [p.request, p.response, p.encrypted, e1, e2] };
  })) {
    const f = only(read(c.bytes, c.form), 'authentication-unreachable', c.form);
    assert.deepEqual(f.evidence.map((e) => e.number), c.marks, c.form);
    assert.match(f.detail ?? '', /still answers 0x05 on handle\(s\) 0x0010 \(2 time\(s\)\).*accessory NoInputNoOutput: Just Works.*no pairing can ever be authenticated/);
    assert.ok(f.fixes.some((x) => x.text.includes('BT_GATT_PERM_READ_ENCRYPT')));
  }
});

test('authentication-unreachable on a bonded reconnection whose pairing is not in the capture is a warning', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.startEncryption();
    s.ltkReply(true);
    const enc = s.encryptionChange(0);
    const err = s.protectedRead(0x05);
    return { s, marks: [enc, err] };
  })) {
    const f = only(read(c.bytes, c.form), 'authentication-unreachable', c.form);
    assert.equal(f.severity, 'warning');
    assert.deepEqual(f.evidence.map((e) => e.number), c.marks, c.form);
    assert.match(f.detail ?? '', /association model is unknown/);
  }
});

test('authentication-unreachable near miss: 0x05 after a passkey (authenticated) pairing is not this trap', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.pair({ response: { ...ACCESSORY_PAIRING_RESPONSE, ioCapability: 0x00, authReq: 0x0d } });
    s.protectedRead(0x05);
    return { s, marks: 0 };
  })) {
    assert.deepEqual(rules(read(c.bytes, c.form)), [], c.form);
  }
});

// ---- 7. the phone's new private address not resolved ----

function repairedAddressSession(side: Side, opts: { reset: boolean }): { s: Scenario; marks: { irk: number; conn: number; start: number; neg: number } } {
  const s = cleanFirstPairing(side);
  const irk = s.records.findIndex((r, i) => i > 0 && r.h4.length === 1 + 4 + 4 + 17 && r.h4[9] === 0x08 && r.direction === (side === 'accessory' ? 'controller->host' : 'host->controller')) + 1;
  s.wait(60_000);
  if (opts.reset) s.accessoryReset();
  const conn = s.connect({ phone: PHONE_RPA_2 });
  const start = s.startEncryption();
  const neg = s.ltkReply(false);
  if (side === 'phone') s.encryptionChange(0x06);
  s.disconnect(0x13);
  return { s, marks: { irk, conn, start, neg: side === 'phone' ? s.lastNumber - 1 : neg } };
}

test('rpa-not-resolved: IRK exchanged in a bonded pairing, no accessory restart, then a negative LTK reply for the new RPA: named (accessory capture), not a stale bond', () => {
  const { s, marks } = repairedAddressSession('accessory', { reset: false });
  const f = only(read(s.btsnoop(), 'accessory btsnoop'), 'rpa-not-resolved', 'accessory');
  assert.equal(f.severity, 'error');
  assert.deepEqual(f.evidence.map((e) => e.number), [marks.irk, marks.conn, marks.start, marks.neg]);
  assert.match(f.detail ?? '', /did not restart since \(no HCI Reset in between\): it failed to resolve/);
  assert.ok(f.fixes.some((x) => x.where === 'firmware' && x.text.includes('does not fix this')));
});

test('rpa-not-resolved near miss: with an accessory restart (HCI Reset) in between, a lost bond is as likely: stale bond plus a tentative warning', () => {
  const { s } = repairedAddressSession('accessory', { reset: true });
  const r = read(s.btsnoop(), 'accessory btsnoop');
  assert.deepEqual(rules(r).sort(), ['phone-kept-stale-bond', 'rpa-not-resolved']);
  const f = r.findings.find((x) => x.rule === 'rpa-not-resolved') as Finding;
  assert.equal(f.severity, 'warning');
  assert.ok(f.evidence.some((e) => e.what.startsWith('HCI Reset')));
});

test('rpa-not-resolved from the phone (btsnoop and pklg): the stale-bond finding plus a tentative one saying what a phone capture cannot tell', () => {
  for (const c of captureForms((side) => repairedAddressSession(side, { reset: false })).filter((x) => x.side === 'phone')) {
    const r = read(c.bytes, c.form);
    assert.deepEqual(rules(r), ['phone-kept-stale-bond', 'rpa-not-resolved'], c.form);
    const f = r.findings[1] as Finding;
    assert.equal(f.severity, 'warning');
    assert.deepEqual(f.evidence.map((e) => e.number), [c.marks.irk, c.marks.start, c.marks.neg], c.form);
    assert.match(f.detail ?? '', /A phone capture cannot tell/);
  }
});

// ---- 8. ordering ----

test('a Security Request crossing the phone\'s own Pairing Request (1 ms apart) is not "nothing triggered pairing": the re-pairing refusal is the finding', () => {
  for (const c of captureForms((side) => {
    const s = cleanFirstPairing(side);
    s.wait(120_000);
    s.connect({ phone: PHONE_RPA_2 });
    const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
    const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
    s.wait(12_000);
    s.disconnect(0x13);
    return { s, marks: [req, fail] };
  })) {
    const r = read(c.bytes, c.form);
    const f = only(r, 'repairing-refused', c.form);
    assert.deepEqual(f.evidence.slice(1).map((e) => e.number), c.marks, c.form);
  }
});

test('a MIC failure (0x3D) after a Security Request is a key mismatch, not also a Security Request collision; with the phone\'s Pairing Failed it is both', () => {
  for (const c of captureForms((side) => {
    const s = new Scenario(side);
    s.connect();
    s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
    s.startEncryption();
    s.ltkReply(true);
    s.disconnect(0x3d);
    return { s, marks: 0 };
  })) {
    assert.deepEqual(rules(read(c.bytes, c.form)), ['key-mismatch'], c.form);
  }
  const s = new Scenario('accessory');
  s.connect();
  s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
  s.startEncryption();
  s.ltkReply(true);
  s.smp('phone', { type: 'pairingFailed', reason: 0x0d });
  s.disconnect(0x3d);
  assert.deepEqual(rules(read(s.btsnoop(), 'accessory btsnoop')), ['key-mismatch', 'security-request-collision']);
});
