import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { databaseFromGattJson, formatGattJsonIssues, loadGattJsonFile, parseGattJson } from '../../src/gatt/json.js';
import { HealthUuid } from '../../src/gatt/profile.js';
import { toHex } from '../../src/util/bytes.js';

const EXAMPLE = new URL('../../../docs/gatt-example.json', import.meta.url).pathname;

function issuesOf(doc: unknown): string[] {
  const r = databaseFromGattJson(JSON.stringify(doc));
  assert.ok(!r.ok, 'expected problems');
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

test('docs/gatt-example.json builds: services, includes, values, permissions, descriptors', async () => {
  const r = await loadGattJsonFile(EXAMPLE);
  assert.ok(r.ok, r.ok ? '' : formatGattJsonIssues(EXAMPLE, r.issues));
  const db = r.value.db;
  assert.equal(new TextDecoder().decode(db.value('gap.deviceName')), 'trail-band');
  assert.equal(toHex(db.value('env.temperature')), '6608');
  assert.equal(toHex(db.value('env.humidity')), '9411');
  assert.equal(db.attribute(db.handle('env.humidity'))?.permissions.read, 'encrypted');
  assert.equal(db.attribute(db.characteristic('trail.route')?.cccdHandle as number)?.permissions.write, 'encrypted');
  assert.equal(db.attribute(db.handle('trail.command'))?.permissions.authorizeWrite, true);
  const env = db.services.find((s) => s.id === 'env');
  assert.equal(env?.includes[0]?.id, 'units');
  assert.equal(db.services.find((s) => s.id === 'units')?.primary, false);
  // The same file always gives the same handles and hash.
  const again = databaseFromGattJson(await readFile(EXAMPLE, 'utf8'));
  assert.ok(again.ok && again.value.db.hashHex === db.hashHex);
});

test('schema errors name the JSON path of the offending field', () => {
  const base = { services: [{ uuid: '180F' }, { uuid: '180D', characteristics: [{ uuid: '2A37', properties: ['read'], permissions: { read: 'encrpyted' } }] }] };
  assert.deepEqual(issuesOf(base), ['services[1].characteristics[0].permissions.read: expected one of none, encrypted, authenticated, secureConnections, notPermitted; got "encrpyted"']);
  const many = issuesOf({
    gap: { appearance: 70000, deviceName: 5 },
    services: [
      { uuid: 'xyz', characteristics: [] },
      { uuid: '180D', primary: 'yes', characteristics: [{ uuid: '2A37', properties: ['notfy'], permisions: {} }] },
      { uuid: '180A', characteristics: [{ uuid: '2A29', properties: ['read'], value: { hex: 'zz' } }, { uuid: '2A24', properties: ['read'], value: { u8: 300 } }] },
    ],
  });
  assert.deepEqual(many, [
    'gap.deviceName: expected a string, got 5',
    'gap.appearance: expected an integer in 0..65535, got 70000',
    'services[0].uuid: not a UUID: "xyz" (expected 4 hex digits like "2A37" or a 128-bit UUID like "6e400001-b5a3-f393-e0a9-e50e24dcca9e")',
    'services[1].primary: expected true or false, got "yes"',
    'services[1].characteristics[0].permisions: unknown field (expected one of uuid, id, properties, permissions, value, maxLength, fixedLength, cccd, extendedProperties, userDescription, descriptors)',
    'services[1].characteristics[0].properties[0]: expected one of broadcast, read, writeWithoutResponse, write, notify, indicate; got "notfy"',
    'services[2].characteristics[0].value.hex: not hex bytes: "zz"',
    'services[2].characteristics[1].value.u8: expected an integer in 0..255, got 300',
  ]);
});

test('builder-level errors come back with the JSON path too', () => {
  assert.deepEqual(issuesOf({ services: [{ uuid: '180D', includes: ['missing'] }] }), ['services[0].includes[0]: no service with id "missing"']);
  assert.deepEqual(issuesOf({ services: [{ uuid: '180D', characteristics: [{ uuid: '2A37', properties: ['notify'], permissions: { write: 'encrypted' } }] }] }), [
    'services[0].characteristics[0].permissions.write: is "encrypted" but the characteristic has no "write" or "writeWithoutResponse" property',
  ]);
  assert.deepEqual(issuesOf({ services: [{ uuid: 'FFF0', characteristics: [{ uuid: 'FFF1', properties: ['read', 'authenticatedSignedWrites'] }] }] }), [
    'services[0].characteristics[0].properties[1]: "authenticatedSignedWrites" is not supported: this server ignores Signed Write Commands, so no characteristic may advertise them (docs/api.md "Signed writes")',
  ]);
  assert.deepEqual(issuesOf({ services: [{ uuid: '180D', id: 'x' }, { uuid: '180F', id: 'x' }] }), ['services[1].id: id "x" already used at services[0]']);
  assert.deepEqual(issuesOf({ services: [{ uuid: '180D', characteristics: [{ uuid: '2A37', properties: ['read'], value: 'abc', fixedLength: true, maxLength: 2 }] }] }), [
    'services[0].characteristics[0].maxLength: is 2 but the fixed-length value is 3 bytes',
  ]);
});

test('syntax errors and unreadable files are reported, not thrown', async () => {
  const r = parseGattJson('{\n  "services": [\n    { "uuid": "180D", }\n  ]\n}');
  assert.ok(!r.ok);
  assert.equal(r.ok ? '' : r.issues[0]?.path, '(file)');
  assert.match(r.ok ? '' : (r.issues[0]?.message ?? ''), /not valid JSON/);
  const missing = await loadGattJsonFile('/nonexistent/gatt.json');
  assert.ok(!missing.ok);
  assert.match(missing.ok ? '' : (missing.issues[0]?.message ?? ''), /cannot read \/nonexistent\/gatt.json: ENOENT/);
  assert.match(formatGattJsonIssues('gatt.json', [{ path: 'services[0].uuid', message: 'bad' }]), /gatt.json: 1 problem in the GATT description\n {2}services\[0\]\.uuid: bad\nSee docs\/gatt-example.json/);
  assert.deepEqual(issuesOf([1, 2]), ['(root): expected an object, got an array']);
});

test('includeWearableProfile puts the wearable profile first and the file’s services after it', () => {
  const r = databaseFromGattJson(JSON.stringify({ includeWearableProfile: true, gap: { deviceName: 'band' }, services: [{ uuid: '181A', characteristics: [{ uuid: '2A6E', properties: ['read'], value: { s16: -5 } }] }] }));
  assert.ok(r.ok);
  const uuids = r.value.db.services.map((s) => s.uuid.toString());
  assert.deepEqual(uuids, ['0x1800', '0x1801', '0x180D', '0x180F', '0x180A', HealthUuid.service, '0x181A']);
  assert.ok(r.value.profile);
  assert.equal(new TextDecoder().decode(r.value.db.value('gap.deviceName')), 'band');
  const temp = r.value.db.characteristics.find((c) => c.uuid.value16 === 0x2a6e);
  assert.equal(toHex(r.value.db.value(temp?.valueHandle as number)), 'fbff');
  // A clash with the profile's ids names both places.
  const clash = databaseFromGattJson(JSON.stringify({ includeWearableProfile: true, services: [{ uuid: '181A', id: 'hrs' }] }));
  assert.ok(!clash.ok);
  assert.equal(clash.ok ? '' : `${clash.issues[0]?.path}: ${clash.issues[0]?.message}`, 'services[0].id: id "hrs" already used at wearable profile (hrs)');
});
