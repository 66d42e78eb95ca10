import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.js';

test('VirtualClock fires timers in deadline order, ties in creation order', async () => {
  const c = new VirtualClock(0);
  const seen: string[] = [];
  c.setTimeout(() => seen.push('b'), 20);
  c.setTimeout(() => seen.push('a'), 10);
  c.setTimeout(() => seen.push('c'), 20);
  const h = c.setTimeout(() => seen.push('x'), 15);
  c.clearTimeout(h);
  await c.advance(25);
  assert.deepEqual(seen, ['a', 'b', 'c']);
  assert.equal(c.now(), 25);
});

test('VirtualClock.runUntil stops at maxMs when the only timer is due later', async () => {
  const c = new VirtualClock(0);
  let fired = false;
  c.setTimeout(() => (fired = true), 10_000);
  const ok = await c.runUntil(() => fired, 1000);
  assert.equal(ok, false);
  assert.equal(c.now(), 1000);
  assert.equal(fired, false);
  assert.equal(await c.runUntil(() => fired, 10_000), true);
});

test('VirtualClock.drive runs timers until the promise settles, passes its rejection on, and rejects with the given text when it stalls', async () => {
  const clock = new VirtualClock();
  const start = clock.now();
  const late = new Promise<string>((resolve) => clock.setTimeout(() => resolve('done'), 5000));
  assert.equal(await clock.drive(late, 10_000), 'done');
  assert.equal(clock.now() - start, 5000);
  const failing = new Promise<never>((_, reject) => clock.setTimeout(() => reject(new Error('refused')), 10));
  await assert.rejects(clock.drive(failing), /refused/);
  await assert.rejects(clock.drive(new Promise<never>(() => undefined), 1000), /still pending after 1000 ms of virtual time/);
  await assert.rejects(clock.drive(new Promise<never>(() => undefined), 1000, 'no answer'), /^Error: no answer$/);
});
