/**
 * A BondStore wrapper that reports bonds saved and removed (by SMP, by `remove`/`clear`, or evicted
 * when a new peer filled the store), for the Wearable's 'bondSaved' / 'bondRemoved' events.
 */
import type { BondRecord, BondStore, BondStoreCapacity, LocalIdentity } from '../bonds/types.js';
import type { Address } from '../util/address.js';

export class ObservedBondStore implements BondStore {
  /**
   * The inner store's capacity, when it has one: SMP's bond-commit policy reads it to refuse a new
   * peer's pairing up front (Pairing Failed 0x08) when the store is full and refuses new peers.
   */
  readonly capacity?: () => BondStoreCapacity;

  constructor(
    private readonly inner: BondStore,
    private readonly saved: (r: BondRecord) => void,
    private readonly removed: (peer: Address) => void,
  ) {
    const capacity = inner.capacity;
    if (capacity) this.capacity = () => capacity.call(inner);
  }

  get description(): string {
    return this.inner.description;
  }
  getLocalIdentity(): LocalIdentity | undefined {
    return this.inner.getLocalIdentity();
  }
  setLocalIdentity(id: LocalIdentity): Promise<void> {
    return this.inner.setLocalIdentity(id);
  }
  get(peer: Address): BondRecord | undefined {
    return this.inner.get(peer);
  }
  list(): readonly BondRecord[] {
    return this.inner.list();
  }
  resolve(address: Address): BondRecord | undefined {
    return this.inner.resolve(address);
  }
  async put(record: BondRecord): Promise<void> {
    const before = this.inner.list().map((b) => b.peer);
    await this.inner.put(record);
    const after = this.inner.list();
    for (const p of before) {
      if (!after.some((b) => b.peer.type === p.type && b.peer.address === p.address)) this.removed(p);
    }
    this.saved(record);
  }
  update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): Promise<void> {
    return this.inner.update(peer, patch);
  }
  async remove(peer: Address): Promise<boolean> {
    const r = await this.inner.remove(peer);
    if (r) this.removed(peer);
    return r;
  }
  async clear(): Promise<void> {
    const before = this.inner.list().map((b) => b.peer);
    await this.inner.clear();
    for (const p of before) this.removed(p);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
