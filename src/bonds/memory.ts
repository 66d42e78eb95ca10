/**
 * A BondStore kept in memory only: tests, the simulator, and `--no-bonds` style runs where
 * nothing may be written to disk. Same validation, eviction rule and RPA resolution as the file
 * store (both are built on {@link BondTable}).
 */
import type { Address } from '../util/address.js';
import { formatAddress } from '../util/address.js';
import { silentLogger, type Logger } from '../util/log.js';
import { BondStoreError } from './errors.js';
import { checkLocalIdentity } from './record.js';
import { BondTable, DEFAULT_MAX_BONDS } from './table.js';
import type { BondRecord, BondStore, BondStoreCapacity, LocalIdentity, WhenBondStoreFull } from './types.js';

export interface MemoryBondStoreOptions {
  /**
   * Most bonds kept (default 16). Adding a NEW peer to a full store is refused (default) or evicts
   * the least recently seen bond (by `lastSeenAt`), per `whenFull`; updating or replacing an
   * existing peer never evicts.
   */
  maxBonds?: number;
  /** What a full store does with a new peer (default 'refuse'). */
  whenFull?: WhenBondStoreFull;
  /** Our identity to start with. */
  localIdentity?: LocalIdentity;
  /** Bonds to start with (validated, subject to `maxBonds` like any put). */
  bonds?: readonly BondRecord[];
  logger?: Logger;
}

/**
 * In-memory {@link BondStore}. Writes resolve at once (they are "durable" as soon as memory is
 * written). After close() every write rejects.
 */
export class MemoryBondStore implements BondStore {
  readonly description = 'memory';
  private readonly table: BondTable;
  private identity: LocalIdentity | undefined;
  private readonly log: Logger;
  private closed = false;

  constructor(opts: MemoryBondStoreOptions = {}) {
    this.table = new BondTable(opts.maxBonds ?? DEFAULT_MAX_BONDS, opts.whenFull ?? 'refuse');
    this.log = opts.logger ?? silentLogger();
    if (opts.localIdentity) this.identity = checkLocalIdentity(opts.localIdentity);
    for (const b of opts.bonds ?? []) this.table.put(b);
  }

  /** Bound on the number of bonds. */
  get maxBonds(): number {
    return this.table.maxBonds;
  }

  capacity(): BondStoreCapacity {
    return this.table.capacity();
  }

  /** ah() evaluations done by resolve() so far (the RPA cache avoids repeating them). */
  get ahCalls(): number {
    return this.table.ahCalls;
  }

  getLocalIdentity(): LocalIdentity | undefined {
    return this.identity;
  }

  async setLocalIdentity(id: LocalIdentity): Promise<void> {
    this.assertOpen();
    this.identity = checkLocalIdentity(id);
  }

  get(peer: Address): BondRecord | undefined {
    return this.table.get(peer);
  }

  list(): readonly BondRecord[] {
    return this.table.list();
  }

  resolve(address: Address): BondRecord | undefined {
    return this.table.resolve(address);
  }

  async put(record: BondRecord): Promise<void> {
    this.assertOpen();
    for (const e of this.table.put(record)) {
      this.log.warn({ evicted: formatAddress(e.peer), lastSeenAt: e.lastSeenAt }, 'bond store full: evicted the least recently seen bond');
    }
  }

  async update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): Promise<void> {
    this.assertOpen();
    this.table.update(peer, patch);
  }

  async remove(peer: Address): Promise<boolean> {
    this.assertOpen();
    return this.table.remove(peer);
  }

  async clear(): Promise<void> {
    this.assertOpen();
    this.table.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new BondStoreError('closed', undefined, 'the in-memory bond store was closed; open a new one');
  }
}
