/**
 * The GATT client against our ATT server, wired back to back (no HCI): discovery of everything,
 * long reads and writes, Write Without Response, notifications and indications at ATT_MTU 23 and
 * 517, ATT errors as AttError(code, handle), and the 30 s transaction timeout on a VirtualClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattClient, GattProcedureError } from '../../src/gatt/client.js';
import { AttBearer } from '../../src/att/bearer.js';
import { GattServer } from '../../src/gatt/server.js';
import { AttOpcode } from '../../src/att/pdu.js';
import { AttBearerError, AttError, type AttLower } from '../../src/att/types.js';
import { buildGattDatabase, type GattDatabase } from '../../src/gatt/database.js';
import { GattUuid, Uuid } from '../../src/gatt/uuid.js';
import { INSECURE_LINK, type LinkSecurity } from '../../src/smp/link-security.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import type { Address } from '../../src/util/address.js';

const log = silentLogger();
const CLIENT: Address = { type: 'random', address: '5A:11:22:33:44:55' };
const SERVER: Address = { type: 'random', address: 'C3:11:22:33:44:55' };
const VENDOR_SERVICE = '6e400001-b5a3-f393-e0a9-e50e24dcca9e';
const VENDOR_CHAR = '6e400002-b5a3-f393-e0a9-e50e24dcca9e';

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

function database(): GattDatabase {
  return buildGattDatabase({
    gap: { deviceName: 'Noira Band' },
    services: [
      {
        uuid: 0x180d,
        characteristics: [
          { uuid: 0x2a37, id: 'notify', properties: ['notify'] },
          { uuid: 0x2a38, id: 'short', properties: ['read'], value: Uint8Array.of(2) },
          { uuid: 0x2a39, id: 'secret', properties: ['read'], permissions: { read: 'encrypted' }, value: Uint8Array.of(9) },
          { uuid: 0x2a3a, id: 'noread', properties: ['write'] },
        ],
      },
      {
        uuid: VENDOR_SERVICE,
        characteristics: [
          {
            uuid: VENDOR_CHAR,
            id: 'long',
            properties: ['read', 'write', 'writeWithoutResponse', 'indicate'],
            maxLength: 512,
            value: bytes(300),
            userDescription: 'long value',
            extendedProperties: { reliableWrite: true },
          },
        ],
      },
    ],
  });
}

/** Client bearer and ATT server wired back to back, each PDU delivered on a later microtask. */
function link(db: GattDatabase, clientMtu: number, serverMtu: number, clock = new VirtualClock()) {
  const opcodes: { dir: 'c2s' | 's2c'; opcode: number }[] = [];
  let security: LinkSecurity = INSECURE_LINK;
  let server!: GattServer;
  let dropServerRx = false;
  const clientLower: AttLower = {
    send: async (pdu) => {
      opcodes.push({ dir: 'c2s', opcode: pdu[0] as number });
      const copy = pdu.slice();
      queueMicrotask(() => {
        if (!dropServerRx) server.onPdu(copy);
      });
    },
    peer: SERVER,
  };
  const bearer = new AttBearer({ lower: clientLower, clock, log, mtu: clientMtu });
  server = new GattServer({
    db,
    clock,
    log,
    mtu: serverMtu,
    lower: {
      send: async (pdu) => {
        opcodes.push({ dir: 's2c', opcode: pdu[0] as number });
        const copy = pdu.slice();
        queueMicrotask(() => bearer.onPdu(copy));
      },
      get security() {
        return security;
      },
      peer: CLIENT,
      peerIdentity: () => undefined,
    },
  });
  const client = new GattClient({ bearer, log });
  return {
    client,
    server,
    bearer,
    clock,
    opcodes,
    count: (opcode: number) => opcodes.filter((o) => o.opcode === opcode).length,
    encrypt: () => {
      security = { encrypted: true, keySize: 16, authenticated: false, secureConnections: true, level: 2, hasLtk: () => true };
      server.onSecurityChanged();
    },
    dropServer: () => {
      dropServerRx = true;
    },
  };
}

