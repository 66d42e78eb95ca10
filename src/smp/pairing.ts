/**
 * The SMP pairing state machine: one {@link SmpSession} per connection, LE Secure Connections only.
 * Core 5.4 Vol 3 Part H 2.3 (pairing methods), 3 (protocol), 2.4 (keys).
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
import type { BondRecord, BondStore, BondStoreCapacity, LocalIdentity } from '../bonds/types.js';
import { formatAddress, randomAddressKind, type Address } from '../util/address.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { silentLogger, type Logger } from '../util/log.js';
import { randomInt, type RandomSource } from '../util/random.js';
import { selectAssociation, canDoMitm, type Association } from './association.js';
import { PairingBackoff } from './backoff.js';
import { addressForCrypto } from './address-field.js';
import {
  bytesEqualConstantTime,
  checkPeerPublicKey,
  computeDhKey,
  f4,
  f5,
  f6,
  generateKeyPair,
  ioCapField,
  maskKey,
  numericComparisonValue,
  passkeyAsR,
  type P256KeyPair,
} from '../crypto/index.js';
import { SmpError } from './errors.js';
import { securityLevelOf, type LinkSecurity, type SecurityLevel } from './link-security.js';
import {
  AuthReq,
  KeyDist,
  KeypressNotificationType,
  SmpCode,
  SmpReason,
  decodeSmp,
  encodeSmp,
  formatSmp,
  ioCapabilityName,
  smpPduInfo,
  smpReasonName,
  type PairingFeatures,
  type SmpPdu,
  type SmpPduOf,
  type SmpPduType,
} from './pdu.js';
import {
  DEFAULT_SMP_POLICY,
  type AssociationModel,
  type FailureSource,
  type PairedInfo,
  type PairingFailure,
  type SmpEvents,
  type SmpLower,
  type SmpPolicy,
  type SmpSessionOptions,
} from './types.js';

/** Where the pairing procedure stands. */
export type SmpPhase =
  /** No procedure. */
  | 'idle'
  /** Central: Pairing Request sent. */
  | 'waitPairingResponse'
  /** Features exchanged; waiting for the peer's Pairing Public Key. */
  | 'waitPublicKey'
  /** Waiting for Pairing Confirm (central: Cb; passkey rounds: Cai / Cbi). */
  | 'waitConfirm'
  /** Waiting for Pairing Random (Na / Nb, or Nai / Nbi in passkey rounds). */
  | 'waitRandom'
  /** Waiting for our own user (passkey input, numeric comparison) before anything is sent. */
  | 'waitUser'
  /** Waiting for Pairing DHKey Check (Ea / Eb). */
  | 'waitDhKeyCheck'
  /** DHKey check passed; waiting for the link to encrypt with the new LTK. */
  | 'waitEncryption'
  /** Encrypted; key distribution running. */
  | 'waitKeys'
  /** The SMP timeout expired: no more SMP on this link (Core 5.4 Vol 3 Part H 3.4). */
  | 'timedOut'
  /** The link is gone. */
  | 'closed';

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
const PASSKEY_ROUNDS = 20;
const ZERO_16 = new Uint8Array(16);

/** Key distribution bits SMP takes from a peer it responds to in LE Secure Connections: IdKey only (EncKey is meaningless, LinkKey and SignKey unsupported). */
const SUPPORTED_DIST = KeyDist.IdKey;

/**
 * Key distribution bits that carry no PDU in LE Secure Connections: EncKey (the LTK is derived,
 * Encryption Information / Central Identification are not sent) and LinkKey (a BR/EDR link key
 * derivation flag; this stack derives none). A peer setting them is ignored, not refused.
 * Core 5.4 Vol 3 Part H 3.6.1.
 */
const SC_IGNORED_DIST = KeyDist.EncKey | KeyDist.LinkKey;

/** A key about to protect (or protecting) the link. */
interface LinkKey {
  readonly ltk: Uint8Array;
  readonly keySize: number;
  readonly authenticated: boolean;
  readonly secureConnections: boolean;
  readonly source: 'pairing' | 'bond' | 'session';
}

/** One pairing procedure. */
interface Procedure {
  readonly epoch: number;
  readonly preq: PairingFeatures;
  pres: PairingFeatures | undefined;
  assoc: Exclude<Association, { model: 'oob' }> | undefined;
  keySize: number;
  bonding: boolean;
  readonly keys: P256KeyPair;
  peerKey: Uint8Array | undefined;
  dhKey: Uint8Array | undefined;
  /** Our nonce of this round (Na / Nb, or Nai / Nbi). */
  localNonce: Uint8Array | undefined;
  /** The peer's confirm value waiting to be checked (Cb, Cai / Cbi). */
  peerConfirm: Uint8Array | undefined;
  na: Uint8Array | undefined;
  nb: Uint8Array | undefined;
  passkey: number | undefined;
  round: number;
  /** Numeric comparison: our user said yes (true from the start for the other models). */
  userConfirmed: boolean;
  /** Peripheral: Ea received, waiting for our user. */
  peerCheck: Uint8Array | undefined;
  macKey: Uint8Array | undefined;
  ltk: Uint8Array | undefined;
  checkPassed: boolean;
  /** Key distribution bits still expected from the peer, and the step inside IdKey. */
  expectFromPeer: number;
  idStep: 0 | 1;
  /** Key distribution bits we send. */
  sendToPeer: number;
  peerIrk: Uint8Array | undefined;
  peerIdentity: Address | undefined;
  /** The bond this peer had when the procedure started ('replace' policy, or a central re-pairing). */
  readonly existingBond: BondRecord | undefined;
}

function sameAddress(a: Address | undefined, b: Address | undefined): boolean {
  return !!a && !!b && a.type === b.type && a.address.toUpperCase() === b.address.toUpperCase();
}

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

function mergePolicy(p: Partial<SmpPolicy> | undefined): SmpPolicy {
  const out: Record<string, unknown> = { ...DEFAULT_SMP_POLICY };
  if (p) for (const [k, v] of Object.entries(p)) if (v !== undefined) out[k] = v;
  const policy = out as unknown as SmpPolicy;
  if (!Number.isInteger(policy.minKeySize) || policy.minKeySize < 7 || policy.minKeySize > 16) {
    throw new RangeError(`SMP policy: minKeySize must be 7..16, got ${policy.minKeySize}`);
  }
  if (policy.ioCapability < 0 || policy.ioCapability > 4) throw new RangeError(`SMP policy: ioCapability must be 0..4, got ${policy.ioCapability}`);
  for (const k of ['initiatorKeyDistribution', 'responderKeyDistribution'] as const) {
    const v = policy[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 0x0f)) {
      throw new RangeError(`SMP policy: ${k} must be 0x00..0x0f (EncKey 0x01, IdKey 0x02, SignKey 0x04, LinkKey 0x08), got ${String(v)}`);
    }
  }
  return policy;
}

/**
 * The Security Manager of one connection. Implements {@link LinkSecurity} so ATT can read
 * `session.security`.
 */
export class SmpSession extends TypedEmitter<SmpEvents> implements LinkSecurity {
  readonly policy: SmpPolicy;
  private readonly lower: SmpLower;
  private readonly bonds: BondStore;
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly backoff: PairingBackoff;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly explicitIdentity: LocalIdentity | undefined;

  private phaseNow: SmpPhase = 'idle';
  private proc: Procedure | undefined;
  private epochCounter = 0;
  private timer: TimerHandle | undefined;
  private securityRequestTimer: TimerHandle | undefined;
  private tail: Promise<void> = Promise.resolve();

  private enc = { encrypted: false, keySize: 0, authenticated: false, secureConnections: false };
  /** The key handed to the controller and not yet confirmed by an Encryption Change. */
  private pendingKey: LinkKey | undefined;
  /** The key from this connection's pairing (also when not bonded). */
  private sessionKey: LinkKey | undefined;
  private identity: Address | undefined;
  private securityRequestSentOnce = false;
  private encryptionSeen = false;
  private pairWaiter: { resolve: (v: PairedInfo) => void; reject: (e: Error) => void; promise: Promise<PairedInfo> } | undefined;

