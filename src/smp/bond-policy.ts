/**
 * The bond-commit policy: the one place that decides what a pairing may do to the bonds of this
 * device, in the role Zephyr's update_keys_check plays (subsys/bluetooth/host/smp.c).
 *
 * - Re-pairing: a peer that already holds a bond and asks to pair again is refused with 0x03
 *   Authentication Requirements ('reject', the default, as Zephyr) or paired ('replace'); the old
 *   bond is replaced only once the new pairing completed, so a failed or spoofed attempt never
 *   removes it.
 * - Replacement: the same device's old bond is removed just before its new bond is stored (it may
 *   be keyed by another address), so a full store never refuses or evicts for it.
 * - A full store: a NEW peer's pairing is refused up front with 0x08 Unspecified Reason when the
 *   store refuses new peers (the default: a stranger in radio range must not evict the owner's
 *   bond); with `--evict-oldest-bond` (store `whenFull: 'evict-oldest'`) it goes on and the store
 *   evicts its least recently seen bond when the new one is stored. Which bond goes, and the bound
 *   itself, are the store's mechanics (src/bonds/table.ts).
 * - Downgrade: a pairing that would weaken the bond of the same peer (authenticated to
 *   unauthenticated, LE Secure Connections to legacy, a shorter key) gets 0x03 and the bond is kept,
 *   checked when the features are known and again when a peer reveals a bonded identity only in
 *   key distribution.
 *
 * The device-wide limit on new pairing procedures and the per-peer repeated-attempts interval are
 * not bond decisions: they live in ./backoff.ts and the feature exchange asks them.
 */
import type { BondRecord, BondStore, BondStoreCapacity } from '../bonds/types.js';
import { formatAddress, sameAddress, type Address } from '../util/address.js';
import type { Logger } from '../util/log.js';
import { SmpReason } from './pdu.js';
import type { SmpPolicy } from './types.js';

/** A pairing the policy refuses: the Pairing Failed reason and what the failure message says. */
export interface BondRefusal {
  readonly reason: number;
  readonly detail: string;
}

/** What a completed pairing would store: the keys and properties of the new bond. */
export interface NewBond {
  /** The identity address the bond is keyed by (distributed, or the address used on air). */
  readonly identity: Address;
  readonly ltk: Uint8Array;
  readonly keySize: number;
  readonly authenticated: boolean;
  /** The peer's IRK, when it distributed one with a usable identity address. */
  readonly peerIrk: Uint8Array | undefined;
  /** The bond this peer had when the procedure started. */
  readonly existingBond: BondRecord | undefined;
}

/**
 * What a new pairing would lose against the bond `old` of the same peer: authenticated to
 * unauthenticated, Secure Connections to legacy, or a shorter key. Undefined when nothing.
 */
export function downgradeFrom(old: BondRecord, authenticated: boolean, secureConnections: boolean, keySize: number): string | undefined {
  if (old.authenticated && !authenticated) return 'the bond is authenticated (MITM-protected) and this pairing would be Just Works';
  if (old.secureConnections && !secureConnections) return 'the bond is from LE Secure Connections and this pairing would be legacy';
  if (keySize < old.keySize) return `the bond has a ${old.keySize}-byte key and this pairing would give ${keySize} bytes`;
  return undefined;
}

/** The bond decisions of one SMP session (its store, its policy, its log). */
export class BondCommitPolicy {
  constructor(
    private readonly bonds: BondStore,
    private readonly policy: SmpPolicy,
    private readonly log: Logger,
  ) {}

  /**
   * Responder, at a Pairing Request from `peer` whose bond is `existing` (undefined without one): refuse a bonded
   * peer under the 'reject' policy (0x03), and a new peer that a full store would not take (0x08,
   * with a warn line) when the pairing would bond. Core 5.4 Vol 3 Part H 3.5.5.
   */
  admitPairingRequest(peer: Address, existing: BondRecord | undefined, bonding: boolean): BondRefusal | undefined {
    if (existing && this.policy.rePairing === 'reject') {
      return {
        reason: SmpReason.AuthenticationRequirements,
        detail: `this device already holds a bond for ${formatAddress(existing.peer)}; remove it here (or allow re-pairing) if the phone lost its keys, or use the existing bond`,
      };
    }
    const full = bonding && !existing ? this.storeRefuses(peer) : undefined;
    if (full) {
      this.log.warn(
        { stored: full.stored, maxBonds: full.max, store: this.bonds.description },
        `pairing with ${formatAddress(peer)} refused: the bond store is full (${full.stored} of ${full.max}) and new bonds are refused so that no bonded phone is evicted`,
      );
      return {
        reason: SmpReason.UnspecifiedReason,
        detail: `the bond store ${this.bonds.description} is full (${full.stored} of ${full.max} bonds); remove a bond (wearable-host bonds remove ADDRESS), raise --max-bonds, or run with --evict-oldest-bond`,
      };
    }
    return undefined;
  }

