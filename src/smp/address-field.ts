/**
 * How SMP feeds a device address to f5 and f6 (A1, A2). Core 5.4 Vol 3 Part H 2.2.7.
 */
import { addressToWire, type Address } from '../util/address.js';

/**
 * A1/A2 of f5 and f6: 56 bits, the address type (0x00 public, 0x01 random) in the most
 * significant octet above the 48-bit device address; little-endian, so the 6 wire bytes come
 * first. Core 5.4 Vol 3 Part H 2.2.7.
 */
export function addressForCrypto(a: Address): Uint8Array {
  const out = new Uint8Array(7);
  out.set(addressToWire(a.address), 0);
  out[6] = a.type === 'public' ? 0x00 : 0x01;
  return out;
}
