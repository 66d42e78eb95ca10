/**
 * The SMP session of one connection, LE Secure Connections only: the explicit state machine and
 * the facade ({@link SmpSession}) composing the parts of pairing. Core 5.4 Vol 3 Part H 2.3
 * (pairing methods), 3 (protocol), 2.4 (keys).
 *
 * The parts, each in its own file, get a narrow context ({@link SmpContext}) from this core:
 * - ./features.ts: phase 1, Security Request, Pairing Request / Response, the up-front refusals;
 * - ./authentication.ts: phase 2, public keys, Just Works / Numeric Comparison / Passkey Entry,
 *   DHKey checks;
 * - ./encryption.ts: LTK request, start encryption, Encryption Change, key size;
 * - ./key-distribution.ts: phase 3, what is sent and what is expected;
 * - ./bond-policy.ts: the one bond-commit policy (re-pairing, replacement, a full store, downgrade).
 *
 * Both roles run on the same machine: the peripheral responds to Pairing Request (and may send
 * Security Request); the central initiates (pair(), or on a Security Request). The machine is
 * explicit: a phase plus the set of PDU types allowed next ({@link ALLOWED}). Any other PDU ends
 * the procedure through the one {@link SmpSession.fail} with Pairing Failed 0x08 Unspecified
 * Reason (0x07 Command Not Supported for a PDU this role never takes, 0x0A Invalid Parameters or
 * 0x07 for a PDU that does not decode, 0x06 Encryption Key Size for a Maximum Encryption Key Size
 * outside 7..16).
 *
 * Inputs are serialised: every input (PDU, LTK request, encryption events, user answers, timers)
 * runs to completion, including its awaits on the layers below, before the next one starts.
 * User hooks (passkey, numeric comparison) are not awaited in that queue: their answers come back
 * as inputs and are dropped when the procedure they belong to is gone.
 *
 * Security invariants:
 * - nothing key-related reaches the controller before the DHKey check passed: ltkReply() /
 *   startEncryption() with the new LTK happen only in phase 'waitEncryption', entered only after
 *   Ea (peripheral) or Eb (central) verified;
 * - confirm and check values are compared in constant time;
 * - the peer's public key is validated (on the curve, not ours, not the debug key) before use;
 * - an old bond is replaced only after the new pairing completed; a failed attempt never evicts it;
 *   a re-pairing that would weaken it (authenticated to Just Works, a shorter key) gets 0x03;
 * - a full bond store that refuses new peers (the default) refuses the pairing up front (0x08), and
 *   new pairing procedures are rate-limited device-wide (0x09), whatever address the peer uses.
 */
import type { BondStore, LocalIdentity } from '../bonds/types.js';
import { formatAddress, type Address } from '../util/address.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { silentLogger, type Logger } from '../util/log.js';
import { Authentication } from './authentication.js';
import { PairingBackoff } from './backoff.js';
import { BondCommitPolicy } from './bond-policy.js';
import { LinkEncryption } from './encryption.js';
import { SmpError } from './errors.js';
import { FeatureExchange } from './features.js';
import { KeyDistribution } from './key-distribution.js';
import { securityLevelOf, type LinkSecurity, type SecurityLevel } from './link-security.js';
import { SmpCode, SmpReason, decodeSmp, encodeSmp, formatSmp, smpPduInfo, smpReasonName, type SmpPdu, type SmpPduOf, type SmpPduType } from './pdu.js';
import { hex2, type Procedure, type SessionState, type SmpContext, type SmpPhase } from './procedure.js';
import {
  mergeSmpPolicy,
  type AssociationModel,
  type FailureSource,
  type PairedInfo,
  type PairingFailure,
  type SmpEvents,
  type SmpLower,
  type SmpPolicy,
  type SmpSessionOptions,
} from './types.js';

export type { SmpPhase };

/** PDU types allowed in each phase (Pairing Failed is accepted in every phase but timedOut/closed). */
export const ALLOWED: Readonly<Record<SmpPhase, readonly SmpPduType[]>> = Object.freeze({
  idle: [], // role-dependent: see IDLE_ALLOWED
  waitPairingResponse: ['pairingResponse'],
  waitPublicKey: ['pairingPublicKey'],
  waitConfirm: ['pairingConfirm', 'pairingKeypressNotification'],
  waitRandom: ['pairingRandom'],
  waitUser: ['pairingKeypressNotification'],
  waitDhKeyCheck: ['pairingDhKeyCheck'],
  waitEncryption: [],
  waitKeys: ['encryptionInformation', 'centralIdentification', 'identityInformation', 'identityAddressInformation', 'signingInformation'],
  timedOut: [],
  closed: [],
});

