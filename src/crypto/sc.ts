/**
 * The LE Secure Connections functions f4, f5, f6, g2, h6, h7 and the inputs they are fed with
 * (IOcap, the Passkey Entry r, key-size masking). Core 5.4 Vol 3 Part H 2.2.6-2.2.11, 2.3.4.
 *
 * Byte order: every argument and result is little-endian, exactly as the value travels in an SMP
 * PDU; the spec defines the functions on most-significant-octet-first strings (and prints its
 * sample data that way, Appendix D), so each function reverses internally.
 */
import { hexToBytes } from '@noble/ciphers/utils.js';
import { aesCmac } from './aes.js';
import { msbFirst, need, reversed } from './bytes.js';

/**
 * LE Secure Connections confirm value generation: f4(U, V, X, Z) = AES-CMAC_X(U || V || Z).
 * Core 5.4 Vol 3 Part H 2.2.6.
 * @param u 32 bytes LE (a public key X coordinate). @param v 32 bytes LE. @param x 16-byte key LE.
 * @param z one byte (0 for Just Works / Numeric Comparison, 0x80 | bit for Passkey Entry).
 */
export function f4(u: Uint8Array, v: Uint8Array, x: Uint8Array, z: number): Uint8Array {
  need('f4', 'U', u, 32);
  need('f4', 'V', v, 32);
  need('f4', 'X', x, 16);
  return reversed(aesCmac(reversed(x), msbFirst(u, v, Uint8Array.of(z & 0xff))));
}

/** SALT of f5, MSB first. Core 5.4 Vol 3 Part H 2.2.7. */
const F5_SALT = hexToBytes('6c888391aaf5a53860370bdb5a6083be');
/** keyID 'btle' of f5, MSB first. */
const F5_KEY_ID = Uint8Array.from([0x62, 0x74, 0x6c, 0x65]);

/** MacKey and LTK from f5, both little-endian. */
export interface F5Result {
  readonly macKey: Uint8Array;
  readonly ltk: Uint8Array;
}

/**
 * LE Secure Connections key generation: T = AES-CMAC_SALT(W);
 * MacKey = AES-CMAC_T(0 || keyID || N1 || N2 || A1 || A2 || 256), LTK = the same with counter 1.
 * Core 5.4 Vol 3 Part H 2.2.7.
 * @param w DHKey, 32 bytes LE. @param n1 @param n2 16 bytes LE.
 * @param a1 @param a2 7 bytes LE: the 6 address bytes as on the wire, then the address type
 *   (0 public, 1 random) as the most significant octet (see smp's addressForCrypto).
 */
export function f5(w: Uint8Array, n1: Uint8Array, n2: Uint8Array, a1: Uint8Array, a2: Uint8Array): F5Result {
  need('f5', 'W', w, 32);
  need('f5', 'N1', n1, 16);
  need('f5', 'N2', n2, 16);
  need('f5', 'A1', a1, 7);
  need('f5', 'A2', a2, 7);
  const t = aesCmac(F5_SALT, reversed(w));
  // counter(1) keyID(4) N1(16) N2(16) A1(7) A2(7) length(2) = 53 octets, MSB first.
  const m = new Uint8Array(53);
  m.set(F5_KEY_ID, 1);
  m.set(msbFirst(n1, n2, a1, a2), 5);
  m[51] = 0x01;
  m[52] = 0x00;
  m[0] = 0;
  const macKey = reversed(aesCmac(t, m));
  m[0] = 1;
  const ltk = reversed(aesCmac(t, m));
  return { macKey, ltk };
}

/**
 * LE Secure Connections check value generation:
 * f6(W, N1, N2, R, IOcap, A1, A2) = AES-CMAC_W(N1 || N2 || R || IOcap || A1 || A2).
 * Core 5.4 Vol 3 Part H 2.2.8.
 * @param w MacKey 16 bytes LE. @param r 16 bytes LE. @param ioCap 3 bytes LE
 *   (IO capability, OOB flag, AuthReq: see {@link ioCapField}). @param a1 @param a2 7 bytes LE.
 */
export function f6(w: Uint8Array, n1: Uint8Array, n2: Uint8Array, r: Uint8Array, ioCap: Uint8Array, a1: Uint8Array, a2: Uint8Array): Uint8Array {
  need('f6', 'W', w, 16);
  need('f6', 'N1', n1, 16);
  need('f6', 'N2', n2, 16);
  need('f6', 'R', r, 16);
  need('f6', 'IOcap', ioCap, 3);
  need('f6', 'A1', a1, 7);
  need('f6', 'A2', a2, 7);
  return reversed(aesCmac(reversed(w), msbFirst(n1, n2, r, ioCap, a1, a2)));
}

