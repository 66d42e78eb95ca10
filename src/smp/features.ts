/**
 * Pairing phase 1, the feature exchange, for both roles: Security Request (peripheral sends,
 * central answers), Pairing Request and Pairing Response, the checks that refuse a pairing before
 * any key is exchanged (pairing window 0x05, repeated attempts 0x09, legacy pairing and MITM 0x03,
 * key size 0x06, OOB 0x02, bond policy 0x03 / 0x08, key distribution 0x0A), the AuthReq we send,
 * the key size, and the association model. Core 5.4 Vol 3 Part H 2.3.1 to 2.3.5.1, 2.4.6, 3.5.1,
 * 3.5.2, 3.6.7.
 */
import type { BondRecord } from '../bonds/types.js';
import { formatAddress, type Address } from '../util/address.js';
import { canDoMitm, selectAssociation } from './association.js';
import type { BondCommitPolicy } from './bond-policy.js';
import type { LinkEncryption } from './encryption.js';
import { SmpError } from './errors.js';
import { SC_IGNORED_DIST, planDistribution, requestKeyDistribution, responseKeyDistribution, unofferedKeys } from './key-distribution.js';
import { securityLevelOf } from './link-security.js';
import { AuthReq, SmpReason, ioCapabilityName, type PairingFeatures, type SmpPduOf } from './pdu.js';
import { hex2, newProcedure, type Procedure, type SmpContext } from './procedure.js';

/** Phase 1 of one session. */
export class FeatureExchange {
  private epochCounter = 0;
  private securityRequestSentOnce = false;

  constructor(
    private readonly ctx: SmpContext,
    private readonly bondPolicy: BondCommitPolicy,
    private readonly encryption: LinkEncryption,
    /** Rejects a pending `pair()` (central). */
    private readonly rejectPair: (err: SmpError) => void,
  ) {}

  /** Peripheral: a Security Request was sent on this connection (at most one is). */
  get securityRequestSent(): boolean {
    return this.securityRequestSentOnce;
  }

  private wantsMitm(): boolean {
    return this.ctx.policy.requireMitm || canDoMitm(this.ctx.policy.ioCapability);
  }

  /** Our AuthReq: bonding, MITM, SC, and the Keypress / CT2 bits the policy asks for. Core 5.4 Vol 3 Part H 3.5.1. */
  private localAuthReq(): number {
    const { policy } = this.ctx;
    return (
      (policy.bondable ? AuthReq.Bonding : 0) |
      (this.wantsMitm() ? AuthReq.Mitm : 0) |
      AuthReq.SecureConnections |
      (policy.keypress ? AuthReq.Keypress : 0) |
      (policy.ct2 ? AuthReq.Ct2 : 0)
    );
  }

  private startProcedure(preq: PairingFeatures, existing: BondRecord | undefined): Procedure {
    const proc = newProcedure(++this.epochCounter, this.ctx.random, preq, existing);
    this.ctx.state.proc = proc;
    return proc;
  }

  /** Peripheral: `SmpSession.requestSecurity()` (when a Security Request is sent). Core 5.4 Vol 3 Part H 2.4.6. */
  requestSecurity(): boolean {
    const { ctx } = this;
    if (ctx.lower.role !== 'peripheral') return false;
    if (ctx.state.phase !== 'idle' || ctx.state.proc || this.encryption.state.encrypted || this.encryption.attempted || this.securityRequestSentOnce) return false;
    const bonded = ctx.bonds.resolve(ctx.lower.peerAddress) !== undefined;
    if (!bonded && !ctx.policy.isPairingAllowed()) {
      ctx.log.info('not sending Security Request: pairing is not allowed now and the peer has no bond');
      return false;
    }
    const authReq = this.localAuthReq();
    this.securityRequestSentOnce = true;
    ctx.send({ type: 'securityRequest', authReq });
    ctx.emit('securityRequestSent', { peer: ctx.lower.peerAddress, authReq });
    return true;
  }

