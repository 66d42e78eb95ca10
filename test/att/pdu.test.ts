import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ATT_PDUS,
  AttErrorCode,
  AttOpcode,
  attErrorName,
  attPduSpec,
  decodeAttPdu,
  encodeAttPdu,
  formatAttPdu,
  type AttPdu,
} from '../../src/att/pdu.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const b = fromHex;

/** One byte vector per PDU, hand-written from Core 5.4 Vol 3 Part F 3.4 (fields little-endian). */
const VECTORS: { hex: string; pdu: AttPdu }[] = [
  { hex: '01 0a 1200 05', pdu: { type: 'errorResponse', requestOpcode: 0x0a, handle: 0x0012, errorCode: 0x05 } },
  { hex: '02 0502', pdu: { type: 'exchangeMtuRequest', clientRxMtu: 517 } },
  { hex: '03 b900', pdu: { type: 'exchangeMtuResponse', serverRxMtu: 185 } },
  { hex: '04 0100 ffff', pdu: { type: 'findInformationRequest', startHandle: 1, endHandle: 0xffff } },
  {
    hex: '05 01 0100 0028 0200 0328',
    pdu: { type: 'findInformationResponse', format: 1, entries: [{ handle: 1, uuid: b('0028') }, { handle: 2, uuid: b('0328') }] },
  },
  {
    hex: '05 02 1000 9ecadc240ee5a9e093f3a3b50100406e',
    pdu: { type: 'findInformationResponse', format: 2, entries: [{ handle: 0x10, uuid: b('9ecadc240ee5a9e093f3a3b50100406e') }] },
  },
  { hex: '06 0100 ffff 0028 0d18', pdu: { type: 'findByTypeValueRequest', startHandle: 1, endHandle: 0xffff, attributeType: 0x2800, value: b('0d18') } },
  { hex: '07 1000 1800 2000 2400', pdu: { type: 'findByTypeValueResponse', handles: [{ foundHandle: 0x10, groupEndHandle: 0x18 }, { foundHandle: 0x20, groupEndHandle: 0x24 }] } },
  { hex: '08 0100 ffff 0328', pdu: { type: 'readByTypeRequest', startHandle: 1, endHandle: 0xffff, attributeType: b('0328') } },
  {
    hex: '08 0100 ffff 9ecadc240ee5a9e093f3a3b50100406e',
    pdu: { type: 'readByTypeRequest', startHandle: 1, endHandle: 0xffff, attributeType: b('9ecadc240ee5a9e093f3a3b50100406e') },
  },
  {
    hex: '09 07 0200 020300002a 0400 020500012a',
    pdu: { type: 'readByTypeResponse', data: [{ handle: 2, value: b('020300002a') }, { handle: 4, value: b('020500012a') }] },
  },
  { hex: '0a 0300', pdu: { type: 'readRequest', handle: 3 } },
  { hex: '0b 48656c6c6f', pdu: { type: 'readResponse', value: b('48656c6c6f') } },
  { hex: '0b', pdu: { type: 'readResponse', value: b('') } },
  { hex: '0c 0300 1600', pdu: { type: 'readBlobRequest', handle: 3, offset: 22 } },
  { hex: '0d 0102', pdu: { type: 'readBlobResponse', value: b('0102') } },
  { hex: '0e 0300 0500 0700', pdu: { type: 'readMultipleRequest', handles: [3, 5, 7] } },
  { hex: '0f 0a0b0c', pdu: { type: 'readMultipleResponse', values: b('0a0b0c') } },
  { hex: '10 0100 ffff 0028', pdu: { type: 'readByGroupTypeRequest', startHandle: 1, endHandle: 0xffff, groupType: b('0028') } },
  {
    hex: '11 06 0100 0900 0018 0a00 1100 0118',
    pdu: { type: 'readByGroupTypeResponse', data: [{ handle: 1, endGroupHandle: 9, value: b('0018') }, { handle: 0x0a, endGroupHandle: 0x11, value: b('0118') }] },
  },
  { hex: '12 0d00 0100', pdu: { type: 'writeRequest', handle: 0x0d, value: b('0100') } },
  { hex: '13', pdu: { type: 'writeResponse' } },
  { hex: '16 2000 1200 aabbcc', pdu: { type: 'prepareWriteRequest', handle: 0x20, offset: 18, value: b('aabbcc') } },
  { hex: '17 2000 1200 aabbcc', pdu: { type: 'prepareWriteResponse', handle: 0x20, offset: 18, value: b('aabbcc') } },
  { hex: '18 01', pdu: { type: 'executeWriteRequest', flags: 1 } },
  { hex: '19', pdu: { type: 'executeWriteResponse' } },
  { hex: '1b 1000 0648', pdu: { type: 'handleValueNotification', handle: 0x10, value: b('0648') } },
  { hex: '1d 0c00 0100ffff', pdu: { type: 'handleValueIndication', handle: 0x0c, value: b('0100ffff') } },
  { hex: '1e', pdu: { type: 'handleValueConfirmation' } },
  { hex: '20 0300 0500', pdu: { type: 'readMultipleVariableRequest', handles: [3, 5] } },
  {
    hex: '21 0200 0a0b 0300 010203',
    pdu: { type: 'readMultipleVariableResponse', tuples: [{ length: 2, value: b('0a0b') }, { length: 3, value: b('010203') }] },
  },
  {
    hex: '23 1000 0100 48 1400 0200 6400',
    pdu: { type: 'multipleHandleValueNotification', tuples: [{ handle: 0x10, value: b('48') }, { handle: 0x14, value: b('6400') }] },
  },
  { hex: '52 1600 01', pdu: { type: 'writeCommand', handle: 0x16, value: b('01') } },
  {
    // The worked example of Core 5.4 Vol 3 Part F 3.4.5.4.
    hex: 'd2 1200 1337 01000000f1871e933c900ff2',
    pdu: { type: 'signedWriteCommand', handle: 0x12, value: b('1337'), signature: b('01000000f1871e933c900ff2') },
  },
];

