/**
 * The ATT server against a scripted client: bytes in, bytes out, at ATT_MTU 23 and 517.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattServer } from '../../src/gatt/server.js';
import { AttBearerError } from '../../src/att/types.js';
import { decodeAttPdu, type AttPdu } from '../../src/att/pdu.js';
import { buildGattDatabase, type AccessContext, type GattDatabase } from '../../src/gatt/database.js';
import { Uuid } from '../../src/gatt/uuid.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { fromHex, reversed, toHex } from '../../src/util/bytes.js';
import { FakeBondStore, FakeLower, IDENTITY, LINKS, bondRecord, exchange } from '../att/helpers.js';

const CUSTOM = Uuid.parse('3c1d1000-7f4e-4c55-9d36-0c5f1e2a9b10');
const LONG = Uuid.parse('3c1d1001-7f4e-4c55-9d36-0c5f1e2a9b10');
const LONG_VALUE = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);

function h16(v: number): string {
  return toHex(Uint8Array.of(v & 0xff, v >> 8));
}

function testDatabase(): GattDatabase {
  return buildGattDatabase({
    gap: { deviceName: 'wh-test', appearance: 0x00c1 },
    services: [
      { uuid: 0x180f, id: 'bas', characteristics: [{ uuid: 0x2a19, id: 'battery', properties: ['read', 'notify'], value: Uint8Array.of(0x5a), fixedLength: true }] },
      {
        uuid: CUSTOM,
        id: 'custom',
        includes: ['sec'],
        characteristics: [
          { uuid: LONG, id: 'long', properties: ['read', 'write'], value: LONG_VALUE, userDescription: 'long record' },
          { uuid: 0xfff2, id: 'ind', properties: ['read', 'indicate'], value: 'i' },
          {
            uuid: 0xfff3,
            id: 'ctrl',
            properties: ['write', 'writeWithoutResponse'],
            onWrite: (v) => (v[0] === 0x01 ? undefined : 0x80),
          },
          { uuid: 0xfff4, id: 'fixed', properties: ['read', 'write'], value: Uint8Array.of(1, 2, 3, 4), fixedLength: true },
          { uuid: 0xfff5, id: 'secret', properties: ['read'], permissions: { read: 'encrypted' }, value: 's' },
          { uuid: 0xfff5, id: 'secret2', properties: ['read'], permissions: { read: 'encrypted' }, value: 't' },
          { uuid: 0xfff6, id: 'open1', properties: ['read'], value: 'ab' },
          { uuid: 0xfff6, id: 'open2', properties: ['read'], value: 'cd' },
          { uuid: 0xfff6, id: 'closed3', properties: ['read'], permissions: { read: 'encrypted' }, value: 'ef' },
        ],
      },
      { uuid: 0x1805, id: 'sec', primary: false, characteristics: [{ uuid: 0x2a2b, properties: ['read'], value: Uint8Array.of(0) }] },
    ],
  });
}

function setup(opts: { mtu?: number; prepareQueueLimit?: number } = {}) {
  const db = testDatabase();
  const lower = new FakeLower();
  const clock = new VirtualClock();
  const bonds = new FakeBondStore();
  const server = new GattServer({ db, lower, clock, bonds, mtu: 517, ...opts });
  return { db, lower, clock, bonds, server };
}

async function rsp(server: GattServer, lower: FakeLower, hex: string): Promise<AttPdu> {
  const out = await exchange(server, lower, hex);
  const r = decodeAttPdu(fromHex(out));
  assert.ok(r.ok, `undecodable response ${out}`);
  return r.pdu;
}

interface Found {
  handle: number;
  end: number;
  uuid: string;
}

/** GATT Discover All Primary Services (Core 5.4 Vol 3 Part G 4.4.1). */
async function discoverServices(server: GattServer, lower: FakeLower): Promise<Found[]> {
  const out: Found[] = [];
  let start = 1;
  for (;;) {
    const p = await rsp(server, lower, `10${h16(start)}ffff0028`);
    if (p.type === 'errorResponse') {
      assert.equal(p.errorCode, 0x0a);
      assert.equal(p.handle, start);
      return out;
    }
    assert.equal(p.type, 'readByGroupTypeResponse');
    if (p.type !== 'readByGroupTypeResponse') return out;
    for (const d of p.data) out.push({ handle: d.handle, end: d.endGroupHandle, uuid: Uuid.fromBytes(d.value).key });
    const last = p.data[p.data.length - 1]?.endGroupHandle as number;
    if (last === 0xffff) return out;
    start = last + 1;
  }
}

