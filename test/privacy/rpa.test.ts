import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIrk, generateRpa, irkResolvesAddress } from '../../src/privacy/rpa.js';
import { ah } from '../../src/crypto/index.js';
import { fromHex, reversed, toHex } from '../../src/util/bytes.js';
import { addressToWire, isResolvablePrivateAddress, randomAddressKind } from '../../src/util/address.js';
import { seededRandom } from '../../src/util/random.js';

// Core 5.4 Vol 3 Part H Appendix D.7: values are printed most significant octet first.
const SPEC_IRK = reversed(fromHex('ec0234a357c8ad05341010a60a397d9b'));
const SPEC_PRAND = reversed(fromHex('708194'));
const SPEC_HASH = '0dfbaa';

test('ah matches the Core spec sample (Vol 3 Part H D.7): IRK ec0234..9b, prand 708194 -> 0dfbaa', () => {
  const hash = ah(SPEC_IRK, SPEC_PRAND);
  assert.equal(toHex(reversed(hash)), SPEC_HASH);
});

test('the spec sample RPA 70:81:94:0D:FB:AA resolves with the spec IRK and not with another', () => {
  const rpa = { type: 'random' as const, address: '70:81:94:0D:FB:AA' };
  assert.equal(isResolvablePrivateAddress(rpa), true);
  assert.equal(irkResolvesAddress(SPEC_IRK, rpa), true);
  const other = SPEC_IRK.slice();
  other[0] = (other[0] as number) ^ 1;
  assert.equal(irkResolvesAddress(other, rpa), false);
  // Same bits but typed public: not an RPA, never resolves.
  assert.equal(irkResolvesAddress(SPEC_IRK, { type: 'public', address: rpa.address }), false);
});

test('ah rejects wrong key and prand lengths', () => {
  assert.throws(() => ah(new Uint8Array(15), SPEC_PRAND), RangeError);
  assert.throws(() => ah(SPEC_IRK, new Uint8Array(4)), RangeError);
});

test('generateRpa makes resolvable addresses (top bits 01, random part neither all 0 nor all 1) that resolve with their IRK', () => {
  const rng = seededRandom('rpa');
  const irk = generateIrk(rng);
  assert.equal(irk.length, 16);
  const otherIrk = generateIrk(rng);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const rpa = generateRpa(irk, rng);
    assert.equal(rpa.type, 'random');
    assert.equal(randomAddressKind(rpa.address), 'resolvable');
    const wire = addressToWire(rpa.address);
    assert.equal((wire[5] as number) >> 6, 0b01);
    const randomPart = (wire[3] as number) | ((wire[4] as number) << 8) | (((wire[5] as number) & 0x3f) << 16);
    assert.ok(randomPart !== 0 && randomPart !== 0x3fffff);
    assert.deepEqual(wire.subarray(0, 3), ah(irk, wire.subarray(3, 6)));
    assert.equal(irkResolvesAddress(irk, rpa), true);
    assert.equal(irkResolvesAddress(otherIrk, rpa), false);
    seen.add(rpa.address);
  }
  assert.ok(seen.size > 190, 'addresses are fresh');
});

test('generateRpa skips a prand whose random part is all zeros or all ones', () => {
  // A source whose first two draws are the forbidden patterns.
  const draws = [Uint8Array.of(0, 0, 0x40), Uint8Array.of(0xff, 0xff, 0xff), Uint8Array.of(1, 0, 0)];
  let i = 0;
  const rng = { bytes: (n: number) => (draws[i++] ?? new Uint8Array(n)).slice(0, n) };
  const rpa = generateRpa(SPEC_IRK, rng);
  assert.equal(i, 3);
  assert.equal(rpa.address.slice(0, 8), '40:00:01');
  assert.equal(irkResolvesAddress(SPEC_IRK, rpa), true);
});
