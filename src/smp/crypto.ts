/**
 * The LE Secure Connections security toolbox: e, AES-CMAC, f4, f5, f6, g2, h6, h7, ah, and the
 * P-256 operations pairing needs. Core 5.4 Vol 3 Part H 2.2.
 *
 * Pure functions. AES comes from @noble/ciphers, the curve from @noble/curves; nothing here
 * implements a cipher or curve arithmetic by hand.
 *
 * Byte order: every argument and result is little-endian, exactly as the value travels in an SMP
 * PDU (Pairing Confirm, Pairing Random, Pairing Public Key, DHKey Check, Identity Information).
 * The spec defines the functions on most-significant-octet-first strings (and prints its sample
 * data that way, Appendix D); the functions reverse internally. The one exception is
 * {@link aesCmac}, which is RFC 4493's function on its own (big-endian) terms.
 */
import { cmac, ecb } from '@noble/ciphers/aes.js';
import { p256 } from '@noble/curves/nist.js';
import { addressToWire, randomAddressKind, type Address } from '../util/address.js';
import { bytesEqual, bytesEqualConstantTime, fromHex, reversed } from '../util/bytes.js';
import type { RandomSource } from '../util/random.js';

function need(fn: string, name: string, v: Uint8Array, n: number): void {
  if (!(v instanceof Uint8Array) || v.length !== n) {
    throw new RangeError(`${fn}: ${name} must be ${n} bytes, got ${v instanceof Uint8Array ? v.length : typeof v}`);
  }
}

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

/** Concatenates the little-endian arguments as the spec writes them (first argument most significant). */
function msbFirst(...partsLe: Uint8Array[]): Uint8Array {
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

/** Whether `irk` resolves `address` (a resolvable private address whose hash is ah(irk, prand)). Vol 6 Part B 1.3.2.3. */
export function irkResolvesAddress(irk: Uint8Array, address: Address): boolean {
  if (address.type !== 'random' || randomAddressKind(address.address) !== 'resolvable') return false;
  const wire = addressToWire(address.address);
  return bytesEqual(ah(irk, wire.subarray(3, 6)), wire.subarray(0, 3));
}

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
const F5_SALT = fromHex('6c888391aaf5a53860370bdb5a6083be');
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
 *   (0 public, 1 random) as the most significant octet (see {@link addressForCrypto}).
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

// ---------------------------------------------------------------------------------------------
// P-256

/** A P-256 key pair in SMP wire order. */
export interface P256KeyPair {
  /** The private key, 32 bytes LE. */
  readonly privateKey: Uint8Array;
  /** The public key as in Pairing Public Key: X (32 bytes LE) then Y (32 bytes LE). */
  readonly publicKey: Uint8Array;
}

/** Why a peer's public key is refused, or 'valid'. */
export type PublicKeyVerdict = 'valid' | 'invalid-point' | 'same-as-local' | 'debug-key';

/** Our SEC1 uncompressed encoding (0x04 || X || Y, big-endian) of an SMP public key. */
function toSec1(publicKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(reversed(publicKey.subarray(0, 32)), 1);
  out.set(reversed(publicKey.subarray(32, 64)), 33);
  return out;
}

function fromSec1(sec1: Uint8Array): Uint8Array {
  const out = new Uint8Array(64);
  out.set(reversed(sec1.subarray(1, 33)), 0);
  out.set(reversed(sec1.subarray(33, 65)), 32);
  return out;
}

/** The key pair for a given private key (32 bytes LE). Throws RangeError for a key outside 1..n-1. */
export function keyPairFromPrivateKey(privateKey: Uint8Array): P256KeyPair {
  need('keyPairFromPrivateKey', 'private key', privateKey, 32);
  const be = reversed(privateKey);
  if (!p256.utils.isValidSecretKey(be)) throw new RangeError('not a valid P-256 private key');
  return { privateKey: privateKey.slice(), publicKey: fromSec1(p256.getPublicKey(be, false)) };
}

/**
 * A fresh key pair from `rng` (the OS CSPRNG in production). 48 random bytes are reduced into
 * [1, n-1] (FIPS 186-5 A.2.1 style, negligible bias). Core 5.4 Vol 3 Part H 2.3.5.6.1.
 */
export function generateKeyPair(rng: RandomSource): P256KeyPair {
  const seed = rng.bytes(p256.lengths.seed ?? 48);
  const be = p256.utils.randomSecretKey(seed);
  return keyPairFromPrivateKey(reversed(be));
}

/**
 * The debug private key, 32 bytes LE. Core 5.4 Vol 3 Part H 2.3.5.6.1: a device in debug mode
 * uses this published key pair so that air traffic can be decrypted. Here only to recognise it.
 */
export const DEBUG_PRIVATE_KEY: Uint8Array = reversed(
  fromHex('3f49f6d4a3c55f3874c9b3e3d2103f504aff607beb40b7995899b8a6cd3c1abd'),
);

/** The debug public key (X || Y, each 32 bytes LE). Core 5.4 Vol 3 Part H 2.3.5.6.1. */
export const DEBUG_PUBLIC_KEY: Uint8Array = (() => {
  const x = fromHex('20b003d2f297be2c5e2c83a7e9f9a5b9eff49111acf4fddbcc0301480e359de6');
  const y = fromHex('dc809c49652aeb6d63329abf5a52155c766345c28fed3024741c8ed01589d28b');
  const out = new Uint8Array(64);
  out.set(reversed(x), 0);
  out.set(reversed(y), 32);
  return out;
})();

/** Whether a 64-byte public key (X || Y LE) is a point on P-256 (and not the point at infinity). */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 64) return false;
  return p256.utils.isValidPublicKey(toSec1(publicKey), false);
}