for (const mtu of [23, 517]) {
  test(`at ATT_MTU ${mtu} the client discovers every service, characteristic and descriptor with the server's handles`, async () => {
    const db = database();
    const l = link(db, mtu, 517);
    assert.equal(await l.client.exchangeMtu(), mtu);
    const remote = await l.client.discoverAll();
    assert.deepEqual(
      remote.services.map((s) => [s.uuid.key, s.startHandle, s.endHandle]),
      db.services.map((s) => [s.uuid.key, s.handle, s.endHandle]),
    );
    const chars = remote.services.flatMap((s) => s.characteristics);
    assert.deepEqual(
      chars.map((c) => [c.uuid.key, c.declarationHandle, c.valueHandle, c.properties, c.endHandle, c.cccdHandle]),
      db.characteristics.map((c) => [c.uuid.key, c.declarationHandle, c.valueHandle, c.properties, c.endHandle, c.cccdHandle]),
    );
    // Descriptors: every attribute after a value handle up to the characteristic's end.
    for (const c of chars) {
      const expected = db.attributes.filter((a) => a.handle > c.valueHandle && a.handle <= c.endHandle).map((a) => [a.handle, a.type.key]);
      assert.deepEqual(
        c.descriptors.map((d) => [d.handle, d.uuid.key]),
        expected,
        `descriptors of ${c.uuid.toString()}`,
      );
    }
    const longChar = remote.characteristic(VENDOR_CHAR, VENDOR_SERVICE);
    assert.ok(longChar);
    assert.deepEqual(
      longChar.descriptors.map((d) => d.uuid.value16).sort(),
      [GattUuid.characteristicExtendedProperties, GattUuid.characteristicUserDescription, GattUuid.clientCharacteristicConfiguration],
    );
    const byUuid = await l.client.discoverPrimaryServicesByUuid(VENDOR_SERVICE);
    assert.deepEqual(byUuid.map((s) => [s.startHandle, s.endHandle]), [[db.services[db.services.length - 1]!.handle, db.services[db.services.length - 1]!.endHandle]]);
  });

  test(`at ATT_MTU ${mtu} a 300-byte value is read whole with Read Blob and a 400-byte value written with Prepare/Execute Write`, async () => {
    const db = database();
    const l = link(db, mtu, 517);
    await l.client.exchangeMtu();
    const h = db.handle('long');
    const value = await l.client.read(h);
    assert.deepEqual(value, bytes(300));
    // Read Request carries ATT_MTU-1 bytes, each Read Blob as many.
    const blobs = mtu === 23 ? Math.ceil((300 - 22) / 22) : 0;
    assert.equal(l.count(AttOpcode.readBlobRequest), blobs);
    const next = bytes(400, 5);
    await l.client.write(h, next);
    assert.deepEqual(db.value('long'), next);
    const long = 400 > mtu - 3;
    assert.equal(l.count(AttOpcode.prepareWriteRequest), long ? Math.ceil(400 / (mtu - 5)) : 0);
    assert.equal(l.count(AttOpcode.executeWriteRequest), long ? 1 : 0);
    // A value that fits goes as one Write Request; Write Without Response as a command.
    await l.client.write(h, Uint8Array.of(1, 2, 3));
    assert.deepEqual(db.value('long'), Uint8Array.of(1, 2, 3));
    assert.equal(l.count(AttOpcode.writeRequest), long ? 1 : 2);
    // Write Long explicitly, whatever the MTU.
    await l.client.writeLong(h, bytes(100, 9));
    assert.deepEqual(db.value('long'), bytes(100, 9));
    await l.client.writeWithoutResponse(h, Uint8Array.of(4, 5));
    await settle();
    assert.deepEqual(db.value('long'), Uint8Array.of(4, 5));
    assert.equal(l.count(AttOpcode.writeCommand), 1);
    await assert.rejects(l.client.writeWithoutResponse(h, bytes(mtu - 2)), RangeError);
  });

  test(`at ATT_MTU ${mtu} notifications and indications carry min(ATT_MTU-3, 512) bytes and an indication is confirmed`, async () => {
    const db = database();
    const l = link(db, mtu, 517);
    await l.client.exchangeMtu();
    const remote = await l.client.discoverAll();
    const notifyChar = remote.characteristic(0x2a37)!;
    const indicateChar = remote.characteristic(VENDOR_CHAR)!;
    await l.client.subscribe(notifyChar, 'notify');
    await l.client.subscribe(indicateChar, 'indicate');
    assert.equal(l.server.cccdOf(notifyChar.valueHandle), 0x0001);
    assert.equal(l.server.cccdOf(indicateChar.valueHandle), 0x0002);
    const got: { kind: string; handle: number; value: Uint8Array }[] = [];
    l.client.on('notification', (handle, value) => got.push({ kind: 'n', handle, value }));
    l.client.on('indication', (handle, value) => got.push({ kind: 'i', handle, value }));
    // An attribute value is at most 512 bytes (Core 5.4 Vol 3 Part F 3.2.9), so at 517 the PDU carries 512.
    const payload = bytes(Math.min(mtu - 3, 512), 3);
    assert.equal(await l.server.notify(notifyChar.valueHandle, payload), true);
    assert.equal(await l.server.indicate(indicateChar.valueHandle, payload), true, 'the indication was confirmed');
    assert.equal(l.count(AttOpcode.handleValueConfirmation), 1);
    assert.deepEqual(got, [
      { kind: 'n', handle: notifyChar.valueHandle, value: payload },
      { kind: 'i', handle: indicateChar.valueHandle, value: payload },
    ]);
    await l.client.unsubscribe(notifyChar);
    assert.equal(l.server.cccdOf(notifyChar.valueHandle), 0);
    await assert.rejects(l.client.subscribe(remote.characteristic(0x2a38)!, 'notify'), GattProcedureError);
  });
}

