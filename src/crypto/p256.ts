/**
 * The P-256 operations LE Secure Connections pairing needs, in SMP wire order (X || Y, each
 * 32 bytes little-endian): key pairs, the debug key, the checks on a peer's key, the DHKey.
 * Core 5.4 Vol 3 Part H 2.3.5.6.1. The curve comes from @noble/curves.
 */
import { p256 } from '@noble/curves/nist.js';
import { hexToBytes } from '@noble/ciphers/utils.js';
import { bytesEqualConstantTime, need, reversed } from './bytes.js';

/** Where fresh key material comes from (the OS CSPRNG in production): `n` random bytes. */
export interface KeySource {
  bytes(n: number): Uint8Array;
}

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
export function generateKeyPair(rng: KeySource): P256KeyPair {
  const seed = rng.bytes(p256.lengths.seed ?? 48);
  const be = p256.utils.randomSecretKey(seed);
  return keyPairFromPrivateKey(reversed(be));
}

/**
 * The debug private key, 32 bytes LE. Core 5.4 Vol 3 Part H 2.3.5.6.1: a device in debug mode
 * uses this published key pair so that air traffic can be decrypted. Here only to recognise it.
 */
export const DEBUG_PRIVATE_KEY: Uint8Array = reversed(
  hexToBytes('3f49f6d4a3c55f3874c9b3e3d2103f504aff607beb40b7995899b8a6cd3c1abd'),
);

/** The debug public key (X || Y, each 32 bytes LE). Core 5.4 Vol 3 Part H 2.3.5.6.1. */
export const DEBUG_PUBLIC_KEY: Uint8Array = (() => {
  const x = hexToBytes('20b003d2f297be2c5e2c83a7e9f9a5b9eff49111acf4fddbcc0301480e359de6');
  const y = hexToBytes('dc809c49652aeb6d63329abf5a52155c766345c28fed3024741c8ed01589d28b');
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
  return publicKey.length === 64 && bytesEqualConstantTime(publicKey, DEBUG_PUBLIC_KEY);
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
