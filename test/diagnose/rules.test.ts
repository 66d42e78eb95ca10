import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { diagnose, type Finding, type Report } from '../../src/diagnose/diagnose.js';
import { RULES } from '../../src/diagnose/rules.js';
import {
  ANDROID,
  IOS,
  PHONE_IDENTITY,
  PHONE_IRK,
  PHONE_RPA_1,
  PHONE_RPA_2,
  PROTECTED_HANDLE,
  Scenario,
  cleanFirstPairing,
  cleanPairingThenReconnection,
  type Side,
} from './builders.js';

const SIDES: readonly Side[] = ['accessory', 'phone'];

function run(s: Scenario): Report {
  return diagnose(buildTimeline(s.packets()));
}

/** The findings, as `rule` -> evidence packet numbers. */
function found(r: Report): { rule: string; evidence: number[]; connection: number }[] {
  return r.findings.map((f) => ({ rule: f.rule, evidence: f.evidence.map((e) => e.number), connection: f.connection }));
}

function only(r: Report, rule: string): Finding {
  assert.deepEqual(
    r.findings.map((f) => f.rule),
    [rule],
    `expected exactly ${rule}, got ${JSON.stringify(found(r))}`,
  );
  return r.findings[0] as Finding;
}

test('every rule has an id, a title, a cause, at least one fix and a source, and ids are unique', () => {
  const ids = new Set<string>();
  for (const r of RULES) {
    assert.match(r.id, /^[a-z0-9-]+$/);
    assert.ok(!ids.has(r.id), `duplicate ${r.id}`);
    ids.add(r.id);
    assert.ok(r.title.length > 5 && r.cause.length > 40, r.id);
    assert.ok(r.fixes.length > 0 && r.sources.length > 0, r.id);
  }
  assert.ok(RULES.length >= 11);
});

test('no false alarm: a clean first pairing and a clean reconnection, every phone profile, both perspectives', () => {
  for (const side of SIDES) {
    for (const phone of [IOS, ANDROID]) {
      const r = run(cleanPairingThenReconnection(side, phone));
      assert.deepEqual(found(r), [], `${side} ${phone.name}`);
      assert.equal(r.perspective, side);
      assert.deepEqual(
        r.connections.map((c) => c.security.outcome),
        ['paired', 'encrypted'],
      );
      assert.equal(r.connections[1]?.security.keySize, 16);
    }
  }
});

test('no false alarm: a first pairing triggered by a Security Request, and a reconnection where a Security Request meets the LTK request but encryption succeeds', () => {
  for (const side of SIDES) {
    const s = cleanFirstPairing(side, IOS, { securityRequest: true });
    s.wait(30_000);
    s.connect({ phone: PHONE_RPA_2 });
    s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
    s.reconnectEncrypted();
    s.signaling('accessory', { type: 'connectionParameterUpdateRequest', identifier: 1, intervalMin: 12, intervalMax: 24, latency: 4, timeout: 500 });
    s.signaling('phone', { type: 'connectionParameterUpdateResponse', identifier: 1, result: 0 });
    s.wait(20_000);
    s.disconnect(0x13);
    assert.deepEqual(found(run(s)), [], side);
  }
});

test('security-request-ignored: Security Request, then 12 s of nothing protected and no pairing, then disconnection (both perspectives)', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    const sr = s.smp('accessory', { type: 'securityRequest', authReq: 0x0d });
    s.mtu(185);
    s.att('phone', { type: 'readRequest', handle: 0x0005 });
    s.att('accessory', { type: 'readResponse', value: Uint8Array.of(1) });
    s.wait(12_000);
    const down = s.disconnect(0x13);
    const f = only(run(s), 'security-request-ignored');
    assert.deepEqual(f.evidence.map((e) => e.number), [sr, down], side);
    assert.match(f.detail ?? '', /Security Request sent 12 s before the link went down; the phone has not started pairing\. The phone made 1 ATT request/);
    assert.ok(f.fixes.some((x) => x.where === 'wearable-host' && x.text.includes('--security-request after-att-rejection')));
  }
});