/** GATT Discover All Characteristics of a Service (Core 5.4 Vol 3 Part G 4.6.1). */
async function discoverCharacteristics(server: GattServer, lower: FakeLower, s: number, e: number): Promise<{ decl: number; props: number; value: number; uuid: string }[]> {
  const out: { decl: number; props: number; value: number; uuid: string }[] = [];
  let start = s;
  while (start <= e) {
    const p = await rsp(server, lower, `08${h16(start)}${h16(e)}0328`);
    if (p.type === 'errorResponse') break;
    assert.equal(p.type, 'readByTypeResponse');
    if (p.type !== 'readByTypeResponse') break;
    for (const d of p.data) {
      out.push({ decl: d.handle, props: d.value[0] as number, value: (d.value[1] as number) | ((d.value[2] as number) << 8), uuid: Uuid.fromBytes(d.value.subarray(3)).key });
      start = d.handle + 1;
    }
  }
  return out;
}

/** GATT Discover All Characteristic Descriptors (Core 5.4 Vol 3 Part G 4.7.1). */
async function discoverDescriptors(server: GattServer, lower: FakeLower, s: number, e: number): Promise<{ handle: number; uuid: string }[]> {
  const out: { handle: number; uuid: string }[] = [];
  let start = s;
  while (start <= e) {
    const p = await rsp(server, lower, `04${h16(start)}${h16(e)}`);
    if (p.type === 'errorResponse') break;
    if (p.type !== 'findInformationResponse') assert.fail(p.type);
    for (const d of p.entries) {
      out.push({ handle: d.handle, uuid: Uuid.fromBytes(d.uuid).key });
      start = d.handle + 1;
    }
  }
  return out;
}

for (const mtu of [23, 517]) {
  test(`MTU ${mtu}: a client discovers every primary service, characteristic and descriptor exactly as built`, async () => {
    const { db, lower, server } = setup();
    if (mtu !== 23) assert.equal(await exchange(server, lower, `02${h16(mtu)}`), '030502');
    assert.equal(server.mtu, mtu);
    const services = await discoverServices(server, lower);
    const primaries = db.services.filter((s) => s.primary);
    assert.deepEqual(
      services,
      primaries.map((s) => ({ handle: s.handle, end: s.endHandle, uuid: s.uuid.key })),
    );
    for (const s of primaries) {
      const chars = await discoverCharacteristics(server, lower, s.handle, s.endHandle);
      assert.deepEqual(
        chars,
        s.characteristics.map((c) => ({ decl: c.declarationHandle, props: c.properties, value: c.valueHandle, uuid: c.uuid.key })),
        s.uuid.toString(),
      );
      for (const c of s.characteristics) {
        if (c.endHandle === c.valueHandle) continue;
        const ds = await discoverDescriptors(server, lower, c.valueHandle + 1, c.endHandle);
        assert.deepEqual(
          ds,
          db.attributes.filter((a) => a.handle > c.valueHandle && a.handle <= c.endHandle).map((a) => ({ handle: a.handle, uuid: a.type.key })),
        );
      }
    }
    // Included services (Core 5.4 Vol 3 Part G 4.5.1): the custom service includes the secondary one.
    const custom = db.services.find((s) => s.id === 'custom');
    const sec = db.services.find((s) => s.id === 'sec');
    assert.ok(custom && sec);
    const inc = await rsp(server, lower, `08${h16(custom.handle)}${h16(custom.endHandle)}0228`);
    assert.equal(toHex(encodeRsp(inc)), `0908${h16(custom.handle + 1)}${h16(sec.handle)}${h16(sec.endHandle)}0518`);
  });
}

function encodeRsp(p: AttPdu): Uint8Array {
  // Re-encode for byte comparison.
  return fromHex(
    (() => {
      if (p.type !== 'readByTypeResponse') return '';
      const len = 2 + (p.data[0]?.value.length ?? 0);
      return `09${len.toString(16).padStart(2, '0')}${p.data.map((d) => h16(d.handle) + toHex(d.value)).join('')}`;
    })(),
  );
}

