/**
 * LE privacy: the random address hash function ah (re-exported from src/crypto),
 * resolvable private address (RPA) generation and resolution, IRK generation.
 * Core 5.4 Vol 3 Part H 2.2.2 (ah), Vol 6 Part B 1.3.2.2 (RPA format).
 *
 * Byte order: keys, prand and hash are little-endian as on the wire (as in SMP's Identity
 * Information PDU).
 */
import { addressFromWire, addressToWire, randomAddressKind, type Address } from '../util/address.js';
import { bytesEqual } from '../util/bytes.js';
import type { RandomSource } from '../util/random.js';
import { ah } from '../crypto/index.js';

/**
 * The random address hash function ah(k, r) = e(k, r') mod 2^24 (Core 5.4 Vol 3 Part H 2.2.2),
 * from src/crypto: IRK 16 bytes LE, prand 3 bytes LE (address bytes 3..5 on the
 * wire), result 3 bytes LE (address bytes 0..2).
 */
export { ah };

/** A fresh 16-byte Identity Resolving Key (little-endian). Core 5.4 Vol 3 Part H 2.4.2.1. */
export function generateIrk(rng: RandomSource): Uint8Array {
  const irk = rng.bytes(16);
  if (irk.length !== 16) throw new RangeError('random source returned the wrong number of bytes');
  return irk;
}

/** Whether `address` is a resolvable private address: random, two most significant bits 0b01. Core 5.4 Vol 6 Part B 1.3.2.2. */
export function isResolvablePrivateAddress(address: Address): boolean {
  return address.type === 'random' && randomAddressKind(address.address) === 'resolvable';
}

/**
 * A new resolvable private address for our own `irk`: prand has its two most significant bits 0b01
 * and a random part that is neither all zeros nor all ones; hash = ah(irk, prand).
 * Core 5.4 Vol 6 Part B 1.3.2.2.
 */
export function generateRpa(irk: Uint8Array, rng: RandomSource): Address {
  for (;;) {
    const prand = rng.bytes(3);
    prand[2] = ((prand[2] as number) & 0x3f) | 0x40;
    const randomPart = (prand[0] as number) | ((prand[1] as number) << 8) | (((prand[2] as number) & 0x3f) << 16);
    if (randomPart === 0 || randomPart === 0x3fffff) continue;
    const wire = new Uint8Array(6);
    wire.set(ah(irk, prand), 0);
    wire.set(prand, 3);
    return { type: 'random', address: addressFromWire(wire) };
  }
}

/**
 * Whether `irk` resolves `address`: it is an RPA and ah(irk, prand) equals its hash part.
 * Core 5.4 Vol 3 Part H 2.2.2 and Vol 6 Part B 1.3.2.3.
 */
export function irkResolves(irk: Uint8Array, address: Address): boolean {
  if (!isResolvablePrivateAddress(address)) return false;
  const wire = addressToWire(address.address);
  return bytesEqual(ah(irk, wire.subarray(3, 6)), wire.subarray(0, 3));
}