  constructor(opts: SmpSessionOptions) {
    super();
    this.lower = opts.lower;
    this.bonds = opts.bonds;
    this.clock = opts.clock;
    this.random = opts.random;
    this.backoff = opts.backoff;
    this.policy = mergePolicy(opts.policy);
    this.explicitIdentity = opts.localIdentity;
    this.timeoutMs = opts.timeoutMs ?? PAIRING_TIMEOUT_MS;
    this.log = (opts.log ?? silentLogger()).child({ layer: 'smp', peer: formatAddress(opts.lower.peerAddress) });
  }

  // -------------------------------------------------------------------------------------------
  // LinkSecurity

  get encrypted(): boolean {
    return this.enc.encrypted;
  }
  get keySize(): number {
    return this.enc.encrypted ? this.enc.keySize : 0;
  }
  get authenticated(): boolean {
    return this.enc.encrypted && this.enc.authenticated;
  }
  get secureConnections(): boolean {
    return this.enc.encrypted && this.enc.secureConnections;
  }
  get level(): SecurityLevel {
    return securityLevelOf(this.enc);
  }
  /** An LTK exists for this peer: a stored bond, or one from a pairing on this connection. */
  hasLtk(): boolean {
    return this.sessionKey !== undefined || this.bonds.resolve(this.lower.peerAddress) !== undefined;
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
    return this.phaseNow;
  }
  /** The association model of the running procedure. */
  get model(): AssociationModel | undefined {
    return this.proc?.assoc?.model;
  }
  /** The peer's identity address once known (bond or key distribution). */
  get peerIdentity(): Address | undefined {
    return this.identity;
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
      this.identity = bond.peer;
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
    this.enqueue('LTK request', () => this.handleLtkRequest(rand, ediv));
  }

  /** HCI Encryption Change. Core 5.4 Vol 4 Part E 7.7.8. */
  onEncryptionChange(status: number, enabled: boolean): void {
    this.enqueue('encryption change', () => this.handleEncryptionChange(status, enabled));
  }

  /** HCI Encryption Key Refresh Complete (the link was re-encrypted with a new key). Core 5.4 Vol 4 Part E 7.7.39. */
  onKeyRefresh(status: number): void {
    this.enqueue('key refresh', () => this.handleEncryptionChange(status, true));
  }