test('MTU 23: Read By Group Type packs three 16-bit services per response; the exact bytes', async () => {
  const { lower, server } = setup();
  // GAP 0x0001-0x0009, GATT 0x000a-0x0011, Battery 0x0012-0x0015: (23-2)/6 = 3 entries.
  assert.equal(await exchange(server, lower, '10 0100 ffff 0028'), '1106' + '010009000018' + '0a0011000118' + '120015000f18');
  // The 128-bit service comes alone in the next response (different value length).
  const r = await exchange(server, lower, '10 1600 ffff 0028');
  assert.equal(r.slice(0, 4), '1114');
  assert.equal(r.slice(12), toHex(CUSTOM.bytes));
});

test('Find By Type Value finds a primary service by UUID with its group end handle', async () => {
  const { db, lower, server } = setup();
  const bas = db.services.find((s) => s.id === 'bas');
  assert.ok(bas);
  assert.equal(await exchange(server, lower, '06 0100 ffff 0028 0f18'), `07${h16(bas.handle)}${h16(bas.endHandle)}`);
  assert.equal(await exchange(server, lower, '06 0100 ffff 0028 0d18'), '010601000a');
  assert.equal(await exchange(server, lower, `06 0100 ffff 0028 ${toHex(CUSTOM.bytes)}`), `07${h16(db.services[3]?.handle ?? 0)}${h16(db.services[3]?.endHandle ?? 0)}`);
});

test('handle range errors: start 0 or start > end give Invalid Handle with the start handle; an empty range Attribute Not Found', async () => {
  const { lower, server } = setup();
  assert.equal(await exchange(server, lower, '04 0000 ffff'), '0104000001');
  assert.equal(await exchange(server, lower, '04 0500 0400'), '0104050001');
  assert.equal(await exchange(server, lower, '04 0002 ffff'), '010400020a');
  assert.equal(await exchange(server, lower, '08 0000 ffff 0328'), '0108000001');
  assert.equal(await exchange(server, lower, '08 0900 0800 0328'), '0108090001');
  assert.equal(await exchange(server, lower, '08 0100 0100 0328'), '010801000a');
  assert.equal(await exchange(server, lower, '10 0000 ffff 0028'), '0110000001');
  assert.equal(await exchange(server, lower, '10 0300 0200 0028'), '0110030001');
  assert.equal(await exchange(server, lower, '06 0000 ffff 0028 0f18'), '0106000001');
  // «Characteristic» is not a grouping type for Read By Group Type (Vol 3 Part G 2.5.3).
  assert.equal(await exchange(server, lower, '10 0100 ffff 0328'), '0110010010');
  // Invalid handles in single-handle requests.
  assert.equal(await exchange(server, lower, '0a 0000'), '010a000001');
  assert.equal(await exchange(server, lower, '0a 0010'), '010a001001');
  assert.equal(await exchange(server, lower, '0c ff0f 0000'), '010cff0f01');
  assert.equal(await exchange(server, lower, '12 ff0f 00'), '0112ff0f01');
  assert.equal(await exchange(server, lower, '16 ff0f 0000 00'), '0116ff0f01');
});

test('MTU 23: a long value is read with Read then Read Blob until a short part; offset = length gives an empty part, beyond it Invalid Offset', async () => {
  const { db, lower, server } = setup();
  const h = db.handle('long');
  const first = await rsp(server, lower, `0a${h16(h)}`);
  assert.ok(first.type === 'readResponse');
  const parts: Uint8Array[] = [first.value];
  assert.equal(first.value.length, 22);
  let offset = 22;
  for (;;) {
    const p = await rsp(server, lower, `0c${h16(h)}${h16(offset)}`);
    assert.ok(p.type === 'readBlobResponse');
    parts.push(p.value);
    offset += p.value.length;
    if (p.value.length < 22) break;
  }
  assert.equal(toHex(Buffer.concat(parts)), toHex(LONG_VALUE));
  assert.equal(await exchange(server, lower, `0c${h16(h)}${h16(300)}`), '0d');
  assert.equal(await exchange(server, lower, `0c${h16(h)}${h16(301)}`), `010c${h16(h)}07`);
});