test('security-request-ignored waits: 2 s after the Security Request with the link still up it does not fire', () => {
  const s = new Scenario('accessory');
  s.connect();
  s.smp('accessory', { type: 'securityRequest', authReq: 0x0d });
  s.wait(2000);
  s.mtu(185);
  assert.deepEqual(found(run(s)), []);
});

test('phone-kept-stale-bond: LTK request answered with a negative reply, then the iPhone disconnects (accessory capture)', () => {
  const s = new Scenario('accessory');
  s.connect();
  const req = s.startEncryption();
  const neg = s.ltkReply(false);
  s.wait(500);
  const down = s.disconnect(0x13);
  const f = only(run(s), 'phone-kept-stale-bond');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, neg, down]);
  assert.equal(f.severity, 'error');
  assert.match(f.evidence[0]?.what ?? '', /an LE Secure Connections key/);
  assert.ok(f.fixes.some((x) => x.where === 'phone' && x.text.includes('Forget This Device')));
});

test('phone-kept-stale-bond: encryption fails with 0x06 PIN or Key Missing (phone capture)', () => {
  const s = new Scenario('phone');
  s.connect();
  const start = s.startEncryption();
  const fail = s.encryptionChange(0x06);
  const down = s.disconnect(0x13);
  const f = only(run(s), 'phone-kept-stale-bond');
  assert.deepEqual(f.evidence.map((e) => e.number), [start, fail, down]);
  assert.match(f.evidence[1]?.what ?? '', /0x06 PinOrKeyMissing/);
});

test('phone-kept-stale-bond is a warning when an Android phone pairs again by itself', () => {
  const s = new Scenario('accessory');
  s.connect();
  const req = s.startEncryption();
  const neg = s.ltkReply(false);
  const p = s.pair({ request: ANDROID.pairingRequest });
  const f = only(run(s), 'phone-kept-stale-bond');
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, neg, p.request]);
});

test('an IRK from earlier in the capture resolves the new RPA, yet the LTK request gets a negative reply after an accessory restart: stale bond and a tentative rpa-not-resolved, both reported', () => {
  const s = cleanFirstPairing('accessory');
  const irkAt = s.records.findIndex((r, i) => i > 0 && r.h4.length === 1 + 4 + 4 + 17 && r.h4[9] === 0x08 && r.direction === 'controller->host') + 1;
  assert.ok(irkAt > 0);
  s.wait(60_000);
  const reset = s.accessoryReset();
  const conn = s.connect({ phone: PHONE_RPA_2 });
  const req = s.startEncryption();
  const neg = s.ltkReply(false);
  s.disconnect(0x13);
  const r = run(s);
  // With the host restarted in between, the capture cannot tell "failed to resolve" from "lost the bond": both readings are reported.
  assert.deepEqual(r.findings.map((x) => x.rule).sort(), ['phone-kept-stale-bond', 'rpa-not-resolved']);
  const f = r.findings.find((x) => x.rule === 'rpa-not-resolved')!;
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.evidence.map((e) => e.number), [irkAt, reset - 1, conn, req, neg]);
  assert.match(f.detail ?? '', new RegExp(`${PHONE_RPA_2.address}.*resolves to ${PHONE_IDENTITY.address}`));
  assert.match(f.detail ?? '', /lost the bond after the pairing in this capture/);
  assert.equal(r.connections[1]?.peer?.identitySource, 'trace-irk');
});

test('rpa-not-resolved: 0x05 Insufficient Authentication again for a phone whose IRK is in the resolving list', () => {
  const s = new Scenario('accessory');
  const added = s.resolvingListAdd(PHONE_IDENTITY, PHONE_IRK);
  const conn = s.connect({ phone: PHONE_RPA_1 });
  s.mtu(185);
  const rejected = s.protectedRead(0x05);
  s.wait(1000);
  s.disconnect(0x13);
  const f = only(run(s), 'rpa-not-resolved');
  assert.deepEqual(f.evidence.map((e) => e.number), [added - 1, conn, rejected]);
  assert.match(f.evidence[0]?.what ?? '', /LE Add Device To Resolving List/);
});