  /**
   * Checks common to both roles once both feature sets are known, then the key size and the bond
   * policy's downgrade check; returns false after failing.
   */
  private settleFeatures(proc: Procedure, preq: PairingFeatures, pres: PairingFeatures, keySize: number): boolean {
    const { ctx } = this;
    const assoc = selectAssociation(preq, pres);
    if (assoc.model === 'oob') {
      ctx.fail(SmpReason.OobNotAvailable, 'local', 'the peer flagged OOB data; this device has no out-of-band channel');
      return false;
    }
    if (ctx.policy.requireMitm && !assoc.authenticated) {
      ctx.fail(
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
    proc.userConfirmed = !(assoc.model === 'numericComparison' || (assoc.model === 'justWorks' && ctx.policy.confirmJustWorks !== undefined));
    const plan = planDistribution(ctx.lower.role, pres, ctx.localIdentity());
    proc.sendToPeer = plan.sendToPeer;
    proc.expectFromPeer = plan.expectFromPeer;
    proc.keySize = keySize;
    const downgrade = this.bondPolicy.checkDowngrade(proc.existingBond, assoc.authenticated, keySize);
    if (downgrade) {
      ctx.fail(downgrade.reason, 'local', downgrade.detail);
      return false;
    }
    return true;
  }

  /**
   * The key size both sides can use, or undefined after failing: a Maximum Encryption Key Size
   * outside 7..16, or a result below the policy's minimum, gets 0x06 Encryption Key Size.
   */
  private negotiateKeySize(peerMax: number, ourMax: number): number | undefined {
    const { ctx } = this;
    if (peerMax < 7 || peerMax > 16) {
      // 0x06, not 0x0A: what Zephyr (smp_pairing_req) and Linux answer and what PTS accepts.
      ctx.fail(SmpReason.EncryptionKeySize, 'local', `Maximum Encryption Key Size ${peerMax} is outside 7..16`);
      return undefined;
    }
    const keySize = Math.min(peerMax, ourMax);
    if (keySize < ctx.policy.minKeySize) {
      ctx.fail(SmpReason.EncryptionKeySize, 'local', `the peer offers at most ${keySize}-byte keys; this device requires ${ctx.policy.minKeySize}`);
      return undefined;
    }
    return keySize;
  }

  /** Peripheral: Core 5.4 Vol 3 Part H 3.5.1 / 2.3.5.1. */
  onPairingRequest(req: SmpPduOf<'pairingRequest'>): void {
    const { ctx } = this;
    const { policy, backoff } = ctx;
    const peer = ctx.lower.peerAddress;
    const { type: _t, ...request } = req;
    ctx.emit('pairingRequestReceived', { peer, request });
    if (!policy.isPairingAllowed()) {
      ctx.fail(SmpReason.PairingNotSupported, 'local', 'pairing is not allowed now (pairing window closed); open it and pair again');
      return;
    }
    const waitMs = backoff.remainingMs(ctx.backoffPeer());
    if (waitMs > 0) {
      ctx.fail(SmpReason.RepeatedAttempts, 'local', `a pairing with this peer failed recently; the next attempt is allowed in ${Math.ceil(waitMs / 1000)} s`);
      return;
    }
    if ((req.authReq & AuthReq.SecureConnections) === 0) {
      ctx.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer asked for LE legacy pairing; this device pairs with LE Secure Connections only');
      return;
    }
    const keySize = this.negotiateKeySize(req.maxKeySize, 16);
    if (keySize === undefined) return;
    const existing = ctx.bonds.resolve(peer);
    const bondingAsked = (req.authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding;
    const bonding = policy.bondable && bondingAsked;
    const refusal = this.bondPolicy.admitPairingRequest(peer, existing, bonding);
    if (refusal) {
      ctx.fail(refusal.reason, 'local', refusal.detail);
      return;
    }
    const globalWait = backoff.takeNewPairing();
    if (globalWait > 0) {
      ctx.log.warn({ waitMs: globalWait }, `pairing with ${formatAddress(peer)} refused: too many new pairings on this device recently (any address)`);
      ctx.fail(SmpReason.RepeatedAttempts, 'local', `too many pairings were started on this device recently (from any address); the next is allowed in ${Math.ceil(globalWait / 1000)} s`);
      return;
    }
    const pres: PairingFeatures = {
      ioCapability: policy.ioCapability,
      oobDataFlag: 0,
      authReq: this.localAuthReq(),
      maxKeySize: 16,
      ...responseKeyDistribution(request, policy, ctx.localIdentity(), bonding),
    };
    const proc = this.startProcedure(request, existing);
    if (!this.settleFeatures(proc, request, pres, keySize)) return;
    ctx.send({ type: 'pairingResponse', ...pres });
    ctx.state.phase = 'waitPublicKey';
    ctx.emit('pairingStarted', { peer, role: 'responder', model: proc.assoc?.model, request, response: pres });
  }

  /** Central: start a procedure (pair(), or a Security Request). Core 5.4 Vol 3 Part H 3.5.1. */
  startAsInitiator(): void {
    const { ctx } = this;
    const peer = ctx.lower.peerAddress;
    if (ctx.lower.role !== 'central') {
      this.rejectPair(new SmpError(undefined, `pair() is for the central; this side is the peripheral of ${formatAddress(peer)}`));
      return;
    }
    if (ctx.state.proc) return; // already pairing: the waiter resolves with it
    const phase = ctx.state.phase;
    if (phase === 'timedOut' || phase === 'closed') {
      this.rejectPair(new SmpError(undefined, `no SMP on this link any more (${phase}); reconnect to ${formatAddress(peer)} and try again`));
      return;
    }
    if (!ctx.policy.isPairingAllowed()) {
      this.rejectPair(new SmpError(SmpReason.PairingNotSupported, 'pairing is not allowed now (pairing window closed)'));
      return;
    }
    const waitMs = ctx.backoff.remainingMs(ctx.backoffPeer());
    if (waitMs > 0) {
      this.rejectPair(new SmpError(SmpReason.RepeatedAttempts, `a pairing with ${formatAddress(peer)} failed recently; retry in ${Math.ceil(waitMs / 1000)} s`));
      return;
    }
    const preq: PairingFeatures = {
      ioCapability: ctx.policy.ioCapability,
      oobDataFlag: 0,
      authReq: this.localAuthReq(),
      maxKeySize: 16,
      ...requestKeyDistribution(ctx.policy, ctx.localIdentity(), ctx.log),
    };
    this.startProcedure(preq, ctx.bonds.resolve(peer));
    ctx.send({ type: 'pairingRequest', ...preq });
    ctx.state.phase = 'waitPairingResponse';
    ctx.emit('pairingStarted', { peer, role: 'initiator', model: undefined, request: preq, response: undefined });
  }

  /** Central: Core 5.4 Vol 3 Part H 3.5.2. */
  onPairingResponse(rsp: SmpPduOf<'pairingResponse'>): void {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc) return;
    const { type: _t, ...pres } = rsp;
    if ((pres.authReq & AuthReq.SecureConnections) === 0) {
      ctx.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer answered for LE legacy pairing; this device pairs with LE Secure Connections only');
      return;
    }
    const keySize = this.negotiateKeySize(pres.maxKeySize, proc.preq.maxKeySize);
    if (keySize === undefined) return;
    const extra = unofferedKeys(proc.preq, pres);
    if (extra.initiatorKeyDist !== 0 || extra.responderKeyDist !== 0) {
      ctx.fail(
        SmpReason.InvalidParameters,
        'local',
        `the Pairing Response asks for keys the request did not offer (initiator ${hex2(extra.initiatorKeyDist)}, responder ${hex2(extra.responderKeyDist)})`,
      );
      return;
    }
    if ((pres.initiatorKeyDist | pres.responderKeyDist) & SC_IGNORED_DIST) {
      ctx.log.debug(
        { initiatorKeyDist: pres.initiatorKeyDist, responderKeyDist: pres.responderKeyDist },
        'Pairing Response sets EncKey/LinkKey: ignored in LE Secure Connections (Core 5.4 Vol 3 Part H 3.6.1)',
      );
    }
    if (!this.settleFeatures(proc, proc.preq, pres, keySize)) return;
    ctx.send({ type: 'pairingPublicKey', publicKey: proc.keys.publicKey });
    ctx.state.phase = 'waitPublicKey';
  }

  /**
   * Central: a Security Request. Ignored (logged) while an encryption we started is pending (with
   * the bond, or the new key of a pairing: the procedure the peripheral asks for is already under
   * way) and when the link is already encrypted at the level asked for; the central may ignore it
   * (Core 5.4 Vol 3 Part H 2.4.6). Otherwise: encrypt with the bond, or pair.
   */
  onSecurityRequest(authReq: number): void {
    const { ctx } = this;
    const peer: Address = ctx.lower.peerAddress;
    ctx.emit('securityRequestReceived', { peer, authReq });
    const mitm = (authReq & AuthReq.Mitm) !== 0;
    const pending = this.encryption.pendingSource;
    if (pending) {
      ctx.log.info({ authReq }, `Security Request from ${formatAddress(peer)} ignored: encryption (${pending} key) already pending`);
      return;
    }
    const enc = this.encryption.state;
    if (enc.encrypted && (!mitm || enc.authenticated)) {
      ctx.log.info({ authReq, securityLevel: securityLevelOf(enc) }, `Security Request from ${formatAddress(peer)} ignored: the link is already encrypted at the level asked for`);
      return;
    }
    const bond = ctx.bonds.resolve(peer);
    if (bond && (!mitm || bond.authenticated) && !enc.encrypted) {
      ctx.enqueue('encrypt with bond', () => this.encryption.startBondEncryption(bond));
      return;
    }
    if (!ctx.policy.isPairingAllowed()) {
      ctx.fail(SmpReason.PairingNotSupported, 'local', 'the peer asked for security but pairing is not allowed now');
      return;
    }
    const waitMs = ctx.backoff.remainingMs(ctx.backoffPeer());
    if (waitMs > 0) {
      ctx.fail(SmpReason.RepeatedAttempts, 'local', `a pairing with this peer failed recently; retry allowed in ${Math.ceil(waitMs / 1000)} s`);
      return;
    }
    const globalWait = ctx.backoff.takeNewPairing();
    if (globalWait > 0) {
      ctx.fail(SmpReason.RepeatedAttempts, 'local', `too many pairings were asked for on this device recently; the next is allowed in ${Math.ceil(globalWait / 1000)} s`);
      return;
    }
    this.startAsInitiator();
  }
}
