/**
 * Link encryption for one SMP session: which key the controller gets (HCI LE Long Term Key Request
 * on the peripheral, LE Enable Encryption on the central), and what the link's security is once
 * the Encryption Change (or Key Refresh Complete) arrives, with the key size read back and held to
 * the policy's minimum. Core 5.4 Vol 3 Part H 2.4.4 (encryption), 2.3.4 (key size); Vol 4 Part E
 * 7.7.8, 7.7.39, 7.7.65.5, 7.8.24 to 7.8.26.
 *
 * Nothing key-related reaches the controller before the DHKey check passed: the new LTK is handed
 * out only in phase 'waitEncryption', which the association models enter only after Ea / Eb
 * verified.
 */
import type { BondRecord } from '../bonds/types.js';
import { formatAddress } from '../util/address.js';
import { SmpReason } from './pdu.js';
import { hex2, type Procedure, type SmpContext } from './procedure.js';

const ZERO_16 = new Uint8Array(16);

/** A key about to protect (or protecting) the link. */
export interface LinkKey {
  readonly ltk: Uint8Array;
  readonly keySize: number;
  readonly authenticated: boolean;
  readonly secureConnections: boolean;
  readonly source: 'pairing' | 'bond' | 'session';
}

/** The link's encryption as the controller last reported it. */
export interface EncryptionState {
  readonly encrypted: boolean;
  readonly keySize: number;
  readonly authenticated: boolean;
  readonly secureConnections: boolean;
}

const UNENCRYPTED: EncryptionState = Object.freeze({ encrypted: false, keySize: 0, authenticated: false, secureConnections: false });

/** What link encryption tells the rest of the session. */
export interface EncryptionEvents {
  /** The link's security changed (encrypted, re-encrypted, or encryption off). */
  securityChanged(): void;
  /** The link is encrypted with the key of the running pairing: key distribution starts. */
  pairingEncrypted(proc: Procedure): Promise<void>;
}

export class LinkEncryption {
  private enc: EncryptionState = UNENCRYPTED;
  /** The key handed to the controller and not yet confirmed by an Encryption Change. */
  private pendingKey: LinkKey | undefined;
  /** The key from this connection's pairing (also when not bonded). */
  private sessionKey: LinkKey | undefined;
  private encryptionSeen = false;

  constructor(
    private readonly ctx: SmpContext,
    private readonly events: EncryptionEvents,
  ) {}

  /** The link's encryption now. */
  get state(): EncryptionState {
    return this.enc;
  }
  /** Where the key the controller was given comes from, while its Encryption Change is awaited. */
  get pendingSource(): LinkKey['source'] | undefined {
    return this.pendingKey?.source;
  }
  /** A pairing on this connection produced a key (also when it was not bonded). */
  get hasSessionKey(): boolean {
    return this.sessionKey !== undefined;
  }
  /** Encryption was asked for on this connection (an LTK request, or our LE Enable Encryption). */
  get attempted(): boolean {
    return this.encryptionSeen;
  }

  /** The link went down. Returns whether it was encrypted. */
  reset(): boolean {
    const was = this.enc.encrypted;
    this.enc = UNENCRYPTED;
    this.pendingKey = undefined;
    return was;
  }

