/**
 * The in-memory table every BondStore serves reads from: bonds by identity address, the eviction
 * rule, and resolvable private address resolution with a per-address cache.
 */
import type { Address } from '../util/address.js';
import { addressToWire, isResolvablePrivateAddress } from '../util/address.js';
import { bytesEqual } from '../util/bytes.js';
import { ah } from '../crypto/index.js';
import { bondKey, checkBondRecord } from './record.js';
import { BondStoreError } from './errors.js';
import type { BondRecord, BondStoreCapacity, WhenBondStoreFull } from './types.js';

/** Default bound on the number of bonds a store keeps. */
export const DEFAULT_MAX_BONDS = 16;
/** How many connection addresses the RPA cache remembers (oldest forgotten first). */
export const RPA_CACHE_SIZE = 256;

const ZERO_IRK = new Uint8Array(16);

function seenAt(r: BondRecord): number {
  return Date.parse(r.lastSeenAt);
}

/**
 * Bonds by identity address, bounded to `maxBonds`.
 *
 * When a bond for a peer that is NOT yet stored is added to a full table: with `whenFull`
 * 'refuse' (the default) put() throws BondStoreError 'full' and nothing changes; with
 * 'evict-oldest' the least recently seen bond (smallest `lastSeenAt`; ties broken by oldest
 * `createdAt`, then by the order they were stored) is removed, as many times as needed to make
 * room. Replacing or updating the bond of a peer already stored never evicts anything.
 */
export class BondTable {
  private readonly byKey = new Map<string, BondRecord>();
  /** Connection address text -> bond key it resolved to, or null when no IRK resolved it. */
  private readonly rpaCache = new Map<string, string | null>();
  /** Number of ah() evaluations done by {@link resolve}, for tests and diagnostics. */
  ahCalls = 0;

  constructor(
    readonly maxBonds: number = DEFAULT_MAX_BONDS,
    readonly whenFull: WhenBondStoreFull = 'refuse',
  ) {
    if (!Number.isInteger(maxBonds) || maxBonds < 1) throw new RangeError(`maxBonds must be a positive integer, got ${maxBonds}`);
  }

  capacity(): BondStoreCapacity {
    return { stored: this.byKey.size, max: this.maxBonds, whenFull: this.whenFull };
  }

  get size(): number {
    return this.byKey.size;
  }

  get(peer: Address): BondRecord | undefined {
    return this.byKey.get(bondKey(peer));
  }

  list(): readonly BondRecord[] {
    return [...this.byKey.values()];
  }

  /**
   * An identity address matches its bond directly; a resolvable private address matches the bond
   * whose IRK gives ah(IRK, prand) == hash (Core 5.4 Vol 3 Part H 2.2.2). The answer for each RPA
   * (including "none") is cached until the set of bonds or their IRKs change.
   */
  resolve(address: Address): BondRecord | undefined {
    const direct = this.byKey.get(bondKey(address));
    if (direct) return direct;
    if (!isResolvablePrivateAddress(address)) return undefined;
    const text = address.address.toUpperCase();
    const cached = this.rpaCache.get(text);
    if (cached !== undefined) return cached === null ? undefined : this.byKey.get(cached);
    const wire = addressToWire(text);
    const hash = wire.subarray(0, 3);
    const prand = wire.subarray(3, 6);
    let found: string | null = null;
    for (const [key, bond] of this.byKey) {
      const irk = bond.peerIrk;
      if (!irk || bytesEqual(irk, ZERO_IRK)) continue;
      this.ahCalls++;
      if (bytesEqual(ah(irk, prand), hash)) {
        found = key;
        break;
      }
    }
    if (this.rpaCache.size >= RPA_CACHE_SIZE) {
      const oldest = this.rpaCache.keys().next();
      if (!oldest.done) this.rpaCache.delete(oldest.value);
    }
    this.rpaCache.set(text, found);
    return found === null ? undefined : this.byKey.get(found);
  }

  /**
   * Validates and stores a copy of `record`, replacing any bond for the same identity address.
   * Returns the bonds evicted to make room (see the class's eviction rule).
   */
  put(record: BondRecord): BondRecord[] {
    const copy = checkBondRecord(record);
    const key = bondKey(copy.peer);
    const evicted: BondRecord[] = [];
    if (!this.byKey.has(key) && this.whenFull === 'refuse' && this.byKey.size >= this.maxBonds) {
      throw new BondStoreError('full', undefined, `the bond store is full (${this.byKey.size} of ${this.maxBonds} bonds); remove a bond first`);
    }
    if (!this.byKey.has(key)) {
      while (this.byKey.size >= this.maxBonds) {
        const victim = this.leastRecentlySeen();
        if (!victim) break;
        this.byKey.delete(bondKey(victim.peer));
        evicted.push(victim);
      }
    }
    this.byKey.set(key, copy);
    this.rpaCache.clear();
    return evicted;
  }

  /** Applies `patch` to an existing bond (validated as a whole). Returns false when there is none. */
  update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): boolean {
    const key = bondKey(peer);
    const old = this.byKey.get(key);
    if (!old) return false;
    const merged = { ...old, ...patch, peer: old.peer } as BondRecord;
    const copy = checkBondRecord(merged);
    this.byKey.set(key, copy);
    if ('peerIrk' in patch) this.rpaCache.clear();
    return true;
  }

  remove(peer: Address): boolean {
    const removed = this.byKey.delete(bondKey(peer));
    if (removed) this.rpaCache.clear();
    return removed;
  }

  clear(): void {
    this.byKey.clear();
    this.rpaCache.clear();
  }

  /** Replaces the whole content with already-validated records (loading a file). */
  load(records: readonly BondRecord[]): void {
    this.clear();
    for (const r of records) this.byKey.set(bondKey(r.peer), r);
  }

  private leastRecentlySeen(): BondRecord | undefined {
    let best: BondRecord | undefined;
    for (const r of this.byKey.values()) {
      if (!best) {
        best = r;
        continue;
      }
      const a = seenAt(r);
      const b = seenAt(best);
      if (a < b || (a === b && Date.parse(r.createdAt) < Date.parse(best.createdAt))) best = r;
    }
    return best;
  }
}
