/**
 * The SMP crypto toolbox against the sample data of Core 5.4 Vol 3 Part H Appendix D (printed
 * there most significant octet first; `le()` turns it into the wire order the API takes) and the
 * four AES-CMAC examples of RFC 4493 section 4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEBUG_PRIVATE_KEY,
  DEBUG_PUBLIC_KEY,
  aesCmac,
  ah,
  checkPeerPublicKey,
  computeDhKey,
  e,
  f4,
  f5,
  f6,
  g2,
  generateKeyPair,
  h6,
  h7,
  ioCapField,
  isDebugPublicKey,
  isValidPublicKey,
  keyPairFromPrivateKey,
  maskKey,
  numericComparisonValue,
  passkeyAsR,
  saltFromTag,
} from '../../src/crypto/index.js';
import { addressForCrypto } from '../../src/smp/address-field.js';
import { irkResolvesAddress } from '../../src/privacy/rpa.js';
import { fromHex, reversed, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';

/** Spec sample text (MSB first, spaces allowed) to wire order. */
const le = (msb: string): Uint8Array => reversed(fromHex(msb));
/** Wire order back to the spec's MSB-first hex. */
const msb = (wire: Uint8Array): string => toHex(reversed(wire));

// Appendix D.1: P-256 sample data.
const PRIVATE_A = '3f49f6d4 a3c55f38 74c9b3e3 d2103f50 4aff607b eb40b799 5899b8a6 cd3c1abd';
const PRIVATE_B = '55188b3d 32f6bb9a 900afcfb eed4e72a 59cb9ac2 f19d7cfb 6b4fdd49 f47fc5fd';
const PUBLIC_A_X = '20b003d2 f297be2c 5e2c83a7 e9f9a5b9 eff49111 acf4fddb cc030148 0e359de6';
const PUBLIC_A_Y = 'dc809c49 652aeb6d 63329abf 5a52155c 766345c2 8fed3024 741c8ed0 1589d28b';
const PUBLIC_B_X = '1ea1f0f0 1faf1d96 09592284 f19e4c00 47b58afd 8615a69f 559077b2 2faaa190';
const PUBLIC_B_Y = '4c55f33e 429dad37 7356703a 9ab85160 472d1130 e28e3676 5f89aff9 15b1214a';
const DHKEY = 'ec0234a3 57c8ad05 341010a6 0a397d9b 99796b13 b4f866f1 868d34f3 73bfa698';

const publicKey = (x: string, y: string): Uint8Array => {
  const out = new Uint8Array(64);
  out.set(le(x), 0);
  out.set(le(y), 32);
  return out;
};

// Appendix D.2..D.5 inputs.
const U = '20b003d2 f297be2c 5e2c83a7 e9f9a5b9 eff49111 acf4fddb cc030148 0e359de6';
const V = '55188b3d 32f6bb9a 900afcfb eed4e72a 59cb9ac2 f19d7cfb 6b4fdd49 f47fc5fd';
const X = 'd5cb8454 d177733e ffffb2ec 712baeab';
const Y = 'a6e8e7cc 25a75f6e 216583f7 ff3dc4cf';

