/**
 * Who the peer of each connection is, for the timeline: its on-air address and, when it can be
 * known, its identity address and how that became known (the address itself, the controller's
 * resolving list, the host's bond store, an IRK seen earlier in the capture, or the Identity Address
 * Information of a pairing on this link). Owns the IRKs seen in the capture.
 *
 * Core 5.4 references: device addresses Vol 6 Part B 1.3; LE Enhanced Connection Complete Vol 4 Part
 * E 7.7.65.10; LE Add Device To Resolving List Vol 4 Part E 7.8.38; SMP Identity Information and
 * Identity Address Information Vol 3 Part H 3.6.4 / 3.6.5; ah() Vol 3 Part H 2.2.2.
 */
import { addressTypeFromByte, isResolvablePrivateAddress, randomAddressKind, type Address } from '../util/address.js';
import { irkResolvesAddress } from '../privacy/rpa.js';
import type { ConnectionRecord, KnownIrk, PacketRef, PeerInfo, TimelineOptions } from './timeline-model.js';

/** Resolves peers' addresses to identities and remembers the IRKs the capture shows. */
export class PeerIdentityResolver {
  readonly irks: KnownIrk[] = [];
  /** Per connection id: the IRK the remote side distributed, waiting for its Identity Address Information. */
  private readonly pendingIrk = new Map<number, { irk: Uint8Array; at: PacketRef }>();

  constructor(private readonly opts: Pick<TimelineOptions, 'resolveAddress' | 'maxIrks'>) {}

  /**
   * The peer of an LE (Enhanced) Connection Complete: `typeByte` and `address` are its Peer_Address_Type
   * and Peer_Address, `peerRpaText` its Peer_Resolvable_Private_Address (enhanced event only).
   */
  peerInfo(typeByte: number, address: string, peerRpaText: string | undefined): PeerInfo {
    const resolvedByController = (typeByte === 0x02 || typeByte === 0x03) && peerRpaText !== undefined && peerRpaText !== '00:00:00:00:00:00';
    if (resolvedByController) {
      const identity: Address = { type: typeByte === 0x02 ? 'public' : 'random', address };
      const onAir: Address = { type: 'random', address: peerRpaText };
      return { onAir, isRpa: true, identity, identitySource: 'controller' };
    }
    const onAir: Address = { type: addressTypeFromByte(typeByte), address };
    const rpa = isResolvablePrivateAddress(onAir);
    if (!rpa) {
      // Public or static random: the address is the identity (a non-resolvable private address is not).
      const identityLike = onAir.type === 'public' || randomAddressKind(address) === 'static';
      return identityLike ? { onAir, isRpa: false, identity: onAir, identitySource: 'address' } : { onAir, isRpa: false };
    }
    const viaResolver = this.opts.resolveAddress?.(onAir);
    if (viaResolver) return { onAir, isRpa: true, identity: viaResolver, identitySource: 'resolver' };
    for (let i = this.irks.length - 1; i >= 0; i--) {
      const k = this.irks[i] as KnownIrk;
      if (irkResolvesAddress(k.irk, onAir)) return { onAir, isRpa: true, identity: k.identity, identitySource: 'trace-irk', irkSeenAt: k.seenAt, irkVia: k.via };
    }
    return { onAir, isRpa: true };
  }

  /** LE Add Device To Resolving List sent by the capturing host: it holds this peer's IRK. */
  resolvingListAdd(identity: Address, irk: Uint8Array, at: PacketRef): void {
    if (irk.some((b) => b !== 0)) this.addIrk({ irk, identity, seenAt: at, via: 'resolving-list' });
  }

  /** SMP Identity Information from the remote side of connection `connId`: its IRK, identity to follow. */
  identityInformation(connId: number, irk: Uint8Array, at: PacketRef): void {
    this.pendingIrk.set(connId, { irk, at });
  }

  /** SMP Identity Address Information from the remote side of `c`: pairs it with the IRK and names the peer. */
  identityAddressInformation(c: ConnectionRecord, address: Address): void {
    const pending = this.pendingIrk.get(c.id);
    this.pendingIrk.delete(c.id);
    if (pending && pending.irk.some((b) => b !== 0)) this.addIrk({ irk: pending.irk, identity: address, seenAt: pending.at, via: 'smp' });
    if (c.peer && !c.peer.identity) {
      c.peer.identity = address;
      c.peer.identitySource = 'pairing';
    } else if (!c.peer) {
      c.peer = { onAir: address, isRpa: false, identity: address, identitySource: 'pairing' };
    }
  }

  /** Forgets what is pending for a dropped connection. */
  forgetConnection(connId: number): void {
    this.pendingIrk.delete(connId);
  }

  private addIrk(k: KnownIrk): void {
    this.irks.push(k);
    const max = this.opts.maxIrks;
    if (max !== undefined && this.irks.length > max) this.irks.splice(0, this.irks.length - max);
  }
}
