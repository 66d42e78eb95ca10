import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { VirtualClock } from '../../src/util/clock.js';
import { LiveDiagnoser } from '../../src/diagnose/live.js';
import type { Finding } from '../../src/diagnose/diagnose.js';
import { RULES, type RuleDef } from '../../src/diagnose/rules.js';
import { IOS, PHONE_IDENTITY, PHONE_RPA_1, Scenario, T0, cleanPairingThenReconnection, type Recorded } from './builders.js';

/** Feeds recorded packets at the clock's current time; returns the findings they fired. */
function feedAll(d: LiveDiagnoser, records: readonly Recorded[]): Finding[] {
  const out: Finding[] = [];
  for (const r of records) out.push(...d.feed(r.direction, r.h4));
  return out;
}

function collect(d: LiveDiagnoser): Finding[] {
  const got: Finding[] = [];
  d.on('finding', (f) => got.push(f));
  return got;
}

test('live: "Security Request sent 10 s ago" fires from the clock alone, once, ten seconds after the request', async () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  const got = collect(d);
  const s = new Scenario('accessory');
  s.connect();
  s.smp('accessory', { type: 'securityRequest', authReq: 0x0d });
  s.mtu(185);
  assert.deepEqual(feedAll(d, s.records), []);
  await clock.advance(9_999);
  assert.equal(got.length, 0);
  await clock.advance(1);
  assert.equal(got.length, 1);
  assert.equal(got[0]?.rule, 'security-request-ignored');
  assert.match(got[0]?.detail ?? '', /^Security Request sent 10 s ago; the phone has not started pairing\. The phone made no ATT request after it/);
  assert.deepEqual(got[0]?.evidence.map((e) => e.number), [2]);
  // More traffic and the disconnection do not repeat it.
  const more = new Scenario('accessory');
  more.att('phone', { type: 'readRequest', handle: 5 });
  more.disconnect(0x13);
  feedAll(d, more.records);
  await clock.advance(60_000);
  assert.equal(got.length, 1);
  d.stop();
  assert.equal(clock.pendingCount, 0);
});

test('live: a stale bond is reported on the very packet that shows it (the LTK negative reply)', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  const s = new Scenario('accessory');
  s.connect();
  s.startEncryption();
  const fired: Finding[][] = s.records.map(() => []);
  s.ltkReply(false);
  s.records.forEach((r, i) => {
    fired[i] = d.feed(r.direction, r.h4);
  });
  assert.deepEqual(fired.map((f) => f.map((x) => x.rule)), [[], [], ['phone-kept-stale-bond'], []]);
  d.stop();
});

test('live: an unanswered pairing is reported when the 30 s SMP timeout passes, and each finding is logged once as a structured debug line', async () => {
  const clock = new VirtualClock(T0);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const d = new LiveDiagnoser({ clock, log: pino({ level: 'debug' }, sink) });
  const got = collect(d);
  const s = new Scenario('accessory');
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
  s.smp('accessory', { type: 'pairingResponse', ioCapability: 3, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 3, responderKeyDist: 3 });
  feedAll(d, s.records);
  await clock.advance(29_000);
  assert.equal(got.length, 0);
  await clock.advance(1_000);
  assert.deepEqual(got.map((f) => f.rule), ['pairing-cancelled']);
  assert.match(got[0]?.detail ?? '', /beyond the 30 s SMP timeout/);
  assert.equal(lines.length, 1);
  const logged = JSON.parse(lines[0] ?? '{}') as { level: number; rule: string; msg: string; evidence: number[] };
  assert.equal(logged.level, 20);
  assert.equal(logged.rule, 'pairing-cancelled');
  assert.deepEqual(logged.evidence, [2, 3]);
  assert.equal(logged.msg, 'diagnosis: Pairing cancelled on the phone or the prompt timed out');
  d.stop();
});

test('live: a clean pairing and reconnection fed packet by packet raise nothing and leave no timer behind', async () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  const got = collect(d);
  const s = cleanPairingThenReconnection('accessory');
  for (const r of s.records) {
    await clock.advance(Math.max(0, r.time - clock.now()));
    d.trace(r.direction === 'host->controller' ? 'tx' : 'rx', r.h4);
  }
  await clock.advance(120_000);
  assert.deepEqual(got, []);
  assert.equal(clock.pendingCount, 0);
  assert.equal(d.report().connections.length, 2);
  d.stop();
});

test('live: with the bond store as resolver, 0x05 to a phone it resolves is reported as an unresolved address', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock, resolveAddress: (a) => (a.address === PHONE_RPA_1.address ? PHONE_IDENTITY : undefined) });
  const s = new Scenario('accessory');
  s.connect({ phone: PHONE_RPA_1 });
  s.protectedRead(0x05);
  const fired = feedAll(d, s.records);
  assert.deepEqual(fired.map((f) => f.rule), ['rpa-not-resolved']);
  assert.match(fired[0]?.detail ?? '', /with the host's bond store/);
  d.stop();
});

test('live: an ended connection keeps only its security story (and MTU exchange), and ended connections beyond the retention limit are dropped whole; findings were emitted before', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock, keepEndedConnections: 1 });
  for (let i = 0; i < 3; i++) {
    const s = new Scenario('accessory');
    s.connect();
    s.mtu(185);
    s.startEncryption();
    s.ltkReply(false);
    s.disconnect(0x13);
    feedAll(d, s.records);
  }
  const r = d.report();
  assert.deepEqual(r.connections.map((c) => c.id), [3], 'the two older ended connections are gone');
  assert.deepEqual(r.connections.map((c) => c.security.outcome), ['encryption-failed']);
  assert.deepEqual(r.connections.map((c) => c.phone !== undefined), [true], 'the MTU exchange that identifies the phone is kept');
  assert.equal(d.findings().length, 3);
  assert.equal(d.retained().connections, 1);
  d.stop();
});

