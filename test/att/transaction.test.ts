import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttTransactionQueue } from '../../src/att/transaction.js';
import { VirtualClock } from '../../src/util/clock.js';

interface Entry {
  readonly name: string;
  reject(err: Error): void;
}

function setup(timeoutMs = 30_000) {
  const clock = new VirtualClock();
  const started: string[] = [];
  const rejected: string[] = [];
  let timeouts = 0;
  const q = new AttTransactionQueue<Entry>(
    clock,
    timeoutMs,
    (e) => started.push(e.name),
    () => timeouts++,
  );
  const entry = (name: string): Entry => ({ name, reject: (err) => rejected.push(`${name}:${err.message}`) });
  return { clock, q, started, rejected, entry, timeouts: () => timeouts };
}

test('one transaction outstanding: the next begins only after the outstanding one finishes (Core 5.4 Vol 3 Part F 3.3.2)', () => {
  const { q, started, entry } = setup();
  q.submit(entry('a'));
  q.submit(entry('b'));
  q.submit(entry('c'));
  assert.deepEqual(started, ['a']);
  assert.equal(q.depth, 3);
  assert.equal(q.current?.name, 'a');
  assert.equal(q.finish()?.name, 'a');
  assert.equal(q.depth, 2);
  assert.equal(q.current, undefined);
  q.beginNext();
  assert.deepEqual(started, ['a', 'b']);
  assert.equal(q.finish()?.name, 'b');
  q.beginNext();
  assert.equal(q.finish()?.name, 'c');
  q.beginNext();
  assert.equal(q.finish(), undefined, 'nothing outstanding');
  assert.equal(q.depth, 0);
});

test('the transaction timer runs from the start of each transaction and stops when it finishes (Core 5.4 Vol 3 Part F 3.3.3)', async () => {
  const { clock, q, entry, timeouts } = setup(30_000);
  q.submit(entry('a'));
  q.submit(entry('b'));
  await clock.advance(20_000);
  q.finish();
  q.beginNext();
  // b started at 20 s: a's timer is gone, b's fires at 50 s.
  await clock.advance(29_999);
  assert.equal(timeouts(), 0);
  await clock.advance(1);
  assert.equal(timeouts(), 1);
});

test('close rejects the outstanding and every waiting transaction, oldest first, and begins nothing more', async () => {
  const { clock, q, started, rejected, entry, timeouts } = setup(30_000);
  q.submit(entry('a'));
  q.submit(entry('b'));
  q.submit(entry('c'));
  q.close(new Error('closed'));
  assert.deepEqual(rejected, ['a:closed', 'b:closed', 'c:closed']);
  assert.equal(q.depth, 0);
  q.beginNext();
  assert.deepEqual(started, ['a']);
  await clock.advance(60_000);
  assert.equal(timeouts(), 0, 'the timer stopped with the close');
});
