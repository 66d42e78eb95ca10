/**
 * The permission matrix: every permission class x every link security state x bond present or
 * not, for read, write, long read (Read Blob), long write (Prepare + Execute), Read By Type and
 * CCCD write. Expected error codes are written out by hand below (not computed by the code under
 * test) and asserted on the exact response bytes, handle included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattServer } from '../../src/gatt/server.js';
import { buildGattDatabase, type PermissionsDefinition } from '../../src/gatt/database.js';
import { Uuid } from '../../src/gatt/uuid.js';
import { VirtualClock } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import { FakeBondStore, FakeLower, IDENTITY, LINKS, bondRecord, exchange, type SecurityPreset } from '../att/helpers.js';

type LinkName = keyof typeof LINKS;
const LINK_ORDER: LinkName[] = ['L1', 'L1ltk', 'L2', 'L2k7', 'L3', 'L4'];

interface Variant {
  readonly name: string;
  readonly permissions: PermissionsDefinition;
}
const VARIANTS: Variant[] = [
  { name: 'none', permissions: { read: 'none', write: 'none' } },
  { name: 'encrypted', permissions: { read: 'encrypted', write: 'encrypted' } },
  { name: 'authenticated', permissions: { read: 'authenticated', write: 'authenticated' } },
  { name: 'secureConnections', permissions: { read: 'secureConnections', write: 'secureConnections' } },
  { name: 'notPermitted', permissions: { read: 'notPermitted', write: 'notPermitted' } },
  { name: 'none + authorization refused', permissions: { read: 'none', write: 'none', authorizeRead: true, authorizeWrite: true } },
  { name: 'encrypted + authorization refused', permissions: { read: 'encrypted', write: 'encrypted', authorizeRead: true, authorizeWrite: true } },
];

const OK = 0;
/** Expected result per link, in LINK_ORDER: L1 no key, L1 with LTK, L2 key 16, L2 key 7, L3, L4. */
type Row = readonly [number, number, number, number, number, number];

// Reads (Read, Read Blob, Read By Type) of the value.
const READ: Record<string, Row> = {
  none: [OK, OK, OK, OK, OK, OK],
  encrypted: [0x05, 0x0f, OK, 0x0c, OK, OK],
  authenticated: [0x05, 0x0f, 0x05, 0x05, OK, OK],
  secureConnections: [0x05, 0x0f, 0x05, 0x05, 0x05, OK],
  notPermitted: [0x02, 0x02, 0x02, 0x02, 0x02, 0x02],
  'none + authorization refused': [0x08, 0x08, 0x08, 0x08, 0x08, 0x08],
  'encrypted + authorization refused': [0x05, 0x0f, 0x08, 0x0c, 0x08, 0x08],
};
// Writes (Write Request, Prepare Write) of the value.
const WRITE: Record<string, Row> = {
  ...READ,
  notPermitted: [0x03, 0x03, 0x03, 0x03, 0x03, 0x03],
};
// The CCCD takes the value's write class ('none' when the value can be neither read nor written);
// authorization on the value does not extend to the CCCD.
const CCCD: Record<string, Row> = {
  none: READ.none as Row,
  encrypted: READ.encrypted as Row,
  authenticated: READ.authenticated as Row,
  secureConnections: READ.secureConnections as Row,
  notPermitted: [OK, OK, OK, OK, OK, OK],
  'none + authorization refused': [OK, OK, OK, OK, OK, OK],
  'encrypted + authorization refused': [0x05, 0x0f, OK, 0x0c, OK, OK],
};

const UUID = Uuid.parse('3c1d0001-7f4e-4c55-9d36-0c5f1e2a9b10');
const VALUE = Uint8Array.from({ length: 60 }, (_, i) => i);

function h16(v: number): string {
  return toHex(Uint8Array.of(v & 0xff, v >> 8));
}
function err(op: number, handle: number, code: number): string {
  return `01${op.toString(16).padStart(2, '0')}${h16(handle)}${code.toString(16).padStart(2, '0')}`;
}

async function setup(v: Variant, link: SecurityPreset, bonded: boolean) {
  const db = buildGattDatabase({
    services: [{ uuid: 0xfff0, characteristics: [{ uuid: UUID, id: 'x', properties: ['read', 'write', 'notify'], permissions: v.permissions, value: VALUE }] }],
  });
  const lower = new FakeLower();
  lower.security.set(link);
  const bonds = new FakeBondStore();
  if (bonded) {
    lower.identity = IDENTITY;
    await bonds.put(bondRecord());
  }
  const server = new GattServer({ db, lower, clock: new VirtualClock(), bonds, mtu: 23, authorize: () => false });
  const handle = db.handle('x');
  const cccd = db.characteristic('x')?.cccdHandle as number;
  return { db, lower, bonds, server, handle, cccd };
}

type Op = 'read' | 'write' | 'readBlob' | 'longWrite' | 'readByType' | 'cccdWrite';
const OPS: { op: Op; table: Record<string, Row>; label: string }[] = [
  { op: 'read', table: READ, label: 'Read Request' },
  { op: 'write', table: WRITE, label: 'Write Request' },
  { op: 'readBlob', table: READ, label: 'long read (Read Blob at offset 22)' },
  { op: 'longWrite', table: WRITE, label: 'long write (Prepare Write + Execute Write)' },
  { op: 'readByType', table: READ, label: 'Read By Type over 0x0001..0xFFFF' },
  { op: 'cccdWrite', table: CCCD, label: 'CCCD write (enable notifications)' },
];