test('rpa-not-resolved does not fire for an RPA that no known IRK resolves (a new phone)', () => {
  const s = cleanFirstPairing('accessory');
  s.wait(1000);
  s.connect({ phone: { type: 'random', address: '7A:11:22:33:44:55' } });
  s.startEncryption();
  s.ltkReply(false);
  s.disconnect(0x13);
  assert.deepEqual(
    found(run(s)).map((f) => f.rule),
    ['phone-kept-stale-bond'],
  );
});

test('repairing-refused: a bonded phone that forgot the accessory pairs again and gets Pairing Failed 0x03 (both perspectives)', () => {
  for (const side of SIDES) {
    const s = cleanFirstPairing(side);
    const encrypted = s.records.findIndex((r) => r.h4[0] === 0x04 && r.h4[1] === 0x08) + 1;
    s.wait(120_000);
    s.connect({ phone: PHONE_RPA_2 });
    const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
    s.disconnect(0x13);
    const f = only(run(s), 'repairing-refused');
    assert.equal(f.connection, 2);
    assert.deepEqual(f.evidence.map((e) => e.number), [encrypted, req, fail], side);
    assert.equal(f.severity, 'error');
    assert.ok(f.fixes.some((x) => x.text.includes('--repair replace')));
  }
});

test('repairing-refused: 0x0F Insufficient Encryption before the refused pairing is the bond evidence', () => {
  const s = new Scenario('accessory');
  s.connect();
  const insuff = s.protectedRead(0x0f);
  const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
  const f = only(run(s), 'repairing-refused');
  assert.deepEqual(f.evidence.map((e) => e.number), [insuff, req, fail]);
});

test('repairing-refused without a visible bond is a warning that names both possibilities', () => {
  const s = new Scenario('accessory');
  s.connect();
  const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
  const f = only(run(s), 'repairing-refused');
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, fail]);
  assert.match(f.detail ?? '', /MITM/);
});

test('legacy-pairing-refused: a Pairing Request without the SC bit gets Pairing Failed 0x03 (both perspectives)', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    const req = s.smp('phone', { type: 'pairingRequest', ioCapability: 0x03, oobDataFlag: 0, authReq: 0x05, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 });
    const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x03 });
    const f = only(run(s), 'legacy-pairing-refused');
    assert.deepEqual(f.evidence.map((e) => e.number), [req, fail], side);
    assert.match(f.evidence[0]?.what ?? '', /AuthReq 0x05\(bond,mitm\)/);
  }
});

test('pairing-cancelled: the phone sends Pairing Failed 0x08 after the Pairing Response (both perspectives)', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    const rsp = s.smp('accessory', { type: 'pairingResponse', ioCapability: 0x03, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 3, responderKeyDist: 3 });
    s.wait(4000);
    const fail = s.smp('phone', { type: 'pairingFailed', reason: 0x08 });
    const f = only(run(s), 'pairing-cancelled');
    assert.deepEqual(f.evidence.map((e) => e.number), [rsp, fail], side);
    assert.match(f.detail ?? '', /0x08 \(Unspecified Reason\) 4\.0 s after the accessory's Pairing Response/);
  }
});

test('pairing-cancelled: the phone stops answering mid-pairing for longer than the 30 s SMP timeout', () => {
  const s = new Scenario('accessory');
  s.connect();
  const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  s.smp('accessory', { type: 'pairingResponse', ioCapability: 0x03, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 3, responderKeyDist: 3 });
  s.smp('phone', { type: 'pairingPublicKey', publicKey: new Uint8Array(64).fill(1) });
  s.smp('accessory', { type: 'pairingPublicKey', publicKey: new Uint8Array(64).fill(2) });
  const last = s.smp('accessory', { type: 'pairingConfirm', confirm: new Uint8Array(16).fill(3) });
  s.wait(31_000);
  s.mtu(185); // the capture goes on, the link is still up
  const f = only(run(s), 'pairing-cancelled');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, last]);
  assert.match(f.detail ?? '', /beyond the 30 s SMP timeout/);
});

