/**
 * CCCDs per connection and per bond, Service Changed on reconnection, Client Supported Features
 * and robust caching (Core 5.4 Vol 3 Part G 2.5.2, 3.3.3.3, 7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattServer } from '../../src/gatt/server.js';
import { buildGattDatabase, type GattDatabase } from '../../src/gatt/database.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import type { BondRecord } from '../../src/bonds/types.js';
import { FakeBondStore, FakeLower, IDENTITY, LINKS, bondRecord, exchange } from '../att/helpers.js';

function h16(v: number): string {
  return toHex(Uint8Array.of(v & 0xff, v >> 8));
}

function database(extra = false): GattDatabase {
  return buildGattDatabase({
    services: [
      {
        uuid: 0x180d,
        characteristics: [
          { uuid: 0x2a37, id: 'hrm', properties: ['notify'], cccd: { write: 'encrypted' } },
          { uuid: 0x2a38, id: 'loc', properties: ['read', 'writeWithoutResponse'], value: Uint8Array.of(1) },
        ],
      },
      { uuid: 0x180f, characteristics: [{ uuid: 0x2a19, id: 'bat', properties: ['read', 'notify'], value: Uint8Array.of(90) }] },
      ...(extra ? [{ uuid: 0x180a, characteristics: [{ uuid: 0x2a29, properties: ['read'] as const, value: 'ACME' }] }] : []),
    ],
  });
}

async function connect(db: GattDatabase, bonds: FakeBondStore, opts: { identity?: boolean; link?: keyof typeof LINKS } = {}) {
  const lower = new FakeLower();
  if (opts.identity !== false) lower.identity = IDENTITY;
  lower.security.set(LINKS[opts.link ?? 'L1ltk']);
  const clock = new VirtualClock();
  const server = new GattServer({ db, lower, clock, bonds });
  return { lower, server, clock };
}

function encrypt(lower: FakeLower, server: GattServer): void {
  lower.security.set(LINKS.L2);
  server.onSecurityChanged();
}

function cccdUpdates(bonds: FakeBondStore): unknown[] {
  return bonds.updates.filter((u) => u.patch.cccd !== undefined).map((u) => u.patch.cccd);
}
function gattUpdates(bonds: FakeBondStore): BondRecord['gatt'][] {
  return bonds.updates.filter((u) => u.patch.gatt !== undefined).map((u) => u.patch.gatt as BondRecord['gatt']);
}

test('a bonded client’s CCCDs persist and come back on reconnection only once the link is encrypted', async () => {
  const db = database();
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ gatt: { clientFeatures: 0, changeAware: true, databaseHash: db.hashHex } }));
  const hrm = db.characteristic('hrm');
  const bat = db.characteristic('bat');
  assert.ok(hrm?.cccdHandle && bat?.cccdHandle);

  // First connection, encrypted: subscribe to both.
  const a = await connect(db, bonds, { link: 'L2' });
  assert.equal(await exchange(a.server, a.lower, `12${h16(hrm.cccdHandle)}0100`), '13');
  assert.equal(await exchange(a.server, a.lower, `12${h16(bat.cccdHandle)}0100`), '13');
  assert.deepEqual(cccdUpdates(bonds).at(-1), { [hrm.cccdHandle]: 1, [bat.cccdHandle]: 1 });
  assert.deepEqual(bonds.get(IDENTITY)?.cccd, { [hrm.cccdHandle]: 1, [bat.cccdHandle]: 1 });
  a.server.onDisconnected();

  // Reconnection: nothing is restored before encryption.
  const b = await connect(db, bonds);
  const restored: string[] = [];
  b.server.on('subscriptionChanged', (h, v) => restored.push(`${h}=${v}`));
  assert.equal(await exchange(b.server, b.lower, `0a${h16(bat.cccdHandle)}`), '0b0000');
  assert.equal(await b.server.notify(bat.valueHandle, Uint8Array.of(80)), false);
  encrypt(b.lower, b.server);
  assert.deepEqual(restored, [`${hrm.valueHandle}=1`, `${bat.valueHandle}=1`]);
  assert.equal(await exchange(b.server, b.lower, `0a${h16(bat.cccdHandle)}`), '0b0100');
  assert.deepEqual(await db.update('bat', Uint8Array.of(79)), { notified: 1, indicated: 0, skipped: 0 });
  assert.deepEqual(b.lower.take(), [`1b${h16(bat.valueHandle)}4f`]);
  // Nothing changed, so nothing is indicated.
  assert.equal(b.lower.sent.length, 0);
});

test('a subscription that needs encryption is not served on a link that is not encrypted', async () => {
  const db = database();
  const bonds = new FakeBondStore();
  const { lower, server } = await connect(db, bonds, { identity: false, link: 'L1' });
  const hrm = db.characteristic('hrm');
  assert.ok(hrm?.cccdHandle);
  assert.equal(await exchange(server, lower, `12${h16(hrm.cccdHandle)}0100`), `0112${h16(hrm.cccdHandle)}05`);
  assert.deepEqual(lower.rejections, [0x05]);
  lower.security.set(LINKS.L2);
  assert.equal(await exchange(server, lower, `12${h16(hrm.cccdHandle)}0100`), '13');
  assert.equal(await server.notify(hrm.valueHandle, Uint8Array.of(0, 72)), true);
  assert.deepEqual(lower.take(), [`1b${h16(hrm.valueHandle)}0048`]);
});

test('a client that bonds during the connection gets the CCCDs it wrote before encryption and the current hash saved', async () => {
  const db = database();
  const bonds = new FakeBondStore();
  const { lower, server } = await connect(db, bonds, { identity: false, link: 'L1' });
  const bat = db.characteristic('bat');
  assert.ok(bat?.cccdHandle);
  assert.equal(await exchange(server, lower, `12${h16(bat.cccdHandle)}0100`), '13');
  assert.deepEqual(bonds.updates, []);
  // SMP pairs and bonds, then encryption comes up.
  await bonds.put(bondRecord());
  lower.identity = IDENTITY;
  encrypt(lower, server);
  assert.deepEqual(cccdUpdates(bonds), [{ [bat.cccdHandle]: 1 }]);
  assert.deepEqual(gattUpdates(bonds), [{ clientFeatures: 0, changeAware: true, databaseHash: db.hashHex }]);
  assert.deepEqual(lower.take(), []);
});

test('Service Changed is indicated to a bonded client whose last-seen hash differs, only after encryption; its confirmation makes the client change-aware', async () => {
  const oldDb = database(false);
  const db = database(true);
  assert.notEqual(oldDb.hashHex, db.hashHex);
  const scCccd = db.serviceChangedCccdHandle as number;
  const sc = db.serviceChangedHandle as number;
  const bat = db.characteristic('bat')?.cccdHandle as number;
  assert.equal(scCccd, oldDb.serviceChangedCccdHandle);
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ cccd: { [scCccd]: 2, [bat]: 1 }, gatt: { clientFeatures: 0, changeAware: true, databaseHash: oldDb.hashHex } }));

  const { lower, server } = await connect(db, bonds);
  assert.equal(server.changeAware, false);
  // Before encryption: requests are served, nothing is indicated (iOS drops a link that gets Service Changed now).
  assert.equal(await exchange(server, lower, '10 0100 ffff 0028').then((r) => r.slice(0, 2)), '11');
  server.indicateServiceChanged();
  assert.deepEqual(lower.take(), []);
  encrypt(lower, server);
  await settle();
  assert.deepEqual(lower.take(), [`1d${h16(sc)}0100ffff`]);
  // Only the Service Changed subscription survives a database change.
  assert.equal(await exchange(server, lower, `0a${h16(bat)}`), '0b0000');
  assert.deepEqual(cccdUpdates(bonds), [{ [scCccd]: 2 }]);
  const aware: number[] = [];
  server.on('changeAware', () => aware.push(1));
  assert.equal(await exchange(server, lower, '1e'), '');
  assert.equal(server.changeAware, true);
  assert.deepEqual(aware, [1]);
  assert.equal(gattUpdates(bonds).at(-1)?.databaseHash, db.hashHex);
  assert.equal(bonds.get(IDENTITY)?.gatt.databaseHash, db.hashHex);
});

test('a bonded client whose hash matches gets no Service Changed', async () => {
  const db = database();
  const scCccd = db.serviceChangedCccdHandle as number;
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ cccd: { [scCccd]: 2 }, gatt: { clientFeatures: 0, changeAware: true, databaseHash: db.hashHex } }));
  const { lower, server } = await connect(db, bonds);
  encrypt(lower, server);
  assert.equal(server.changeAware, true);
  assert.deepEqual(lower.take(), []);
  assert.equal(server.isSubscribed(db.serviceChangedHandle as number, 'indicate'), true);
});

test('robust caching: a change-unaware client gets Database Out Of Sync once for a read, then becomes change-aware on its next request', async () => {
  const oldDb = database(false);
  const db = database(true);
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ gatt: { clientFeatures: 1, changeAware: true, databaseHash: oldDb.hashHex } }));
  const { lower, server } = await connect(db, bonds, { link: 'L2' });
  assert.equal(server.changeAware, false);
  const loc = db.handle('loc');
  // Discovery requests are served normally.
  assert.equal((await exchange(server, lower, '10 0100 ffff 0028')).slice(0, 2), '11');
  assert.equal((await exchange(server, lower, '08 0100 ffff 0328')).slice(0, 2), '09');
  assert.equal((await exchange(server, lower, '04 0100 ffff')).slice(0, 2), '05');
  // Commands are ignored.
  assert.equal(await exchange(server, lower, `52${h16(loc)}07`), '');
  assert.equal(toHex(db.value('loc')), '01');
  // Notifications are held back.
  const bat = db.characteristic('bat');
  assert.ok(bat?.cccdHandle);
  assert.equal(await server.notify(bat.valueHandle, Uint8Array.of(1)), false);
  // A read at a handle: 0x12 with that handle.
  assert.equal(await exchange(server, lower, `0a${h16(loc)}`), `010a${h16(loc)}12`);
  assert.equal(server.changeAware, false);
  // The next request is served and the client is now change-aware.
  assert.equal(await exchange(server, lower, `0a${h16(loc)}`), '0b01');
  assert.equal(server.changeAware, true);
  assert.equal(bonds.get(IDENTITY)?.gatt.databaseHash, db.hashHex);
  assert.equal(await exchange(server, lower, `52${h16(loc)}07`), '');
  assert.equal(toHex(db.value('loc')), '07');
});

test('robust caching: reading the Database Hash over 0x0001..0xFFFF is served, and the next request finds the client change-aware', async () => {
  const oldDb = database(false);
  const db = database(true);
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ gatt: { clientFeatures: 1, changeAware: true, databaseHash: oldDb.hashHex } }));
  const { lower, server } = await connect(db, bonds, { link: 'L2' });
  const hashHandle = db.databaseHashHandle as number;
  // Read By Type of another type over a partial range: 0x12 with the start handle.
  assert.equal(await exchange(server, lower, '08 0100 2000 2a2b'), '0108010012');
  const other = await connect(db, bonds, { link: 'L2' });
  assert.equal(await exchange(other.server, other.lower, '08 0100 ffff 2a2b'), `0912${h16(hashHandle)}${toHex(db.hash)}`);
  assert.equal(other.server.changeAware, false);
  assert.equal(await exchange(other.server, other.lower, `0a${h16(db.handle('loc'))}`), '0b01');
  assert.equal(other.server.changeAware, true);
  // A Read Request of the hash by a change-unaware robust client is a request at a handle: 0x12.
  const bonds3 = new FakeBondStore();
  await bonds3.put(bondRecord({ gatt: { clientFeatures: 1, changeAware: true, databaseHash: oldDb.hashHex } }));
  const third = await connect(db, bonds3, { link: 'L2' });
  assert.equal(await exchange(third.server, third.lower, `0a${h16(hashHandle)}`), `010a${h16(hashHandle)}12`);
  void lower;
});

test('without robust caching a change-unaware client is never sent Database Out Of Sync', async () => {
  const oldDb = database(false);
  const db = database(true);
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ gatt: { clientFeatures: 0, changeAware: true, databaseHash: oldDb.hashHex } }));
  const { lower, server } = await connect(db, bonds, { link: 'L2' });
  assert.equal(server.changeAware, false);
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('loc'))}`), '0b01');
});

test('Client Supported Features: RFU bits ignored, bits cannot be cleared (0x13), one value per client, kept for bonded clients', async () => {
  const db = database();
  const csf = db.clientSupportedFeaturesHandle as number;
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ gatt: { clientFeatures: 0, changeAware: true, databaseHash: db.hashHex } }));
  const a = await connect(db, bonds, { link: 'L2' });
  assert.equal(await exchange(a.server, a.lower, `0a${h16(csf)}`), '0b00');
  assert.equal(await exchange(a.server, a.lower, `12${h16(csf)}f9`), '13');
  assert.equal(await exchange(a.server, a.lower, `0a${h16(csf)}`), '0b01');
  assert.equal(await exchange(a.server, a.lower, `12${h16(csf)}00`), `0112${h16(csf)}13`);
  assert.equal(await exchange(a.server, a.lower, `0a${h16(csf)}`), '0b01');
  assert.equal(bonds.get(IDENTITY)?.gatt.clientFeatures, 1);
  // Another client has its own value.
  const other = await connect(db, new FakeBondStore(), { identity: false });
  assert.equal(await exchange(other.server, other.lower, `0a${h16(csf)}`), '0b00');
  a.server.onDisconnected();
  // The bonded client finds its value again on reconnection.
  const b = await connect(db, bonds);
  assert.equal(await exchange(b.server, b.lower, `0a${h16(csf)}`), '0b01');
});

test('the Database Hash characteristic serves the hash of the database', async () => {
  const db = database();
  const { lower, server } = await connect(db, new FakeBondStore(), { identity: false });
  assert.equal(await exchange(server, lower, `0a${h16(db.databaseHashHandle as number)}`), `0b${db.hashHex}`);
  assert.equal(db.hashHex.length, 32);
});