function normalise(p: AttPdu): unknown {
  return JSON.parse(JSON.stringify(p, (_k, v: unknown) => (v instanceof Uint8Array ? `hex:${toHex(v)}` : v)));
}

test('every PDU of the table has a byte vector that decodes and re-encodes exactly', () => {
  const covered = new Set(VECTORS.map((v) => v.pdu.type));
  for (const s of ATT_PDUS) assert.ok(covered.has(s.type), `no vector for ${s.name}`);
  for (const v of VECTORS) {
    const bytes = fromHex(v.hex);
    const r = decodeAttPdu(bytes);
    assert.ok(r.ok, `${v.hex}: ${r.ok ? '' : r.reason}`);
    assert.deepEqual(normalise(r.pdu), normalise(v.pdu), v.hex);
    assert.equal(toHex(encodeAttPdu(v.pdu)), toHex(bytes), v.pdu.type);
  }
});

test('opcodes and names follow Table 3.43, including the command and signature flags', () => {
  assert.equal(attPduSpec(0x52)?.name, 'ATT_WRITE_CMD');
  assert.equal(attPduSpec(0xd2)?.name, 'ATT_SIGNED_WRITE_CMD');
  assert.equal(attPduSpec(0x23)?.name, 'ATT_MULTIPLE_HANDLE_VALUE_NTF');
  assert.equal(AttOpcode.readMultipleVariableRequest, 0x20);
  assert.equal(ATT_PDUS.length, 31);
  assert.equal(new Set(ATT_PDUS.map((s) => s.opcode)).size, ATT_PDUS.length);
});

