import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mixedRandom, osRandom, randomInt, seededRandom } from '../../src/util/random.js';
import { toHex } from '../../src/util/bytes.js';

test('mixedRandom output differs from its base and from itself, and depends on the extra entropy', () => {
  const base = () => seededRandom('base');
  const a = mixedRandom(base(), () => Uint8Array.of(1, 2, 3));
  const b = mixedRandom(base(), () => Uint8Array.of(9, 9, 9));
  const a1 = a.bytes(40);
  const a2 = a.bytes(40);
  assert.equal(a1.length, 40);
  assert.notEqual(toHex(a1), toHex(a2), 'successive outputs differ');
  assert.notEqual(toHex(a1), toHex(b.bytes(40)), 'the extra entropy changes the output');
  assert.notEqual(toHex(a1.subarray(0, 32)), toHex(base().bytes(32)), 'not the base bytes');
  // Same inputs, same outputs: the mix is a deterministic function of base and extra.
  assert.equal(toHex(mixedRandom(base(), () => Uint8Array.of(1, 2, 3)).bytes(40)), toHex(a1));
});

test('osRandom fills large requests and randomInt stays in range without bias shortcuts', () => {
  const big = osRandom.bytes(70_000);
  assert.equal(big.length, 70_000);
  assert.ok(big.subarray(65_536).some((b) => b !== 0), 'bytes past the 64 KiB getRandomValues limit are filled');
  const rng = seededRandom('int');
  for (let i = 0; i < 1000; i++) {
    const v = randomInt(rng, 7);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 7);
  }
  assert.throws(() => randomInt(rng, 0), RangeError);
});

test('seededRandom is reproducible per seed', () => {
  assert.equal(toHex(seededRandom('s').bytes(50)), toHex(seededRandom('s').bytes(50)));
  assert.notEqual(toHex(seededRandom('s').bytes(50)), toHex(seededRandom('t').bytes(50)));
});