/** What starts a procedure, per role. */
const IDLE_ALLOWED: Readonly<Record<'central' | 'peripheral', readonly SmpPduType[]>> = {
  peripheral: ['pairingRequest'],
  central: ['securityRequest'],
};

/** PDUs a role never takes (answered with 0x07 Command Not Supported). Core 5.4 Vol 3 Part H 3.5.1, 3.6.7. */
const NEVER_FOR_ROLE: Readonly<Record<'central' | 'peripheral', readonly SmpPduType[]>> = {
  peripheral: ['pairingResponse', 'securityRequest'],
  central: ['pairingRequest'],
};

const PAIRING_TIMEOUT_MS = 30_000;

/**
 * The Security Manager of one connection. Implements {@link LinkSecurity} so ATT can read
 * `session.security`.
 */
export class SmpSession extends TypedEmitter<SmpEvents> implements LinkSecurity {
  readonly policy: SmpPolicy;
  private readonly lower: SmpLower;
  private readonly bonds: BondStore;
  private readonly clock: Clock;
  private readonly backoff: PairingBackoff;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly explicitIdentity: LocalIdentity | undefined;

  /** The phase, the running procedure and the peer's identity: owned here, advanced by the parts. */
  private readonly state: SessionState = { phase: 'idle', proc: undefined, identity: undefined };
  private timer: TimerHandle | undefined;
  private securityRequestTimer: TimerHandle | undefined;
  private tail: Promise<void> = Promise.resolve();
  private pairWaiter: { resolve: (v: PairedInfo) => void; reject: (e: Error) => void; promise: Promise<PairedInfo> } | undefined;

  private readonly bondPolicy: BondCommitPolicy;
  private readonly features: FeatureExchange;
  private readonly authentication: Authentication;
  private readonly encryption: LinkEncryption;
  private readonly keyDistribution: KeyDistribution;

  constructor(opts: SmpSessionOptions) {
    super();
    this.lower = opts.lower;
    this.bonds = opts.bonds;
    this.clock = opts.clock;
    this.backoff = opts.backoff;
    this.policy = mergeSmpPolicy(opts.policy);
    this.explicitIdentity = opts.localIdentity;
    this.timeoutMs = opts.timeoutMs ?? PAIRING_TIMEOUT_MS;
    this.log = (opts.log ?? silentLogger()).child({ layer: 'smp', peer: formatAddress(opts.lower.peerAddress) });
    const ctx: SmpContext = {
      state: this.state,
      lower: this.lower,
      policy: this.policy,
      bonds: this.bonds,
      clock: this.clock,
      random: opts.random,
      backoff: this.backoff,
      log: this.log,
      emit: (event, ...args) => void this.emit(event, ...args),
      send: (pdu) => this.send(pdu),
      fail: (reason, by, detail) => this.fail(reason, by, detail),
      enqueue: (what, fn) => this.enqueue(what, fn),
      currentProc: (epoch) => this.currentProc(epoch),
      localIdentity: () => this.explicitIdentity ?? this.bonds.getLocalIdentity(),
      backoffPeer: () => this.backoffPeer(),
    };
    this.bondPolicy = new BondCommitPolicy(this.bonds, this.policy, this.log);
    this.keyDistribution = new KeyDistribution(ctx, (proc) => this.complete(proc));
    this.encryption = new LinkEncryption(ctx, {
      securityChanged: () => void this.emit('securityChanged', this.snapshot()),
      pairingEncrypted: (proc) => this.keyDistribution.begin(proc),
    });
    this.authentication = new Authentication(ctx, this.encryption);
    this.features = new FeatureExchange(ctx, this.bondPolicy, this.encryption, (err) => this.rejectPair(err));
  }

  // -------------------------------------------------------------------------------------------
  // LinkSecurity

