/**
 * Key distribution (pairing phase 3) of LE Secure Connections: which keys each side offers and
 * accepts in the feature exchange, and, once the link is encrypted with the new key, what is sent
 * (our IRK and identity address; a throw-away CSRK when SignKey was granted) and what is expected
 * from the peer, in order. Core 5.4 Vol 3 Part H 3.6.1 (the responder distributes first), 3.6.4
 * to 3.6.6.
 *
 * EncKey carries no PDU in LE Secure Connections (the LTK is derived on both sides, Encryption
 * Information / Central Identification are not sent) and LinkKey asks for a BR/EDR key derivation
 * this stack does not do: both bits are ignored wherever a peer sets them.
 */
import type { LocalIdentity } from '../bonds/types.js';
import { formatAddress, randomAddressKind } from '../util/address.js';
import type { Logger } from '../util/log.js';
import { KeyDist, SmpReason, smpPduInfo, type PairingFeatures, type SmpPdu, type SmpPduType } from './pdu.js';
import type { Procedure, SmpContext } from './procedure.js';
import type { SmpPolicy } from './types.js';

/** Key distribution bits SMP takes from a peer it responds to in LE Secure Connections: IdKey only (EncKey is meaningless, LinkKey and SignKey unsupported). */
const SUPPORTED_DIST = KeyDist.IdKey;

/**
 * Key distribution bits that carry no PDU in LE Secure Connections: EncKey (the LTK is derived,
 * Encryption Information / Central Identification are not sent) and LinkKey (a BR/EDR link key
 * derivation flag; this stack derives none). A peer setting them is ignored, not refused.
 * Core 5.4 Vol 3 Part H 3.6.1.
 */
export const SC_IGNORED_DIST = KeyDist.EncKey | KeyDist.LinkKey;

/** The two key distribution fields of a Pairing Request / Response. */
export interface KeyDistributionFields {
  readonly initiatorKeyDist: number;
  readonly responderKeyDist: number;
}

/**
 * Peripheral: the key distribution fields of our Pairing Response: the intersection of what the
 * central offers, what we support and what the policy allows; none when not bonding.
 * Core 5.4 Vol 3 Part H 3.5.2.
 */
export function responseKeyDistribution(req: PairingFeatures, policy: SmpPolicy, identity: LocalIdentity | undefined, bonding: boolean): KeyDistributionFields {
  const initMask = SUPPORTED_DIST & (policy.initiatorKeyDistribution ?? 0x0f);
  const respMask = (identity ? KeyDist.IdKey : 0) & (policy.responderKeyDistribution ?? 0x0f);
  return {
    initiatorKeyDist: bonding ? req.initiatorKeyDist & initMask : 0,
    responderKeyDist: bonding ? req.responderKeyDist & respMask : 0,
  };
}

/**
 * Central: the key distribution fields of our Pairing Request: the policy's values, else IdKey
 * both ways when bonding. IdKey is never offered without a local identity to send.
 * Core 5.4 Vol 3 Part H 3.5.1.
 */
export function requestKeyDistribution(policy: SmpPolicy, identity: LocalIdentity | undefined, log: Logger): KeyDistributionFields {
  const bondable = policy.bondable;
  let init = policy.initiatorKeyDistribution ?? (bondable ? KeyDist.IdKey : 0);
  const resp = policy.responderKeyDistribution ?? (bondable ? KeyDist.IdKey : 0);
  if (!identity && init & KeyDist.IdKey) {
    log.warn('no local identity to distribute: IdKey left out of the Initiator Key Distribution');
    init &= ~KeyDist.IdKey;
  }
  return { initiatorKeyDist: init, responderKeyDist: resp };
}

/**
 * Central: the bits a Pairing Response sets that our request did not offer (a responder may only
 * clear bits, Core 5.4 Vol 3 Part H 3.5.2). EncKey and LinkKey are left out: they carry nothing in
 * LE Secure Connections and are ignored wherever they appear (3.6.1).
 */
