/**
 * The narrow interfaces SMP is built from and the shapes it reports. The composition root
 * (src/host.ts) builds {@link SmpLower} from L2CAP (fixed channel 0x0006) and HCI (LTK replies,
 * encryption); SMP never imports src/hci or src/l2cap. The device's pairing policy, its defaults
 * and their validation ({@link mergeSmpPolicy}).
 */
import type { BondRecord, BondStore, LocalIdentity } from '../bonds/types.js';
import type { Address } from '../util/address.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import type { PairingBackoff } from './backoff.js';
import type { LinkSecurity, SecurityLevel } from './link-security.js';
import type { IoCapabilityValue, PairingFeatures } from './pdu.js';

/** What SMP needs from the layers below, for one connection. */
export interface SmpLower {
  /** Our role on this connection (link layer): the central initiates pairing, the peripheral responds. */
  readonly role: 'central' | 'peripheral';
  /** The address we use on this connection (for f5/f6 A1/A2). */
  readonly localAddress: Address;
  /** The address the peer used on air (for f5/f6, and to look up its bond). */
  readonly peerAddress: Address;
  /** Sends one SMP PDU on the L2CAP fixed channel 0x0006. */
  send(pdu: Uint8Array): void;
  /** Peripheral: HCI LE Long Term Key Request Reply. Core 5.4 Vol 4 Part E 7.8.25. */
  ltkReply(ltk: Uint8Array): Promise<void>;
  /** Peripheral: HCI LE Long Term Key Request Negative Reply. Core 5.4 Vol 4 Part E 7.8.26. */
  ltkNegativeReply(): Promise<void>;
  /** Central: HCI LE Enable Encryption. Core 5.4 Vol 4 Part E 7.8.24. */
  startEncryption(ltk: Uint8Array, ediv: number, rand: bigint): Promise<void>;
  /**
   * HCI Read Encryption Key Size, after an Encryption Change. Core 5.4 Vol 4 Part E 7.5.7.
   * Undefined when the controller cannot tell (upstream Zephyr's link layer does not implement the
   * command): the negotiated key size then stands.
   */
  readKeySize(): Promise<number | undefined>;
  /** HCI Disconnect with a reason (0x05 Authentication Failure, ...). */
  disconnect(reason: number): Promise<void>;
}

/** When the peripheral sends an SMP Security Request. Core 5.4 Vol 3 Part H 2.4.6. */
export type SecurityRequestMode =
  /** Never: the central decides (Apple's guidance: pair only after an ATT Insufficient Authentication). */
  | 'never'
  /** On every new connection, after `securityRequestDelayMs`. */
  | 'on-connect'
  /** After ATT rejected a request for lack of security (`onAttSecurityRejection()`), after the delay. */
  | 'after-att-rejection';

/** What to do when a peer we hold a bond for asks to pair again. */
export type RePairingPolicy =
  /** Refuse with Pairing Failed 0x03 Authentication Requirements (Zephyr's default). */
  | 'reject'
  /** Pair; the old bond is replaced only after the new pairing completed. */
  | 'replace';

