/**
 * LE privacy: the random address hash function ah, resolvable private address (RPA) generation and
 * resolution, IRK generation. Core 5.4 Vol 3 Part H 2.2.2 (ah), Vol 6 Part B 1.3.2.2 (RPA format).
 *
 * Byte order: keys, prand and hash are little-endian as on the wire (as in SMP's Identity
 * Information PDU); this module reverses internally for AES, which works on big-endian blocks.
 */
import { ecb } from '@noble/ciphers/aes.js';
import { addressFromWire, addressToWire, randomAddressKind, type Address } from '../util/address.js';
import { bytesEqual } from '../util/bytes.js';
import type { RandomSource } from '../util/random.js';

/**
 * The random address hash function: ah(k, r) = e(k, r') mod 2^24, where r' is r padded with 104 zero
 * bits on the most significant side. Core 5.4 Vol 3 Part H 2.2.2.
 * @param irk 16-byte IRK, little-endian.
 * @param prand 3-byte prand, little-endian (as in the address on the wire, bytes 3..5).
 * @returns the 3-byte hash, little-endian (bytes 0..2 of the address on the wire).
 */
export function ah(irk: Uint8Array, prand: Uint8Array): Uint8Array {
  if (irk.length !== 16) throw new RangeError(`ah: an IRK is 16 bytes, got ${irk.length}`);
  if (prand.length !== 3) throw new RangeError(`ah: prand is 3 bytes, got ${prand.length}`);
  // AES key and plaintext are big-endian: most significant byte first.
  const key = new Uint8Array(16);
  for (let i = 0; i < 16; i++) key[i] = irk[15 - i] as number;
  const block = new Uint8Array(16);
  block[13] = prand[2] as number;
  block[14] = prand[1] as number;
  block[15] = prand[0] as number;
  const e = ecb(key, { disablePadding: true }).encrypt(block);
  return Uint8Array.of(e[15] as number, e[14] as number, e[13] as number);
}

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
