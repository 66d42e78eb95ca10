import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGattDatabase, GattDatabaseBuilder, GattDefinitionError, computeDatabaseHash } from '../../src/gatt/database.js';
import { Uuid, GattUuid } from '../../src/gatt/uuid.js';
import { fromHex, toHex, reversed } from '../../src/util/bytes.js';

/**
 * The database of Core 5.4 Vol 3 Part G Appendix B (Database Hash example): GAP with a writable
 * Device Name and Appearance; GATT with Service Changed, Client Supported Features, Database Hash;
 * a Glucose service (0x1808) including a secondary Battery service (0x180F) and holding a
 * read/indicate characteristic 0x2A18 with a CCCD and an Extended Properties descriptor (0x0000).
 */
function specExampleDatabase() {
  return buildGattDatabase({
    gap: { deviceName: 'x', deviceNameWrite: 'none', ppcp: false, centralAddressResolution: false },
    services: [
      {
        uuid: 0x1808,
        includes: ['bas'],
        characteristics: [{ uuid: 0x2a18, properties: ['read', 'indicate'], extendedProperties: {} }],
      },
      { uuid: 0x180f, id: 'bas', primary: false, characteristics: [{ uuid: 0x2a19, properties: ['read'], value: Uint8Array.of(50) }] },
    ],
  });
}

test('the spec example database gets the handles of the Appendix B message, and its hash is F1CA2D48ECF58BAC8A8830BBB9FBA990', () => {
  const db = specExampleDatabase();
  // The hashed message of the spec's example (as also reproduced in btstack's test script).
  const expectedMessage =
    '010000280018020003280a0300002a04000328020500012a06000028011807000328200800052a090002290a0003280a0b00292b0c000328020d002a2b' +
    '0e00002808180f000228140016000f1810000328a21100182a12000229130000290000140001280f1815000328021600192a';
  // Rebuild the message from our attribute table to prove the layout matches byte for byte.
  let m = '';
  for (const a of db.attributes) {
    const t = a.type.value16;
    if (t === undefined) continue;
    const h = toHex(Uint8Array.of(a.handle & 0xff, a.handle >> 8)) + toHex(Uint8Array.of(t & 0xff, t >> 8));
    if ([0x2800, 0x2801, 0x2802, 0x2803, 0x2900].includes(t)) m += h + toHex(a.value);
    else if ([0x2901, 0x2902, 0x2903, 0x2904, 0x2905].includes(t)) m += h;
  }
  assert.equal(m, expectedMessage);
  assert.equal(db.lastHandle, 0x16);
  // The hash is served little-endian: the reverse of the spec's MSB-first F1CA2D48...
  assert.equal(toHex(reversed(db.hash)), 'f1ca2d48ecf58bac8a8830bbb9fba990');
  assert.equal(toHex(db.value(db.databaseHashHandle as number)), toHex(db.hash));
  assert.equal(toHex(computeDatabaseHash(db.attributes)), toHex(db.hash));
});

test('included service declaration carries handle range and the 16-bit UUID; characteristic declaration carries properties, value handle, UUID', () => {
  const db = specExampleDatabase();
  assert.equal(toHex(db.value(0x0f)), '140016000f18');
  assert.equal(toHex(db.value(0x10)), 'a21100182a');
  assert.equal(db.attribute(0x12)?.kind, 'cccd');
  assert.equal(toHex(db.value(0x13)), '0000');
  assert.equal(db.serviceChangedHandle, 0x08);
  assert.equal(db.serviceChangedCccdHandle, 0x09);
  assert.equal(db.clientSupportedFeaturesHandle, 0x0b);
  assert.equal(db.databaseHashHandle, 0x0d);
  const glucose = db.services[2];
  assert.equal(glucose?.handle, 0x0e);
  assert.equal(glucose?.endHandle, 0x13);
  assert.equal(glucose?.includes[0]?.handle, 0x14);
});

test('128-bit UUIDs: text is most significant first, the wire form reversed; Base-UUID forms fold to 16-bit', () => {
  const u = Uuid.parse('6e400001-b5a3-f393-e0a9-e50e24dcca9e');
  assert.equal(toHex(u.bytes), '9ecadc240ee5a9e093f3a3b50100406e');
  assert.equal(u.toString(), '6e400001-b5a3-f393-e0a9-e50e24dcca9e');
  assert.equal(Uuid.parse('0000180D-0000-1000-8000-00805F9B34FB').key, '180d');
  assert.ok(Uuid.fromBytes(Uuid.from16(0x2a37).toBytes128()).equals(Uuid.from16(0x2a37)));
  assert.equal(Uuid.parse('0x2A37').value16, 0x2a37);
  assert.equal(Uuid.parse('0000FEAA').value16, 0xfeaa);
  assert.throws(() => Uuid.parse('2A3'), /not a UUID/);
});