  /** The link went down: the procedure ends, timers stop. */
  onDisconnected(): void {
    this.enqueue('disconnection', () => {
      this.clock.clearTimeout(this.securityRequestTimer);
      this.securityRequestTimer = undefined;
      if (this.proc) this.fail(undefined, 'disconnected', 'the link went down during pairing');
      this.stopTimer();
      this.phaseNow = 'closed';
      const wasEncrypted = this.enc.encrypted;
      this.enc = { encrypted: false, keySize: 0, authenticated: false, secureConnections: false };
      this.pendingKey = undefined;
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
    if (this.lower.role !== 'peripheral') return false;
    if (this.phaseNow !== 'idle' || this.proc || this.enc.encrypted || this.encryptionSeen || this.securityRequestSentOnce) return false;
    const bonded = this.bonds.resolve(this.lower.peerAddress) !== undefined;
    if (!bonded && !this.policy.isPairingAllowed()) {
      this.log.info('not sending Security Request: pairing is not allowed now and the peer has no bond');
      return false;
    }
    const authReq = this.localAuthReq();
    this.securityRequestSentOnce = true;
    this.send({ type: 'securityRequest', authReq });
    this.emit('securityRequestSent', { peer: this.lower.peerAddress, authReq });
    return true;
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
    this.enqueue('pair()', () => this.startAsInitiator());
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
    this.enqueue('encrypt with bond', () => this.startBondEncryption(bond));
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
      if (!this.proc) {
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
        if (this.proc) this.fail(SmpReason.UnspecifiedReason, 'local', `internal error while handling ${what}: ${err instanceof Error ? err.message : String(err)}`);
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
    if (!this.proc || this.phaseNow === 'timedOut' || this.phaseNow === 'closed') return;
    this.fail(undefined, 'timeout', `no SMP progress within ${this.timeoutMs / 1000} s`);
  }

  private scheduleSecurityRequest(): void {
    if (this.securityRequestTimer || this.securityRequestSentOnce) return;
    this.securityRequestTimer = this.clock.setTimeout(() => {
      this.securityRequestTimer = undefined;
      this.enqueue('security request', () => void this.requestSecurity());
    }, this.policy.securityRequestDelayMs);
  }

  // -------------------------------------------------------------------------------------------
  // Sending and failing

  private send<K extends SmpPduType>(pdu: SmpPduOf<K>): void {
    if (this.phaseNow === 'timedOut' || this.phaseNow === 'closed') return;
    const bytes = encodeSmp(pdu);
    this.log.debug({ dir: 'tx', pdu: formatSmp(pdu as SmpPdu) }, 'SMP tx');
    if (this.proc) this.startTimer();
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
   * lost link). The bond this peer had, if any, is untouched.
   */
  private fail(reason: number | undefined, by: FailureSource, detail: string): void {
    const proc = this.proc;
    if (by === 'local' && reason !== undefined) this.send({ type: 'pairingFailed', reason });
    this.stopTimer();
    this.proc = undefined;
    if (by === 'timeout') this.phaseNow = 'timedOut';
    else if (by === 'disconnected') this.phaseNow = 'closed';
    else if (this.phaseNow !== 'timedOut' && this.phaseNow !== 'closed') this.phaseNow = 'idle';
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

  /**
   * The capacity of a store that would refuse a bond for `peer` (full, refusing new peers, and
   * `peer` resolves to no stored bond); undefined when the bond would be stored.
   */
  private bondStoreRefuses(peer: Address): BondStoreCapacity | undefined {
    const cap = this.bonds.capacity?.();
    if (!cap || cap.whenFull !== 'refuse' || cap.stored < cap.max) return undefined;
    if (this.bonds.resolve(peer)) return undefined;
    return cap;
  }

  private backoffPeer(): Address {
    return this.identity ?? this.lower.peerAddress;
  }

  // -------------------------------------------------------------------------------------------
  // PDU dispatch

  private async handlePdu(bytes: Uint8Array): Promise<void> {
    if (this.phaseNow === 'timedOut' || this.phaseNow === 'closed') {
      this.log.debug({ dir: 'rx', bytes: bytes.length, phase: this.phaseNow }, 'SMP rx ignored (no SMP on this link any more)');
      return;
    }
    const r = decodeSmp(bytes);
    if (!r.ok) {
      this.log.debug({ dir: 'rx', error: r.message, length: bytes.length }, 'SMP rx malformed');
      if (r.code === SmpCode.PairingFailed) {
        // Never answer a Pairing Failed with a Pairing Failed (no ping-pong); end any procedure.
        if (this.proc) this.fail(SmpReason.UnspecifiedReason, 'peer', `malformed Pairing Failed (${r.message})`);
        return;
      }
      this.fail(r.reason, 'local', r.message);
      return;
    }
    const pdu = r.pdu;
    this.log.debug({ dir: 'rx', pdu: formatSmp(pdu), phase: this.phaseNow }, 'SMP rx');
    if (pdu.type === 'pairingFailed') {
      this.onPairingFailed(pdu.reason);
      return;
    }
    const role = this.lower.role;
    const allowed = this.phaseNow === 'idle' ? IDLE_ALLOWED[role] : ALLOWED[this.phaseNow];
    if (!allowed.includes(pdu.type)) {
      if (pdu.type === 'securityRequest' && role === 'central' && this.phaseNow !== 'idle') {
        this.log.debug('Security Request during pairing ignored');
        return;
      }
      const never = NEVER_FOR_ROLE[role].includes(pdu.type);
      const reason = never ? SmpReason.CommandNotSupported : SmpReason.UnspecifiedReason;
      this.fail(reason, 'local', `${smpPduInfo(pdu.type).name} ${never ? `is not taken by a ${role}` : `was not expected ${this.phaseNow === 'idle' ? 'outside pairing' : `in phase ${this.phaseNow}`}`}`);
      return;
    }
    switch (pdu.type) {
      case 'pairingRequest':
        this.onPairingRequest(pdu);
        return;
      case 'pairingResponse':
        this.onPairingResponse(pdu);
        return;
      case 'pairingPublicKey':
        this.onPublicKey(pdu.publicKey);
        return;
      case 'pairingConfirm':
        this.onConfirm(pdu.confirm);
        return;
      case 'pairingRandom':
        this.onRandom(pdu.random);
        return;
      case 'pairingDhKeyCheck':
        this.onDhKeyCheck(pdu.check);
        return;
      case 'pairingKeypressNotification':
        this.log.debug({ notificationType: pdu.notificationType }, 'peer keypress notification');
        return;
      case 'securityRequest':
        this.onSecurityRequest(pdu.authReq);
        return;
      case 'encryptionInformation':
      case 'centralIdentification':
      case 'identityInformation':
      case 'identityAddressInformation':
      case 'signingInformation':
        await this.onKeyPdu(pdu);
        return;
    }
  }

  private onPairingFailed(reason: number): void {
    if (!this.proc) {
      // After a Security Request the central may refuse with Pairing Failed: report it, nothing to end.
      this.fail(reason, 'peer', this.securityRequestSentOnce ? 'the central refused our Security Request' : 'received outside pairing');
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

  // -------------------------------------------------------------------------------------------
  // Phase 1: features

  private localIdentity(): LocalIdentity | undefined {
    return this.explicitIdentity ?? this.bonds.getLocalIdentity();
  }

  private wantsMitm(): boolean {
    return this.policy.requireMitm || canDoMitm(this.policy.ioCapability);
  }

  /** Our AuthReq: bonding, MITM, SC, and the Keypress / CT2 bits the policy asks for. Core 5.4 Vol 3 Part H 3.5.1. */
  private localAuthReq(): number {
    return (
      (this.policy.bondable ? AuthReq.Bonding : 0) |
      (this.wantsMitm() ? AuthReq.Mitm : 0) |
      AuthReq.SecureConnections |
      (this.policy.keypress ? AuthReq.Keypress : 0) |
      (this.policy.ct2 ? AuthReq.Ct2 : 0)
    );
  }

  private newProcedure(preq: PairingFeatures, existingBond: BondRecord | undefined): Procedure {
    return {
      epoch: ++this.epochCounter,
      preq,
      pres: undefined,
      assoc: undefined,
      keySize: 16,
      bonding: false,
      keys: generateKeyPair(this.random),
      peerKey: undefined,
      dhKey: undefined,
      localNonce: undefined,
      peerConfirm: undefined,
      na: undefined,
      nb: undefined,
      passkey: undefined,
      round: 0,
      userConfirmed: false,
      peerCheck: undefined,
      macKey: undefined,
      ltk: undefined,
      checkPassed: false,
      expectFromPeer: 0,
      idStep: 0,
      sendToPeer: 0,
      peerIrk: undefined,
      peerIdentity: undefined,
      existingBond,
    };
  }

  /** Checks common to both roles once both feature sets are known; returns false after failing. */
  private settleFeatures(proc: Procedure, preq: PairingFeatures, pres: PairingFeatures): boolean {
    const assoc = selectAssociation(preq, pres);
    if (assoc.model === 'oob') {
      this.fail(SmpReason.OobNotAvailable, 'local', 'the peer flagged OOB data; this device has no out-of-band channel');
      return false;
    }
    if (this.policy.requireMitm && !assoc.authenticated) {
      this.fail(
        SmpReason.AuthenticationRequirements,
        'local',
        `this device requires MITM protection but the IO capabilities (initiator ${ioCapabilityName(preq.ioCapability)}, responder ${ioCapabilityName(pres.ioCapability)}) only allow Just Works`,
      );
      return false;
    }
    proc.assoc = assoc;
    proc.pres = pres;
    proc.bonding = (preq.authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding && (pres.authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding;
    // Numeric Comparison always asks our user; Just Works asks only when a consent hook is configured.
    proc.userConfirmed = !(assoc.model === 'numericComparison' || (assoc.model === 'justWorks' && this.policy.confirmJustWorks !== undefined));
    const central = this.lower.role === 'central';
    const toPeer = central ? pres.initiatorKeyDist : pres.responderKeyDist;
    const fromPeer = central ? pres.responderKeyDist : pres.initiatorKeyDist;
    // LE Secure Connections: EncKey is ignored (the LTK is derived), LinkKey is not supported.
    // SignKey is granted to us only when we offered it (a central whose policy asks for it).
    proc.sendToPeer = toPeer & ((this.localIdentity() ? KeyDist.IdKey : 0) | KeyDist.SignKey);
    proc.expectFromPeer = fromPeer & (KeyDist.IdKey | KeyDist.SignKey);
    return true;
  }

  /**
   * What a new pairing would lose against the bond `old` of the same peer: authenticated to
   * unauthenticated, Secure Connections to legacy, or a shorter key. Undefined when nothing.
   * In the spirit of Zephyr's update_keys_check (subsys/bluetooth/host/smp.c).
   */
  private downgradeFrom(old: BondRecord, authenticated: boolean, secureConnections: boolean, keySize: number): string | undefined {
    if (old.authenticated && !authenticated) return 'the bond is authenticated (MITM-protected) and this pairing would be Just Works';
    if (old.secureConnections && !secureConnections) return 'the bond is from LE Secure Connections and this pairing would be legacy';
    if (keySize < old.keySize) return `the bond has a ${old.keySize}-byte key and this pairing would give ${keySize} bytes`;
    return undefined;
  }

  /**
   * Re-pairing a bonded peer ('replace' policy) must not weaken its bond: a downgrade gets Pairing
   * Failed 0x03 Authentication Requirements and the bond is kept. Returns false after failing.
   */
  private refuseDowngrade(proc: Procedure, old: BondRecord | undefined): boolean {
    if (!old || !proc.assoc) return true;
    const lost = this.downgradeFrom(old, proc.assoc.authenticated, true, proc.keySize);
    if (!lost) return true;
    this.fail(SmpReason.AuthenticationRequirements, 'local', `re-pairing ${formatAddress(old.peer)} would weaken its bond (${lost}); the bond was kept`);
    return false;
  }

  /** Peripheral: Core 5.4 Vol 3 Part H 3.5.1 / 2.3.5.1. */
  private onPairingRequest(req: SmpPduOf<'pairingRequest'>): void {
    const peer = this.lower.peerAddress;
    const { type: _t, ...request } = req;
    this.emit('pairingRequestReceived', { peer, request });
    if (!this.policy.isPairingAllowed()) {
      this.fail(SmpReason.PairingNotSupported, 'local', 'pairing is not allowed now (pairing window closed); open it and pair again');
      return;
    }
    const waitMs = this.backoff.remainingMs(this.backoffPeer());
    if (waitMs > 0) {
      this.fail(SmpReason.RepeatedAttempts, 'local', `a pairing with this peer failed recently; the next attempt is allowed in ${Math.ceil(waitMs / 1000)} s`);
      return;
    }
    if ((req.authReq & AuthReq.SecureConnections) === 0) {
      this.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer asked for LE legacy pairing; this device pairs with LE Secure Connections only');
      return;
    }
    if (req.maxKeySize < 7 || req.maxKeySize > 16) {
      // 0x06, not 0x0A: what Zephyr (smp_pairing_req) and Linux answer and what PTS accepts.
      this.fail(SmpReason.EncryptionKeySize, 'local', `Maximum Encryption Key Size ${req.maxKeySize} is outside 7..16`);
      return;
    }
    const keySize = Math.min(req.maxKeySize, 16);
    if (keySize < this.policy.minKeySize) {
      this.fail(SmpReason.EncryptionKeySize, 'local', `the peer offers at most ${keySize}-byte keys; this device requires ${this.policy.minKeySize}`);
      return;
    }
    const existing = this.bonds.resolve(peer);
    if (existing && this.policy.rePairing === 'reject') {
      this.fail(
        SmpReason.AuthenticationRequirements,
        'local',
        `this device already holds a bond for ${formatAddress(existing.peer)}; remove it here (or allow re-pairing) if the phone lost its keys, or use the existing bond`,
      );
      return;
    }
    const bondingAsked = (req.authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding;
    const bonding = this.policy.bondable && bondingAsked;
    const full = bonding && !existing ? this.bondStoreRefuses(peer) : undefined;
    if (full) {
      this.log.warn(
        { stored: full.stored, maxBonds: full.max, store: this.bonds.description },
        `pairing with ${formatAddress(peer)} refused: the bond store is full (${full.stored} of ${full.max}) and new bonds are refused so that no bonded phone is evicted`,
      );
      this.fail(
        SmpReason.UnspecifiedReason,
        'local',
        `the bond store ${this.bonds.description} is full (${full.stored} of ${full.max} bonds); remove a bond (wearable-host bonds remove ADDRESS), raise --max-bonds, or run with --evict-oldest-bond`,
      );
      return;
    }
    const globalWait = this.backoff.takeNewPairing();
    if (globalWait > 0) {
      this.log.warn({ waitMs: globalWait }, `pairing with ${formatAddress(peer)} refused: too many new pairings on this device recently (any address)`);
      this.fail(SmpReason.RepeatedAttempts, 'local', `too many pairings were started on this device recently (from any address); the next is allowed in ${Math.ceil(globalWait / 1000)} s`);
      return;
    }
    const identity = this.localIdentity();
    // The intersection of what the central offers, what we support and what the policy allows.
    const initMask = SUPPORTED_DIST & (this.policy.initiatorKeyDistribution ?? 0x0f);
    const respMask = (identity ? KeyDist.IdKey : 0) & (this.policy.responderKeyDistribution ?? 0x0f);
    const pres: PairingFeatures = {
      ioCapability: this.policy.ioCapability,
      oobDataFlag: 0,
      authReq: this.localAuthReq(),
      maxKeySize: 16,
      initiatorKeyDist: bonding ? req.initiatorKeyDist & initMask : 0,
      responderKeyDist: bonding ? req.responderKeyDist & respMask : 0,
    };
    const proc = this.newProcedure(request, existing);
    this.proc = proc;
    if (!this.settleFeatures(proc, request, pres)) return;
    proc.keySize = keySize;
    if (!this.refuseDowngrade(proc, existing)) return;
    this.send({ type: 'pairingResponse', ...pres });
    this.phaseNow = 'waitPublicKey';
    this.emit('pairingStarted', { peer, role: 'responder', model: proc.assoc?.model, request, response: pres });
  }

  /** Central: start a procedure (pair(), or a Security Request). */
  private startAsInitiator(): void {
    if (this.lower.role !== 'central') {
      this.rejectPair(new SmpError(undefined, `pair() is for the central; this side is the peripheral of ${formatAddress(this.lower.peerAddress)}`));
      return;
    }
    if (this.proc) return; // already pairing: the waiter resolves with it
    if (this.phaseNow === 'timedOut' || this.phaseNow === 'closed') {
      this.rejectPair(new SmpError(undefined, `no SMP on this link any more (${this.phaseNow}); reconnect to ${formatAddress(this.lower.peerAddress)} and try again`));
      return;
    }
    if (!this.policy.isPairingAllowed()) {
      this.rejectPair(new SmpError(SmpReason.PairingNotSupported, 'pairing is not allowed now (pairing window closed)'));
      return;
    }
    const waitMs = this.backoff.remainingMs(this.backoffPeer());
    if (waitMs > 0) {
      this.rejectPair(new SmpError(SmpReason.RepeatedAttempts, `a pairing with ${formatAddress(this.lower.peerAddress)} failed recently; retry in ${Math.ceil(waitMs / 1000)} s`));
      return;
    }
    const preq: PairingFeatures = {
      ioCapability: this.policy.ioCapability,
      oobDataFlag: 0,
      authReq: this.localAuthReq(),
      maxKeySize: 16,
      ...this.requestKeyDistribution(),
    };
    this.proc = this.newProcedure(preq, this.bonds.resolve(this.lower.peerAddress));
    this.send({ type: 'pairingRequest', ...preq });
    this.phaseNow = 'waitPairingResponse';
    this.emit('pairingStarted', { peer: this.lower.peerAddress, role: 'initiator', model: undefined, request: preq, response: undefined });
  }

  /**
   * Central: the key distribution fields of our Pairing Request: the policy's values, else IdKey
   * both ways when bonding. IdKey is never offered without a local identity to send.
   */
  private requestKeyDistribution(): { initiatorKeyDist: number; responderKeyDist: number } {
    const identity = this.localIdentity();
    const bondable = this.policy.bondable;
    let init = this.policy.initiatorKeyDistribution ?? (bondable ? KeyDist.IdKey : 0);
    const resp = this.policy.responderKeyDistribution ?? (bondable ? KeyDist.IdKey : 0);
    if (!identity && init & KeyDist.IdKey) {
      this.log.warn('no local identity to distribute: IdKey left out of the Initiator Key Distribution');
      init &= ~KeyDist.IdKey;
    }
    return { initiatorKeyDist: init, responderKeyDist: resp };
  }

  /** Central: Core 5.4 Vol 3 Part H 3.5.2. */
  private onPairingResponse(rsp: SmpPduOf<'pairingResponse'>): void {
    const proc = this.proc;
    if (!proc) return;
    const { type: _t, ...pres } = rsp;
    if ((pres.authReq & AuthReq.SecureConnections) === 0) {
      this.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer answered for LE legacy pairing; this device pairs with LE Secure Connections only');
      return;
    }
    if (pres.maxKeySize < 7 || pres.maxKeySize > 16) {
      // 0x06, not 0x0A: what Zephyr (smp_pairing_req) and Linux answer and what PTS accepts.
      this.fail(SmpReason.EncryptionKeySize, 'local', `Maximum Encryption Key Size ${pres.maxKeySize} is outside 7..16`);
      return;
    }
    const keySize = Math.min(pres.maxKeySize, proc.preq.maxKeySize);
    if (keySize < this.policy.minKeySize) {
      this.fail(SmpReason.EncryptionKeySize, 'local', `the peer offers at most ${keySize}-byte keys; this device requires ${this.policy.minKeySize}`);
      return;
    }
    // A responder may only clear bits of our offer (3.5.2). EncKey and LinkKey carry nothing in LE
    // Secure Connections and are ignored wherever they appear (3.6.1): only the others can be invalid.
    const extraInit = pres.initiatorKeyDist & ~proc.preq.initiatorKeyDist & ~SC_IGNORED_DIST;
    const extraResp = pres.responderKeyDist & ~proc.preq.responderKeyDist & ~SC_IGNORED_DIST;
    if (extraInit !== 0 || extraResp !== 0) {
      this.fail(
        SmpReason.InvalidParameters,
        'local',
        `the Pairing Response asks for keys the request did not offer (initiator ${hex2(extraInit)}, responder ${hex2(extraResp)})`,
      );
      return;
    }
    if ((pres.initiatorKeyDist | pres.responderKeyDist) & SC_IGNORED_DIST) {
      this.log.debug(
        { initiatorKeyDist: pres.initiatorKeyDist, responderKeyDist: pres.responderKeyDist },
        'Pairing Response sets EncKey/LinkKey: ignored in LE Secure Connections (Core 5.4 Vol 3 Part H 3.6.1)',
      );
    }
    if (!this.settleFeatures(proc, proc.preq, pres)) return;
    proc.keySize = keySize;
    if (!this.refuseDowngrade(proc, proc.existingBond)) return;
    this.send({ type: 'pairingPublicKey', publicKey: proc.keys.publicKey });
    this.phaseNow = 'waitPublicKey';
  }

  // -------------------------------------------------------------------------------------------
  // Phase 2: public keys, authentication stage 1

  /** X coordinates: PKa is the initiator's (central's) key. */
  private pkaX(proc: Procedure): Uint8Array {
    return (this.lower.role === 'central' ? proc.keys.publicKey : (proc.peerKey as Uint8Array)).subarray(0, 32);
  }
  private pkbX(proc: Procedure): Uint8Array {
    return (this.lower.role === 'central' ? (proc.peerKey as Uint8Array) : proc.keys.publicKey).subarray(0, 32);
  }

  /**
   * Core 5.4 Vol 3 Part H 3.5.6 and 2.3.5.6.1. An invalid peer key is answered with 0x0B DHKey
   * Check Failed at once: the spec requires the check but names no reason; 0x0B is what the
   * Bluetooth SIG's SM test suite expects for an invalid key (Linux smp.c commit 0e4d4dcc1a6e,
   * Zephyr does the same). A key equal to ours (reflection, CVE-2020-26558) gets the same answer.
   * The debug key, when not allowed, gets 0x03 Authentication Requirements: it is a valid key that
   * our security requirements refuse.
   */
  private onPublicKey(publicKey: Uint8Array): void {
    const proc = this.proc;
    if (!proc || !proc.assoc) return;
    const verdict = checkPeerPublicKey(publicKey, proc.keys.publicKey, this.policy.allowDebugKeys);
    if (verdict === 'invalid-point') {
      this.fail(SmpReason.DhKeyCheckFailed, 'local', 'the peer public key is not a point on P-256 (invalid-curve attack, CVE-2018-5383)');
      return;
    }
    if (verdict === 'same-as-local') {
      this.fail(SmpReason.DhKeyCheckFailed, 'local', 'the peer sent our own public key back (reflection, CVE-2020-26558)');
      return;
    }
    if (verdict === 'debug-key') {
      this.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer uses the published debug key pair; allow debug keys only for sniffing sessions');
      return;
    }
    proc.peerKey = publicKey.slice();
    proc.dhKey = computeDhKey(proc.keys.privateKey, proc.peerKey);
    const central = this.lower.role === 'central';
    if (!central) this.send({ type: 'pairingPublicKey', publicKey: proc.keys.publicKey });
    const model = proc.assoc.model;
    if (model === 'passkeyEntry') {
      this.startPasskey(proc);
      return;
    }
    if (central) {
      this.phaseNow = 'waitConfirm';
      return;
    }
    // Responder, Just Works / Numeric Comparison: Cb = f4(PKbx, PKax, Nb, 0). Vol 3 Part H 2.3.5.6.2.
    proc.localNonce = this.random.bytes(16);
    this.send({ type: 'pairingConfirm', confirm: f4(this.pkbX(proc), this.pkaX(proc), proc.localNonce, 0) });
    this.phaseNow = 'waitRandom';
  }

  /** Passkey Entry: Core 5.4 Vol 3 Part H 2.3.5.6.3. */
  private startPasskey(proc: Procedure): void {
    const assoc = proc.assoc;
    if (!assoc || assoc.model !== 'passkeyEntry') return;
    const central = this.lower.role === 'central';
    const action = central ? assoc.initiator : assoc.responder;
    const peer = this.lower.peerAddress;
    if (action === 'display') {
      const show = this.policy.displayPasskey;
      if (!show) {
        this.fail(SmpReason.PasskeyEntryFailed, 'local', 'Passkey Entry needs this device to show a passkey, but no display hook is configured');
        return;
      }
      proc.passkey = randomInt(this.random, 1_000_000);
      try {
        const r = show(proc.passkey, peer);
        if (r instanceof Promise) r.catch((err: unknown) => this.log.warn({ err }, 'displayPasskey hook failed'));
      } catch (err) {
        this.log.warn({ err }, 'displayPasskey hook failed');
      }
      if (central) this.sendPasskeyConfirm(proc);
      else this.phaseNow = 'waitConfirm';
      return;
    }
    const ask = this.policy.requestPasskey;
    if (!ask) {
      this.fail(SmpReason.PasskeyEntryFailed, 'local', 'Passkey Entry needs a passkey typed on this device, but no input hook is configured');
      return;
    }
    this.phaseNow = central ? 'waitUser' : 'waitConfirm';
    const epoch = proc.epoch;
    if (this.keypressAgreed(proc)) this.send({ type: 'pairingKeypressNotification', notificationType: KeypressNotificationType.PasskeyEntryStarted });
    this.runHook(
      'requestPasskey',
      () => ask(peer),
      (value) => this.onPasskeyEntered(epoch, value),
      () => this.onPasskeyEntered(epoch, undefined),
    );
  }

  /** Runs a user hook outside the queue; its answer comes back as an input. */
  private runHook<T>(name: string, hook: () => Promise<T>, onValue: (v: T) => void, onError: () => void): void {
    let p: Promise<T>;
    try {
      p = Promise.resolve(hook());
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (v) => this.enqueue(`${name} answer`, () => onValue(v)),
      (err: unknown) => {
        this.log.warn({ err }, `${name} hook failed`);
        this.enqueue(`${name} failure`, onError);
      },
    );
  }

  private currentProc(epoch: number): Procedure | undefined {
    const proc = this.proc;
    return proc && proc.epoch === epoch ? proc : undefined;
  }

  private onPasskeyEntered(epoch: number, value: number | undefined): void {
    const proc = this.currentProc(epoch);
    if (!proc) return;
    if (value === undefined || !Number.isInteger(value) || value < 0 || value > 999_999) {
      this.fail(SmpReason.PasskeyEntryFailed, 'local', value === undefined ? 'the user cancelled passkey entry' : `the passkey typed is not 000000..999999`);
      return;
    }
    proc.passkey = value;
    if (this.keypressAgreed(proc)) this.send({ type: 'pairingKeypressNotification', notificationType: KeypressNotificationType.PasskeyEntryCompleted });
    if (this.lower.role === 'central') this.sendPasskeyConfirm(proc);
    else if (proc.peerConfirm) this.respondPasskeyConfirm(proc);
  }

  /** Both AuthReqs set Keypress: the side typing the passkey sends notifications. Core 5.4 Vol 3 Part H 3.5.1. */
  private keypressAgreed(proc: Procedure): boolean {
    return (proc.preq.authReq & (proc.pres?.authReq ?? 0) & AuthReq.Keypress) !== 0;
  }

  private passkeyBit(proc: Procedure): number {
    return 0x80 | (((proc.passkey ?? 0) >>> proc.round) & 1);
  }

  /** Central, round i: Cai = f4(PKax, PKbx, Nai, rai). */
  private sendPasskeyConfirm(proc: Procedure): void {
    proc.localNonce = this.random.bytes(16);
    this.send({ type: 'pairingConfirm', confirm: f4(this.pkaX(proc), this.pkbX(proc), proc.localNonce, this.passkeyBit(proc)) });
    this.phaseNow = 'waitConfirm';
  }

  /** Peripheral, round i: Cbi = f4(PKbx, PKax, Nbi, rbi), once Cai arrived and the passkey is known. */
  private respondPasskeyConfirm(proc: Procedure): void {
    proc.localNonce = this.random.bytes(16);
    this.send({ type: 'pairingConfirm', confirm: f4(this.pkbX(proc), this.pkaX(proc), proc.localNonce, this.passkeyBit(proc)) });
    this.phaseNow = 'waitRandom';
  }

  private onConfirm(confirm: Uint8Array): void {
    const proc = this.proc;
    if (!proc || !proc.assoc) return;
    const central = this.lower.role === 'central';
    if (proc.assoc.model === 'passkeyEntry' && !central) {
      if (proc.peerConfirm) {
        this.fail(SmpReason.UnspecifiedReason, 'local', 'a second Pairing Confirm arrived before this round was answered');
        return;
      }
      proc.peerConfirm = confirm.slice();
      if (proc.passkey !== undefined) this.respondPasskeyConfirm(proc);
      return;
    }
    if (!central) {
      // Peripheral in Just Works / Numeric Comparison never waits for a confirm: not allowed there.
      this.fail(SmpReason.UnspecifiedReason, 'local', 'Pairing Confirm was not expected');
      return;
    }
    // Central: Cb (Just Works / Numeric Comparison) or Cbi (passkey round): answer with our nonce.
    proc.peerConfirm = confirm.slice();
    if (proc.assoc.model !== 'passkeyEntry') proc.localNonce = this.random.bytes(16);
    this.send({ type: 'pairingRandom', random: proc.localNonce as Uint8Array });
    this.phaseNow = 'waitRandom';
  }

  private onRandom(random: Uint8Array): void {
    const proc = this.proc;
    if (!proc || !proc.assoc) return;
    const central = this.lower.role === 'central';
    const model = proc.assoc.model;
    const pka = this.pkaX(proc);
    const pkb = this.pkbX(proc);
    if (model === 'passkeyEntry') {
      const bit = this.passkeyBit(proc);
      const expected = central ? f4(pkb, pka, random, bit) : f4(pka, pkb, random, bit);
      if (!proc.peerConfirm || !bytesEqualConstantTime(expected, proc.peerConfirm)) {
        this.fail(SmpReason.ConfirmValueFailed, 'local', `passkey round ${proc.round + 1}: the confirm value does not match (wrong passkey?)`);
        return;
      }
      proc.peerConfirm = undefined;
      if (!central) this.send({ type: 'pairingRandom', random: proc.localNonce as Uint8Array });
      proc.round++;
      if (proc.round < PASSKEY_ROUNDS) {
        if (central) this.sendPasskeyConfirm(proc);
        else this.phaseNow = 'waitConfirm';
        return;
      }
      proc.na = central ? (proc.localNonce as Uint8Array) : random.slice();
      proc.nb = central ? random.slice() : (proc.localNonce as Uint8Array);
      if (central) this.sendInitiatorCheck(proc);
      else this.phaseNow = 'waitDhKeyCheck';
      return;
    }
    if (central) {
      // Just Works / Numeric Comparison: check Cb = f4(PKbx, PKax, Nb, 0). Vol 3 Part H 2.3.5.6.2.
      if (!proc.peerConfirm || !bytesEqualConstantTime(f4(pkb, pka, random, 0), proc.peerConfirm)) {
        this.fail(SmpReason.ConfirmValueFailed, 'local', "the responder's confirm value does not match its nonce");
        return;
      }
      proc.na = proc.localNonce as Uint8Array;
      proc.nb = random.slice();
      if (!proc.userConfirmed) {
        this.phaseNow = 'waitUser';
        this.askUserConfirmation(proc);
        return;
      }
      this.sendInitiatorCheck(proc);
      return;
    }
    proc.na = random.slice();
    proc.nb = proc.localNonce as Uint8Array;
    this.send({ type: 'pairingRandom', random: proc.nb });
    this.phaseNow = 'waitDhKeyCheck';
    if (!proc.userConfirmed) this.askUserConfirmation(proc);
  }

  /**
   * After the nonces, before the DHKey checks (Vol 3 Part H 2.3.5.6.2): Numeric Comparison shows
   * g2 mod 10^6 and asks our user; Just Works asks for consent when `confirmJustWorks` is set.
   * Either refusal is 0x0C Numeric Comparison Failed.
   */
  private askUserConfirmation(proc: Procedure): void {
    const epoch = proc.epoch;
    const peer = this.lower.peerAddress;
    if (proc.assoc?.model === 'justWorks') {
      const consent = this.policy.confirmJustWorks;
      if (!consent) {
        this.onUserConfirmed(epoch, true);
        return;
      }
      this.runHook(
        'confirmJustWorks',
        () => consent(peer),
        (ok) => this.onUserConfirmed(epoch, ok === true),
        () => this.onUserConfirmed(epoch, false),
      );
      return;
    }
    const hook = this.policy.confirmNumericComparison;
    if (!hook) {
      this.fail(SmpReason.NumericComparisonFailed, 'local', 'Numeric Comparison needs a confirmation hook and none is configured');
      return;
    }
    const value = numericComparisonValue(this.pkaX(proc), this.pkbX(proc), proc.na as Uint8Array, proc.nb as Uint8Array);
    this.runHook(
      'confirmNumericComparison',
      () => hook(value, peer),
      (ok) => this.onUserConfirmed(epoch, ok === true),
      () => this.onUserConfirmed(epoch, false),
    );
  }

  private onUserConfirmed(epoch: number, ok: boolean): void {
    const proc = this.currentProc(epoch);
    if (!proc) return;
    if (!ok) {
      const what =
        proc.assoc?.model === 'justWorks' ? 'the user declined the Just Works pairing (Cancel at the consent prompt)' : 'the user rejected the numeric comparison (the numbers differ, or Cancel)';
      this.fail(SmpReason.NumericComparisonFailed, 'local', what);
      return;
    }
    proc.userConfirmed = true;
    if (this.lower.role === 'central') this.sendInitiatorCheck(proc);
    else this.tryResponderCheck(proc);
  }

  // -------------------------------------------------------------------------------------------
  // Phase 2, authentication stage 2: DHKey checks. Vol 3 Part H 2.3.5.6.5.

  /** f6's r for both checks: 0 for Just Works / Numeric Comparison, the passkey for Passkey Entry. */
  private checkR(proc: Procedure): Uint8Array {
    return proc.assoc?.model === 'passkeyEntry' ? passkeyAsR(proc.passkey ?? 0) : ZERO_16;
  }

  private deriveKeys(proc: Procedure): void {
    if (proc.macKey) return;
    const a = addressForCrypto(this.lower.role === 'central' ? this.lower.localAddress : this.lower.peerAddress);
    const b = addressForCrypto(this.lower.role === 'central' ? this.lower.peerAddress : this.lower.localAddress);
    const { macKey, ltk } = f5(proc.dhKey as Uint8Array, proc.na as Uint8Array, proc.nb as Uint8Array, a, b);
    proc.macKey = macKey;
    proc.ltk = maskKey(ltk, proc.keySize);
  }

  private checkValues(proc: Procedure): { ea: Uint8Array; eb: Uint8Array } {
    this.deriveKeys(proc);
    const central = this.lower.role === 'central';
    const a = addressForCrypto(central ? this.lower.localAddress : this.lower.peerAddress);
    const b = addressForCrypto(central ? this.lower.peerAddress : this.lower.localAddress);
    const r = this.checkR(proc);
    const pres = proc.pres as PairingFeatures;
    const ea = f6(proc.macKey as Uint8Array, proc.na as Uint8Array, proc.nb as Uint8Array, r, ioCapField(proc.preq), a, b);
    const eb = f6(proc.macKey as Uint8Array, proc.nb as Uint8Array, proc.na as Uint8Array, r, ioCapField(pres), b, a);
    return { ea, eb };
  }

  /** Central: send Ea = f6(MacKey, Na, Nb, rb, IOcapA, A, B). */
  private sendInitiatorCheck(proc: Procedure): void {
    const { ea } = this.checkValues(proc);
    this.send({ type: 'pairingDhKeyCheck', check: ea });
    this.phaseNow = 'waitDhKeyCheck';
  }

  private onDhKeyCheck(check: Uint8Array): void {
    const proc = this.proc;
    if (!proc) return;
    if (this.lower.role === 'central') {
      const { eb } = this.checkValues(proc);
      if (!bytesEqualConstantTime(eb, check)) {
        this.fail(SmpReason.DhKeyCheckFailed, 'local', "the responder's DHKey check value does not match");
        return;
      }
      proc.checkPassed = true;
      this.phaseNow = 'waitEncryption';
      this.enqueue('start encryption', () => this.startPairingEncryption(proc.epoch));
      return;
    }
    if (proc.peerCheck) {
      this.fail(SmpReason.UnspecifiedReason, 'local', 'a second Pairing DHKey Check arrived');
      return;
    }
    proc.peerCheck = check.slice();
    this.tryResponderCheck(proc);
  }

  /** Peripheral: once Ea arrived and (numeric comparison) our user agreed, verify Ea and send Eb. */
  private tryResponderCheck(proc: Procedure): void {
    if (!proc.userConfirmed || !proc.peerCheck || proc.checkPassed) return;
    const { ea, eb } = this.checkValues(proc);
    if (!bytesEqualConstantTime(ea, proc.peerCheck)) {
      this.fail(SmpReason.DhKeyCheckFailed, 'local', "the initiator's DHKey check value does not match");
      return;
    }
    proc.checkPassed = true;
    this.send({ type: 'pairingDhKeyCheck', check: eb });
    this.phaseNow = 'waitEncryption';
  }

  // -------------------------------------------------------------------------------------------
  // Encryption

  /** Central: LE Enable Encryption with the new LTK (EDIV 0, Rand 0). Only after Eb verified. */
  private async startPairingEncryption(epoch: number): Promise<void> {
    const proc = this.currentProc(epoch);
    if (!proc || !proc.checkPassed || !proc.ltk || !proc.assoc || this.phaseNow !== 'waitEncryption') return;
    this.pendingKey = { ltk: proc.ltk, keySize: proc.keySize, authenticated: proc.assoc.authenticated, secureConnections: true, source: 'pairing' };
    try {
      await this.lower.startEncryption(proc.ltk, 0, 0n);
    } catch (err) {
      if (this.currentProc(epoch)) this.fail(SmpReason.UnspecifiedReason, 'local', `the controller refused to start encryption: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Central: LE Enable Encryption with the bond. Not while another encryption is pending (its
   * Encryption Change would be taken for this one, and a controller refusing the second command
   * must not erase the first key's properties).
   */
  private async startBondEncryption(bond: BondRecord): Promise<void> {
    if (this.proc || this.phaseNow !== 'idle') return;
    if (this.pendingKey) {
      this.log.debug(`encryption with ${formatAddress(this.lower.peerAddress)} already pending: no second LE Enable Encryption`);
      return;
    }
    const key: LinkKey = { ltk: bond.ltk, keySize: bond.keySize, authenticated: bond.authenticated, secureConnections: bond.secureConnections, source: 'bond' };
    this.pendingKey = key;
    this.encryptionSeen = true;
    try {
      await this.lower.startEncryption(bond.ltk, bond.ediv, bond.rand);
    } catch (err) {
      if (this.pendingKey === key) this.pendingKey = undefined;
      this.log.warn({ err }, `could not start encryption with the bond of ${formatAddress(bond.peer)}`);
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
  private async handleLtkRequest(rand: bigint, ediv: number): Promise<void> {
    if (this.lower.role !== 'peripheral') {
      this.log.warn('LTK request on a central link ignored');
      return;
    }
    if (this.phaseNow === 'closed') return;
    this.encryptionSeen = true;
    const proc = this.proc;
    if (proc) {
      if (this.phaseNow === 'waitEncryption' && proc.checkPassed && proc.ltk && proc.assoc && ediv === 0 && rand === 0n) {
        this.pendingKey = { ltk: proc.ltk, keySize: proc.keySize, authenticated: proc.assoc.authenticated, secureConnections: true, source: 'pairing' };
        await this.lower.ltkReply(proc.ltk);
        return;
      }
      await this.lower.ltkNegativeReply();
      this.fail(SmpReason.UnspecifiedReason, 'local', `the central started encryption in phase ${this.phaseNow}, before the DHKey check completed; no key was given`);
      return;
    }
    if (ediv === 0 && rand === 0n && this.sessionKey) {
      this.pendingKey = { ...this.sessionKey, source: 'session' };
      await this.lower.ltkReply(this.sessionKey.ltk);
      return;
    }
    const bond = this.bonds.resolve(this.lower.peerAddress);
    if (bond && bond.ediv === ediv && bond.rand === rand) {
      this.pendingKey = { ltk: bond.ltk, keySize: bond.keySize, authenticated: bond.authenticated, secureConnections: bond.secureConnections, source: 'bond' };
      if (!this.identity) {
        this.identity = bond.peer;
        this.emit('identityResolved', { connectionAddress: this.lower.peerAddress, identity: bond.peer, source: 'bond' });
      }
      await this.lower.ltkReply(bond.ltk);
      return;
    }
    this.pendingKey = undefined;
    await this.lower.ltkNegativeReply();
    this.log.warn(
      { ediv, rand: rand.toString(16) },
      `${formatAddress(this.lower.peerAddress)} asked to encrypt with a key this device does not have: the phone keeps a bond this device lost; remove the device on the phone ("Forget This Device") and pair again`,
    );
    this.emit('ltkRequestUnknown', { peer: this.lower.peerAddress, ediv, rand });
  }

  /**
   * Encryption Change / Key Refresh. On success the key size is read back (HCI Read Encryption
   * Key Size); the effective size is the smaller of that and the negotiated size (LE keys are
   * shortened by the host, Vol 3 Part H 2.3.4). Shorter than the policy's minimum: disconnect with
   * 0x05 Authentication Failure.
   */
  private async handleEncryptionChange(status: number, enabled: boolean): Promise<void> {
    if (this.phaseNow === 'closed') return;
    const key = this.pendingKey;
    this.pendingKey = undefined;
    if (status !== 0) {
      this.log.warn({ status }, `encryption with ${formatAddress(this.lower.peerAddress)} failed (HCI status ${hex2(status)})`);
      this.emit('encryptionFailed', { peer: this.lower.peerAddress, status });
      if (this.proc && this.phaseNow === 'waitEncryption') this.fail(SmpReason.UnspecifiedReason, 'local', `encryption with the new key failed (HCI status ${hex2(status)})`);
      return;
    }
    if (!enabled) {
      this.enc = { encrypted: false, keySize: 0, authenticated: false, secureConnections: false };
      this.emit('securityChanged', this.snapshot());
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
    if (!key) this.log.warn('Encryption Change without a key handed out by SMP; treating the link as unauthenticated');
    let readBack = used.keySize;
    try {
      const r = await this.lower.readKeySize();
      if (r === undefined) this.log.debug({ keySize: used.keySize }, 'the controller cannot report the encryption key size (no Read Encryption Key Size): using the negotiated size');
      readBack = r ?? used.keySize;
    } catch (err) {
      this.log.warn({ err }, 'Read Encryption Key Size failed; using the negotiated key size');
    }
    const keySize = Math.min(readBack, used.keySize);
    if (keySize < this.policy.minKeySize) {
      this.log.warn({ keySize, min: this.policy.minKeySize }, `encryption key of ${keySize} bytes is shorter than the required ${this.policy.minKeySize}: disconnecting`);
      if (this.proc) this.fail(SmpReason.EncryptionKeySize, 'local', `the link was encrypted with a ${keySize}-byte key; ${this.policy.minKeySize} required`);
      try {
        await this.lower.disconnect(0x05);
      } catch (err) {
        this.log.warn({ err }, 'disconnect failed');
      }
      return;
    }
    this.enc = { encrypted: true, keySize, authenticated: used.authenticated, secureConnections: used.secureConnections };
    this.emit('securityChanged', this.snapshot());
    if (used.source === 'bond' && this.identity) {
      this.bonds.update(this.identity, { lastSeenAt: new Date(this.clock.now()).toISOString() }).catch((err: unknown) => this.log.warn({ err }, 'could not update the bond'));
    }
    const proc = this.proc;
    if (proc && this.phaseNow === 'waitEncryption' && used.source === 'pairing') {
      this.sessionKey = { ...used, keySize };
      await this.beginKeyDistribution(proc);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Phase 3: key distribution. Core 5.4 Vol 3 Part H 3.6.1: the responder distributes first.

  private async beginKeyDistribution(proc: Procedure): Promise<void> {
    this.phaseNow = 'waitKeys';
    if (this.lower.role === 'peripheral') {
      this.sendOurKeys(proc);
      if (proc.expectFromPeer === 0) await this.complete(proc);
      return;
    }
    if (proc.expectFromPeer === 0) {
      this.sendOurKeys(proc);
      await this.complete(proc);
    }
  }

  /** Our keys, in the order of Core 5.4 Vol 3 Part H 3.6.1: identity, then signing. */
  private sendOurKeys(proc: Procedure): void {
    const id = this.localIdentity();
    if (proc.sendToPeer & KeyDist.IdKey && id) {
      this.send({ type: 'identityInformation', irk: id.irk });
      this.send({ type: 'identityAddressInformation', address: id.address });
    }
    if (proc.sendToPeer & KeyDist.SignKey) {
      // Granted only when our policy offered SignKey. This stack never signs data, so the CSRK is a
      // fresh random key that is not kept: the peer can store it but will never see a signature.
      this.send({ type: 'signingInformation', csrk: this.random.bytes(16) });
    }
  }

  private nextExpectedKey(proc: Procedure): SmpPduType | undefined {
    if (proc.expectFromPeer & KeyDist.IdKey) return proc.idStep === 0 ? 'identityInformation' : 'identityAddressInformation';
    if (proc.expectFromPeer & KeyDist.SignKey) return 'signingInformation';
    return undefined;
  }

  private async onKeyPdu(pdu: SmpPdu): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const expected = this.nextExpectedKey(proc);
    if (pdu.type !== expected) {
      this.fail(
        SmpReason.UnspecifiedReason,
        'local',
        `${smpPduInfo(pdu.type).name} was not expected during key distribution (${expected ? `expected ${smpPduInfo(expected).name}` : 'nothing more expected'})`,
      );
      return;
    }
    switch (pdu.type) {
      case 'identityInformation':
        proc.peerIrk = pdu.irk.slice();
        proc.idStep = 1;
        break;
      case 'identityAddressInformation': {
        const a = pdu.address;
        const usable = a.address !== '00:00:00:00:00:00' && (a.type === 'public' || randomAddressKind(a.address) === 'static');
        if (usable) proc.peerIdentity = a;
        else this.log.warn({ identity: formatAddress(a) }, 'the peer distributed an identity address that is neither public nor static random; keeping the connection address');
        proc.expectFromPeer &= ~KeyDist.IdKey;
        break;
      }
      case 'signingInformation':
        proc.expectFromPeer &= ~KeyDist.SignKey;
        break;
      default:
        return;
    }
    if (proc.expectFromPeer !== 0) return;
    if (this.lower.role === 'central') this.sendOurKeys(proc);
    await this.complete(proc);
  }

  /** Pairing complete: store the bond (both sides asked for bonding), report. */
  private async complete(proc: Procedure): Promise<void> {
    if (this.proc !== proc || !proc.ltk || !proc.assoc) return;
    const peer = this.lower.peerAddress;
    const identity = proc.peerIdentity ?? peer;
    const holder = this.bonds.get(identity);
    if (proc.bonding && holder && !proc.existingBond && this.policy.rePairing === 'reject') {
      // The peer was not recognised at the start but claims the identity of a bonded device.
      this.fail(
        SmpReason.AuthenticationRequirements,
        'local',
        `the peer claims the identity ${formatAddress(identity)} of an existing bond; the bond was kept (allow re-pairing to replace it)`,
      );
      // The link is encrypted with the refused pairing's key: do not leave it up.
      await this.lower.disconnect(0x05).catch((err: unknown) => this.log.warn({ err }, 'disconnect failed'));
      return;
    }
    const claimed = holder && holder !== proc.existingBond ? this.downgradeFrom(holder, proc.assoc.authenticated, true, this.enc.encrypted ? this.enc.keySize : proc.keySize) : undefined;
    if (proc.bonding && holder && claimed) {
      // Recognised only by the identity it distributed: the same downgrade check, now.
      this.fail(SmpReason.AuthenticationRequirements, 'local', `the peer claims the identity ${formatAddress(identity)} of a stronger bond (${claimed}); the bond was kept`);
      await this.lower.disconnect(0x05).catch((err: unknown) => this.log.warn({ err }, 'disconnect failed'));
      return;
    }
    const full = proc.bonding && !holder && !proc.existingBond ? this.bondStoreRefuses(identity) : undefined;
    if (full) {
      // The store filled up while this pairing ran (another peer bonded meanwhile).
      this.log.warn({ stored: full.stored, maxBonds: full.max, store: this.bonds.description }, `bond of ${formatAddress(identity)} refused: the bond store is full`);
      this.fail(SmpReason.UnspecifiedReason, 'local', `the bond store ${this.bonds.description} is full (${full.stored} of ${full.max} bonds); remove a bond or run with --evict-oldest-bond`);
      await this.lower.disconnect(0x05).catch((err: unknown) => this.log.warn({ err }, 'disconnect failed'));
      return;
    }
    this.stopTimer();
    this.proc = undefined;
    this.phaseNow = 'idle';
    const keySize = this.enc.encrypted ? this.enc.keySize : proc.keySize;
    let bonded = false;
    if (proc.bonding) {
      const now = new Date(this.clock.now()).toISOString();
      const record: BondRecord = {
        peer: identity,
        ltk: proc.ltk,
        ediv: 0,
        rand: 0n,
        keySize,
        authenticated: proc.assoc.authenticated,
        secureConnections: true,
        ...(proc.peerIrk && proc.peerIdentity ? { peerIrk: proc.peerIrk } : {}),
        cccd: {},
        gatt: { clientFeatures: 0, changeAware: true },
        createdAt: now,
        lastSeenAt: now,
      };
      // The same device's old bond goes first, so a full store never evicts (or refuses) for it.
      const old = proc.existingBond && !sameAddress(proc.existingBond.peer, identity) ? proc.existingBond : undefined;
      try {
        if (old) await this.bonds.remove(old.peer);
        await this.bonds.put(record);
        bonded = true;
        this.emit('bondSaved', record);
      } catch (err) {
        if (old && !this.bonds.get(old.peer)) await this.bonds.put(old).catch((e: unknown) => this.log.warn({ err: e }, 'could not restore the old bond'));
        this.log.error({ err }, `could not store the bond of ${formatAddress(identity)} in ${this.bonds.description}; the link stays encrypted but the bond will not survive a restart`);
      }
    }
    this.backoff.recordSuccess(this.backoffPeer());
    if (proc.peerIdentity) {
      this.identity = proc.peerIdentity;
      this.emit('identityResolved', { connectionAddress: peer, identity: proc.peerIdentity, source: 'pairing' });
    } else if (bonded) {
      this.identity = identity;
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
    this.log.info({ level: info.level, bonded, model: info.model }, `paired with ${formatAddress(identity)}`);
    this.emit('paired', info);
    const w = this.pairWaiter;
    this.pairWaiter = undefined;
    w?.resolve(info);
  }

  // -------------------------------------------------------------------------------------------
  // Central: Security Request. Core 5.4 Vol 3 Part H 2.4.6.

  /**
   * A Security Request is ignored (logged) while an encryption we started is pending (with the
   * bond, or the new key of a pairing: the procedure the peripheral asks for is already under way)
   * and when the link is already encrypted at the level asked for; the central may ignore it
   * (Core 5.4 Vol 3 Part H 2.4.6). Otherwise: encrypt with the bond, or pair.
   */
  private onSecurityRequest(authReq: number): void {
    const peer = this.lower.peerAddress;
    this.emit('securityRequestReceived', { peer, authReq });
    const mitm = (authReq & AuthReq.Mitm) !== 0;
    if (this.pendingKey) {
      this.log.info({ authReq }, `Security Request from ${formatAddress(peer)} ignored: encryption (${this.pendingKey.source} key) already pending`);
      return;
    }
    if (this.enc.encrypted && (!mitm || this.enc.authenticated)) {
      this.log.info({ authReq, level: this.level }, `Security Request from ${formatAddress(peer)} ignored: the link is already encrypted at the level asked for`);
      return;
    }
    const bond = this.bonds.resolve(peer);
    if (bond && (!mitm || bond.authenticated) && !this.enc.encrypted) {
      this.enqueue('encrypt with bond', () => this.startBondEncryption(bond));
      return;
    }
    if (!this.policy.isPairingAllowed()) {
      this.fail(SmpReason.PairingNotSupported, 'local', 'the peer asked for security but pairing is not allowed now');
      return;
    }
    const waitMs = this.backoff.remainingMs(this.backoffPeer());
    if (waitMs > 0) {
      this.fail(SmpReason.RepeatedAttempts, 'local', `a pairing with this peer failed recently; retry allowed in ${Math.ceil(waitMs / 1000)} s`);
      return;
    }
    const globalWait = this.backoff.takeNewPairing();
    if (globalWait > 0) {
      this.fail(SmpReason.RepeatedAttempts, 'local', `too many pairings were asked for on this device recently; the next is allowed in ${Math.ceil(globalWait / 1000)} s`);
      return;
    }
    this.startAsInitiator();
  }
}

export { PairingBackoff };
