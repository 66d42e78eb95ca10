/**
 * The configuration one client keeps on our GATT server: its CCCDs (Core 5.4 Vol 3 Part G
 * 3.3.3.3) and Client Supported Features (Vol 3 Part G 7.2), per connection, and their
 * persistence in the client's bond record. A bonded client's CCCDs and features are restored once
 * the link is encrypted (the identity is then proven) and saved back under its identity address
 * whenever they change; nothing is saved for a client that is not bonded or not yet encrypted.
 */
import type { Logger } from '../util/log.js';
import type { Address } from '../util/address.js';
import type { BondRecord, BondStore } from '../bonds/types.js';
import { AttErrorCode } from '../att/pdu.js';
import { CccdBit, CharacteristicPropertyBit, ClientFeatureBit, CLIENT_FEATURES_DEFINED, type Attribute, type GattDatabase } from './database.js';

export interface ClientConfigurationOptions {
  db: GattDatabase;
  /** Where a bonded client's CCCDs and features persist. */
  bonds: BondStore | undefined;
  /** The link: the peer on air, its identity when bonded, and whether the link is encrypted now. */
  link: { readonly peer: Address; peerIdentity(): Address | undefined; readonly security: { readonly encrypted: boolean } };
  log: Logger;
  /** A CCCD changed (written by the client or restored from its bond), by characteristic value handle. */
  onSubscriptionChanged(valueHandle: number, cccd: number): void;
}

export class ClientConfiguration {
  private readonly db: GattDatabase;
  private readonly bonds: BondStore | undefined;
  private readonly link: ClientConfigurationOptions['link'];
  private readonly log: Logger;
  private readonly onSubscriptionChanged: ClientConfigurationOptions['onSubscriptionChanged'];

  /** CCCD values of this connection, by CCCD handle. */
  private readonly cccd = new Map<number, number>();
  /** CCCDs the client wrote on this connection (they win over a bond's stored values on restore). */
  private readonly cccdWritten = new Set<number>();
  /** Client Supported Features octet 0, defined bits only. */
  private clientFeatures = 0;
  private bondRestored = false;

  constructor(opts: ClientConfigurationOptions) {
    this.db = opts.db;
    this.bonds = opts.bonds;
    this.link = opts.link;
    this.log = opts.log;
    this.onSubscriptionChanged = opts.onSubscriptionChanged;
    // Features are known from the bond at once (robust caching rules apply from the first PDU);
    // CCCDs wait for encryption (restoreOnEncryption).
    const bond = this.bond();
    if (bond) this.clientFeatures = bond.gatt.clientFeatures & CLIENT_FEATURES_DEFINED;
  }

  /** Client Supported Features octet 0. */
  get features(): number {
    return this.clientFeatures;
  }

  /** The client supports robust caching. Core 5.4 Vol 3 Part G 2.5.2.1. */
  get robustCaching(): boolean {
    return (this.clientFeatures & ClientFeatureBit.robustCaching) !== 0;
  }

  /** The value of the CCCD at `cccdHandle` on this connection (0 when none). */
  cccdValue(cccdHandle: number): number {
    return this.cccd.get(cccdHandle) ?? 0;
  }

  /** The client's bond, when it has one. */
  bond(): BondRecord | undefined {
    const id = this.link.peerIdentity();
    return id && this.bonds ? this.bonds.get(id) : undefined;
  }

  /** The bond when its state may be written: bonded and encrypted (the identity is proven). */
  private trustedBond(): BondRecord | undefined {
    return this.link.security.encrypted ? this.bond() : undefined;
  }

  /**
   * The link is encrypted: restores a bonded client's CCCDs and features the first time (CCCDs it
   * wrote on this connection win). Returns the bond, if any.
   */
  restoreOnEncryption(): BondRecord | undefined {
    const bond = this.bond();
    if (bond && !this.bondRestored) {
      this.bondRestored = true;
      this.restoreFromBond(bond);
    }
    return bond;
  }

