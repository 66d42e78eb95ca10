/** The phone rule table: one row per rule with both phones' values and a source; profiles are built from it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PHONE_RULES, describeRules, phoneProfile, type PhoneRule } from '../../src/phone/profiles.js';

test('every rule has a topic, a source and a status for each phone', () => {
  for (const [key, r] of Object.entries(PHONE_RULES) as [string, PhoneRule<unknown>][]) {
    assert.ok(r.topic.length > 0, key);
    assert.ok(r.source.length > 10, `${key} cites a source`);
    for (const p of ['ios', 'android'] as const) assert.ok(['documented', 'observed', 'unverified'].includes(r.status[p]), `${key} ${p}`);
  }
});

test("the profiles carry docs/field-notes.md's values: Pairing Request fields and MTU", () => {
  const ios = phoneProfile('ios');
  const android = phoneProfile('android');
  assert.deepEqual(ios.pairingRequest, { ioCapability: 0x04, authReq: 0x0d, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 });
  assert.deepEqual(android.pairingRequest, { ioCapability: 0x04, authReq: 0x2d, maxKeySize: 16, initiatorKeyDist: 0x0f, responderKeyDist: 0x0f });
  assert.equal(ios.mtu, 185);
  assert.equal(android.mtu, 517);
  assert.deepEqual(ios.pairsOnAttErrors, [0x05, 0x0f]);
  assert.equal(ios.lostBond, 'give-up');
  assert.equal(android.lostBond, 're-pair');
  assert.equal(ios.honoursSecurityRequest, true);
  assert.equal(android.cancelReason, 0x0c);
  assert.equal(PHONE_RULES.pairingRequest.status.ios, 'unverified', 'iOS Pairing Request values are marked unverified');
  assert.equal(PHONE_RULES.cancelReason.status.ios, 'unverified');
});

test('overrides change one rule and are listed; the table itself is untouched', () => {
  const p = phoneProfile('ios', { honoursSecurityRequest: false, mtu: 247 });
  assert.equal(p.honoursSecurityRequest, false);
  assert.equal(p.mtu, 247);
  assert.deepEqual([...p.overridden].sort(), ['honoursSecurityRequest', 'mtu']);
  assert.equal(phoneProfile('ios').honoursSecurityRequest, true);
  assert.equal(PHONE_RULES.mtu.ios, 185);
});

test('describeRules prints every topic with both values, their status and the source', () => {
  const text = describeRules().join('\n');
  for (const r of Object.values(PHONE_RULES) as PhoneRule<unknown>[]) {
    assert.ok(text.includes(r.topic), r.topic);
    assert.ok(text.includes(r.source), r.source);
  }
  assert.match(text, /iOS {6}IO 0x04, AuthReq 0x0d, max key 16, key dist 0x03\/0x03 {2}\[unverified\]/);
  assert.match(text, /Android {2}IO 0x04, AuthReq 0x2d, max key 16, key dist 0x0f\/0x0f {2}\[documented\]/);
  assert.ok(!describeRules('android').join('\n').includes('  iOS '));
});
