import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex } from '../../src/util/bytes.js';
import {
  AdType,
  buildAdvertisingPayload,
  encodeAdStructures,
  parseAdStructures,
  parseAdvertisement,
  truncateUtf8,
  uuid128FromWire,
  uuid128ToWire,
} from '../../src/hci/advertising.js';

const NAME_HEX = toHex(new TextEncoder().encode('Noira Band'));
const NUS = '6e400001-b5a3-f393-e0a9-e50e24dcca9e';

test('flags, 16-bit UUIDs, appearance and the complete name fit in the advertising data: exact bytes, empty scan response', () => {
  const p = buildAdvertisingPayload({ name: 'Noira Band', appearance: 0x00c0, serviceUuids16: [0x180d, 0x180f] });
  assert.equal(toHex(p.advertisingData), '020106' + '05030d180f18' + '0319c000' + '0b09' + NAME_HEX);
  assert.equal(p.advertisingData.length, 25);
  assert.equal(p.scanResponseData.length, 0);
  assert.equal(p.nameIn, 'advertising');
  assert.deepEqual(p.omitted, []);
});

test('when everything does not fit, flags + UUIDs + appearance stay in the advertising data and the name moves to the scan response', () => {
  const p = buildAdvertisingPayload({ name: 'Noira Band', appearance: 0x00c0, serviceUuids16: [0x180d, 0x180f], serviceUuids128: [NUS] });
  // 3 + 6 + 4 + 18 = 31 bytes exactly.
  assert.equal(
    toHex(p.advertisingData),
    '020106' + '05030d180f18' + '0319c000' + '1107' + '9ecadc240ee5a9e093f3a3b5010040' + '6e',
  );
  assert.equal(p.advertisingData.length, 31);
  assert.equal(toHex(p.scanResponseData), '0b09' + NAME_HEX);
  assert.equal(p.nameIn, 'scanResponse');
  assert.equal(p.nameShortened, false);
});

test('a name longer than a scan response holds is sent shortened (type 0x08) to 29 bytes', () => {
  const name = 'Noira Band Heart Rate Monitor Pro';
  const p = buildAdvertisingPayload({ name, serviceUuids16: [0x180d], appearance: 0x00c0 });
  const rsp = parseAdStructures(p.scanResponseData).structures;
  assert.equal(rsp.length, 1);
  assert.equal(rsp[0]?.type, AdType.ShortenedLocalName);
  assert.equal(new TextDecoder().decode(rsp[0]?.data), name.slice(0, 29));
  assert.equal(p.scanResponseData.length, 31);
  assert.equal(p.nameShortened, true);
  const parsed = parseAdvertisement(p.advertisingData, p.scanResponseData);
  assert.equal(parsed.name, name.slice(0, 29));
  assert.equal(parsed.nameComplete, false);
});

test('shortening never splits a UTF-8 character', () => {
  assert.equal(truncateUtf8('ä'.repeat(16), 29).length, 28);
  assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(truncateUtf8('Nöirä Bänd 🙂🙂', 17)), 'Nöirä Bänd ');
  assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(truncateUtf8('Nöirä Bänd 🙂🙂', 18)), 'Nöirä Bänd 🙂');
});

test('a 16-bit UUID list too long for the advertising data becomes an incomplete list; the rest is reported as omitted', () => {
  const uuids = Array.from({ length: 15 }, (_, i) => 0x1800 + i);
  const p = buildAdvertisingPayload({ name: 'N', serviceUuids16: uuids });
  const adv = parseAdStructures(p.advertisingData).structures;
  assert.equal(adv[1]?.type, AdType.IncompleteList16);
  assert.equal(adv[1]?.data.length, 26, '13 UUIDs');
  assert.deepEqual(p.omitted, ['16-bit UUID 0x180d', '16-bit UUID 0x180e']);
  assert.ok(p.advertisingData.length <= 31);
  assert.equal(parseAdvertisement(p.advertisingData).uuidListsComplete, false);
});

test('TX power and manufacturer data are encoded, and go to the scan response when the advertising data is full', () => {
  const p = buildAdvertisingPayload({ name: 'Noira Band', serviceUuids128: [NUS], appearance: 0x00c0, txPower: -8, manufacturerData: { companyId: 0xffff, data: Uint8Array.of(1, 2) } });
  const parsed = parseAdvertisement(p.advertisingData, p.scanResponseData);
  assert.equal(parsed.txPower, -8);
  assert.deepEqual(parsed.manufacturerData.map((m) => [m.companyId, toHex(m.data)]), [[0xffff, '0102']]);
  assert.deepEqual(parsed.serviceUuids128, [NUS]);
  assert.equal(parsed.appearance, 0x00c0);
  assert.ok(p.advertisingData.length <= 31 && p.scanResponseData.length <= 31);
});

test('the parser reads what the builder wrote (round trip) and what a phone-style advertisement carries', () => {
  const p = buildAdvertisingPayload({ name: 'Noira Band', appearance: 0x00c1, serviceUuids16: [0x180d, 0x180f, 0x180a] });
  const a = parseAdvertisement(p.advertisingData, p.scanResponseData);
  assert.equal(a.flags, 0x06);
  assert.equal(a.name, 'Noira Band');
  assert.equal(a.nameComplete, true);
  assert.equal(a.appearance, 0x00c1);
  assert.deepEqual(a.serviceUuids16, [0x180d, 0x180f, 0x180a]);
  assert.equal(a.error, undefined);
  // Service data and an unknown type are kept.
  const b = parseAdvertisement(fromHex('05 16 0f 18 64 00 03 24 01 02'));
  assert.deepEqual(b.serviceData16.map((s) => [s.uuid, toHex(s.data)]), [[0x180f, '6400']]);
  assert.deepEqual(b.other.map((s) => [s.type, toHex(s.data)]), [[0x24, '0102']]);
});

test('malformed advertising data is parsed up to the problem and reported, never thrown', () => {
  const a = parseAdvertisement(fromHex('02 01 06 05 03 0d 18'));
  assert.equal(a.flags, 6);
  assert.match(a.error ?? '', /claims 5 byte\(s\), only 3 left/);
  const b = parseAdvertisement(fromHex('01 19 02 ff 00 04 03 0d 18 0f 00 00 00'));
  assert.match(b.error ?? '', /Appearance of 0 byte/);
  assert.match(b.error ?? '', /manufacturer data of 1 byte/);
  assert.match(b.error ?? '', /16-bit UUID list of 3 bytes/);
  assert.deepEqual(b.serviceUuids16, [0x180d]);
  assert.equal(parseAdvertisement(new Uint8Array(0)).error, undefined);
});

test('AD structures are length-type-value and refuse more than 31 bytes', () => {
  assert.equal(toHex(encodeAdStructures([{ type: 0x01, data: Uint8Array.of(6) }])), '020106');
  assert.throws(() => encodeAdStructures([{ type: 0xff, data: new Uint8Array(30) }]), RangeError);
  assert.equal(uuid128FromWire(uuid128ToWire(NUS)), NUS);
  assert.equal(toHex(uuid128ToWire('0000180d-0000-1000-8000-00805f9b34fb')), 'fb349b5f80000080001000000d180000');
  assert.throws(() => uuid128ToWire('180d'), RangeError);
});