  private restoreFromBond(bond: BondRecord): void {
    const seen = bond.gatt.databaseHash;
    const sameDb = seen === undefined || seen === this.db.hashHex;
    for (const [key, stored] of Object.entries(bond.cccd)) {
      const h = Number(key);
      const a = this.db.attribute(h);
      if (!a || a.kind !== 'cccd' || this.cccdWritten.has(h)) continue;
      // After a database change only the Service Changed subscription is still meaningful.
      if (!sameDb && h !== this.db.serviceChangedCccdHandle) continue;
      const v = stored & cccdSupported(a);
      if (v === (this.cccd.get(h) ?? 0)) continue;
      this.cccd.set(h, v);
      const vh = a.characteristic?.valueHandle;
      if (vh !== undefined) this.onSubscriptionChanged(vh, v);
    }
    this.clientFeatures |= bond.gatt.clientFeatures & CLIENT_FEATURES_DEFINED;
    const merged = this.cccdRecord();
    if (!sameRecord(merged, bond.cccd)) this.persist({ cccd: merged });
  }

  /**
   * A client write of the CCCD `a` (length already checked). Bits for what the characteristic
   * cannot do, and RFU bits, are ignored. Returns 0.
   */
  writeCccd(a: Attribute, value: Uint8Array): number {
    const old = this.cccd.get(a.handle) ?? 0;
    let v = old;
    if (value.length >= 1) v = (v & 0xff00) | (value[0] as number);
    if (value.length >= 2) v = (v & 0x00ff) | ((value[1] as number) << 8);
    // Bits for what the characteristic cannot do, and RFU bits, are ignored.
    v &= cccdSupported(a);
    this.cccd.set(a.handle, v);
    this.cccdWritten.add(a.handle);
    if (v !== old) {
      const vh = a.characteristic?.valueHandle;
      this.log.debug({ peer: this.link.peer.address, handle: vh, cccd: v }, 'subscription changed');
      if (vh !== undefined) this.onSubscriptionChanged(vh, v);
      this.persist({ cccd: this.cccdRecord() });
    }
    return 0;
  }

  /** A client write of Client Supported Features. Returns 0 or the ATT error code. */
  writeClientFeatures(value: Uint8Array): number {
    // Core 5.4 Vol 3 Part G 7.2: RFU bits ignored; a client may not clear a bit it set (0x13).
    const v = (value[0] ?? 0) & CLIENT_FEATURES_DEFINED;
    if ((this.clientFeatures & ~v) !== 0) return AttErrorCode.valueNotAllowed;
    if (v !== this.clientFeatures) {
      this.clientFeatures = v;
      this.persistGatt({});
    }
    return 0;
  }

  private cccdRecord(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const [h, v] of this.cccd) if (v !== 0) out[h] = v;
    return out;
  }

  private persist(patch: Parameters<BondStore['update']>[1]): void {
    const id = this.link.peerIdentity();
    if (!this.bonds || !id || !this.trustedBond()) return;
    this.bonds.update(id, patch).catch((err: unknown) => {
      this.log.warn({ err, peer: id.address, store: this.bonds?.description }, 'could not save GATT state of a bonded client');
    });
  }

  /** Saves the bond's GATT state (features, with `changes` such as the database hash it has seen); only for a bonded, encrypted client. */
  persistGatt(changes: Partial<BondRecord['gatt']>): void {
    const bond = this.trustedBond();
    if (!bond) return;
    this.persist({ gatt: { ...bond.gatt, clientFeatures: this.clientFeatures, ...changes } });
  }
}

/** The CCCD bits the characteristic of `a` can honour (notify, indicate). */
function cccdSupported(a: Attribute): number {
  const p = a.characteristic?.properties ?? 0;
  return ((p & CharacteristicPropertyBit.notify) !== 0 ? CccdBit.notification : 0) | ((p & CharacteristicPropertyBit.indicate) !== 0 ? CccdBit.indication : 0);
}

function sameRecord(a: Readonly<Record<number, number>>, b: Readonly<Record<number, number>>): boolean {
  const ka = Object.keys(a).filter((k) => a[Number(k)] !== 0);
  const kb = Object.keys(b).filter((k) => b[Number(k)] !== 0);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (a[Number(k)] !== b[Number(k)]) return false;
  return true;
}