test('MTU 517: the same long value comes whole in one Read Response', async () => {
  const { db, lower, server } = setup();
  await exchange(server, lower, '02 0502');
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('long'))}`), `0b${toHex(LONG_VALUE)}`);
});

test('Read Blob of a fixed-length value that fits a Read Response gives Attribute Not Long', async () => {
  const { db, lower, server } = setup();
  const h = db.handle('fixed');
  assert.equal(await exchange(server, lower, `0c${h16(h)}0000`), `010c${h16(h)}0b`);
  assert.equal(await exchange(server, lower, `0c${h16(h)}0200`), `010c${h16(h)}0b`);
});

test('MTU 23: a long write in 18-byte Prepare Writes, echoed for a reliable write, then executed', async () => {
  const { db, lower, server } = setup();
  const h = db.handle('long');
  const value = Uint8Array.from({ length: 100 }, (_, i) => 0xff - i);
  for (let o = 0; o < value.length; o += 18) {
    const part = toHex(value.subarray(o, o + 18));
    assert.equal(await exchange(server, lower, `16${h16(h)}${h16(o)}${part}`), `17${h16(h)}${h16(o)}${part}`);
  }
  // Nothing changes before Execute Write.
  assert.equal(toHex(db.value('long')), toHex(LONG_VALUE));
  assert.equal(await exchange(server, lower, '18 01'), '19');
  assert.equal(toHex(db.value('long')), toHex(value));
});

test('Execute Write with flags 0x00 cancels the queue; flags other than 0/1 are an Invalid PDU', async () => {
  const { db, lower, server } = setup();
  const h = db.handle('long');
  assert.equal(await exchange(server, lower, `16${h16(h)}0000aabb`), `17${h16(h)}0000aabb`);
  assert.equal(await exchange(server, lower, '18 00'), '19');
  assert.equal(toHex(db.value('long')), toHex(LONG_VALUE));
  assert.equal(await exchange(server, lower, '18 01'), '19'); // empty queue: nothing written
  assert.equal(toHex(db.value('long')), toHex(LONG_VALUE));
  assert.equal(await exchange(server, lower, '18 02'), '0118000004');
});

test('Execute Write: an offset past the value built so far is Invalid Offset, a result over the maximum Invalid Attribute Value Length, with the handle; the queue is discarded', async () => {
  const { db, lower, server } = setup();
  const h = db.handle('long');
  await exchange(server, lower, `16${h16(h)}${h16(301)}aa`);
  assert.equal(await exchange(server, lower, '18 01'), `0118${h16(h)}07`);
  assert.equal(await exchange(server, lower, '18 01'), '19'); // the queue was cleared
  assert.equal(toHex(db.value('long')), toHex(LONG_VALUE));
  await exchange(server, lower, '02 0502');
  await exchange(server, lower, `16${h16(h)}0000${'11'.repeat(512)}`);
  await exchange(server, lower, `16${h16(h)}${h16(512)}22`);
  assert.equal(await exchange(server, lower, '18 01'), `0118${h16(h)}0d`);
  // A fixed-length value cannot grow either.
  const f = db.handle('fixed');
  await exchange(server, lower, `16${h16(f)}0300aabb`);
  assert.equal(await exchange(server, lower, '18 01'), `0118${h16(f)}0d`);
  assert.equal(toHex(db.value('fixed')), '01020304');
});

test('the prepare queue is bounded: Prepare Queue Full with the handle, earlier entries kept', async () => {
  const { db, lower, server } = setup({ prepareQueueLimit: 2 });
  const h = db.handle('long');
  await exchange(server, lower, `16${h16(h)}0000aa`);
  await exchange(server, lower, `16${h16(h)}0100bb`);
  assert.equal(await exchange(server, lower, `16${h16(h)}0200cc`), `0116${h16(h)}09`);
  assert.equal(await exchange(server, lower, '18 01'), '19');
  assert.equal(toHex(db.value('long')), 'aabb');
});

test('writes: a fixed-length value takes a shorter write into its leading bytes and refuses a longer one; an application error comes back as is', async () => {
  const { db, lower, server } = setup();
  const f = db.handle('fixed');
  assert.equal(await exchange(server, lower, `12${h16(f)}0909`), '13');
  assert.equal(toHex(db.value('fixed')), '09090304');
  assert.equal(await exchange(server, lower, `12${h16(f)}0102030405`), `0112${h16(f)}0d`);
  const c = db.handle('ctrl');
  assert.equal(await exchange(server, lower, `12${h16(c)}01`), '13');
  assert.equal(await exchange(server, lower, `12${h16(c)}07`), `0112${h16(c)}80`);
  // A variable-length value over its maximum.
  await exchange(server, lower, '02 0502');
  assert.equal(await exchange(server, lower, `12${h16(db.handle('long'))}${'00'.repeat(513)}`), `0112${h16(db.handle('long'))}0d`);
  // Declarations are not writable.
  assert.equal(await exchange(server, lower, '12 0100 0018'), '0112010003');
});

test('Write Command is carried out silently and ignored silently when refused', async () => {
  const { db, lower, server } = setup();
  const written: string[] = [];
  server.on('written', (h, v) => written.push(`${h}:${toHex(v)}`));
  assert.equal(await exchange(server, lower, `52${h16(db.handle('fixed'))}0a0b0c0d`), '');
  assert.equal(toHex(db.value('fixed')), '0a0b0c0d');
  assert.equal(await exchange(server, lower, '52 0100 0018'), '');
  assert.equal(await exchange(server, lower, `52${h16(db.handle('ctrl'))}07`), '');
  assert.deepEqual(written, [`${db.handle('fixed')}:0a0b0c0d`]);
});

test('Read Multiple concatenates values; the first failing handle answers with its own handle and code', async () => {
  const { db, lower, server } = setup();
  const b = db.handle('battery');
  const i = db.handle('ind');
  const s = db.handle('secret');
  assert.equal(await exchange(server, lower, `0e${h16(b)}${h16(i)}`), '0f5a69');
  assert.equal(await exchange(server, lower, `0e${h16(b)}0010${h16(s)}`), '010e001001');
  assert.equal(await exchange(server, lower, `0e${h16(b)}${h16(s)}0010`), `010e${h16(s)}05`);
  assert.equal(await exchange(server, lower, `0e${h16(db.handle('ctrl'))}${h16(b)}`), `010e${h16(db.handle('ctrl'))}02`);
  // At MTU 23 the set of values is cut to 22 bytes.
  assert.equal(await exchange(server, lower, `0e${h16(b)}${h16(db.handle('long'))}`), `0f5a${toHex(LONG_VALUE.subarray(0, 21))}`);
});

test('Read Multiple Variable gives length-value tuples, cut after ATT_MTU-1 with the full length kept', async () => {
  const { db, lower, server } = setup();
  const b = db.handle('battery');
  const i = db.handle('ind');
  const l = db.handle('long');
  assert.equal(await exchange(server, lower, `20${h16(b)}${h16(i)}`), '2101005a010069');
  // MTU 23: 22 bytes: tuple 1 = 3 bytes, tuple 2 = length 300 + 17 value bytes.
  assert.equal(await exchange(server, lower, `20${h16(b)}${h16(l)}`), `2101005a2c01${toHex(LONG_VALUE.subarray(0, 17))}`);
  // A tuple whose length field would not fit is left out entirely.
  assert.equal(await exchange(server, lower, `20${h16(l)}${h16(b)}`), `212c01${toHex(LONG_VALUE.subarray(0, 20))}`);
  assert.equal(await exchange(server, lower, `20${h16(b)}${h16(db.handle('secret'))}`), `0120${h16(db.handle('secret'))}05`);
});

test('Read By Type: when a later attribute fails, the ones before it are returned; asked next, it fails with its handle', async () => {
  const { db, lower, server } = setup();
  const o1 = db.handle('open1');
  const o2 = db.handle('open2');
  const c3 = db.handle('closed3');
  assert.equal(await exchange(server, lower, '08 0100 ffff f6ff'), `0904${h16(o1)}6162${h16(o2)}6364`);
  assert.equal(await exchange(server, lower, `08${h16(o2 + 1)}ffff f6ff`), `0108${h16(c3)}05`);
  assert.deepEqual(lower.rejections, [0x05]);
  // The first matching attribute failing answers with its handle (two encrypted ones).
  assert.equal(await exchange(server, lower, '08 0100 ffff f5ff'), `0108${h16(db.handle('secret'))}05`);
  lower.security.set(LINKS.L2);
  assert.equal(await exchange(server, lower, '08 0100 ffff f5ff'), `0903${h16(db.handle('secret'))}73${h16(db.handle('secret2'))}74`);
});

test('notifications go only to a subscribed client, cut to ATT_MTU-3; the value is stored for reads', async () => {
  const { db, lower, server } = setup();
  const b = db.handle('battery');
  const cccd = db.characteristic('battery')?.cccdHandle as number;
  assert.deepEqual(await db.update('battery', Uint8Array.of(0x50)), { notified: 0, indicated: 0, skipped: 1 });
  assert.deepEqual(lower.take(), []);
  const subs: string[] = [];
  server.on('subscriptionChanged', (h, v) => subs.push(`${h}=${v}`));
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0100`), '13');
  assert.deepEqual(subs, [`${b}=1`]);
  assert.equal(await exchange(server, lower, `0a${h16(cccd)}`), '0b0100');
  assert.deepEqual(await db.update('battery', Uint8Array.of(0x4f)), { notified: 1, indicated: 0, skipped: 0 });
  assert.deepEqual(lower.take(), [`1b${h16(b)}4f`]);
  assert.equal(await exchange(server, lower, `0a${h16(b)}`), '0b4f');
  // Cut to MTU-3 at 23, whole at 517.
  const big = new Uint8Array(40).fill(3);
  assert.equal(await server.notify(b, big), true);
  assert.equal(lower.take()[0], `1b${h16(b)}${'03'.repeat(20)}`);
  await exchange(server, lower, '02 0502');
  await server.notify(b, big);
  assert.equal(lower.take()[0], `1b${h16(b)}${'03'.repeat(40)}`);
  // Unsubscribe.
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0000`), '13');
  assert.equal(await server.notify(b, big), false);
  // Asking for indications on a notify-only characteristic stores nothing.
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0200`), '13');
  assert.equal(await exchange(server, lower, `0a${h16(cccd)}`), '0b0000');
});

