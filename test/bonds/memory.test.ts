import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { BondStoreError } from '../../src/bonds/errors.js';
import { generateIrk, generateRpa } from '../../src/privacy/rpa.js';
import { seededRandom } from '../../src/util/random.js';
import { fullBond, minimalBond, peerAddress } from './fixtures/records.js';

test('memory store keeps a copy of each bond, keyed by identity address type and text', async () => {
  const s = new MemoryBondStore();
  const b = fullBond(1);
  await s.put(b);
  (b.ltk as Uint8Array)[0] = 0xee; // caller mutates its own copy afterwards
  const got = s.get({ type: 'public', address: b.peer.address.toLowerCase() });
  assert.ok(got);
  assert.notEqual(got.ltk[0], 0xee);
  assert.equal(s.get({ type: 'random', address: b.peer.address }), undefined);
  assert.equal(s.list().length, 1);
  assert.equal(s.description, 'memory');
});

test('memory store update patches fields of an existing bond and is a no-op for an unknown peer', async () => {
  const s = new MemoryBondStore();
  await s.put(minimalBond(1));
  await s.update(peerAddress(1), { cccd: { 0x0020: 2 }, lastSeenAt: '2026-03-01T00:00:00.000Z' });
  assert.deepEqual(s.get(peerAddress(1))?.cccd, { 0x20: 2 });
  assert.equal(s.get(peerAddress(1))?.lastSeenAt, '2026-03-01T00:00:00.000Z');
  await s.update(peerAddress(9), { keySize: 7 });
  assert.equal(s.list().length, 1);
  assert.equal(await s.remove(peerAddress(1)), true);
  assert.equal(await s.remove(peerAddress(1)), false);
});

test('memory store refuses malformed records naming the field', async () => {
  const s = new MemoryBondStore();
  await assert.rejects(s.put(minimalBond(1, { ltk: new Uint8Array(15) })), (e: unknown) => e instanceof BondStoreError && e.code === 'invalidRecord' && /ltk/.test(e.message));
  await assert.rejects(s.put(minimalBond(1, { keySize: 6 })), /keySize/);
  await assert.rejects(s.put(minimalBond(1, { lastSeenAt: 'yesterday' })), /lastSeenAt/);
  await s.put(minimalBond(1));
  await assert.rejects(s.update(peerAddress(1), { cccd: { 0: 1 } }), /cccd key/);
  assert.equal(s.list().length, 1);
});

test('memory store refuses a new peer when full by default (BondStoreError full), replacing a stored peer still works', async () => {
  const s = new MemoryBondStore({ maxBonds: 2 });
  await s.put(minimalBond(1));
  await s.put(minimalBond(2));
  await assert.rejects(s.put(minimalBond(3)), (e: unknown) => e instanceof BondStoreError && e.code === 'full' && /full \(2 of 2 bonds\)/.test(e.message));
  await s.put(minimalBond(2, { keySize: 16 }));
  assert.deepEqual(s.list().map((b) => b.peer.address).sort(), [peerAddress(1), peerAddress(2)].map((a) => a.address).sort());
  assert.deepEqual(s.capacity(), { stored: 2, max: 2, whenFull: 'refuse' });
});

test("memory store with whenFull 'evict-oldest' evicts the least recently seen bond when a new peer arrives and it is full", async () => {
  const s = new MemoryBondStore({ maxBonds: 3, whenFull: 'evict-oldest' });
  await s.put(minimalBond(1, { lastSeenAt: '2026-01-05T00:00:00.000Z' }));
  await s.put(minimalBond(2, { lastSeenAt: '2026-01-03T00:00:00.000Z' }));
  await s.put(minimalBond(3, { lastSeenAt: '2026-01-04T00:00:00.000Z' }));
  await s.put(minimalBond(2, { lastSeenAt: '2026-01-03T00:00:00.000Z', keySize: 16 })); // existing: no eviction
  assert.equal(s.list().length, 3);
  await s.put(minimalBond(4, { lastSeenAt: '2026-01-01T00:00:00.000Z' }));
  assert.deepEqual(s.list().map((b) => b.peer.address).sort(), [peerAddress(1), peerAddress(3), peerAddress(4)].map((a) => a.address).sort());
});

test('memory store resolves an RPA through the peer IRK and forgets after remove', async () => {
  const rng = seededRandom('mem-rpa');
  const irk = generateIrk(rng);
  const s = new MemoryBondStore();
  await s.put(minimalBond(1, { peerIrk: irk }));
  const rpa = generateRpa(irk, rng);
  assert.equal(s.resolve(rpa)?.peer.address, peerAddress(1).address);
  assert.equal(s.resolve(peerAddress(1))?.peer.address, peerAddress(1).address);
  await s.remove(peerAddress(1));
  assert.equal(s.resolve(rpa), undefined);
});

test('memory store rejects writes after close', async () => {
  const s = new MemoryBondStore();
  await s.close();
  await assert.rejects(s.put(minimalBond(1)), (e: unknown) => e instanceof BondStoreError && e.code === 'closed');
});