  get encrypted(): boolean {
    return this.encryption.state.encrypted;
  }
  get keySize(): number {
    const enc = this.encryption.state;
    return enc.encrypted ? enc.keySize : 0;
  }
  get authenticated(): boolean {
    const enc = this.encryption.state;
    return enc.encrypted && enc.authenticated;
  }
  get secureConnections(): boolean {
    const enc = this.encryption.state;
    return enc.encrypted && enc.secureConnections;
  }
  get level(): SecurityLevel {
    return securityLevelOf(this.encryption.state);
  }
  /** An LTK exists for this peer: a stored bond, or one from a pairing on this connection. */
  hasLtk(): boolean {
    return this.encryption.hasSessionKey || this.bonds.resolve(this.lower.peerAddress) !== undefined;
  }
  /** The link's security as ATT reads it (live). */
  get security(): LinkSecurity {
    return this;
  }

  /** A frozen copy of the security state, for events. */
  private snapshot(): LinkSecurity {
    const s = { encrypted: this.encrypted, keySize: this.keySize, authenticated: this.authenticated, secureConnections: this.secureConnections };
    return Object.freeze({ ...s, level: securityLevelOf(s), hasLtk: () => this.hasLtk() });
  }

  // -------------------------------------------------------------------------------------------
  // Introspection