test('RFC 4493 AES-CMAC: all four examples (empty, 16, 40 and 64 octets)', () => {
  const k = fromHex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
  const m = fromHex(
    '6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710',
  );
  assert.equal(toHex(aesCmac(k, new Uint8Array(0))), 'bb1d6929e95937287fa37d129b756746');
  assert.equal(toHex(aesCmac(k, m.subarray(0, 16))), '070a16b46b4d4144f79bdd9dd04a287c');
  assert.equal(toHex(aesCmac(k, m.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827');
  assert.equal(toHex(aesCmac(k, m.subarray(0, 64))), '51f0bebf7e3b9d92fc49741779363cfe');
});

test('e() is AES-128 on little-endian key and block (FIPS-197 C.1 example, reversed)', () => {
  // FIPS-197 Appendix C.1: key 000102..0f, plaintext 00112233..ff, ciphertext 69c4e0d8..5a.
  const key = reversed(fromHex('000102030405060708090a0b0c0d0e0f'));
  const pt = reversed(fromHex('00112233445566778899aabbccddeeff'));
  assert.equal(msb(e(key, pt)), '69c4e0d86a7b0430d8cdb78070b4c55a');
});

test('D.1: the P-256 sample private keys give the sample public keys and the same DHKey from both sides', () => {
  const a = keyPairFromPrivateKey(le(PRIVATE_A));
  const b = keyPairFromPrivateKey(le(PRIVATE_B));
  assert.equal(toHex(a.publicKey), toHex(publicKey(PUBLIC_A_X, PUBLIC_A_Y)));
  assert.equal(toHex(b.publicKey), toHex(publicKey(PUBLIC_B_X, PUBLIC_B_Y)));
  assert.equal(msb(computeDhKey(a.privateKey, b.publicKey)), DHKEY.replace(/ /g, ''));
  assert.equal(msb(computeDhKey(b.privateKey, a.publicKey)), DHKEY.replace(/ /g, ''));
});

test('D.2: f4 gives the sample confirm value', () => {
  assert.equal(msb(f4(le(U), le(V), le(X), 0)), 'f2c916f107a9bd1cf1eda1bea974872d');
});

test('D.3: f5 gives the sample MacKey and LTK', () => {
  const { macKey, ltk } = f5(le(DHKEY), le(X), le(Y), le('00561237 37bfce'), le('00a71370 2dcfc1'));
  assert.equal(msb(macKey), '2965f176a1084a02fd3f6a20ce636e20');
  assert.equal(msb(ltk), '6986791169d7cd23980522b594750a38');
});

test('D.4: f6 gives the sample check value', () => {
  const v = f6(le('2965f176 a1084a02 fd3f6a20 ce636e20'), le(X), le(Y), le('12a3343b b453bb54 08da42d2 0c2d0fc8'), le('010102'), le('00561237 37bfce'), le('00a71370 2dcfc1'));
  assert.equal(msb(v), 'e3c473989cd0e8c5d26c0b09da958f61');
});

test('D.5: g2 gives the sample numeric comparison value 0x2f9ed5ba', () => {
  assert.equal(g2(le(U), le(V), le(X), le(Y)), 0x2f9ed5ba);
  assert.equal(numericComparisonValue(le(U), le(V), le(X), le(Y)), 0x2f9ed5ba % 1_000_000);
});

test("h6 gives the sample with keyID 'lebr'", () => {
  const w = le('ec0234a3 57c8ad05 341010a6 0a397d9b');
  assert.equal(msb(h6(w, 'lebr')), '2d9ae102e76dc91ce8d3a9e280b16399');
  // keyID given as bytes (LE) is the same thing.
  assert.equal(msb(h6(w, le('6c656272'))), '2d9ae102e76dc91ce8d3a9e280b16399');
});

test('ah gives the sample hash 0x0dfbaa for prand 0x708194', () => {
  assert.equal(msb(ah(le('ec0234a3 57c8ad05 341010a6 0a397d9b'), le('708194'))), '0dfbaa');
});

test("h7 gives the sample with SALT 'tmp1'", () => {
  const salt = saltFromTag('tmp1');
  assert.equal(msb(salt), '000000000000000000000000746d7031');
  assert.equal(msb(h7(salt, le('ec0234a3 57c8ad05 341010a6 0a397d9b'))), 'fb173597c6a3c0ecd2998c2a75a57011');
});

test('LTK to link key conversion samples (CT2 = 0 via h6, CT2 = 1 via h7)', () => {
  const ltk = le('368df9bc e3264b58 bd066c33 334fbf64');
  // Vol 3 Part H 2.4.2.4: LE to BR/EDR uses 'tmp1', then keyID 'lebr'.
  assert.equal(msb(h6(h6(ltk, 'tmp1'), 'lebr')), 'bc1ca4ef633fc1bd0d8230afee388fb0');
  assert.equal(msb(h6(h7(saltFromTag('tmp1'), ltk), 'lebr')), '287ad379dca402530a39f1f43047b835');
});

test('link key to LTK conversion samples (CT2 = 0 via h6, CT2 = 1 via h7)', () => {
  const linkKey = le('05040302 01000908 07060504 03020100');
  // Vol 3 Part H 2.4.2.5: BR/EDR to LE uses 'tmp2', then keyID 'brle'.
  assert.equal(msb(h6(h6(linkKey, 'tmp2'), 'brle')), 'a813fb72f1a3dfa18a2c9a43f10d0a30');
  assert.equal(msb(h6(h7(saltFromTag('tmp2'), linkKey), 'brle')), 'e85e09eb5eccb3e269418a133211bc79');
});

test('the debug key pair of Vol 3 Part H 2.3.5.6.1 is recognised (it is the D.1 sample A pair)', () => {
  assert.equal(toHex(keyPairFromPrivateKey(DEBUG_PRIVATE_KEY).publicKey), toHex(DEBUG_PUBLIC_KEY));
  assert.equal(toHex(DEBUG_PUBLIC_KEY), toHex(publicKey(PUBLIC_A_X, PUBLIC_A_Y)));
  assert.equal(isDebugPublicKey(DEBUG_PUBLIC_KEY), true);
  assert.equal(isDebugPublicKey(publicKey(PUBLIC_B_X, PUBLIC_B_Y)), false);
});

test('peer public key checks: off-curve, zero, out-of-field, reflected and debug keys are refused', () => {
  const ours = keyPairFromPrivateKey(le(PRIVATE_B));
  const good = publicKey(PUBLIC_A_X, PUBLIC_A_Y);
  const offCurve = publicKey(PUBLIC_B_X, PUBLIC_B_Y.replace(/4a$/, '4b'));
  const zero = new Uint8Array(64);
  // x = p (the field prime) is not a field element.
  const xIsP = publicKey('ffffffff 00000001 00000000 00000000 00000000 ffffffff ffffffff ffffffff', PUBLIC_A_Y);
  assert.equal(isValidPublicKey(offCurve), false);
  assert.equal(isValidPublicKey(zero), false);
  assert.equal(isValidPublicKey(xIsP), false);
  assert.equal(isValidPublicKey(new Uint8Array(63)), false);
  assert.equal(checkPeerPublicKey(offCurve, ours.publicKey), 'invalid-point');
  assert.equal(checkPeerPublicKey(zero, ours.publicKey), 'invalid-point');
  assert.equal(checkPeerPublicKey(ours.publicKey, ours.publicKey), 'same-as-local');
  assert.equal(checkPeerPublicKey(good, ours.publicKey), 'debug-key');
  assert.equal(checkPeerPublicKey(good, ours.publicKey, true), 'valid');
  const fresh = generateKeyPair(seededRandom('peer'));
  assert.equal(checkPeerPublicKey(fresh.publicKey, ours.publicKey), 'valid');
  assert.throws(() => computeDhKey(ours.privateKey, offCurve), RangeError);
});

test('generated key pairs are valid, differ per draw, and agree on a DHKey', () => {
  const rng = seededRandom('keys');
  const a = generateKeyPair(rng);
  const b = generateKeyPair(rng);
  assert.equal(a.privateKey.length, 32);
  assert.equal(a.publicKey.length, 64);
  assert.equal(isValidPublicKey(a.publicKey), true);
  assert.notEqual(toHex(a.publicKey), toHex(b.publicKey));
  assert.equal(toHex(computeDhKey(a.privateKey, b.publicKey)), toHex(computeDhKey(b.privateKey, a.publicKey)));
});

test('field helpers: A1/A2 put the address type above the wire address; IOcap is io, oob, authReq; passkey r; key mask', () => {
  assert.equal(toHex(addressForCrypto({ type: 'public', address: '56:12:37:37:BF:CE' })), toHex(le('00561237 37bfce')));
  assert.equal(toHex(addressForCrypto({ type: 'random', address: 'C1:CF:2D:70:13:A7' })), toHex(le('01c1cf2d 7013a7')));
  assert.equal(toHex(ioCapField({ ioCapability: 0x02, oobDataFlag: 0x01, authReq: 0x01 })), toHex(le('010102')));
  assert.equal(msb(passkeyAsR(123456)), '0000000000000000000000000001e240');
  assert.throws(() => passkeyAsR(1_000_000), RangeError);
  const k = fromHex('0102030405060708090a0b0c0d0e0f10');
  assert.equal(toHex(maskKey(k, 7)), '01020304050607000000000000000000');
  assert.equal(toHex(maskKey(k, 16)), toHex(k));
});

test('irkResolvesAddress accepts an RPA built with ah and refuses others', () => {
  const irk = le('ec0234a3 57c8ad05 341010a6 0a397d9b');
  // prand 0x708194 (top bits 01), hash 0x0dfbaa: address 70:81:94:0D:FB:AA.
  assert.equal(irkResolvesAddress(irk, { type: 'random', address: '70:81:94:0D:FB:AA' }), true);
  assert.equal(irkResolvesAddress(irk, { type: 'random', address: '70:81:94:0D:FB:AB' }), false);
  assert.equal(irkResolvesAddress(irk, { type: 'public', address: '70:81:94:0D:FB:AA' }), false);
});

test('no source file in src/ calls Math.random (randomness is an injected RandomSource)', () => {
  // dist/test/crypto/crypto.test.js -> repository root.
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const src = join(root, 'src');
  const offenders: string[] = [];
  let scanned = 0;
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) {
        scanned++;
        // Comments may name it (to say it is not used); code may not.
        const code = readFileSync(p, 'utf8')
          .replace(/\/\*[\s\S]*?\*\//g, '')
          .replace(/(^|[^:])\/\/.*$/gm, '$1');
        if (/Math\s*\.\s*random/.test(code) || /Math\s*\[\s*['"`]random/.test(code)) offenders.push(p.slice(root.length));
      }
    }
  };
  walk(src);
  assert.ok(scanned > 5, `expected to scan the source tree under ${src}, scanned ${scanned} file(s)`);
  assert.deepEqual(offenders, []);
});

test('the functions leave their arguments untouched, also when they are Node Buffers (a Buffer slice is a view)', () => {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const block = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const before = [toHex(key), toHex(block)];
  const first = toHex(e(key, block));
  assert.deepEqual([toHex(key), toHex(block)], before);
  assert.equal(toHex(e(key, block)), first);
  const pair = keyPairFromPrivateKey(Buffer.from(DEBUG_PRIVATE_KEY));
  assert.equal(toHex(pair.publicKey), toHex(DEBUG_PUBLIC_KEY));
});