test('indications: one at a time, resolved by the confirmation; an unconfirmed one times out after 30 s and the bearer dies', async () => {
  const { db, lower, server, clock } = setup();
  const h = db.handle('ind');
  const cccd = db.characteristic('ind')?.cccdHandle as number;
  assert.equal(await exchange(server, lower, `12${h16(cccd)}0200`), '13');
  const first = server.indicate(h, fromHex('01'));
  const second = server.indicate(h, fromHex('02'));
  await settle();
  assert.deepEqual(lower.take(), [`1d${h16(h)}01`]);
  assert.equal(await exchange(server, lower, '1e'), `1d${h16(h)}02`);
  assert.equal(await first, true);
  assert.equal(await exchange(server, lower, '1e'), '');
  assert.equal(await second, true);
  // Now one that is never confirmed.
  const events: string[] = [];
  server.on('timeout', () => events.push('timeout'));
  server.on('closed', (r) => events.push(`closed:${r}`));
  const lost = assert.rejects(server.indicate(h, fromHex('03')), (e: unknown) => e instanceof AttBearerError && e.reason === 'timeout');
  await clock.advance(30_000);
  await lost;
  assert.deepEqual(events, ['timeout', 'closed:timeout']);
  lower.take();
  assert.equal(await exchange(server, lower, `0a${h16(h)}`), '');
  assert.equal([...db.connections()].length, 0);
});