test('pairing-cancelled waits: 5 s into an unanswered pairing with the link up it does not fire', () => {
  const s = new Scenario('accessory');
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  s.smp('accessory', { type: 'pairingResponse', ioCapability: 0x03, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 3, responderKeyDist: 3 });
  s.wait(5000);
  s.mtu(185);
  assert.deepEqual(found(run(s)), []);
});

test('key-mismatch: a positive LTK reply followed by Disconnection 0x3D MIC failure (both perspectives)', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    const start = s.startEncryption();
    const reply = s.ltkReply(true);
    const mic = s.disconnect(0x3d);
    const f = only(run(s), 'key-mismatch');
    assert.deepEqual(f.evidence.map((e) => e.number), [side === 'accessory' ? reply : start, mic], side);
    assert.match(f.evidence[1]?.what ?? '', /0x3d ConnectionTerminatedMicFailure/);
  }
});

test('security-request-collision: a Security Request as the bonded phone starts encryption, the phone answers Pairing Failed 0x0D, repeated (accessory capture)', () => {
  const s = cleanFirstPairing('accessory');
  const expected: number[][] = [];
  for (let i = 0; i < 2; i++) {
    s.wait(10_000);
    s.connect({ phone: PHONE_RPA_2 });
    const sr = s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
    const req = s.startEncryption();
    s.ltkReply(true);
    const fail = s.smp('phone', { type: 'pairingFailed', reason: 0x0d });
    const down = s.disconnect(0x16);
    expected.push([req, sr, fail, down]);
  }
  const r = run(s);
  assert.deepEqual(
    found(r).map((f) => [f.rule, f.connection]),
    [
      ['security-request-collision', 2],
      ['security-request-collision', 3],
    ],
  );
  assert.deepEqual(r.findings.map((f) => f.evidence.map((e) => e.number)), expected);
  assert.match(r.findings[1]?.detail ?? '', /reconnect loop/);
});

test('security-request-collision: phone capture, Security Request received while LE Enable Encryption is in flight, encryption then fails', () => {
  const s = new Scenario('phone');
  s.connect();
  const start = s.startEncryption();
  const sr = s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
  const fail = s.encryptionChange(0x3e);
  const down = s.disconnect(0x3e);
  const f = only(run(s), 'security-request-collision');
  assert.deepEqual(f.evidence.map((e) => e.number), [start, sr, fail, down]);
});

test('service-changed-before-encryption: indicated on a bonded reconnection before the LTK request (handle learned from discovery)', () => {
  const s = new Scenario('accessory');
  s.connect({ phone: PHONE_RPA_1 });
  s.discoverServiceChanged();
  s.pair();
  s.disconnect(0x13);
  s.wait(60_000);
  s.connect({ phone: PHONE_RPA_2 });
  const sc = s.serviceChanged();
  s.wait(200);
  const req = s.startEncryption();
  s.ltkReply(true);
  const enc = s.encryptionChange(0);
  s.wait(30_000);
  const down = s.disconnect(0x13);
  const r = run(s);
  const f = only(r, 'service-changed-before-encryption');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, sc, enc, down]);
  assert.equal(f.detail, undefined);
});

test('service-changed-before-encryption: guessed handle when the capture has no discovery (phone capture)', () => {
  const s = cleanFirstPairing('phone');
  s.wait(60_000);
  s.connect();
  const sc = s.serviceChanged(0x0021);
  const start = s.startEncryption();
  const enc = s.encryptionChange(0);
  const f = only(run(s), 'service-changed-before-encryption');
  assert.deepEqual(f.evidence.map((e) => e.number), [start, sc, enc]);
  assert.match(f.detail ?? '', /guess/);
  assert.match(f.evidence[1]?.what ?? '', /guessed/);
});

