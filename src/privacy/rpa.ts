/**
 * Our own private addresses: IRK generation and resolvable private address (RPA) generation.
 * Core 5.4 Vol 3 Part H 2.4.2.1 (IRK), Vol 6 Part B 1.3.2.2 (RPA format).
 *
 * Also the test "does this IRK resolve that address" (Vol 6 Part B 1.3.2.3). The hash function
 * ah is src/crypto's; whether an address is an RPA at all is util/address's
 * isResolvablePrivateAddress (the bond table needs it too, below this layer, and resolves with ah
 * directly, hashing each address once for all its IRKs).
 *
 * Byte order: keys, prand and hash are little-endian as on the wire (as in SMP's Identity
 * Information PDU).
 */
import { addressFromWire, addressToWire, isResolvablePrivateAddress, type Address } from '../util/address.js';
import { bytesEqual } from '../util/bytes.js';
import type { RandomSource } from '../util/random.js';
import { ah } from '../crypto/index.js';

/** A fresh 16-byte Identity Resolving Key (little-endian). Core 5.4 Vol 3 Part H 2.4.2.1. */
export function generateIrk(rng: RandomSource): Uint8Array {
  const irk = rng.bytes(16);
  if (irk.length !== 16) throw new RangeError('random source returned the wrong number of bytes');
  return irk;
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

/** Whether `irk` resolves `address`: an RPA whose hash is ah(irk, prand). Core 5.4 Vol 6 Part B 1.3.2.3. */
export function irkResolvesAddress(irk: Uint8Array, address: Address): boolean {
  if (!isResolvablePrivateAddress(address)) return false;
  const wire = addressToWire(address.address);
  return bytesEqual(ah(irk, wire.subarray(3, 6)), wire.subarray(0, 3));
}