/** Whether a public key is the spec's debug public key. Core 5.4 Vol 3 Part H 2.3.5.6.1. */
export function isDebugPublicKey(publicKey: Uint8Array): boolean {
  return publicKey.length === 64 && bytesEqual(publicKey, DEBUG_PUBLIC_KEY);
}

/**
 * Checks the public key a peer sent in Pairing Public Key:
 * - 'invalid-point': not on P-256 (CVE-2018-5383, the invalid curve attack; Core 5.4 Vol 3
 *   Part H 2.3.5.6.1 requires the check);
 * - 'same-as-local': its X coordinate equals ours, a reflected key (CVE-2020-26558): the DHKey
 *   would be computable without the private key when the point is ours or its negation;
 * - 'debug-key': the published debug key, refused unless `allowDebugKeys`.
 */
export function checkPeerPublicKey(peer: Uint8Array, local: Uint8Array, allowDebugKeys = false): PublicKeyVerdict {
  if (!isValidPublicKey(peer)) return 'invalid-point';
  if (local.length === 64 && bytesEqualConstantTime(peer.subarray(0, 32), local.subarray(0, 32))) return 'same-as-local';
  if (!allowDebugKeys && isDebugPublicKey(peer)) return 'debug-key';
  return 'valid';
}

/**
 * The Diffie-Hellman key: the X coordinate of privateKey * peerPublicKey, 32 bytes LE, as f5's W.
 * Core 5.4 Vol 3 Part H 2.3.5.6.1. Throws RangeError when the peer key is not a valid point: call
 * {@link checkPeerPublicKey} first.
 */
export function computeDhKey(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  need('computeDhKey', 'private key', privateKey, 32);
  need('computeDhKey', 'peer public key', peerPublicKey, 64);
  if (!isValidPublicKey(peerPublicKey)) throw new RangeError('the peer public key is not a point on P-256');
  const shared = p256.getSharedSecret(reversed(privateKey), toSec1(peerPublicKey), false);
  return reversed(shared.subarray(1, 33));
}
