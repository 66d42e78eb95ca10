import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fifo } from '../../src/util/fifo.js';

test('Fifo keeps first-in first-out order across wrap-around and growth; peek, length and drain agree', () => {
  const q = new Fifo<number>(2);
  const out: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the ring wraps before it grows, several times.
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < 3; k++) q.push(next++);
    const first = q.peek();
    const shifted = q.shift();
    assert.equal(shifted, first);
    out.push(shifted as number);
  }
  assert.equal(q.length, next - out.length);
  out.push(...q.drain());
  assert.deepEqual(out, Array.from({ length: next }, (_, i) => i));
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
});
