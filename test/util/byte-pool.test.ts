import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POOLED_MAX, copyBytes } from '../../src/util/byte-pool.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

test('copyBytes gives a plain Uint8Array with the same bytes that shares nothing with the source', () => {
  const backing = fromHex('ff 010203 ff');
  const src = backing.subarray(1, 4);
  const copy = copyBytes(src);
  assert.equal(Object.getPrototypeOf(copy), Uint8Array.prototype);
  assert.equal(toHex(copy), '010203');
  assert.notEqual(copy.buffer, backing.buffer);
  src.fill(0xee);
  assert.equal(toHex(copy), '010203', 'writing the source later does not change the copy');
});

test('copies taken one after the other never overlap, also across slabs', () => {
  // 400 copies of 244 bytes fill about 12 slabs of 8 KiB; odd lengths check the alignment.
  const copies = Array.from({ length: 400 }, (_, i) => copyBytes(new Uint8Array(244 - (i % 3)).fill(i & 0xff)));
  copies.forEach((c, i) => c.fill((i * 7) & 0xff));
  assert.ok(
    copies.every((c, i) => c.length === 244 - (i % 3) && c.every((b) => b === ((i * 7) & 0xff))),
    'writing each copy changed no other copy',
  );
});

test('a copy of an empty array is empty; one longer than POOLED_MAX has a buffer of its own', () => {
  assert.equal(copyBytes(new Uint8Array(0)).length, 0);
  const big = copyBytes(new Uint8Array(POOLED_MAX + 1).fill(7));
  assert.equal(big.buffer.byteLength, POOLED_MAX + 1);
  assert.ok(big.every((b) => b === 7));
  const small = copyBytes(new Uint8Array(POOLED_MAX).fill(9));
  assert.ok(small.buffer.byteLength > POOLED_MAX, 'a value of up to 512 bytes comes from a shared slab');
});