  get phase(): SmpPhase {
    return this.state.phase;
  }
  /** The association model of the running procedure. */
  get model(): AssociationModel | undefined {
    return this.state.proc?.assoc?.model;
  }
  /** The peer's identity address once known (bond or key distribution). */
  get peerIdentity(): Address | undefined {
    return this.state.identity;
  }
  get peerAddress(): Address {
    return this.lower.peerAddress;
  }
  /** Resolves when every input queued so far has been handled. */
  whenIdle(): Promise<void> {
    return this.tail;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /**
   * Call once the session's listeners are attached: resolves the peer's identity from the bond
   * store, and in 'on-connect' mode schedules a Security Request.
   */
  start(): void {
    const bond = this.bonds.resolve(this.lower.peerAddress);
    if (bond) {
      this.state.identity = bond.peer;
      this.emit('identityResolved', { connectionAddress: this.lower.peerAddress, identity: bond.peer, source: 'bond' });
    }
    if (this.lower.role === 'peripheral' && this.policy.securityRequest === 'on-connect') this.scheduleSecurityRequest();
  }

  /** An SMP PDU arrived on the fixed channel 0x0006. Never throws. */
  onPdu(bytes: Uint8Array): void {
    const copy = bytes.slice();
    this.enqueue('SMP PDU', () => this.handlePdu(copy));
  }

  /** Peripheral: HCI LE Long Term Key Request. Core 5.4 Vol 4 Part E 7.7.65.5. */
  onLtkRequest(rand: bigint, ediv: number): void {
    this.enqueue('LTK request', () => this.encryption.onLtkRequest(rand, ediv));
  }

  /** HCI Encryption Change. Core 5.4 Vol 4 Part E 7.7.8. */
  onEncryptionChange(status: number, enabled: boolean): void {
    this.enqueue('encryption change', () => this.encryption.onEncryptionChange(status, enabled));
  }

  /** HCI Encryption Key Refresh Complete (the link was re-encrypted with a new key). Core 5.4 Vol 4 Part E 7.7.39. */
  onKeyRefresh(status: number): void {
    this.enqueue('key refresh', () => this.encryption.onEncryptionChange(status, true));
  }

  /** The link went down: the procedure ends, timers stop. */
  onDisconnected(): void {
    this.enqueue('disconnection', () => {
      this.clock.clearTimeout(this.securityRequestTimer);
      this.securityRequestTimer = undefined;
      if (this.state.proc) this.fail(undefined, 'disconnected', 'the link went down during pairing');
      this.stopTimer();
      this.state.phase = 'closed';
      const wasEncrypted = this.encryption.reset();
      if (wasEncrypted) this.emit('securityChanged', this.snapshot());
      if (this.pairWaiter) this.rejectPair(new SmpError(undefined, `link to ${formatAddress(this.lower.peerAddress)} closed`));
    });
  }

  /** ATT refused a request for lack of security; in 'after-att-rejection' mode a Security Request follows. */
  onAttSecurityRejection(): void {
    if (this.lower.role !== 'peripheral' || this.policy.securityRequest !== 'after-att-rejection') return;
    this.scheduleSecurityRequest();
  }

  /**
   * Peripheral: send a Security Request now, unless pointless or harmful: a procedure runs, the
   * link is encrypted or encryption is under way, one was already sent on this connection, the
   * SMP timeout expired, or pairing is not allowed and no bond exists. Core 5.4 Vol 3 Part H 2.4.6.
   * Returns whether it was sent.
   *
   * A Security Request alone does not arm the 30 s SMP timer here: centrals may ignore it (iOS
   * sometimes does), and a timeout would forbid any later pairing on the link.
   */
  requestSecurity(): boolean {
    return this.features.requestSecurity();
  }

  /**
   * Central: pair with the peer (LE Secure Connections). Resolves after key distribution;
   * rejects with {@link SmpError} carrying the Pairing Failed reason.
   */
  pair(): Promise<PairedInfo> {
    if (this.pairWaiter) return this.pairWaiter.promise;
    let resolve!: (v: PairedInfo) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<PairedInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.pairWaiter = { resolve, reject, promise };
    this.enqueue('pair()', () => this.features.startAsInitiator());
    return promise;
  }

  /**
   * Central: encrypt the link with the stored bond of this peer (HCI LE Enable Encryption).
   * Returns false when there is no bond.
   */
  encryptWithBond(): boolean {
    if (this.lower.role !== 'central') return false;
    const bond = this.bonds.resolve(this.lower.peerAddress);
    if (!bond) return false;
    this.enqueue('encrypt with bond', () => this.encryption.startBondEncryption(bond));
    return true;
  }

  /**
   * Ends the running pairing procedure with Pairing Failed `reason` (the user cancelled, the
   * application gave up), through the same path as every other failure: the procedure ends, the
   * repeated-attempts interval starts, `pairingFailed` is emitted (by 'local') and `pair()`
   * rejects. Without a procedure nothing is sent. Serialised with the other inputs.
   * Core 5.4 Vol 3 Part H 3.5.5.
   */
  abort(reason: number, detail = 'cancelled on this device'): void {
    if (!Number.isInteger(reason) || reason < 0x01 || reason > 0xff) throw new RangeError(`a Pairing Failed reason is 0x01..0xff, got ${reason}`);
    this.enqueue('abort()', () => {
      if (!this.state.proc) {
        this.log.debug({ reason }, 'abort() without a pairing procedure: nothing sent');
        return;
      }
      this.fail(reason, 'local', detail);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Queue and timers

  private enqueue(what: string, fn: () => void | Promise<void>): void {
    this.tail = this.tail.then(async () => {
      try {
        await fn();
      } catch (err) {
        this.log.error({ err }, `SMP: internal error while handling ${what}`);
        if (this.state.proc) this.fail(SmpReason.UnspecifiedReason, 'local', `internal error while handling ${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }

  private startTimer(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.onTimeout(), this.timeoutMs);
  }

  private stopTimer(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Core 5.4 Vol 3 Part H 3.4: the procedure failed; no further SMP commands on this link. */
  private onTimeout(): void {
    this.timer = undefined;
    if (!this.state.proc || this.state.phase === 'timedOut' || this.state.phase === 'closed') return;
    this.fail(undefined, 'timeout', `no SMP progress within ${this.timeoutMs / 1000} s`);
  }

  private scheduleSecurityRequest(): void {
    if (this.securityRequestTimer || this.features.securityRequestSent) return;
    this.securityRequestTimer = this.clock.setTimeout(() => {
      this.securityRequestTimer = undefined;
      this.enqueue('security request', () => void this.requestSecurity());
    }, this.policy.securityRequestDelayMs);
  }

  // -------------------------------------------------------------------------------------------
  // Sending and failing

  private send<K extends SmpPduType>(pdu: SmpPduOf<K>): void {
    if (this.state.phase === 'timedOut' || this.state.phase === 'closed') return;
    const bytes = encodeSmp(pdu);
    this.log.debug({ dir: 'tx', pdu: formatSmp(pdu as SmpPdu) }, 'SMP tx');
    if (this.state.proc) this.startTimer();
    try {
      this.lower.send(bytes);
    } catch (err) {
      this.log.warn({ err }, 'SMP: sending failed');
    }
  }

  /**
   * Ends the procedure: the one exit for every failure. `by` 'local' sends Pairing Failed with
   * `reason`; 'peer' (it sent Pairing Failed), 'timeout' and 'disconnected' send nothing. A
   * failure after the procedure started counts towards the repeated-attempts back-off (except a
   * lost link). A bond this peer had is untouched.
   */
  private fail(reason: number | undefined, by: FailureSource, detail: string): void {
    const proc = this.state.proc;
    if (by === 'local' && reason !== undefined) this.send({ type: 'pairingFailed', reason });
    this.stopTimer();
    this.state.proc = undefined;
    if (by === 'timeout') this.state.phase = 'timedOut';
    else if (by === 'disconnected') this.state.phase = 'closed';
    else if (this.state.phase !== 'timedOut' && this.state.phase !== 'closed') this.state.phase = 'idle';
    if (proc && by !== 'disconnected') {
      const interval = this.backoff.recordFailure(this.backoffPeer());
      this.log.debug({ intervalMs: interval }, 'SMP: repeated-attempts interval started');
    }
    const peer = this.lower.peerAddress;
    const reasonName = reason !== undefined ? smpReasonName(reason) : by === 'timeout' ? 'SMP Timeout' : 'Disconnected';
    const who =
      by === 'local'
        ? `we sent Pairing Failed ${hex2(reason ?? 0)} (${reasonName})`
        : by === 'peer'
          ? `the peer sent Pairing Failed ${hex2(reason ?? 0)} (${reasonName})`
          : by === 'timeout'
            ? 'the 30 s SMP timeout expired; no more pairing on this connection (reconnect to try again)'
            : 'the link went down';
    const failure: PairingFailure = {
      reason,
      reasonName,
      by,
      peer,
      message: `Pairing with ${formatAddress(peer)} failed: ${who}: ${detail}`,
    };
    if (proc || by !== 'disconnected') this.log.info({ reason, by }, failure.message);
    this.emit('pairingFailed', failure);
    if (by === 'timeout') this.emit('timeout');
    if (this.pairWaiter) this.rejectPair(new SmpError(reason, failure.message));
  }

  private rejectPair(err: SmpError): void {
    const w = this.pairWaiter;
    this.pairWaiter = undefined;
    w?.reject(err);
  }

  private backoffPeer(): Address {
    return this.state.identity ?? this.lower.peerAddress;
  }

  // -------------------------------------------------------------------------------------------
  // PDU dispatch

  private async handlePdu(bytes: Uint8Array): Promise<void> {
    if (this.state.phase === 'timedOut' || this.state.phase === 'closed') {
      this.log.debug({ dir: 'rx', bytes: bytes.length, phase: this.state.phase }, 'SMP rx ignored (no SMP on this link any more)');
      return;
    }
    const r = decodeSmp(bytes);
    if (!r.ok) {
      this.log.debug({ dir: 'rx', error: r.message, length: bytes.length }, 'SMP rx malformed');
      if (r.code === SmpCode.PairingFailed) {
        // Never answer a Pairing Failed with a Pairing Failed (no ping-pong); end any procedure.
        if (this.state.proc) this.fail(SmpReason.UnspecifiedReason, 'peer', `malformed Pairing Failed (${r.message})`);
        return;
      }
      this.fail(r.reason, 'local', r.message);
      return;
    }
    const pdu = r.pdu;
    this.log.debug({ dir: 'rx', pdu: formatSmp(pdu), phase: this.state.phase }, 'SMP rx');
    if (pdu.type === 'pairingFailed') {
      this.onPairingFailed(pdu.reason);
      return;
    }
    const role = this.lower.role;
    const allowed = this.state.phase === 'idle' ? IDLE_ALLOWED[role] : ALLOWED[this.state.phase];
    if (!allowed.includes(pdu.type)) {
      if (pdu.type === 'securityRequest' && role === 'central' && this.state.phase !== 'idle') {
        this.log.debug('Security Request during pairing ignored');
        return;
      }
      const never = NEVER_FOR_ROLE[role].includes(pdu.type);
      const reason = never ? SmpReason.CommandNotSupported : SmpReason.UnspecifiedReason;
      this.fail(reason, 'local', `${smpPduInfo(pdu.type).name} ${never ? `is not taken by a ${role}` : `was not expected ${this.state.phase === 'idle' ? 'outside pairing' : `in phase ${this.state.phase}`}`}`);
      return;
    }
    switch (pdu.type) {
      case 'pairingRequest':
        this.features.onPairingRequest(pdu);
        return;
      case 'pairingResponse':
        this.features.onPairingResponse(pdu);
        return;
      case 'pairingPublicKey':
        this.authentication.onPublicKey(pdu.publicKey);
        return;
      case 'pairingConfirm':
        this.authentication.onConfirm(pdu.confirm);
        return;
      case 'pairingRandom':
        this.authentication.onRandom(pdu.random);
        return;
      case 'pairingDhKeyCheck':
        this.authentication.onDhKeyCheck(pdu.check);
        return;
      case 'pairingKeypressNotification':
        this.log.debug({ notificationType: pdu.notificationType }, 'peer keypress notification');
        return;
      case 'securityRequest':
        this.features.onSecurityRequest(pdu.authReq);
        return;
      case 'encryptionInformation':
      case 'centralIdentification':
      case 'identityInformation':
      case 'identityAddressInformation':
      case 'signingInformation':
        await this.keyDistribution.onKeyPdu(pdu);
        return;
    }
  }

  private onPairingFailed(reason: number): void {
    if (!this.state.proc) {
      // After a Security Request the central may refuse with Pairing Failed: report it, nothing to end.
      this.fail(reason, 'peer', this.features.securityRequestSent ? 'the central refused our Security Request' : 'received outside pairing');
      return;
    }
    const hint =
      reason === SmpReason.PairingNotSupported || reason === SmpReason.AuthenticationRequirements
        ? 'if the phone still lists this device, "Forget This Device" there and pair again'
        : reason === SmpReason.RepeatedAttempts
          ? 'wait a little and try again'
          : 'try pairing again';
    this.fail(reason, 'peer', hint);
  }

  private currentProc(epoch: number): Procedure | undefined {
    const proc = this.state.proc;
    return proc && proc.epoch === epoch ? proc : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Success: the other way a procedure ends

  /**
   * Pairing complete (after key distribution): the bond policy may still refuse the bond (the peer
   * revealed a bonded identity, or the store filled meanwhile: Pairing Failed and the link, already
   * encrypted with the refused key, is dropped); otherwise the bond is stored (both sides asked for
   * bonding) and `paired` reported.
   */
  private async complete(proc: Procedure): Promise<void> {
    if (this.state.proc !== proc || !proc.ltk || !proc.assoc) return;
    const peer = this.lower.peerAddress;
    const identity = proc.peerIdentity ?? peer;
    const enc = this.encryption.state;
    const keySize = enc.encrypted ? enc.keySize : proc.keySize;
    const bond = {
      identity,
      ltk: proc.ltk,
      keySize,
      authenticated: proc.assoc.authenticated,
      peerIrk: proc.peerIrk && proc.peerIdentity ? proc.peerIrk : undefined,
      existingBond: proc.existingBond,
    };
    const refusal = this.bondPolicy.checkCommit(bond, proc.bonding);
    if (refusal) {
      this.fail(refusal.reason, 'local', refusal.detail);
      // The link is encrypted with the refused pairing's key: do not leave it up.
      await this.lower.disconnect(0x05).catch((err: unknown) => this.log.warn({ err }, 'disconnect failed'));
      return;
    }
    this.stopTimer();
    this.state.proc = undefined;
    this.state.phase = 'idle';
    let bonded = false;
    if (proc.bonding) {
      const record = await this.bondPolicy.commit(bond, new Date(this.clock.now()).toISOString());
      if (record) {
        bonded = true;
        this.emit('bondSaved', record);
      }
    }
    this.backoff.recordSuccess(this.backoffPeer());
    if (proc.peerIdentity) {
      this.state.identity = proc.peerIdentity;
      this.emit('identityResolved', { connectionAddress: peer, identity: proc.peerIdentity, source: 'pairing' });
    } else if (bonded) {
      this.state.identity = identity;
    }
    const info: PairedInfo = {
      level: securityLevelOf({ encrypted: true, authenticated: proc.assoc.authenticated, secureConnections: true, keySize }),
      bonded,
      keySize,
      model: proc.assoc.model,
      authenticated: proc.assoc.authenticated,
      peerIdentity: identity,
      ltk: proc.ltk,
    };
    this.log.info({ securityLevel: info.level, bonded, model: info.model }, `paired with ${formatAddress(identity)}`);
    this.emit('paired', info);
    const w = this.pairWaiter;
    this.pairWaiter = undefined;
    w?.resolve(info);
  }
}

export { PairingBackoff };