for (const { op, table, label } of OPS) {
  for (const v of VARIANTS) {
    const row = table[v.name] as Row;
    test(`${label} of a "${v.name}" attribute: exact error code and handle on every link, bonded or not`, async () => {
      for (const [i, linkName] of LINK_ORDER.entries()) {
        for (const bonded of [false, true]) {
          const link = LINKS[linkName];
          const expected = row[i] as number;
          const where = `${link.name}, ${bonded ? 'bond present' : 'no bond'}`;
          const { lower, bonds, server, handle, cccd } = await setup(v, link, bonded);
          let got: string;
          let want: string;
          switch (op) {
            case 'read':
              got = await exchange(server, lower, `0a${h16(handle)}`);
              want = expected ? err(0x0a, handle, expected) : `0b${toHex(VALUE.subarray(0, 22))}`;
              break;
            case 'write':
              got = await exchange(server, lower, `12${h16(handle)}01`);
              want = expected ? err(0x12, handle, expected) : '13';
              break;
            case 'readBlob':
              got = await exchange(server, lower, `0c${h16(handle)}1600`);
              want = expected ? err(0x0c, handle, expected) : `0d${toHex(VALUE.subarray(22, 44))}`;
              break;
            case 'longWrite': {
              const part = toHex(VALUE.subarray(0, 18));
              got = await exchange(server, lower, `16${h16(handle)}0000${part}`);
              want = expected ? err(0x16, handle, expected) : `17${h16(handle)}0000${part}`;
              if (!expected) {
                assert.equal(got, want, `${where}: prepare`);
                got = await exchange(server, lower, '1801');
                want = '19';
              }
              break;
            }
            case 'readByType':
              got = await exchange(server, lower, `080100ffff${toHex(UUID.bytes)}`);
              // MTU 23: pair = handle + min(23-4, 253) = 19 value bytes -> length 0x15.
              want = expected ? err(0x08, handle, expected) : `0915${h16(handle)}${toHex(VALUE.subarray(0, 19))}`;
              break;
            case 'cccdWrite':
              got = await exchange(server, lower, `12${h16(cccd)}0100`);
              want = expected ? err(0x12, cccd, expected) : '13';
              break;
          }
          assert.equal(got, want, where);
          // Every 0x05 / 0x0F is reported to SMP, nothing else is.
          assert.deepEqual(lower.rejections, expected === 0x05 || expected === 0x0f ? [expected] : [], `${where}: rejections`);
          if (op === 'cccdWrite') {
            // A subscription persists only for a bonded peer on an encrypted link.
            const persisted = bonds.updates.filter((u) => u.patch.cccd !== undefined).map((u) => u.patch.cccd);
            const shouldPersist = bonded && link.encrypted && expected === 0;
            assert.deepEqual(persisted, shouldPersist ? [{ [cccd]: 1 }] : [], `${where}: CCCD persistence`);
            assert.equal(server.isSubscribed(handle, 'notify'), expected === 0, `${where}: subscribed`);
          }
          server.onDisconnected();
        }
      }
    });
  }
}

test('the minimum key size is configurable: a 7-byte key satisfies "encrypted" with minKeySize 7 but never "secureConnections"', async () => {
  for (const [perm, want] of [
    ['encrypted', '0b'],
    ['secureConnections', null],
  ] as const) {
    const db = buildGattDatabase({ services: [{ uuid: 0xfff0, characteristics: [{ uuid: UUID, id: 'x', properties: ['read'], permissions: { read: perm }, value: 'v' }] }] });
    const lower = new FakeLower();
    lower.security.set({ ...LINKS.L4, keySize: 7 });
    const server = new GattServer({ db, lower, clock: new VirtualClock(), minKeySize: 7 });
    const h = db.handle('x');
    const got = await exchange(server, lower, `0a${h16(h)}`);
    assert.equal(got, want ? `${want}76` : err(0x0a, h, 0x0c), perm);
  }
});

test('an authorization hook that allows lets the access through; a per-attribute hook wins over the server one', async () => {
  const seen: string[] = [];
  const db = buildGattDatabase({
    services: [
      {
        uuid: 0xfff0,
        characteristics: [
          { uuid: UUID, id: 'x', properties: ['read'], permissions: { authorizeRead: true }, value: 'ok' },
          {
            uuid: 0xfff2,
            id: 'y',
            properties: ['read'],
            permissions: { authorizeRead: true },
            value: 'no',
            authorize: (r) => {
              seen.push(`${r.op}@${r.handle}`);
              return false;
            },
          },
        ],
      },
    ],
  });
  const lower = new FakeLower();
  const server = new GattServer({ db, lower, clock: new VirtualClock(), authorize: async () => true });
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('x'))}`), '0b6f6b');
  assert.equal(await exchange(server, lower, `0a${h16(db.handle('y'))}`), err(0x0a, db.handle('y'), 0x08));
  assert.deepEqual(seen, [`read@${db.handle('y')}`]);
});