test('service-changed-before-encryption does not fire when Service Changed follows encryption', () => {
  const s = cleanFirstPairing('accessory');
  s.wait(60_000);
  s.connect({ phone: PHONE_RPA_2 });
  s.reconnectEncrypted();
  s.serviceChanged(0x0021);
  s.att('phone', { type: 'handleValueConfirmation' });
  assert.deepEqual(found(run(s)), []);
});

test('connection-parameters-not-apple: the accessory asks 7.5-15 ms, 1 s timeout over L2CAP (both perspectives), and over HCI LE Connection Update', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    const req = s.signaling('accessory', { type: 'connectionParameterUpdateRequest', identifier: 7, intervalMin: 6, intervalMax: 12, latency: 0, timeout: 100 });
    const rsp = s.signaling('phone', { type: 'connectionParameterUpdateResponse', identifier: 7, result: 1 });
    s.signaling('accessory', { type: 'connectionParameterUpdateRequest', identifier: 8, intervalMin: 6, intervalMax: 12, latency: 0, timeout: 100 });
    const f = only(run(s), 'connection-parameters-not-apple');
    assert.deepEqual(f.evidence.map((e) => e.number), [req, rsp], side);
    assert.match(f.detail ?? '', /Interval Min 7\.5 ms is below 15 ms/);
    assert.match(f.detail ?? '', /Supervision Timeout 1000 ms is outside 2 s \.\. 6 s/);
    assert.match(f.evidence[1]?.what ?? '', /rejected \(result 1\)/);
  }
  const s = new Scenario('accessory');
  s.connect();
  const upd = s.command('LeConnectionUpdate', { handle: 0x40, connIntervalMin: 24, connIntervalMax: 24, maxLatency: 40, supervisionTimeout: 600, minCeLength: 0, maxCeLength: 0 });
  const f = only(run(s), 'connection-parameters-not-apple');
  assert.deepEqual(f.evidence.map((e) => e.number), [upd]);
  assert.match(f.detail ?? '', /Latency 40 exceeds 30/);
});

test('key-size-too-short: Read Encryption Key Size returns 7 on a reconnection; Pairing Failed 0x06 after a Pairing Request offering 7 is pairing-failed', () => {
  for (const side of SIDES) {
    const s = new Scenario(side);
    s.connect();
    s.startEncryption();
    s.ltkReply(true);
    s.encryptionChange(0);
    const ks = s.keySize(7);
    const f = only(run(s), 'key-size-too-short');
    assert.deepEqual(f.evidence.map((e) => e.number), [ks], side);
    assert.match(f.detail ?? '', /7 bytes/);
  }
  // A short request the accessory refused is the accessory doing its job: named by its Pairing Failed reason.
  const s = new Scenario('accessory');
  s.connect();
  const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest, maxKeySize: 7 });
  const fail = s.smp('accessory', { type: 'pairingFailed', reason: 0x06 });
  const f = only(run(s), 'pairing-failed');
  assert.deepEqual(f.evidence.map((e) => e.number), [req, fail]);
});

test('pairing-not-accepted: Pairing Failed 0x05 (pairing window closed) and 0x09 (repeated attempts) from the accessory', () => {
  for (const reason of [0x05, 0x09]) {
    const s = new Scenario('accessory');
    s.connect();
    const req = s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    const fail = s.smp('accessory', { type: 'pairingFailed', reason });
    const f = only(run(s), 'pairing-not-accepted');
    assert.deepEqual(f.evidence.map((e) => e.number), [req, fail]);
    assert.ok(f.fixes.some((x) => x.text.includes('--pairing-window')));
  }
});

test('findings carry times since the capture start and the rule sources', () => {
  const s = new Scenario('accessory');
  s.wait(0);
  s.connect();
  s.wait(3000);
  s.startEncryption();
  s.ltkReply(false);
  s.disconnect(0x13);
  const f = only(run(s), 'phone-kept-stale-bond');
  assert.equal(f.evidence[0]?.sinceStartMs, 3001);
  assert.ok(f.sources.some((x) => x.includes('776041')));
  void PROTECTED_HANDLE;
});