  /** Central: LE Enable Encryption with the new LTK (EDIV 0, Rand 0). Only after Eb verified. */
  async startPairingEncryption(epoch: number): Promise<void> {
    const { ctx } = this;
    const proc = ctx.currentProc(epoch);
    if (!proc || !proc.checkPassed || !proc.ltk || !proc.assoc || ctx.state.phase !== 'waitEncryption') return;
    this.pendingKey = { ltk: proc.ltk, keySize: proc.keySize, authenticated: proc.assoc.authenticated, secureConnections: true, source: 'pairing' };
    try {
      await ctx.lower.startEncryption(proc.ltk, 0, 0n);
    } catch (err) {
      if (ctx.currentProc(epoch)) ctx.fail(SmpReason.UnspecifiedReason, 'local', `the controller refused to start encryption: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Central: LE Enable Encryption with the bond. Not while another encryption is pending (its
   * Encryption Change would be taken for this one, and a controller refusing the second command
   * must not erase the first key's properties).
   */
  async startBondEncryption(bond: BondRecord): Promise<void> {
    const { ctx } = this;
    if (ctx.state.proc || ctx.state.phase !== 'idle') return;
    if (this.pendingKey) {
      ctx.log.debug(`encryption with ${formatAddress(ctx.lower.peerAddress)} already pending: no second LE Enable Encryption`);
      return;
    }
    const key: LinkKey = { ltk: bond.ltk, keySize: bond.keySize, authenticated: bond.authenticated, secureConnections: bond.secureConnections, source: 'bond' };
    this.pendingKey = key;
    this.encryptionSeen = true;
    try {
      await ctx.lower.startEncryption(bond.ltk, bond.ediv, bond.rand);
    } catch (err) {
      if (this.pendingKey === key) this.pendingKey = undefined;
      ctx.log.warn({ err }, `could not start encryption with the bond of ${formatAddress(bond.peer)}`);
    }
  }

  /**
   * Peripheral: HCI LE Long Term Key Request. During pairing the new LTK is given only once the
   * DHKey check passed (phase 'waitEncryption'); a request earlier in the procedure (a central
   * skipping the check, SweynTooth) gets a negative reply and ends the procedure. Outside pairing,
   * EDIV = 0 and Rand = 0 ask for a Secure Connections key: the bond of the peer (its address
   * resolved through the bond store) or this connection's key. Anything else gets a negative
   * reply and the `ltkRequestUnknown` event: the peer holds a bond this device does not have.
   */
  async onLtkRequest(rand: bigint, ediv: number): Promise<void> {
    const { ctx } = this;
    const { lower, state } = ctx;
    if (lower.role !== 'peripheral') {
      ctx.log.warn('LTK request on a central link ignored');
      return;
    }
    if (state.phase === 'closed') return;
    this.encryptionSeen = true;
    const proc = state.proc;
    if (proc) {
      if (state.phase === 'waitEncryption' && proc.checkPassed && proc.ltk && proc.assoc && ediv === 0 && rand === 0n) {
        this.pendingKey = { ltk: proc.ltk, keySize: proc.keySize, authenticated: proc.assoc.authenticated, secureConnections: true, source: 'pairing' };
        await lower.ltkReply(proc.ltk);
        return;
      }
      await lower.ltkNegativeReply();
      ctx.fail(SmpReason.UnspecifiedReason, 'local', `the central started encryption in phase ${state.phase}, before the DHKey check completed; no key was given`);
      return;
    }
    if (ediv === 0 && rand === 0n && this.sessionKey) {
      this.pendingKey = { ...this.sessionKey, source: 'session' };
      await lower.ltkReply(this.sessionKey.ltk);
      return;
    }
    const bond = ctx.bonds.resolve(lower.peerAddress);
    if (bond && bond.ediv === ediv && bond.rand === rand) {
      this.pendingKey = { ltk: bond.ltk, keySize: bond.keySize, authenticated: bond.authenticated, secureConnections: bond.secureConnections, source: 'bond' };
      if (!state.identity) {
        state.identity = bond.peer;
        ctx.emit('identityResolved', { connectionAddress: lower.peerAddress, identity: bond.peer, source: 'bond' });
      }
      await lower.ltkReply(bond.ltk);
      return;
    }
    this.pendingKey = undefined;
    await lower.ltkNegativeReply();
    ctx.log.warn(
      { ediv, rand: rand.toString(16) },
      `${formatAddress(lower.peerAddress)} asked to encrypt with a key this device does not have: the phone keeps a bond this device lost; remove the device on the phone ("Forget This Device") and pair again`,
    );
    ctx.emit('ltkRequestUnknown', { peer: lower.peerAddress, ediv, rand });
  }

  /**
   * Encryption Change / Key Refresh. On success the key size is read back (HCI Read Encryption
   * Key Size); the effective size is the smaller of that and the negotiated size (LE keys are
   * shortened by the host, Vol 3 Part H 2.3.4). Shorter than the policy's minimum: disconnect with
   * 0x05 Authentication Failure.
   */
  async onEncryptionChange(status: number, enabled: boolean): Promise<void> {
    const { ctx } = this;
    const { lower, state, policy } = ctx;
    if (state.phase === 'closed') return;
    const key = this.pendingKey;
    this.pendingKey = undefined;
    if (status !== 0) {
      ctx.log.warn({ status }, `encryption with ${formatAddress(lower.peerAddress)} failed (HCI status ${hex2(status)})`);
      ctx.emit('encryptionFailed', { peer: lower.peerAddress, status });
      if (state.proc && state.phase === 'waitEncryption') ctx.fail(SmpReason.UnspecifiedReason, 'local', `encryption with the new key failed (HCI status ${hex2(status)})`);
      return;
    }
    if (!enabled) {
      this.enc = UNENCRYPTED;
      this.events.securityChanged();
      return;
    }
    const used: LinkKey = key ?? {
      // Encryption we did not set up (should not happen): assume the weakest properties.
      ltk: ZERO_16,
      keySize: 16,
      authenticated: false,
      secureConnections: false,
      source: 'session',
    };
    if (!key) ctx.log.warn('Encryption Change without a key handed out by SMP; treating the link as unauthenticated');
    let readBack = used.keySize;
    try {
      const r = await lower.readKeySize();
      if (r === undefined) ctx.log.debug({ keySize: used.keySize }, 'the controller cannot report the encryption key size (no Read Encryption Key Size): using the negotiated size');
      readBack = r ?? used.keySize;
    } catch (err) {
      ctx.log.warn({ err }, 'Read Encryption Key Size failed; using the negotiated key size');
    }
    const keySize = Math.min(readBack, used.keySize);
    if (keySize < policy.minKeySize) {
      ctx.log.warn({ keySize, min: policy.minKeySize }, `encryption key of ${keySize} bytes is shorter than the required ${policy.minKeySize}: disconnecting`);
      if (state.proc) ctx.fail(SmpReason.EncryptionKeySize, 'local', `the link was encrypted with a ${keySize}-byte key; ${policy.minKeySize} required`);
      try {
        await lower.disconnect(0x05);
      } catch (err) {
        ctx.log.warn({ err }, 'disconnect failed');
      }
      return;
    }
    this.enc = { encrypted: true, keySize, authenticated: used.authenticated, secureConnections: used.secureConnections };
    this.events.securityChanged();
    if (used.source === 'bond' && state.identity) {
      ctx.bonds.update(state.identity, { lastSeenAt: new Date(ctx.clock.now()).toISOString() }).catch((err: unknown) => ctx.log.warn({ err }, 'could not update the bond'));
    }
    const proc = state.proc;
    if (proc && state.phase === 'waitEncryption' && used.source === 'pairing') {
      this.sessionKey = { ...used, keySize };
      await this.events.pairingEncrypted(proc);
    }
  }
}