test('a Signed Write Command is ignored as a command the server does not support (Vol 3 Part F 3.3), even with the spec example signature from a bonded peer whose CSRK is on file', async () => {
  // Handle 0x0012 and the signature of the spec example (Vol 3 Part F 3.4.5.4): GATT service at 0x0001..0x0008, ours pinned at 0x0010.
  const db = buildGattDatabase({
    gap: false,
    services: [{ uuid: 0xfff0, startHandle: 0x10, characteristics: [{ uuid: 0xfff1, id: 's', properties: ['read', 'writeWithoutResponse'], value: '' }] }],
  });
  assert.equal(db.handle('s'), 0x12);
  const lower = new FakeLower();
  lower.identity = IDENTITY;
  lower.security.set(LINKS.L2);
  const bonds = new FakeBondStore();
  await bonds.put(bondRecord({ peerCsrk: reversed(fromHex('611B64EBFBCD1FD372EC9196DF425E50')) }));
  const server = new GattServer({ db, lower, clock: new VirtualClock(), bonds });
  const updatesBefore = bonds.updates.length;
  assert.equal(await exchange(server, lower, 'd2 1200 1337 01000000f1871e933c900ff2'), '', 'no response to a command');
  assert.equal(toHex(db.value('s')), '', 'not written');
  assert.equal(bonds.updates.length, updatesBefore, 'no sign counter saved');
  // The same value as a Write Command is carried out: the characteristic is writable, only the signed form is not served.
  assert.equal(await exchange(server, lower, '52 1200 1337'), '');
  assert.equal(toHex(db.value('s')), '1337');
});

