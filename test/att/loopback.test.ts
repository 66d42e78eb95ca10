/** Our bearer as a client against our server, wired back to back: the client-side request API and the server agree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttBearer } from '../../src/att/bearer.js';
import { GattServer } from '../../src/gatt/server.js';
import type { AttLower } from '../../src/att/types.js';
import type { GattServerLower } from '../../src/gatt/server.js';
import { WearableProfile } from '../../src/gatt/profile.js';
import { VirtualClock } from '../../src/util/clock.js';
import { MutableSecurity, LINKS, PEER } from './helpers.js';

function wire(): { client: AttBearer; server: GattServer; profile: WearableProfile } {
  const profile = new WearableProfile();
  const clock = new VirtualClock();
  const security = new MutableSecurity(LINKS.L2);
  let server!: GattServer;
  let client!: AttBearer;
  const toServer: AttLower = { send: async (p) => queueMicrotask(() => server.onPdu(p)), peer: PEER };
  const toClient: GattServerLower = { send: async (p) => queueMicrotask(() => client.onPdu(p)), security, peer: PEER, peerIdentity: () => undefined };
  server = new GattServer({ db: profile.db, lower: toClient, clock, mtu: 247 });
  client = new AttBearer({ lower: toServer, clock, mtu: 185 });
  return { client, server, profile };
}

test('client requests against the server: MTU exchange, service discovery, a long read, a subscription and its notification', async () => {
  const { client, server, profile } = wire();
  assert.deepEqual(await client.request({ type: 'exchangeMtuRequest', clientRxMtu: 185 }), { type: 'exchangeMtuResponse', serverRxMtu: 247 });
  assert.equal(client.mtu, 185);
  assert.equal(server.mtu, 185);
  const groups = await client.request({ type: 'readByGroupTypeRequest', startHandle: 1, endHandle: 0xffff, groupType: Uint8Array.of(0x00, 0x28) });
  assert.ok(groups.type === 'readByGroupTypeResponse');
  assert.deepEqual(
    groups.data.map((d) => d.handle),
    profile.db.services.filter((s) => s.uuid.is16).map((s) => s.handle),
  );
  await profile.appendHealthRecord(new Uint8Array(300).fill(0x42));
  const rec = profile.db.handle('health.record');
  const first = await client.request({ type: 'readRequest', handle: rec });
  assert.ok(first.type === 'readResponse' && first.value.length === 184);
  const rest = await client.request({ type: 'readBlobRequest', handle: rec, offset: 184 });
  assert.ok(rest.type === 'readBlobResponse' && rest.value.length === 116);
  const cccd = profile.db.characteristic('bas.level')?.cccdHandle as number;
  assert.deepEqual(await client.request({ type: 'writeRequest', handle: cccd, value: Uint8Array.of(1, 0) }), { type: 'writeResponse' });
  const got = new Promise<[number, Uint8Array]>((resolve) => client.once('peerNotification', (h, v) => resolve([h, v])));
  await profile.setBattery(42);
  const [h, v] = await got;
  assert.equal(h, profile.db.handle('bas.level'));
  assert.deepEqual([...v], [42]);
  client.onDisconnected();
  server.onDisconnected();
});
