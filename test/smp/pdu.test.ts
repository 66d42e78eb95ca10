import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AuthReq,
  IoCapability,
  KeyDist,
  SMP_PDU_TABLE,
  SmpCode,
  SmpReason,
  decodeSmp,
  encodeSmp,
  formatAuthReq,
  formatSmp,
  formatSmpBytes,
  smpReasonName,
  type SmpPdu,
} from '../../src/smp/pdu.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const b16 = (start: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (start + i) & 0xff);

/** One sample of every PDU type with its exact encoding. */
const SAMPLES: readonly (readonly [SmpPdu, string])[] = [
  [
    { type: 'pairingRequest', ioCapability: IoCapability.KeyboardDisplay, oobDataFlag: 0, authReq: 0x0d, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 },
    '0104000d100303',
  ],
  [
    { type: 'pairingResponse', ioCapability: IoCapability.NoInputNoOutput, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 0x02, responderKeyDist: 0x02 },
    '020300091002' + '02',
  ],
  [{ type: 'pairingConfirm', confirm: b16(0) }, '03' + toHex(b16(0))],
  [{ type: 'pairingRandom', random: b16(0x10) }, '04' + toHex(b16(0x10))],
  [{ type: 'pairingFailed', reason: SmpReason.DhKeyCheckFailed }, '050b'],
  [{ type: 'encryptionInformation', ltk: b16(0x20) }, '06' + toHex(b16(0x20))],
  [{ type: 'centralIdentification', ediv: 0x1234, rand: 0x0102030405060708n }, '07' + '3412' + '0807060504030201'],
  [{ type: 'identityInformation', irk: b16(0x30) }, '08' + toHex(b16(0x30))],
  [{ type: 'identityAddressInformation', address: { type: 'random', address: 'C1:02:03:04:05:06' } }, '09' + '01' + '0605040302c1'],
  [{ type: 'signingInformation', csrk: b16(0x40) }, '0a' + toHex(b16(0x40))],
  [{ type: 'securityRequest', authReq: 0x0d }, '0b0d'],
  [{ type: 'pairingPublicKey', publicKey: Uint8Array.from({ length: 64 }, (_, i) => i) }, '0c' + toHex(Uint8Array.from({ length: 64 }, (_, i) => i))],
  [{ type: 'pairingDhKeyCheck', check: b16(0x50) }, '0d' + toHex(b16(0x50))],
  [{ type: 'pairingKeypressNotification', notificationType: 4 }, '0e04'],
];

test('the table covers exactly the codes 0x01..0x0E with the spec lengths', () => {
  const lengths: Record<number, number> = { 1: 7, 2: 7, 3: 17, 4: 17, 5: 2, 6: 17, 7: 11, 8: 17, 9: 8, 10: 17, 11: 2, 12: 65, 13: 17, 14: 2 };
  assert.deepEqual([...SMP_PDU_TABLE.keys()].sort((a, b) => a - b), Object.values(SmpCode).sort((a, b) => a - b));
  for (const [code, info] of SMP_PDU_TABLE) {
    assert.equal(info.code, code);
    assert.equal(info.length, lengths[code], `length of ${info.name}`);
  }
  assert.equal(SAMPLES.length, SMP_PDU_TABLE.size, 'one sample per code');
});

test('every PDU encodes to its exact bytes and decodes back to the same fields', () => {
  for (const [pdu, hex] of SAMPLES) {
    const bytes = encodeSmp(pdu);
    assert.equal(toHex(bytes), hex, `encoding of ${pdu.type}`);
    const r = decodeSmp(fromHex(hex));
    assert.ok(r.ok, `decoding of ${pdu.type}`);
    assert.deepEqual(r.pdu, pdu);
  }
});