test('a read handler that throws AttError answers with its code; any other failure is Unlikely Error', async () => {
  const { AttError } = await import('../../src/att/types.js');
  const db = buildGattDatabase({
    services: [
      {
        uuid: 0xfff0,
        characteristics: [
          {
            uuid: 0xfff1,
            id: 'a',
            properties: ['read'],
            onRead: () => {
              throw new AttError(0x81, 0);
            },
          },
          {
            uuid: 0xfff2,
            id: 'b',
            properties: ['read'],
            onRead: () => {
              throw new Error('bug');
            },
          },
          { uuid: 0xfff3, id: 'c', properties: ['read'], onRead: async (ctx) => Uint8Array.of(ctx.offset) },
        ],
      },
    ],
  });
  const lower = new FakeLower();
  const server = new GattServer({ db, lower, clock: new VirtualClock() });
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('a'))}`), `010a${h16(db.handle('a'))}81`);
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('b'))}`), '010a00000e');
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('c'))}`), '0b00');
});

/** A database with one Write Without Response / Write characteristic whose handler is `onWrite`, readable, with no read handler. */
function writeSink(onWrite: (v: Uint8Array, ctx: AccessContext) => void | number | Promise<void | number>, authorizeWrite = false) {
  const db = buildGattDatabase({
    gap: { deviceName: 'wh-test' },
    services: [
      {
        uuid: CUSTOM,
        characteristics: [
          { uuid: LONG, id: 'sink', properties: ['read', 'write', 'writeWithoutResponse'], permissions: { authorizeWrite }, maxLength: 64, onWrite },
        ],
      },
    ],
  });
  const lower = new FakeLower();
  return { db, lower, h: db.handle('sink') };
}

test('a Write Command with synchronous checks and handler is carried out before onPdu returns; the handler gets a view of the received bytes, the stored value is a copy', async () => {
  const calls: { v: Uint8Array; hex: string; ctx: AccessContext }[] = [];
  const { db, lower, h } = writeSink((v, ctx) => void calls.push({ v, hex: toHex(v), ctx }));
  const server = new GattServer({ db, lower, clock: new VirtualClock(), mtu: 517 });
  const written: Uint8Array[] = [];
  server.on('written', (_h, v) => written.push(v));
  const raw = fromHex(`52${h16(h)}010203`);
  server.onPdu(raw);
  assert.equal(calls.length, 1, 'done synchronously');
  const c = calls[0] as { v: Uint8Array; hex: string; ctx: AccessContext };
  assert.equal(c.hex, '010203');
  assert.equal(c.v.buffer, raw.buffer, 'the handler reads the received PDU in place (no copy)');
  assert.deepEqual({ handle: c.ctx.handle, offset: c.ctx.offset, via: c.ctx.via }, { handle: h, offset: 0, via: 'writeCommand' });
  assert.equal(c.ctx.connection, server);
  assert.equal(toHex(db.value('sink')), '010203');
  assert.notEqual(db.value('sink').buffer, raw.buffer, 'the stored value is the server\'s own copy');
  assert.equal(written.length, 1);
  assert.notEqual(written[0]?.buffer, raw.buffer, "'written' listeners get their own copy");
  raw.fill(0xee);
  assert.equal(toHex(db.value('sink')), '010203');
  assert.equal(toHex(written[0] as Uint8Array), '010203');
  assert.equal(await exchange(server, lower, `0a${h16(h)}`), '0b010203', 'reads serve the stored copy');
});

test('a value no peer may read and whose writes go to a write handler is not stored (the handler owns it); readable, fixed-length or handler-less values still are', async () => {
  const ID = Uuid.parse('3c1d1002-7f4e-4c55-9d36-0c5f1e2a9b10');
  const FIXED = Uuid.parse('3c1d1003-7f4e-4c55-9d36-0c5f1e2a9b10');
  const PLAIN = Uuid.parse('3c1d1004-7f4e-4c55-9d36-0c5f1e2a9b10');
  const got: string[] = [];
  const onWrite = (v: Uint8Array): void => void got.push(toHex(v));
  const db = buildGattDatabase({
    gap: { deviceName: 'wh-test' },
    services: [
      {
        uuid: CUSTOM,
        characteristics: [
          { uuid: LONG, id: 'control', properties: ['writeWithoutResponse', 'write'], maxLength: 64, value: Uint8Array.of(0xaa), onWrite },
          { uuid: ID, id: 'readable', properties: ['read', 'writeWithoutResponse'], maxLength: 64, onWrite },
          { uuid: FIXED, id: 'fixed', properties: ['writeWithoutResponse'], value: Uint8Array.of(0, 0, 0), fixedLength: true, onWrite },
          { uuid: PLAIN, id: 'plain', properties: ['writeWithoutResponse'], maxLength: 64 },
        ],
      },
    ],
  });
  const lower = new FakeLower();
  const server = new GattServer({ db, lower, clock: new VirtualClock(), mtu: 517 });
  for (const id of ['control', 'readable', 'fixed', 'plain']) server.onPdu(fromHex(`52${h16(db.handle(id))}0102`));
  assert.deepEqual(got, ['0102', '0102', '010200'], 'every handler saw its write (the fixed-length one merged into its value)');
  assert.equal(toHex(db.value('control')), 'aa', 'write-only with a handler: the value the application set stays');
  assert.equal(await exchange(server, lower, `52${h16(db.handle('control'))}09`), '', 'a Write Command has no answer');
  assert.equal(await exchange(server, lower, `12${h16(db.handle('control'))}0304`), '13', 'a Write Request is answered');
  assert.deepEqual(got.slice(3), ['09', '0304']);
  assert.equal(toHex(db.value('control')), 'aa');
  assert.equal(toHex(db.value('readable')), '0102', 'readable: stored, reads serve it');
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('readable'))}`), '0b0102');
  assert.equal(toHex(db.value('fixed')), '010200', 'fixed-length: stored (the next short write merges into it)');
  assert.equal(toHex(db.value('plain')), '0102', 'no handler: stored');
});

