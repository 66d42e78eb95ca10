/**
 * AES-128 in the two shapes Bluetooth uses: the security function e (one block, little-endian
 * as HCI LE Encrypt carries it), AES-CMAC (RFC 4493), and the random address hash ah built on e.
 * Core 5.4 Vol 3 Part H 2.2.1, 2.2.2, 2.2.5. AES itself comes from @noble/ciphers.
 */
import { cmac, ecb } from '@noble/ciphers/aes.js';
import { need, reversed } from './bytes.js';

/** AES-128 encryption of one block, both big-endian (FIPS-197 order). */
function aes128(keyBe: Uint8Array, blockBe: Uint8Array): Uint8Array {
  return ecb(keyBe, { disablePadding: true }).encrypt(blockBe);
}

/**
 * The security function e: AES-128 encryption of one block. Core 5.4 Vol 3 Part H 2.2.1.
 * Key, plaintext and result are little-endian, as HCI LE Encrypt carries them.
 */
export function e(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  need('e', 'key', key, 16);
  need('e', 'plaintext', plaintext, 16);
  return reversed(aes128(reversed(key), reversed(plaintext)));
}

/**
 * AES-CMAC (RFC 4493) with a 128-bit key, over MSB-first strings, 16-byte MSB-first tag.
 * Core 5.4 Vol 3 Part H 2.2.5 uses it as the building block of f4, f5, f6, g2, h6 and h7.
 */
export function aesCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  need('aesCmac', 'key', key, 16);
  return cmac(message, key);
}

/**
 * The random address hash function ah(k, r) = e(k, r') mod 2^24, r' = 104 zero bits || r.
 * Core 5.4 Vol 3 Part H 2.2.2.
 * @param irk 16 bytes LE. @param prand 3 bytes LE (address bytes 3..5 on the wire).
 * @returns the 3-byte hash LE (address bytes 0..2 on the wire).
 */
export function ah(irk: Uint8Array, prand: Uint8Array): Uint8Array {
  need('ah', 'irk', irk, 16);
  need('ah', 'prand', prand, 3);
  const rPadded = new Uint8Array(16);
  rPadded.set(prand, 0);
  return e(irk, rPadded).slice(0, 3);
}
