/** The issue-12 rules running live on the wearable's own packet trace, as the host runs them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.js';
import { LiveDiagnoser } from '../../src/diagnose/live.js';
import type { Finding } from '../../src/diagnose/diagnose.js';
import { IOS, Scenario, T0 } from './builders.js';

test('live: an unanswered Pairing Request is reported from the clock alone, 30 s (the SMP timeout) after it, once', async () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  const got: Finding[] = [];
  d.on('finding', (f) => got.push(f));
  const s = new Scenario('accessory');
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  for (const r of s.records) assert.deepEqual(d.feed(r.direction, r.h4), []);
  await clock.advance(29_990);
  assert.equal(got.length, 0);
  await clock.advance(20);
  assert.deepEqual(got.map((f) => f.rule), ['pairing-unanswered']);
  assert.deepEqual(got[0]?.evidence.map((e) => e.number), [2]);
  await clock.advance(60_000);
  assert.equal(got.length, 1);
  d.stop();
});

test('live: a 0x05 on the encrypted link after Just Works is reported on that packet', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  const s = new Scenario('accessory');
  s.connect();
  s.pair();
  const before = s.records.length;
  const err = s.protectedRead(0x05);
  const fired = s.records.map((r) => d.feed(r.direction, r.h4));
  assert.deepEqual(fired.slice(0, before).flat(), []);
  assert.deepEqual(fired[err - 1]?.map((f) => f.rule), ['authentication-unreachable']);
  d.stop();
});