test('fixed-length PDUs one byte short or long are invalid, with a reason naming the PDU', () => {
  for (const s of ATT_PDUS) {
    const short = new Uint8Array(s.minLength - 1);
    short[0] = s.opcode;
    if (s.minLength > 1) {
      const r = decodeAttPdu(short);
      assert.ok(!r.ok && r.error === 'invalid', `${s.name} short`);
      assert.match(r.ok ? '' : r.reason, new RegExp(s.name));
    }
    if (s.maxLength !== undefined) {
      const long = new Uint8Array(s.maxLength + 1);
      long[0] = s.opcode;
      const r = decodeAttPdu(long);
      assert.ok(!r.ok && r.error === 'invalid', `${s.name} long`);
    }
  }
});

test('inconsistent variable-length PDUs are invalid, never thrown', () => {
  const bad = [
    '08 0100 ffff 000000', // Read By Type with a 3-byte type
    '10 0100 ffff 00', // Read By Group Type with a 1-byte type
    '0e 0300 0500 07', // Read Multiple with an odd handle byte
    '05 03 0100 0028', // Find Information Response, unknown format
    '05 01 0100 002800', // entries not a multiple of 4
    '09 07 0200 0203', // pair length 7, 4 bytes present
    '09 01 0200', // pair length shorter than a handle
    '11 06 0100 0900 00', // group data not a multiple of the length
    '21 0200 0a0b 03', // truncated inside a Value Length
    '23 1000 0500 48 1400 0200 6400', // tuple claims more than present
    '23 1000 0100 48 1400 0100', // second tuple cut short
  ];
  for (const h of bad) {
    const r = decodeAttPdu(fromHex(h));
    assert.ok(!r.ok && r.error === 'invalid', h);
  }
  assert.deepEqual(decodeAttPdu(new Uint8Array(0)), { ok: false, opcode: 0, error: 'empty', reason: 'empty ATT PDU' });
  const unknown = decodeAttPdu(fromHex('3f0100'));
  assert.ok(!unknown.ok && unknown.error === 'unknown' && unknown.opcode === 0x3f);
});

test('Read Multiple Variable Response decodes a last tuple cut inside its value (Vol 3 Part F 3.4.4.12)', () => {
  const r = decodeAttPdu(fromHex('21 0200 0a0b 0a00 0102'));
  assert.ok(r.ok && r.pdu.type === 'readMultipleVariableResponse');
  assert.equal(r.pdu.tuples[1]?.length, 10);
  assert.equal(toHex(r.pdu.tuples[1]?.value ?? new Uint8Array()), '0102');
});

test('error codes are 0x01..0x13 plus application and common profile ranges, with spec names', () => {
  assert.equal(AttErrorCode.databaseOutOfSync, 0x12);
  assert.equal(AttErrorCode.valueNotAllowed, 0x13);
  assert.equal(attErrorName(0x05), 'Insufficient Authentication');
  assert.equal(attErrorName(0x0c), 'Encryption Key Size Too Short');
  assert.equal(attErrorName(0x80), 'Application Error 0x80');
  assert.equal(attErrorName(0xfd), 'CCCD Improperly Configured');
  assert.equal(attErrorName(0x14), 'Reserved 0x14');
});

test('the pretty-printer names PDU, fields and error', () => {
  const r = decodeAttPdu(fromHex('01 0a 1200 05'));
  assert.ok(r.ok);
  assert.equal(formatAttPdu(r.pdu), 'ATT_ERROR_RSP request=ATT_READ_REQ handle=0x0012 error=0x05 (Insufficient Authentication)');
  assert.equal(formatAttPdu({ type: 'readByTypeRequest', startHandle: 1, endHandle: 0xffff, attributeType: b('0328') }), 'ATT_READ_BY_TYPE_REQ start=0x0001 end=0xffff type=0x2803');
  assert.equal(formatAttPdu({ type: 'executeWriteRequest', flags: 0 }), 'ATT_EXECUTE_WRITE_REQ flags=0x00 (cancel)');
  for (const v of VECTORS) assert.ok(formatAttPdu(v.pdu).startsWith('ATT_'));
});