/** Pairing and security policy of this device. All fields have defaults ({@link DEFAULT_SMP_POLICY}). */
export interface SmpPolicy {
  /** Our IO capability (default NoInputNoOutput: Just Works, level 2). */
  readonly ioCapability: IoCapabilityValue;
  /** Ask for bonding (default true). A bond is stored only when both sides set the bonding flag. */
  readonly bondable: boolean;
  /** Refuse pairings without MITM protection (Just Works) with 0x03 (default false). */
  readonly requireMitm: boolean;
  /** Shortest encryption key accepted, 7..16 (default 16, against KNOB-style downgrades). */
  readonly minKeySize: number;
  /** Accept a peer using the published debug key pair (default false). Core 5.4 Vol 3 Part H 2.3.5.6.1. */
  readonly allowDebugKeys: boolean;
  readonly securityRequest: SecurityRequestMode;
  /** Delay before a Security Request, ms (default 0). */
  readonly securityRequestDelayMs: number;
  readonly rePairing: RePairingPolicy;
  /**
   * Set the CT2 bit (0x20) in our AuthReq (Pairing Request / Response, Security Request): "h7 is
   * supported for cross-transport key derivation". Default false. This stack never derives a
   * BR/EDR link key, so the bit only changes what goes on the wire, and with it the AuthReq octet of
   * IOcap in f6 (both sides use the octets actually sent). Android sets it (AuthReq 0x2D).
   * Core 5.4 Vol 3 Part H 3.5.1, 2.4.2.4.
   */
  readonly ct2: boolean;
  /**
   * Set the Keypress bit (0x10) in our AuthReq. Default false. When both sides set it and this side
   * types a passkey, it sends Pairing Keypress Notifications: Passkey Entry Started when the input
   * hook is asked, Passkey Entry Completed when it answers (no per-digit notifications: the hook
   * returns the whole passkey). Core 5.4 Vol 3 Part H 3.5.1, 3.5.8.
   */
  readonly keypress: boolean;
  /**
   * Initiator Key Distribution. Central: the exact field of our Pairing Request (default: IdKey
   * when bonding and we have a local identity). IdKey is dropped when there is no local identity to
   * send. Peripheral: a mask on what we accept from the central (we take IdKey and nothing else).
   * In LE Secure Connections EncKey is ignored (the LTK is derived) and LinkKey is not supported:
   * either bit in a Pairing Response is ignored, not refused. Core 5.4 Vol 3 Part H 3.5.1, 3.6.1.
   */
  readonly initiatorKeyDistribution?: number;
  /**
   * Responder Key Distribution. Central: the exact field of our Pairing Request (default: IdKey
   * when bonding). Peripheral: a mask on what we offer (IdKey when we have a local identity).
   * Core 5.4 Vol 3 Part H 3.5.1, 3.6.1.
   */
  readonly responderKeyDistribution?: number;
  /** Whether pairing is allowed now (a pairing window); closed -> Pairing Failed 0x05 Pairing Not Supported. */
  isPairingAllowed(): boolean;
  /** Show a passkey the peer's user types (we display). Without it a display role cannot pair (0x01). */
  displayPasskey?(passkey: number, peer: Address): void | Promise<void>;
  /** Ask our user for the passkey the peer shows; undefined cancels (0x01 Passkey Entry Failed). */
  requestPasskey?(peer: Address): Promise<number | undefined>;
  /** Ask our user whether the six digits match; false -> 0x0C Numeric Comparison Failed. */
  confirmNumericComparison?(value: number, peer: Address): Promise<boolean>;
  /**
   * Ask our user to consent to a Just Works pairing ("Pair" / "Cancel"), after the nonces and
   * before the DHKey checks, where Numeric Comparison asks (Core 5.4 Vol 3 Part H 2.3.5.6.2: Just
   * Works is Numeric Comparison without showing the value). Without the hook Just Works goes on
   * unasked. false -> Pairing Failed 0x0C Numeric Comparison Failed, as Android does when its
   * consent dialog is declined (AOSP system/stack/smp/smp_api.cc SMP_SecurityGrant, "Consent
   * dialog fails for JUSTWORKS"). For another reason, call `SmpSession.abort(reason)` instead.
   */
  confirmJustWorks?(peer: Address): Promise<boolean>;
}

export const DEFAULT_SMP_POLICY: SmpPolicy = Object.freeze({
  ioCapability: 0x03 as IoCapabilityValue,
  bondable: true,
  requireMitm: false,
  minKeySize: 16,
  allowDebugKeys: false,
  securityRequest: 'never' as SecurityRequestMode,
  securityRequestDelayMs: 0,
  rePairing: 'reject' as RePairingPolicy,
  ct2: false,
  keypress: false,
  isPairingAllowed: () => true,
});