test('live: packets after stop() are ignored', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock });
  d.stop();
  const s = new Scenario('accessory');
  s.connect();
  assert.deepEqual(feedAll(d, s.records), []);
  assert.equal(d.report().connections.length, 0);
});

test('live: a Pairing Request refused with 0x08 while the bond store is full and refusing gives the bond-store-full finding; not when the store has room', () => {
  const run = (capacity: { stored: number; max: number; whenFull: 'refuse' | 'evict-oldest' }): Finding[] => {
    const clock = new VirtualClock(T0);
    const d = new LiveDiagnoser({ clock, bondStore: () => capacity });
    const s = new Scenario('accessory');
    s.connect();
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.smp('accessory', { type: 'pairingFailed', reason: 0x08 });
    s.disconnect(0x13);
    const got = feedAll(d, s.records);
    d.stop();
    return got;
  };
  const full = run({ stored: 16, max: 16, whenFull: 'refuse' }).filter((f) => f.rule === 'bond-store-full');
  assert.equal(full.length, 1);
  assert.equal(full[0]?.title, 'Pairing refused: the bond store is full');
  assert.equal(full[0]?.detail, 'The bond store holds 16 of 16 bonds.');
  assert.deepEqual(full[0]?.evidence.map((e) => e.number), [2, 3]);
  assert.deepEqual(run({ stored: 15, max: 16, whenFull: 'refuse' }).filter((f) => f.rule === 'bond-store-full'), []);
  assert.deepEqual(run({ stored: 16, max: 16, whenFull: 'evict-oldest' }).filter((f) => f.rule === 'bond-store-full'), []);
});

test('live: 10,000 ATT requests each answered with an Error Response on one link: the rules run O(log n) times and the link retains a bounded number of events', () => {
  const clock = new VirtualClock(T0);
  let evaluations = 0;
  const counting: RuleDef = {
    id: 'count-evaluations',
    title: 'counts evaluations',
    severity: 'hint',
    cause: '',
    fixes: [],
    sources: [],
    match: () => {
      evaluations++;
      return [];
    },
  };
  const d = new LiveDiagnoser({ clock, rules: [...RULES, counting] });
  const s = new Scenario('accessory');
  s.connect();
  for (let i = 0; i < 10_000; i++) {
    s.att('phone', { type: 'readRequest', handle: 0x0100 + (i % 50) });
    s.att('accessory', { type: 'errorResponse', requestOpcode: 0x0a, handle: 0x0100 + (i % 50), errorCode: 0x01 });
  }
  feedAll(d, s.records);
  assert.ok(evaluations <= 20, `rules evaluated ${evaluations} times for 20,000 PDUs (1st, 2nd, 4th ... of each kind)`);
  const kept = d.retained();
  assert.ok(kept.events <= 2_100, `${kept.events} events retained on the link`);
  // The disconnection always evaluates (final), and a fresh link is evaluated at once again.
  const before = evaluations;
  const end = new Scenario('accessory');
  end.disconnect(0x13);
  end.connect();
  end.att('accessory', { type: 'errorResponse', requestOpcode: 0x0a, handle: 0x0100, errorCode: 0x01 });
  feedAll(d, end.records);
  assert.equal(evaluations - before, 3, 'the disconnection, then the new link\'s connection and its first error');
  d.stop();
});

test('live: 500 short connections: only the last keepEndedConnections are retained, and nothing else grows with them', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock, keepEndedConnections: 20 });
  for (let i = 0; i < 500; i++) {
    const s = new Scenario('accessory');
    s.connect({ handle: 0x40 + (i % 8) });
    s.mtu(185);
    s.protectedRead(0x05);
    s.smp('phone', { type: 'pairingRequest', ...IOS.pairingRequest });
    s.smp('accessory', { type: 'pairingFailed', reason: 0x09 });
    s.disconnect(0x13);
    feedAll(d, s.records);
  }
  const kept = d.retained();
  assert.equal(kept.connections, 20);
  assert.ok(kept.events <= 20 * 10, `${kept.events} events retained`);
  assert.ok(kept.signatures <= 20 * 10, `${kept.signatures} signatures retained`);
  assert.equal(kept.timers, 0);
  assert.ok(kept.findings <= 1000);
  d.stop();
});

test('live: links the timeline ends without a Disconnection Complete (a new Connection Complete on the same handle, an HCI Reset) are retired too: retention stays bounded', () => {
  const clock = new VirtualClock(T0);
  const d = new LiveDiagnoser({ clock, keepEndedConnections: 20 });
  const s = new Scenario('accessory');
  for (let i = 0; i < 300; i++) {
    s.connect({ handle: 0x40 });
    s.mtu(185);
  }
  feedAll(d, s.records);
  assert.ok(d.retained().connections <= 20 + 16 + 1, `${d.retained().connections} connections retained`);
  // HCI Reset drops every link: the open one ends with it.
  d.feed('host->controller', Uint8Array.of(0x01, 0x03, 0x0c, 0x00));
  assert.equal(d.report().connections.filter((c) => c.end === undefined).length, 0);
  d.stop();
});
