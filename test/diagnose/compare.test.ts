import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { diagnose } from '../../src/diagnose/diagnose.js';
import { compareSessions, COMPARE_PHASES, type SessionComparison } from '../../src/diagnose/compare.js';
import { registerDiagnoseCommand, type DiagnoseIo } from '../../src/cli/diagnose-command.js';
import { ANDROID, IOS, Scenario, cleanFirstPairing, cleanPairingThenReconnection, type PhoneProfile, type Side } from './builders.js';

function session(s: Scenario) {
  const timeline = buildTimeline(s.packets());
  return { timeline, report: diagnose(timeline) };
}

/** The accessory sends a Security Request; the phone discovers, and either reads a protected characteristic (and pairs) or reads nothing protected. */
function firstContact(side: Side, phone: PhoneProfile, readsProtected: boolean): Scenario {
  const s = new Scenario(side);
  s.connect();
  s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
  s.mtu(phone.mtu);
  s.discoverServiceChanged();
  if (readsProtected) {
    s.protectedRead(0x05);
    s.pair({ request: phone.pairingRequest });
    s.protectedRead();
  } else s.wait(12_000);
  s.disconnect(0x13);
  return s;
}

test('compare: the iPhone never read a protected characteristic, the Android phone got 0x05 and paired: the first divergence is the protected access', () => {
  const c = compareSessions(session(firstContact('phone', IOS, false)), session(firstContact('phone', ANDROID, true)));
  assert.deepEqual(c.phases.map((p) => p.phase), [...COMPARE_PHASES]);
  assert.deepEqual(c.phases.filter((p) => !p.same).map((p) => p.phase), ['protected-access', 'pairing-request', 'outcome', 'encryption']);
  assert.equal(c.divergence?.phase, 'protected-access');
  assert.match(c.divergence?.meaning ?? '', /In session B a protected access was rejected with 0x05 Insufficient Authentication, which is what makes a phone pair/);
  assert.equal(c.phases[1]?.same, true, 'MTU 185 vs 517 is not a divergence');
  assert.deepEqual(c.a.findings, ['security-request-ignored']);
  assert.deepEqual(c.b.findings, []);
  assert.equal(c.b.phases['protected-access'].at?.number, 8);
});

test('compare: an iPhone with a stale bond (phone capture) against an Android phone that pairs (accessory capture): the MTU differs but the divergence is the bonded phone encrypting at once', () => {
  const ios = new Scenario('phone');
  ios.connect();
  ios.startEncryption();
  ios.encryptionChange(0x06);
  ios.disconnect(0x13);
  const c = compareSessions(session(ios), session(cleanFirstPairing('accessory', ANDROID)));
  assert.equal(c.divergence?.phase, 'protected-access');
  assert.deepEqual(c.phases.find((p) => p.phase === 'mtu')?.decisive, false);
  assert.match(c.divergence?.meaning ?? '', /The phone of session A treats the accessory as bonded: it encrypted with its stored key at once.*did not work \(encryption failed: 0x06/);
  const pr = c.phases.find((p) => p.phase === 'pairing-request');
  assert.match(pr?.a.text ?? '', /the phone encrypted with a stored key instead/);
  assert.match(pr?.b.text ?? '', /AuthReq 0x2d/);
  assert.equal(c.a.phases.encryption.key, 'failed-0x06');
  assert.deepEqual(c.a.findings, ['phone-kept-stale-bond']);
});

test('compare near miss: clean iOS and Android sessions, from different sides and with different MTUs and AuthReq CT2 bits, do not diverge', () => {
  const c = compareSessions(session(cleanPairingThenReconnection('phone', IOS)), session(cleanPairingThenReconnection('accessory', ANDROID)));
  assert.equal(c.divergence, undefined, JSON.stringify(c.phases.filter((p) => !p.same)));
  assert.equal(c.a.phases.reconnection.key, 'encrypted-stored-key');
  assert.match(c.a.phases.outcome.text, /LE Secure Connections Just Works \(unauthenticated\), bonded, key size 16/);
});

test('compare: a phone that pairs again on reconnection diverges at the reconnection', () => {
  const again = cleanFirstPairing('accessory', IOS);
  again.wait(10_000);
  again.connect();
  again.pair();
  again.disconnect(0x13);
  const c = compareSessions(session(again), session(cleanPairingThenReconnection('accessory', IOS)));
  assert.equal(c.divergence?.phase, 'reconnection');
  assert.match(c.divergence?.meaning ?? '', /session A paired again instead of using the stored key/);
});

function io(): DiagnoseIo & { out: string; err: string } {
  const r = { out: '', err: '', stdout: { write: (s: string) => (r.out += s) }, stderr: { write: (s: string) => (r.err += s) } };
  return r;
}

test('wearable-host diagnose A B prints the phases side by side and the first divergence; --json gives the comparison and both reports', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-compare-'));
  try {
    const a = join(dir, 'iphone.pklg');
    const b = join(dir, 'android.btsnoop');
    writeFileSync(a, firstContact('phone', IOS, false).pklg());
    writeFileSync(b, firstContact('phone', ANDROID, true).btsnoop());
    const o = io();
    await registerDiagnoseCommand(new Command().exitOverride(), o).parseAsync(['node', 'x', a, b]);
    assert.equal(o.err, '');
    assert.match(o.out, /A: .*iphone\.pklg \(taken on the phone, connection 1\)/);
    assert.match(o.out, /≠ First protected access\n {4}A: the phone read or wrote nothing\n {4}B: #8 ATT_ERROR_RSP to ATT_READ_REQ on handle 0x0010: 0x05 Insufficient Authentication from the accessory/);
    assert.match(o.out, /First divergence: First protected access\./);
    const j = io();
    await registerDiagnoseCommand(new Command().exitOverride(), j).parseAsync(['node', 'x', a, b, '--json']);
    const parsed = JSON.parse(j.out) as { comparison: SessionComparison; reports: { source?: { file?: string } }[] };
    assert.equal(parsed.comparison.divergence?.phase, 'protected-access');
    assert.deepEqual(parsed.reports.map((r) => r.source?.file), [a, b]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
