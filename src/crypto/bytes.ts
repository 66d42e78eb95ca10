/**
 * Byte helpers private to the crypto module: argument checks, byte-order reversal, and the
 * spec's MSB-first concatenation. Kept here so that src/crypto imports nothing else of ours.
 */
import { equalBytes } from '@noble/ciphers/utils.js';

/** Throws a RangeError naming the function and argument unless `v` is exactly `n` bytes. */
export function need(fn: string, name: string, v: Uint8Array, n: number): void {
  if (!(v instanceof Uint8Array) || v.length !== n) {
    throw new RangeError(`${fn}: ${name} must be ${n} bytes, got ${v instanceof Uint8Array ? v.length : typeof v}`);
  }
}

/** A copy with the byte order reversed: the functions of Vol 3 Part H 2.2 work MSB first, SMP PDUs carry LSB first. */
export function reversed(data: Uint8Array): Uint8Array {
  // Uint8Array.from, not data.slice(): a Node Buffer's slice is a view, and reverse() would then
  // reverse the caller's bytes in place.
  return Uint8Array.from(data).reverse();
}

/** Concatenates the little-endian arguments as the spec writes them (first argument most significant). */
export function msbFirst(...partsLe: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of partsLe) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of partsLe) {
    for (let i = p.length - 1; i >= 0; i--) out[o++] = p[i] as number;
  }
  return out;
}

/**
 * Constant-time comparison for secrets (confirm values, DHKey checks, signatures): its duration
 * does not depend on where the first difference is. Different lengths compare unequal.
 */
export function bytesEqualConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && equalBytes(a, b);
}
