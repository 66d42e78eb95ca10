import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecurityManager } from '../../src/smp/security-manager.js';
import { encodeSmp } from '../../src/smp/pdu.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { CENTRAL_ADDR, FakeBondStore, FakeLower, PERIPHERAL_ADDR, PERIPHERAL_IDENTITY, features, inject } from './harness.js';

test('sessions made by one SecurityManager share policy and the repeated-attempts table', async () => {
  const clock = new VirtualClock();
  const sm = new SecurityManager({ bonds: new FakeBondStore(PERIPHERAL_IDENTITY), clock, random: seededRandom('sm'), backoff: { initialMs: 5_000 }, policy: { minKeySize: 16 } });
  const l1 = new FakeLower('peripheral', PERIPHERAL_ADDR, CENTRAL_ADDR);
  const s1 = sm.createSession(l1);
  s1.start();
  await inject(s1, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.equal(l1.take()[0]?.slice(0, 2), '02');
  await inject(s1, encodeSmp({ type: 'pairingDhKeyCheck', check: new Uint8Array(16) }));
  assert.deepEqual(l1.take(), ['0508']);
  s1.onDisconnected();
  await s1.whenIdle();
  assert.equal(sm.sessions.length, 0);

  const l2 = new FakeLower('peripheral', PERIPHERAL_ADDR, CENTRAL_ADDR);
  const s2 = sm.createSession(l2);
  s2.start();
  assert.equal(sm.sessions.length, 1);
  await inject(s2, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(l2.take(), ['0509'], 'the failure on the first connection counts on the second');
  await clock.advance(5_000);
  await inject(s2, encodeSmp({ type: 'pairingRequest', ...features({ maxKeySize: 12 }) }));
  assert.deepEqual(l2.take(), ['0506'], 'shared policy: 16-byte keys required');
});