test('every code refuses a PDU one byte short or one byte long with 0x0A Invalid Parameters', () => {
  for (const [pdu] of SAMPLES) {
    const good = encodeSmp(pdu);
    for (const bad of [good.subarray(0, good.length - 1), Uint8Array.from([...good, 0])]) {
      const r = decodeSmp(bad);
      assert.equal(r.ok, false, `${pdu.type} with ${bad.length} bytes`);
      if (!r.ok) {
        assert.equal(r.reason, SmpReason.InvalidParameters);
        assert.equal(r.code, good[0]);
      }
    }
  }
  // A bare code octet for the longest PDU.
  const r = decodeSmp(Uint8Array.of(SmpCode.PairingPublicKey));
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, SmpReason.InvalidParameters);
});

test('unknown codes get 0x07 Command Not Supported; an empty PDU gets 0x0A', () => {
  for (const code of [0x00, 0x0f, 0x10, 0x7f, 0xff]) {
    const r = decodeSmp(Uint8Array.of(code, 1, 2, 3));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, SmpReason.CommandNotSupported);
      assert.equal(r.code, code);
    }
  }
  const r = decodeSmp(new Uint8Array(0));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.reason, SmpReason.InvalidParameters);
    assert.equal(r.code, undefined);
  }
});

test('reserved field values are refused with 0x0A: IO capability, OOB flag, identity address type, keypress type', () => {
  for (const hex of ['01050000100303', '01030200100303', '02070000100000', '0902' + '060504030201', '0e05']) {
    const r = decodeSmp(fromHex(hex));
    assert.equal(r.ok, false, hex);
    if (!r.ok) assert.equal(r.reason, SmpReason.InvalidParameters, hex);
  }
});

test('encodeSmp refuses a field of the wrong size (a caller bug), decodeSmp never throws on random input', () => {
  assert.throws(() => encodeSmp({ type: 'pairingConfirm', confirm: new Uint8Array(15) }), RangeError);
  let seed = 1;
  for (let i = 0; i < 2000; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const len = seed % 70;
    const buf = Uint8Array.from({ length: len }, (_, j) => (seed >>> (j % 24)) & 0xff);
    assert.doesNotThrow(() => decodeSmp(buf));
  }
});

test('constants carry the spec values', () => {
  assert.equal(SmpReason.RepeatedAttempts, 0x09);
  assert.equal(SmpReason.DhKeyCheckFailed, 0x0b);
  assert.equal(SmpReason.NumericComparisonFailed, 0x0c);
  assert.equal(SmpReason.KeyRejected, 0x0f);
  assert.equal(AuthReq.Bonding | AuthReq.Mitm | AuthReq.SecureConnections | AuthReq.Ct2, 0x2d);
  assert.equal(KeyDist.EncKey | KeyDist.IdKey | KeyDist.SignKey | KeyDist.LinkKey, 0x0f);
  assert.equal(smpReasonName(0x0b), 'DHKey Check Failed');
  assert.equal(smpReasonName(0x42), 'Reserved (0x42)');
});

test('the pretty-printer names fields and redacts secret keys unless asked', () => {
  const req = decodeSmp(fromHex('0104002d100f0f'));
  assert.ok(req.ok);
  assert.equal(
    formatSmp(req.pdu),
    'Pairing Request io=KeyboardDisplay oob=0 authReq=0x2d(bond,mitm,sc,ct2) maxKeySize=16 initDist=0x0f(enc,id,sign,link) respDist=0x0f(enc,id,sign,link)',
  );
  const ltk: SmpPdu = { type: 'encryptionInformation', ltk: b16(0) };
  assert.equal(formatSmp(ltk), 'Encryption Information ltk=<16 bytes redacted>');
  assert.equal(formatSmp(ltk, { showKeys: true }), `Encryption Information ltk=${toHex(b16(0))}`);
  assert.equal(formatSmp({ type: 'identityInformation', irk: b16(1) }), 'Identity Information irk=<16 bytes redacted>');
  assert.equal(formatSmp({ type: 'pairingFailed', reason: 0x03 }), 'Pairing Failed reason=0x03 (Authentication Requirements)');
  assert.equal(formatAuthReq(0x00), '0x00');
  assert.match(formatSmpBytes(fromHex('0300')), /^malformed SMP PDU \(Pairing Confirm is 17 bytes, got 2\)/);
});
