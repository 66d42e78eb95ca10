/**
 * The library's observed bond store (src/lib/bond-events.ts) reports saves and removals and is
 * otherwise the store it wraps: in particular SMP's bond-commit policy must see how full the inner
 * store is, so that a full store refuses a new peer's pairing up front (Pairing Failed 0x08) and not
 * after the keys were exchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import type { BondRecord } from '../../src/bonds/types.js';
import { ObservedBondStore } from '../../src/lib/bond-events.js';
import { PairingBackoff } from '../../src/smp/backoff.js';
import { SmpSession } from '../../src/smp/pairing.js';
import type { Address } from '../../src/util/address.js';
import { fromHex } from '../../src/util/bytes.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { FakeLower, PERIPHERAL_ADDR, PERIPHERAL_IDENTITY, ScriptedCentral, inject } from '../smp/harness.js';

function bond(peer: Address): BondRecord {
  const at = '2025-01-01T00:00:00.000Z';
  return { peer, ltk: fromHex('aa'.repeat(16)), ediv: 0, rand: 0n, keySize: 16, authenticated: false, secureConnections: true, cccd: {}, gatt: { clientFeatures: 0, changeAware: true }, createdAt: at, lastSeenAt: at };
}

test('the observed store reports the inner store capacity, and a full one refuses a new peer\'s Pairing Request with 0x08 before any Pairing Response', async () => {
  const owner: Address = { type: 'random', address: 'C0:00:00:00:01:00' };
  const inner = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, maxBonds: 1, bonds: [bond(owner)] });
  const saved: BondRecord[] = [];
  const observed = new ObservedBondStore(inner, (r) => saved.push(r), () => undefined);
  assert.deepEqual(observed.capacity?.(), { stored: 1, max: 1, whenFull: 'refuse' });

  const stranger: Address = { type: 'random', address: 'C0:00:00:00:00:07' };
  const clock = new VirtualClock();
  const lower = new FakeLower('peripheral', PERIPHERAL_ADDR, stranger);
  const session = new SmpSession({ lower, bonds: observed, clock, random: seededRandom('observed'), backoff: new PairingBackoff(clock) });
  session.start();
  await inject(session, new ScriptedCentral(stranger).request());
  assert.deepEqual(lower.take(), ['0508']);
  assert.deepEqual(saved, []);
  assert.ok(inner.get(owner), "the owner's bond is kept");
});

test('a store without capacity() stays without it when observed (SMP then cannot refuse up front)', () => {
  const observed = new ObservedBondStore(wrap(new MemoryBondStore()), () => undefined, () => undefined);
  assert.equal(observed.capacity, undefined);
});

/** The inner store seen through the BondStore interface only, without the optional capacity(). */
function wrap(inner: MemoryBondStore): ConstructorParameters<typeof ObservedBondStore>[0] {
  return {
    description: inner.description,
    getLocalIdentity: () => inner.getLocalIdentity(),
    setLocalIdentity: (id) => inner.setLocalIdentity(id),
    get: (p) => inner.get(p),
    list: () => inner.list(),
    resolve: (a) => inner.resolve(a),
    put: (r) => inner.put(r),
    update: (p, patch) => inner.update(p, patch),
    remove: (p) => inner.remove(p),
    clear: () => inner.clear(),
    close: () => inner.close(),
  };
}
