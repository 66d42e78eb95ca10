/**
 * Pairing phase 2 of LE Secure Connections for both roles: the public key exchange, authentication
 * stage 1 by the association model (Just Works, Numeric Comparison, Passkey Entry: Pairing Confirm
 * and Pairing Random, the user hooks), and authentication stage 2 (the DHKey checks Ea / Eb).
 * Core 5.4 Vol 3 Part H 2.3.5.6 (2.3.5.6.1 public keys, .2 Just Works / Numeric Comparison,
 * .3 Passkey Entry, .5 DHKey checks). The model itself is chosen by ./association.ts.
 *
 * Confirm and check values are compared in constant time, and the peer's public key is validated
 * (on the curve, not ours, not the debug key) before use. The procedure reaches 'waitEncryption'
 * only after the check value of the peer verified.
 */
import { randomInt } from '../util/random.js';
import { bytesEqualConstantTime, checkPeerPublicKey, computeDhKey, f4, f5, f6, ioCapField, maskKey, numericComparisonValue, passkeyAsR } from '../crypto/index.js';
import { addressForCrypto } from './address-field.js';
import type { LinkEncryption } from './encryption.js';
import { AuthReq, KeypressNotificationType, SmpReason, type PairingFeatures } from './pdu.js';
import type { Procedure, SmpContext } from './procedure.js';

const PASSKEY_ROUNDS = 20;
const ZERO_16 = new Uint8Array(16);

/** Phase 2 of one session. */
export class Authentication {
  constructor(
    private readonly ctx: SmpContext,
    private readonly encryption: LinkEncryption,
  ) {}

  private get central(): boolean {
    return this.ctx.lower.role === 'central';
  }

  /** X coordinates: PKa is the initiator's (central's) key. */
  private pkaX(proc: Procedure): Uint8Array {
    return (this.central ? proc.keys.publicKey : (proc.peerKey as Uint8Array)).subarray(0, 32);
  }
  private pkbX(proc: Procedure): Uint8Array {
    return (this.central ? (proc.peerKey as Uint8Array) : proc.keys.publicKey).subarray(0, 32);
  }

  // -------------------------------------------------------------------------------------------
  // Public keys