test('write contexts: one frozen object per attribute and way of writing, the same for every write', async () => {
  const ctxs: AccessContext[] = [];
  const { db, lower, h } = writeSink((_v, ctx) => void ctxs.push(ctx));
  const server = new GattServer({ db, lower, clock: new VirtualClock() });
  server.onPdu(fromHex(`52${h16(h)}01`));
  server.onPdu(fromHex(`52${h16(h)}02`));
  assert.equal(await exchange(server, lower, `12${h16(h)}03`), '13');
  assert.equal(ctxs.length, 3);
  assert.equal(ctxs[0], ctxs[1]);
  assert.notEqual(ctxs[2], ctxs[0]);
  assert.deepEqual(ctxs.map((c) => c.via), ['writeCommand', 'writeCommand', 'writeRequest']);
  assert.ok(ctxs.every((c) => Object.isFrozen(c)));
});

test('an asynchronous write handler is awaited: the value is stored after it accepts; its error code refuses a Write Request; a rejection is Unlikely Error', async () => {
  let answer: () => void | number = () => undefined;
  let open!: () => void;
  let gate = new Promise<void>((r) => (open = r));
  const { db, lower, h } = writeSink(async () => {
    await gate;
    return answer();
  });
  const server = new GattServer({ db, lower, clock: new VirtualClock() });
  server.onPdu(fromHex(`52${h16(h)}aa`));
  await settle();
  assert.equal(db.value('sink').length, 0, 'not stored before the handler accepted');
  open();
  await settle();
  assert.equal(toHex(db.value('sink')), 'aa');
  gate = Promise.resolve();
  answer = () => 0x80;
  assert.equal(await exchange(server, lower, `12${h16(h)}bb`), `0112${h16(h)}80`);
  assert.equal(toHex(db.value('sink')), 'aa', 'a refused write is not stored');
  answer = () => {
    throw new Error('boom');
  };
  assert.equal(await exchange(server, lower, `12${h16(h)}cc`), '011200000e', 'Unlikely Error with handle 0x0000');
  assert.equal(toHex(db.value('sink')), 'aa');
});

test('a Write Command to an attribute that needs authorization waits for an asynchronous hook: refused is ignored, allowed is written', async () => {
  const got: string[] = [];
  const { db, lower, h } = writeSink((v) => void got.push(toHex(v)), true);
  let allow = false;
  const server = new GattServer({ db, lower, clock: new VirtualClock(), authorize: async () => allow });
  server.onPdu(fromHex(`52${h16(h)}01`));
  await settle();
  assert.deepEqual(got, []);
  allow = true;
  server.onPdu(fromHex(`52${h16(h)}02`));
  await settle();
  assert.deepEqual(got, ['02']);
  assert.equal(toHex(db.value('sink')), '02');
  assert.deepEqual(lower.take(), [], 'commands are never answered');
});
