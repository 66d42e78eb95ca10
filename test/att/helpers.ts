/** Test doubles for the ATT layer and the GATT server: a scripted lower layer, link security presets, an in-memory bond store. */
import type { Address } from '../../src/util/address.js';
import type { LinkSecurity, SecurityLevel } from '../../src/smp/link-security.js';
import type { GattServerLower } from '../../src/gatt/server.js';
import type { BondRecord, BondStore, LocalIdentity } from '../../src/bonds/types.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { settle } from '../../src/util/clock.js';

export interface SecurityPreset {
  readonly name: string;
  readonly encrypted: boolean;
  readonly keySize: number;
  readonly authenticated: boolean;
  readonly secureConnections: boolean;
  readonly level: SecurityLevel;
  readonly ltk: boolean;
}

/** The link states of the permission matrix. */
export const LINKS = {
  L1: { name: 'L1 no key', encrypted: false, keySize: 0, authenticated: false, secureConnections: false, level: 1, ltk: false },
  L1ltk: { name: 'L1 with LTK', encrypted: false, keySize: 0, authenticated: false, secureConnections: false, level: 1, ltk: true },
  L2: { name: 'L2 key 16', encrypted: true, keySize: 16, authenticated: false, secureConnections: true, level: 2, ltk: true },
  L2k7: { name: 'L2 key 7', encrypted: true, keySize: 7, authenticated: false, secureConnections: true, level: 2, ltk: true },
  L3: { name: 'L3 (legacy MITM, key 16)', encrypted: true, keySize: 16, authenticated: true, secureConnections: false, level: 3, ltk: true },
  L4: { name: 'L4 (LESC MITM, key 16)', encrypted: true, keySize: 16, authenticated: true, secureConnections: true, level: 4, ltk: true },
} as const satisfies Record<string, SecurityPreset>;

export class MutableSecurity implements LinkSecurity {
  encrypted = false;
  keySize = 0;
  authenticated = false;
  secureConnections = false;
  level: SecurityLevel = 1;
  ltk = false;
  constructor(p: SecurityPreset = LINKS.L1) {
    this.set(p);
  }
  set(p: SecurityPreset): void {
    this.encrypted = p.encrypted;
    this.keySize = p.keySize;
    this.authenticated = p.authenticated;
    this.secureConnections = p.secureConnections;
    this.level = p.level;
    this.ltk = p.ltk;
  }
  hasLtk(): boolean {
    return this.ltk;
  }
}

export const PEER: Address = { type: 'random', address: '5A:11:22:33:44:55' };
export const IDENTITY: Address = { type: 'public', address: '00:1B:DC:01:02:03' };

/** A lower layer that records what the bearer sends. `hold` keeps sends pending until `release()`. */
export class FakeLower implements GattServerLower {
  readonly security = new MutableSecurity();
  readonly peer = PEER;
  identity: Address | undefined;
  readonly sent: Uint8Array[] = [];
  readonly rejections: number[] = [];
  hold = false;
  private readonly waiting: (() => void)[] = [];

  send(pdu: Uint8Array): Promise<void> {
    this.sent.push(pdu.slice());
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  peerIdentity(): Address | undefined {
    return this.identity;
  }
  onSecurityRejection(code: number): void {
    this.rejections.push(code);
  }
  /** Lets `n` held sends complete (all when omitted). */
  release(n = Infinity): void {
    for (let i = 0; i < n && this.waiting.length > 0; i++) (this.waiting.shift() as () => void)();
  }
  get held(): number {
    return this.waiting.length;
  }
  /** Hex of everything sent since the last call. */
  take(): string[] {
    return this.sent.splice(0).map((p) => toHex(p));
  }
}

/** Something with onPdu (bearer or server). */
export interface PduSink {
  onPdu(b: Uint8Array): void;
}

/** Sends one PDU (hex, spaces allowed), lets the server answer, returns what it sent (hex, joined by '|'). */
export async function exchange(sink: PduSink, lower: FakeLower, hex: string): Promise<string> {
  sink.onPdu(fromHex(hex));
  await settle();
  await settle();
  return lower.take().join('|');
}

/** An in-memory BondStore recording updates. */
export class FakeBondStore implements BondStore {
  readonly description = 'memory (test)';
  readonly records = new Map<string, BondRecord>();
  readonly updates: { peer: string; patch: Partial<Omit<BondRecord, 'peer'>> }[] = [];
  getLocalIdentity(): LocalIdentity | undefined {
    return undefined;
  }
  async setLocalIdentity(): Promise<void> {}
  get(peer: Address): BondRecord | undefined {
    return this.records.get(peer.address);
  }
  list(): readonly BondRecord[] {
    return [...this.records.values()];
  }
  resolve(address: Address): BondRecord | undefined {
    return this.records.get(address.address);
  }
  async put(record: BondRecord): Promise<void> {
    this.records.set(record.peer.address, record);
  }
  async update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): Promise<void> {
    this.updates.push({ peer: peer.address, patch });
    const r = this.records.get(peer.address);
    if (r) this.records.set(peer.address, { ...r, ...patch });
  }
  async remove(peer: Address): Promise<boolean> {
    return this.records.delete(peer.address);
  }
  async clear(): Promise<void> {
    this.records.clear();
  }
  async close(): Promise<void> {}
}

/** A LESC Just Works bond (what the wearable makes), with overrides. */
export function bondRecord(over: Partial<BondRecord> = {}): BondRecord {
  return {
    peer: IDENTITY,
    ltk: new Uint8Array(16).fill(0x11),
    ediv: 0,
    rand: 0n,
    keySize: 16,
    authenticated: false,
    secureConnections: true,
    cccd: {},
    gatt: { clientFeatures: 0, changeAware: true },
    createdAt: '2026-01-01T00:00:00.000Z',
    lastSeenAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}