/** The policy of a session: `p` over {@link DEFAULT_SMP_POLICY}, checked (RangeError naming the field). */
export function mergeSmpPolicy(p: Partial<SmpPolicy> | undefined): SmpPolicy {
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

/** Everything an {@link SmpSession} is built from. */
export interface SmpSessionOptions {
  readonly lower: SmpLower;
  readonly bonds: BondStore;
  readonly clock: Clock;
  /** The OS CSPRNG in production. */
  readonly random: RandomSource;
  /** Repeated-attempts back-off, shared by every session of the device. */
  readonly backoff: PairingBackoff;
  readonly policy?: Partial<SmpPolicy>;
  /** Our identity (IRK + identity address) to distribute; defaults to `bonds.getLocalIdentity()`. */
  readonly localIdentity?: LocalIdentity;
  readonly log?: Logger;
  /** SMP timeout, ms (default 30 000, Core 5.4 Vol 3 Part H 3.4). Only tests change it. */
  readonly timeoutMs?: number;
}

/** Association models of LE Secure Connections. Core 5.4 Vol 3 Part H 2.3.5.1. */
export type AssociationModel = 'justWorks' | 'numericComparison' | 'passkeyEntry';

/** Which side of a Passkey Entry shows the passkey and which types it. */
export type PasskeyAction = 'display' | 'input';

/** Who ended a pairing attempt. */
export type FailureSource =
  /** We sent Pairing Failed (or refused locally). */
  | 'local'
  /** The peer sent Pairing Failed. */
  | 'peer'
  /** The 30 s SMP timeout expired; no more SMP on this link. */
  | 'timeout'
  /** The link went down mid-pairing. */
  | 'disconnected';

export interface PairingFailure {
  /** Pairing Failed reason code (Core 5.4 Vol 3 Part H 3.5.5); undefined for a timeout or a lost link. */
  readonly reason: number | undefined;
  /** The spec's name of the reason, or `SMP Timeout` / `Disconnected`. */
  readonly reasonName: string;
  readonly by: FailureSource;
  /** What happened, for a user: names the peer and, where there is one, the next step. */
  readonly message: string;
  readonly peer: Address;
}

/** Reported when a pairing completed (after key distribution). */
export interface PairedInfo {
  readonly level: SecurityLevel;
  /** A bond was stored (both sides asked for bonding and the store accepted it). */
  readonly bonded: boolean;
  readonly keySize: number;
  readonly model: AssociationModel;
  readonly authenticated: boolean;
  /** The peer's identity address (from Identity Address Information), or the address it used on air. */
  readonly peerIdentity: Address;
  /** The LTK of this pairing (16 bytes LE; masked to keySize). */
  readonly ltk: Uint8Array;
}

export interface PairingRequestInfo {
  readonly peer: Address;
  readonly request: PairingFeatures;
}

export interface PairingStartedInfo {
  readonly peer: Address;
  readonly role: 'initiator' | 'responder';
  readonly model: AssociationModel | undefined;
  readonly request: PairingFeatures;
  readonly response: PairingFeatures | undefined;
}

/** Events an {@link SmpSession} emits. */
export type SmpEvents = {
  /** A Pairing Request arrived (before any check): for the CLI and the pairing diagnosis. */
  pairingRequestReceived: [PairingRequestInfo];
  /** Peripheral: we answered with Pairing Response. Central: we sent Pairing Request. */
  pairingStarted: [PairingStartedInfo];
  paired: [PairedInfo];
  pairingFailed: [PairingFailure];
  /** Encryption state changed (snapshot). */
  securityChanged: [LinkSecurity];
  securityRequestSent: [{ readonly peer: Address; readonly authReq: number }];
  /** Central: the peer asked for security. */
  securityRequestReceived: [{ readonly peer: Address; readonly authReq: number }];
  /** The peer asked to encrypt with a key we do not have: it holds a bond this device lost. */
  ltkRequestUnknown: [{ readonly peer: Address; readonly ediv: number; readonly rand: bigint }];
  /** Encryption failed (HCI status of Encryption Change / Key Refresh). */
  encryptionFailed: [{ readonly peer: Address; readonly status: number }];
  /** The peer's identity is known: from its bond (RPA resolved) or from key distribution. */
  identityResolved: [{ readonly connectionAddress: Address; readonly identity: Address; readonly source: 'bond' | 'pairing' }];
  bondSaved: [BondRecord];
  /** The 30 s SMP timeout expired. */
  timeout: [];
};