  /**
   * Once the features are known: re-pairing a bonded peer must not weaken its bond, so a downgrade
   * gets 0x03 Authentication Requirements and the bond is kept. (Both sides of an LE Secure
   * Connections pairing: the new key is always Secure Connections.)
   */
  checkDowngrade(old: BondRecord | undefined, authenticated: boolean, keySize: number): BondRefusal | undefined {
    if (!old) return undefined;
    const lost = downgradeFrom(old, authenticated, true, keySize);
    if (!lost) return undefined;
    return { reason: SmpReason.AuthenticationRequirements, detail: `re-pairing ${formatAddress(old.peer)} would weaken its bond (${lost}); the bond was kept` };
  }

  /**
   * After key distribution, before anything is stored: the identity the peer revealed may belong
   * to a bond it was not recognised by at the start ('reject': 0x03; 'replace': 0x03 if the new
   * pairing is weaker), and the store may have filled meanwhile (0x08). A refusal here comes after
   * the link was encrypted with the refused pairing's key: the caller drops the link.
   */
  checkCommit(bond: NewBond, bonding: boolean): BondRefusal | undefined {
    const { identity, existingBond } = bond;
    const holder = this.bonds.get(identity);
    if (bonding && holder && !existingBond && this.policy.rePairing === 'reject') {
      // The peer was not recognised at the start but claims the identity of a bonded device.
      return {
        reason: SmpReason.AuthenticationRequirements,
        detail: `the peer claims the identity ${formatAddress(identity)} of an existing bond; the bond was kept (allow re-pairing to replace it)`,
      };
    }
    const claimed = holder && holder !== existingBond ? downgradeFrom(holder, bond.authenticated, true, bond.keySize) : undefined;
    if (bonding && holder && claimed) {
      // Recognised only by the identity it distributed: the same downgrade check, now.
      return { reason: SmpReason.AuthenticationRequirements, detail: `the peer claims the identity ${formatAddress(identity)} of a stronger bond (${claimed}); the bond was kept` };
    }
    const full = bonding && !holder && !existingBond ? this.storeRefuses(identity) : undefined;
    if (full) {
      // The store filled up while this pairing ran (another peer bonded meanwhile).
      this.log.warn({ stored: full.stored, maxBonds: full.max, store: this.bonds.description }, `bond of ${formatAddress(identity)} refused: the bond store is full`);
      return {
        reason: SmpReason.UnspecifiedReason,
        detail: `the bond store ${this.bonds.description} is full (${full.stored} of ${full.max} bonds); remove a bond or run with --evict-oldest-bond`,
      };
    }
    return undefined;
  }

  /**
   * Stores the bond of a completed pairing (after {@link checkCommit}); the same device's old bond
   * goes first, so a full store never evicts (or refuses) for it. On a store error the old bond is
   * put back and undefined is returned (the link stays encrypted, unbonded). Core 5.4 Vol 3 Part H 2.4.1.
   */
  async commit(bond: NewBond, now: string): Promise<BondRecord | undefined> {
    const { identity } = bond;
    const record: BondRecord = {
      peer: identity,
      ltk: bond.ltk,
      ediv: 0,
      rand: 0n,
      keySize: bond.keySize,
      authenticated: bond.authenticated,
      secureConnections: true,
      ...(bond.peerIrk ? { peerIrk: bond.peerIrk } : {}),
      cccd: {},
      gatt: { clientFeatures: 0, changeAware: true },
      createdAt: now,
      lastSeenAt: now,
    };
    const old = bond.existingBond && !sameAddress(bond.existingBond.peer, identity) ? bond.existingBond : undefined;
    try {
      if (old) await this.bonds.remove(old.peer);
      await this.bonds.put(record);
      return record;
    } catch (err) {
      if (old && !this.bonds.get(old.peer)) await this.bonds.put(old).catch((e: unknown) => this.log.warn({ err: e }, 'could not restore the old bond'));
      this.log.error({ err }, `could not store the bond of ${formatAddress(identity)} in ${this.bonds.description}; the link stays encrypted but the bond will not survive a restart`);
      return undefined;
    }
  }

  /**
   * The capacity of a store that would refuse a bond for `peer` (full, refusing new peers, and
   * `peer` resolves to no stored bond); undefined when the bond would be stored (with eviction,
   * if the store was opened with `whenFull: 'evict-oldest'`).
   */
  private storeRefuses(peer: Address): BondStoreCapacity | undefined {
    const cap = this.bonds.capacity?.();
    if (!cap || cap.whenFull !== 'refuse' || cap.stored < cap.max) return undefined;
    if (this.bonds.resolve(peer)) return undefined;
    return cap;
  }
}
