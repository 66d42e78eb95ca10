import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, ShortBufferError, fromHex, toHex, reversed } from '../../src/util/bytes.js';
import { addressFromWire, addressToWire, randomAddressKind } from '../../src/util/address.js';

test('ByteWriter and ByteReader round-trip little-endian fields', () => {
  const w = new ByteWriter(2).u8(1).u16(0x0203).u24(0x040506).u32(0xf1f2f3f4).u64(0x0102030405060708n).bytes(fromHex('aabb'));
  const buf = w.finish();
  assert.equal(toHex(buf), '01' + '0302' + '060504' + 'f4f3f2f1' + '0807060504030201' + 'aabb');
  const r = new ByteReader(buf);
  assert.equal(r.u8(), 1);
  assert.equal(r.u16(), 0x0203);
  assert.equal(r.u24(), 0x040506);
  assert.equal(r.u32(), 0xf1f2f3f4);
  assert.equal(r.u64(), 0x0102030405060708n);
  assert.equal(toHex(r.rest()), 'aabb');
  assert.throws(() => r.u8(), ShortBufferError);
});

test('addresses print most significant byte first and go on the wire reversed', () => {
  const wire = fromHex('0605040302c1');
  assert.equal(addressFromWire(wire), 'C1:02:03:04:05:06');
  assert.equal(toHex(addressToWire('C1:02:03:04:05:06')), '0605040302c1');
  assert.equal(randomAddressKind('C1:02:03:04:05:06'), 'static');
  assert.equal(randomAddressKind('41:02:03:04:05:06'), 'resolvable');
  assert.equal(toHex(reversed(fromHex('0102'))), '0201');
});