/**
 * LE Secure Connections numeric comparison value generation:
 * g2(U, V, X, Y) = AES-CMAC_X(U || V || Y) mod 2^32. The six digits shown are g2 mod 10^6.
 * Core 5.4 Vol 3 Part H 2.2.9.
 * @returns an unsigned 32-bit integer.
 */
export function g2(u: Uint8Array, v: Uint8Array, x: Uint8Array, y: Uint8Array): number {
  need('g2', 'U', u, 32);
  need('g2', 'V', v, 32);
  need('g2', 'X', x, 16);
  need('g2', 'Y', y, 16);
  const mac = aesCmac(reversed(x), msbFirst(u, v, y));
  return (((mac[12] as number) << 24) | ((mac[13] as number) << 16) | ((mac[14] as number) << 8) | (mac[15] as number)) >>> 0;
}

/** The six-digit value a user compares in Numeric Comparison: g2 mod 10^6. Vol 3 Part H 2.3.5.6.2. */
export function numericComparisonValue(pkaX: Uint8Array, pkbX: Uint8Array, na: Uint8Array, nb: Uint8Array): number {
  return g2(pkaX, pkbX, na, nb) % 1_000_000;
}

/** A 4-character key ID or salt tag ('lebr', 'brle', 'tmp1', 'tmp2') as the spec's MSB-first octets. */
function asciiTag(tag: string): Uint8Array {
  if (!/^[\x20-\x7e]{4}$/.test(tag)) throw new RangeError(`a key ID is 4 ASCII characters, got ${JSON.stringify(tag)}`);
  return Uint8Array.from(tag, (c) => c.charCodeAt(0));
}

/**
 * Link key conversion function h6(W, keyID) = AES-CMAC_W(keyID). Core 5.4 Vol 3 Part H 2.2.10.
 * @param w 16 bytes LE. @param keyId 4 ASCII characters as the spec names them ('lebr', 'brle',
 *   'tmp1', 'tmp2'), or 4 bytes LE.
 */
export function h6(w: Uint8Array, keyId: string | Uint8Array): Uint8Array {
  need('h6', 'W', w, 16);
  let id: Uint8Array;
  if (typeof keyId === 'string') id = asciiTag(keyId);
  else {
    need('h6', 'keyID', keyId, 4);
    id = reversed(keyId);
  }
  return reversed(aesCmac(reversed(w), id));
}

/**
 * Link key conversion function h7(SALT, W) = AES-CMAC_SALT(W). Core 5.4 Vol 3 Part H 2.2.11.
 * @param salt 16 bytes LE (see {@link saltFromTag}). @param w 16 bytes LE.
 */
export function h7(salt: Uint8Array, w: Uint8Array): Uint8Array {
  need('h7', 'SALT', salt, 16);
  need('h7', 'W', w, 16);
  return reversed(aesCmac(reversed(salt), reversed(w)));
}

/** The 128-bit SALT whose least significant 32 bits are a 4-character tag ('tmp1', 'tmp2'), LE. */
export function saltFromTag(tag: string): Uint8Array {
  const out = new Uint8Array(16);
  out.set(reversed(asciiTag(tag)), 0);
  return out;
}

/**
 * IOcap of f6: AuthReq (most significant octet) || OOB data flag || IO capability, little-endian
 * (IO capability first). Core 5.4 Vol 3 Part H 2.2.8.
 */
export function ioCapField(f: { ioCapability: number; oobDataFlag: number; authReq: number }): Uint8Array {
  return Uint8Array.of(f.ioCapability & 0xff, f.oobDataFlag & 0xff, f.authReq & 0xff);
}

/** The 128-bit r of f6 in Passkey Entry: the passkey as an integer, little-endian. Vol 3 Part H 2.3.5.6.3. */
export function passkeyAsR(passkey: number): Uint8Array {
  if (!Number.isInteger(passkey) || passkey < 0 || passkey > 999_999) throw new RangeError(`a passkey is 0..999999, got ${passkey}`);
  const r = new Uint8Array(16);
  r[0] = passkey & 0xff;
  r[1] = (passkey >>> 8) & 0xff;
  r[2] = (passkey >>> 16) & 0xff;
  return r;
}

/**
 * Keeps the `size` least significant octets of a key and zeroes the rest: how a negotiated
 * encryption key size shorter than 16 shapes the LTK. Core 5.4 Vol 3 Part H 2.3.4.
 */
export function maskKey(key: Uint8Array, size: number): Uint8Array {
  need('maskKey', 'key', key, 16);
  if (!Number.isInteger(size) || size < 7 || size > 16) throw new RangeError(`an encryption key size is 7..16, got ${size}`);
  const out = key.slice();
  out.fill(0, size);
  return out;
}