test('handles are deterministic: GAP then GATT first, services pinned with startHandle keep their handles', () => {
  const def = {
    services: [
      { uuid: 0x180f, characteristics: [{ uuid: 0x2a19, properties: ['read', 'notify'] as const, value: Uint8Array.of(90) }] },
      { uuid: 0x180a, startHandle: 0x40, characteristics: [{ uuid: 0x2a29, properties: ['read'] as const, value: 'ACME' }] },
    ],
  };
  const a = buildGattDatabase(def);
  const b = buildGattDatabase(def);
  assert.deepEqual(a.describe(), b.describe());
  assert.equal(a.hashHex, b.hashHex);
  // GAP: 1 + 4 chars * 2 = 9 handles; GATT: 1 + SC(3) + CSF(2) + hash(2) = 8 -> 0x0a..0x11.
  assert.equal(a.services[0]?.endHandle, 0x09);
  assert.equal(a.services[1]?.handle, 0x0a);
  assert.equal(a.serviceChangedHandle, 0x0c);
  assert.equal(a.serviceChangedCccdHandle, 0x0d);
  assert.equal(a.services[2]?.handle, 0x12);
  assert.equal(a.characteristics.find((c) => c.uuid.value16 === 0x2a19)?.cccdHandle, 0x15);
  assert.equal(a.services[3]?.handle, 0x40);
  assert.equal(a.attribute(0x20), undefined);
});

test('the automatic CCCD takes the characteristic write class, else its read class', () => {
  const db = new GattDatabaseBuilder()
    .service({
      uuid: 0x180d,
      characteristics: [
        { uuid: 0x2a37, id: 'm', properties: ['notify'], cccd: { write: 'encrypted' } },
        { uuid: 0x2a38, id: 'r', properties: ['read', 'notify'], permissions: { read: 'authenticated' } },
        { uuid: 0x2a39, id: 'w', properties: ['read', 'write', 'indicate'], permissions: { read: 'none', write: 'secureConnections' } },
        { uuid: 0x2a3a, id: 'o', properties: ['notify'] },
      ],
    })
    .build();
  const cccdOf = (id: string) => db.attribute(db.characteristic(id)?.cccdHandle as number);
  assert.equal(cccdOf('m')?.permissions.write, 'encrypted');
  assert.equal(cccdOf('r')?.permissions.write, 'authenticated');
  assert.equal(cccdOf('w')?.permissions.write, 'secureConnections');
  assert.equal(cccdOf('o')?.permissions.write, 'none');
  assert.equal(cccdOf('m')?.permissions.read, 'none');
});

test('no characteristic may advertise Authenticated Signed Writes (0x40): the server ignores Signed Write Commands, so the definition is refused with the reason', () => {
  const def = { services: [{ uuid: 0xfff0, characteristics: [{ uuid: 0xfff1, properties: ['read', 'authenticatedSignedWrites'], value: 'x' }] }] };
  assert.throws(
    () => buildGattDatabase(def as never),
    (err: unknown) =>
      err instanceof GattDefinitionError &&
      err.path === 'services[0].characteristics[0].properties[1]' &&
      /"authenticatedSignedWrites" is not supported: this server ignores Signed Write Commands/.test(err.message),
  );
});

test('definition errors name the offending path', () => {
  const bad = (services: unknown): string => {
    try {
      buildGattDatabase({ services } as never);
    } catch (err) {
      assert.ok(err instanceof GattDefinitionError);
      return err.message;
    }
    return 'no error';
  };
  assert.match(bad([{ uuid: 0x180d, characteristics: [{ uuid: 0x2a37, properties: ['nofity'] }] }]), /^services\[0\]\.characteristics\[0\]\.properties\[0\]: expected one of/);
  assert.match(
    bad([{ uuid: 0x180d }, { uuid: 0x180f, characteristics: [{ uuid: 0x2a19, properties: ['read'], permissions: { read: 'encrpyted' } }] }]),
    /^services\[1\]\.characteristics\[0\]\.permissions\.read: expected one of none, encrypted/,
  );
  assert.match(bad([{ uuid: 0x180d, characteristics: [{ uuid: 0x2a37, properties: ['notify'], permissions: { write: 'encrypted' } }] }]), /permissions\.write: is "encrypted" but the characteristic has no "write"/);
  assert.match(bad([{ uuid: 0x180d, includes: ['nope'] }]), /^services\[0\]\.includes\[0\]: no service with id "nope"/);
  assert.match(bad([{ uuid: 'zz' }]), /^services\[0\]\.uuid: not a UUID/);
  assert.match(bad([{ uuid: 0x180d, id: 'a' }, { uuid: 0x180f, id: 'a' }]), /^services\[1\]\.id: id "a" already used at services\[0\]/);
  assert.match(bad([{ uuid: 0x180d, characteristics: [{ uuid: 0x2a37, properties: ['read'], value: 'abc', maxLength: 2 }] }]), /value: is 3 bytes, longer than maxLength 2/);
});

test('setValue keeps fixed lengths and maximum lengths', () => {
  const db = buildGattDatabase({ services: [{ uuid: 0x180f, characteristics: [{ uuid: 0x2a19, id: 'bl', properties: ['read'], value: Uint8Array.of(1), fixedLength: true }] }] });
  db.setValue('bl', Uint8Array.of(7));
  assert.equal(toHex(db.value('bl')), '07');
  assert.throws(() => db.setValue('bl', Uint8Array.of(1, 2)), /exactly 1 bytes/);
  assert.equal(db.attribute(db.handle('bl'))?.type.value16, 0x2a19);
  assert.equal(GattUuid.batteryLevel, 0x2a19);
  assert.equal(toHex(fromHex('0102')), '0102');
});