export function unofferedKeys(preq: PairingFeatures, pres: PairingFeatures): KeyDistributionFields {
  return {
    initiatorKeyDist: pres.initiatorKeyDist & ~preq.initiatorKeyDist & ~SC_IGNORED_DIST,
    responderKeyDist: pres.responderKeyDist & ~preq.responderKeyDist & ~SC_IGNORED_DIST,
  };
}

/**
 * Both roles, from the Pairing Response: what we send (IdKey when we have an identity; SignKey only
 * when granted, i.e. our policy offered it) and what we expect (IdKey, SignKey). EncKey is ignored
 * (the LTK is derived), LinkKey is not supported.
 */
export function planDistribution(role: 'central' | 'peripheral', pres: PairingFeatures, identity: LocalIdentity | undefined): { sendToPeer: number; expectFromPeer: number } {
  const central = role === 'central';
  const toPeer = central ? pres.initiatorKeyDist : pres.responderKeyDist;
  const fromPeer = central ? pres.responderKeyDist : pres.initiatorKeyDist;
  return {
    sendToPeer: toPeer & ((identity ? KeyDist.IdKey : 0) | KeyDist.SignKey),
    expectFromPeer: fromPeer & (KeyDist.IdKey | KeyDist.SignKey),
  };
}

/** Phase 3 of one session: sends our keys and takes the peer's, then hands the procedure to `complete`. */
export class KeyDistribution {
  constructor(
    private readonly ctx: SmpContext,
    private readonly complete: (proc: Procedure) => Promise<void>,
  ) {}

  /** The link is encrypted with the new key: the responder distributes first. Core 5.4 Vol 3 Part H 3.6.1. */
  async begin(proc: Procedure): Promise<void> {
    this.ctx.state.phase = 'waitKeys';
    if (this.ctx.lower.role === 'peripheral') {
      this.sendOurKeys(proc);
      if (proc.expectFromPeer === 0) await this.complete(proc);
      return;
    }
    if (proc.expectFromPeer === 0) {
      this.sendOurKeys(proc);
      await this.complete(proc);
    }
  }

  /** One of Identity Information, Identity Address Information, Signing Information (in phase 'waitKeys'). */
  async onKeyPdu(pdu: SmpPdu): Promise<void> {
    const { ctx } = this;
    const proc = ctx.state.proc;
    if (!proc) return;
    const expected = this.nextExpectedKey(proc);
    if (pdu.type !== expected) {
      ctx.fail(
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
        else ctx.log.warn({ identity: formatAddress(a) }, 'the peer distributed an identity address that is neither public nor static random; keeping the connection address');
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
    if (ctx.lower.role === 'central') this.sendOurKeys(proc);
    await this.complete(proc);
  }

  /** Our keys, in the order of Core 5.4 Vol 3 Part H 3.6.1: identity, then signing. */
  private sendOurKeys(proc: Procedure): void {
    const { ctx } = this;
    const id = ctx.localIdentity();
    if (proc.sendToPeer & KeyDist.IdKey && id) {
      ctx.send({ type: 'identityInformation', irk: id.irk });
      ctx.send({ type: 'identityAddressInformation', address: id.address });
    }
    if (proc.sendToPeer & KeyDist.SignKey) {
      // Granted only when our policy offered SignKey. This stack never signs data, so the CSRK is a
      // fresh random key that is not kept: the peer can store it but will never see a signature.
      ctx.send({ type: 'signingInformation', csrk: ctx.random.bytes(16) });
    }
  }

  private nextExpectedKey(proc: Procedure): SmpPduType | undefined {
    if (proc.expectFromPeer & KeyDist.IdKey) return proc.idStep === 0 ? 'identityInformation' : 'identityAddressInformation';
    if (proc.expectFromPeer & KeyDist.SignKey) return 'signingInformation';
    return undefined;
  }
}