  /**
   * Core 5.4 Vol 3 Part H 3.5.6 and 2.3.5.6.1. An invalid peer key is answered with 0x0B DHKey
   * Check Failed at once: the spec requires the check but names no reason; 0x0B is what the
   * Bluetooth SIG's SM test suite expects for an invalid key (Linux smp.c commit 0e4d4dcc1a6e,
   * Zephyr does the same). A key equal to ours (reflection, CVE-2020-26558) gets the same answer.
   * The debug key, when not allowed, gets 0x03 Authentication Requirements: it is a valid key that
   * our security requirements refuse.
   */
  onPublicKey(publicKey: Uint8Array): void {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc || !proc.assoc) return;
    const verdict = checkPeerPublicKey(publicKey, proc.keys.publicKey, ctx.policy.allowDebugKeys);
    if (verdict === 'invalid-point') {
      ctx.fail(SmpReason.DhKeyCheckFailed, 'local', 'the peer public key is not a point on P-256 (invalid-curve attack, CVE-2018-5383)');
      return;
    }
    if (verdict === 'same-as-local') {
      ctx.fail(SmpReason.DhKeyCheckFailed, 'local', 'the peer sent our own public key back (reflection, CVE-2020-26558)');
      return;
    }
    if (verdict === 'debug-key') {
      ctx.fail(SmpReason.AuthenticationRequirements, 'local', 'the peer uses the published debug key pair; allow debug keys only for sniffing sessions');
      return;
    }
    proc.peerKey = publicKey.slice();
    proc.dhKey = computeDhKey(proc.keys.privateKey, proc.peerKey);
    const central = this.central;
    if (!central) ctx.send({ type: 'pairingPublicKey', publicKey: proc.keys.publicKey });
    const model = proc.assoc.model;
    if (model === 'passkeyEntry') {
      this.startPasskey(proc);
      return;
    }
    if (central) {
      ctx.state.phase = 'waitConfirm';
      return;
    }
    // Responder, Just Works / Numeric Comparison: Cb = f4(PKbx, PKax, Nb, 0). Vol 3 Part H 2.3.5.6.2.
    proc.localNonce = ctx.random.bytes(16);
    ctx.send({ type: 'pairingConfirm', confirm: f4(this.pkbX(proc), this.pkaX(proc), proc.localNonce, 0) });
    ctx.state.phase = 'waitRandom';
  }

  // -------------------------------------------------------------------------------------------
  // Passkey Entry: Core 5.4 Vol 3 Part H 2.3.5.6.3.

  private startPasskey(proc: Procedure): void {
    const { ctx } = this;
    const assoc = proc.assoc;
    if (!assoc || assoc.model !== 'passkeyEntry') return;
    const central = this.central;
    const action = central ? assoc.initiator : assoc.responder;
    const peer = ctx.lower.peerAddress;
    if (action === 'display') {
      const show = ctx.policy.displayPasskey;
      if (!show) {
        ctx.fail(SmpReason.PasskeyEntryFailed, 'local', 'Passkey Entry needs this device to show a passkey, but no display hook is configured');
        return;
      }
      proc.passkey = randomInt(ctx.random, 1_000_000);
      try {
        const r = show(proc.passkey, peer);
        if (r instanceof Promise) r.catch((err: unknown) => ctx.log.warn({ err }, 'displayPasskey hook failed'));
      } catch (err) {
        ctx.log.warn({ err }, 'displayPasskey hook failed');
      }
      if (central) this.sendPasskeyConfirm(proc);
      else ctx.state.phase = 'waitConfirm';
      return;
    }
    const ask = ctx.policy.requestPasskey;
    if (!ask) {
      ctx.fail(SmpReason.PasskeyEntryFailed, 'local', 'Passkey Entry needs a passkey typed on this device, but no input hook is configured');
      return;
    }
    ctx.state.phase = central ? 'waitUser' : 'waitConfirm';
    const epoch = proc.epoch;
    if (this.keypressAgreed(proc)) ctx.send({ type: 'pairingKeypressNotification', notificationType: KeypressNotificationType.PasskeyEntryStarted });
    this.runHook(
      'requestPasskey',
      () => ask(peer),
      (value) => this.onPasskeyEntered(epoch, value),
      () => this.onPasskeyEntered(epoch, undefined),
    );
  }

  /** Runs a user hook outside the queue; its answer comes back as an input. */
  private runHook<T>(name: string, hook: () => Promise<T>, onValue: (v: T) => void, onError: () => void): void {
    const { ctx } = this;
    let p: Promise<T>;
    try {
      p = Promise.resolve(hook());
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (v) => ctx.enqueue(`${name} answer`, () => onValue(v)),
      (err: unknown) => {
        ctx.log.warn({ err }, `${name} hook failed`);
        ctx.enqueue(`${name} failure`, onError);
      },
    );
  }

  private onPasskeyEntered(epoch: number, value: number | undefined): void {
    const { ctx } = this;
    const proc = ctx.currentProc(epoch);
    if (!proc) return;
    if (value === undefined || !Number.isInteger(value) || value < 0 || value > 999_999) {
      ctx.fail(SmpReason.PasskeyEntryFailed, 'local', value === undefined ? 'the user cancelled passkey entry' : `the passkey typed is not 000000..999999`);
      return;
    }
    proc.passkey = value;
    if (this.keypressAgreed(proc)) ctx.send({ type: 'pairingKeypressNotification', notificationType: KeypressNotificationType.PasskeyEntryCompleted });
    if (this.central) this.sendPasskeyConfirm(proc);
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
    proc.localNonce = this.ctx.random.bytes(16);
    this.ctx.send({ type: 'pairingConfirm', confirm: f4(this.pkaX(proc), this.pkbX(proc), proc.localNonce, this.passkeyBit(proc)) });
    this.ctx.state.phase = 'waitConfirm';
  }

  /** Peripheral, round i: Cbi = f4(PKbx, PKax, Nbi, rbi), once Cai arrived and the passkey is known. */
  private respondPasskeyConfirm(proc: Procedure): void {
    proc.localNonce = this.ctx.random.bytes(16);
    this.ctx.send({ type: 'pairingConfirm', confirm: f4(this.pkbX(proc), this.pkaX(proc), proc.localNonce, this.passkeyBit(proc)) });
    this.ctx.state.phase = 'waitRandom';
  }

  // -------------------------------------------------------------------------------------------
  // Authentication stage 1: confirm and random

  onConfirm(confirm: Uint8Array): void {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc || !proc.assoc) return;
    const central = this.central;
    if (proc.assoc.model === 'passkeyEntry' && !central) {
      if (proc.peerConfirm) {
        ctx.fail(SmpReason.UnspecifiedReason, 'local', 'a second Pairing Confirm arrived before this round was answered');
        return;
      }
      proc.peerConfirm = confirm.slice();
      if (proc.passkey !== undefined) this.respondPasskeyConfirm(proc);
      return;
    }
    if (!central) {
      // Peripheral in Just Works / Numeric Comparison never waits for a confirm: not allowed there.
      ctx.fail(SmpReason.UnspecifiedReason, 'local', 'Pairing Confirm was not expected');
      return;
    }
    // Central: Cb (Just Works / Numeric Comparison) or Cbi (passkey round): answer with our nonce.
    proc.peerConfirm = confirm.slice();
    if (proc.assoc.model !== 'passkeyEntry') proc.localNonce = ctx.random.bytes(16);
    ctx.send({ type: 'pairingRandom', random: proc.localNonce as Uint8Array });
    ctx.state.phase = 'waitRandom';
  }

  onRandom(random: Uint8Array): void {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc || !proc.assoc) return;
    const central = this.central;
    const model = proc.assoc.model;
    const pka = this.pkaX(proc);
    const pkb = this.pkbX(proc);
    if (model === 'passkeyEntry') {
      const bit = this.passkeyBit(proc);
      const expected = central ? f4(pkb, pka, random, bit) : f4(pka, pkb, random, bit);
      if (!proc.peerConfirm || !bytesEqualConstantTime(expected, proc.peerConfirm)) {
        ctx.fail(SmpReason.ConfirmValueFailed, 'local', `passkey round ${proc.round + 1}: the confirm value does not match (wrong passkey?)`);
        return;
      }
      proc.peerConfirm = undefined;
      if (!central) ctx.send({ type: 'pairingRandom', random: proc.localNonce as Uint8Array });
      proc.round++;
      if (proc.round < PASSKEY_ROUNDS) {
        if (central) this.sendPasskeyConfirm(proc);
        else ctx.state.phase = 'waitConfirm';
        return;
      }
      proc.na = central ? (proc.localNonce as Uint8Array) : random.slice();
      proc.nb = central ? random.slice() : (proc.localNonce as Uint8Array);
      if (central) this.sendInitiatorCheck(proc);
      else ctx.state.phase = 'waitDhKeyCheck';
      return;
    }
    if (central) {
      // Just Works / Numeric Comparison: check Cb = f4(PKbx, PKax, Nb, 0). Vol 3 Part H 2.3.5.6.2.
      if (!proc.peerConfirm || !bytesEqualConstantTime(f4(pkb, pka, random, 0), proc.peerConfirm)) {
        ctx.fail(SmpReason.ConfirmValueFailed, 'local', "the responder's confirm value does not match its nonce");
        return;
      }
      proc.na = proc.localNonce as Uint8Array;
      proc.nb = random.slice();
      if (!proc.userConfirmed) {
        ctx.state.phase = 'waitUser';
        this.askUserConfirmation(proc);
        return;
      }
      this.sendInitiatorCheck(proc);
      return;
    }
    proc.na = random.slice();
    proc.nb = proc.localNonce as Uint8Array;
    ctx.send({ type: 'pairingRandom', random: proc.nb });
    ctx.state.phase = 'waitDhKeyCheck';
    if (!proc.userConfirmed) this.askUserConfirmation(proc);
  }

  /**
   * After the nonces, before the DHKey checks (Vol 3 Part H 2.3.5.6.2): Numeric Comparison shows
   * g2 mod 10^6 and asks our user; Just Works asks for consent when `confirmJustWorks` is set.
   * Either refusal is 0x0C Numeric Comparison Failed.
   */
  private askUserConfirmation(proc: Procedure): void {
    const { ctx } = this;
    const epoch = proc.epoch;
    const peer = ctx.lower.peerAddress;
    if (proc.assoc?.model === 'justWorks') {
      const consent = ctx.policy.confirmJustWorks;
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
    const hook = ctx.policy.confirmNumericComparison;
    if (!hook) {
      ctx.fail(SmpReason.NumericComparisonFailed, 'local', 'Numeric Comparison needs a confirmation hook and none is configured');
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
    const { ctx } = this;
    const proc = ctx.currentProc(epoch);
    if (!proc) return;
    if (!ok) {
      const what =
        proc.assoc?.model === 'justWorks' ? 'the user declined the Just Works pairing (Cancel at the consent prompt)' : 'the user rejected the numeric comparison (the numbers differ, or Cancel)';
      ctx.fail(SmpReason.NumericComparisonFailed, 'local', what);
      return;
    }
    proc.userConfirmed = true;
    if (this.central) this.sendInitiatorCheck(proc);
    else this.tryResponderCheck(proc);
  }

  // -------------------------------------------------------------------------------------------
  // Authentication stage 2: DHKey checks. Vol 3 Part H 2.3.5.6.5.

  /** f6's r for both checks: 0 for Just Works / Numeric Comparison, the passkey for Passkey Entry. */
  private checkR(proc: Procedure): Uint8Array {
    return proc.assoc?.model === 'passkeyEntry' ? passkeyAsR(proc.passkey ?? 0) : ZERO_16;
  }

  /** A (initiator) and B (responder) of f5 / f6 (Vol 3 Part H 2.2.7): the central is the initiator. */
  private addresses(): { a: Uint8Array; b: Uint8Array } {
    const { lower } = this.ctx;
    const a = addressForCrypto(this.central ? lower.localAddress : lower.peerAddress);
    const b = addressForCrypto(this.central ? lower.peerAddress : lower.localAddress);
    return { a, b };
  }

  private deriveKeys(proc: Procedure): void {
    if (proc.macKey) return;
    const { a, b } = this.addresses();
    const { macKey, ltk } = f5(proc.dhKey as Uint8Array, proc.na as Uint8Array, proc.nb as Uint8Array, a, b);
    proc.macKey = macKey;
    proc.ltk = maskKey(ltk, proc.keySize);
  }

  private checkValues(proc: Procedure): { ea: Uint8Array; eb: Uint8Array } {
    this.deriveKeys(proc);
    const { a, b } = this.addresses();
    const r = this.checkR(proc);
    const pres = proc.pres as PairingFeatures;
    const ea = f6(proc.macKey as Uint8Array, proc.na as Uint8Array, proc.nb as Uint8Array, r, ioCapField(proc.preq), a, b);
    const eb = f6(proc.macKey as Uint8Array, proc.nb as Uint8Array, proc.na as Uint8Array, r, ioCapField(pres), b, a);
    return { ea, eb };
  }

  /** Central: send Ea = f6(MacKey, Na, Nb, rb, IOcapA, A, B). */
  private sendInitiatorCheck(proc: Procedure): void {
    const { ea } = this.checkValues(proc);
    this.ctx.send({ type: 'pairingDhKeyCheck', check: ea });
    this.ctx.state.phase = 'waitDhKeyCheck';
  }

  onDhKeyCheck(check: Uint8Array): void {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc) return;
    if (this.central) {
      const { eb } = this.checkValues(proc);
      if (!bytesEqualConstantTime(eb, check)) {
        ctx.fail(SmpReason.DhKeyCheckFailed, 'local', "the responder's DHKey check value does not match");
        return;
      }
      proc.checkPassed = true;
      ctx.state.phase = 'waitEncryption';
      ctx.enqueue('start encryption', () => this.encryption.startPairingEncryption(proc.epoch));
      return;
    }
    if (proc.peerCheck) {
      ctx.fail(SmpReason.UnspecifiedReason, 'local', 'a second Pairing DHKey Check arrived');
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
      this.ctx.fail(SmpReason.DhKeyCheckFailed, 'local', "the initiator's DHKey check value does not match");
      return;
    }
    proc.checkPassed = true;
    this.ctx.send({ type: 'pairingDhKeyCheck', check: eb });
    this.ctx.state.phase = 'waitEncryption';
  }
}