test('ATT Error Responses surface as AttError(code, handle): 0x05 before encryption, 0x02 read not permitted, 0x01 invalid handle', async () => {
  const db = database();
  const l = link(db, 23, 517);
  const secret = db.handle('secret');
  await assert.rejects(l.client.read(secret), (e: unknown) => e instanceof AttError && e.code === 0x05 && e.handle === secret);
  l.encrypt();
  assert.deepEqual(await l.client.read(secret), Uint8Array.of(9));
  const noread = db.handle('noread');
  await assert.rejects(l.client.read(noread), (e: unknown) => e instanceof AttError && e.code === 0x02 && e.handle === noread);
  await assert.rejects(l.client.read(0x7777), (e: unknown) => e instanceof AttError && e.code === 0x01 && e.handle === 0x7777);
});

test('requests go one at a time: ten concurrent reads are sent in order, each after the previous response', async () => {
  const db = database();
  const l = link(db, 23, 517);
  const h = db.handle('short');
  const reads = Array.from({ length: 10 }, () => l.client.readShort(h));
  await settle();
  // Only the first request is on the wire before any response came back.
  const sentBeforeAnswer = l.opcodes.findIndex((o) => o.dir === 's2c');
  assert.equal(l.opcodes.slice(0, sentBeforeAnswer).filter((o) => o.opcode === AttOpcode.readRequest).length, 1);
  const values = await Promise.all(reads);
  assert.equal(values.length, 10);
  const seq = l.opcodes.map((o) => (o.dir === 'c2s' ? 'q' : 'r')).join('');
  assert.equal(seq, 'qr'.repeat(10));
});

test('a request the server never answers fails after the 30 s ATT timeout and the bearer stays closed', async () => {
  const clock = new VirtualClock();
  const db = database();
  const l = link(db, 23, 517, clock);
  l.dropServer();
  const seen: { err?: unknown } = {};
  const p = l.client.read(db.handle('short')).catch((e: unknown) => {
    seen.err = e;
  });
  await clock.advance(29_999);
  assert.equal('err' in seen, false, 'still waiting at 29.999 s');
  await clock.advance(1);
  await p;
  const err = seen.err;
  assert.ok(err instanceof AttBearerError && err.reason === 'timeout');
  await assert.rejects(l.client.read(db.handle('short')), (e: unknown) => e instanceof AttBearerError && e.reason === 'timeout');
  assert.equal(clock.pendingCount, 0);
});

test('a UUID given as text finds the same characteristic as its 16-bit form', async () => {
  const db = database();
  const l = link(db, 23, 517);
  const remote = await l.client.discoverAll();
  assert.equal(remote.characteristic('2A38')?.valueHandle, db.handle('short'));
  assert.equal(remote.characteristic(Uuid.from16(0x2a38))?.valueHandle, db.handle('short'));
  assert.equal(remote.service(0x1800)?.startHandle, 1);
});
