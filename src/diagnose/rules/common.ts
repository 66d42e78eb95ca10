/**
 * What every rule file shares: the timing tunables, the wearable-host option names the fixes cite,
 * evidence helpers, and the reading of a pairing exchange (who asked for what, what was
 * negotiated, which association model it gave). Kept apart from rules.ts so rule files can use it
 * while rules.ts imports them.
 *
 * Core 5.4 references: Pairing Request/Response fields Vol 3 Part H 3.5.1-3.5.2; key size 2.3.4;
 * association model selection 2.3.5.1 (Tables 2.6-2.8); key distribution 3.6.1.
 */
import { AuthReq, IoCapability, KeyDist, type PairingFeatures } from '../../smp/pdu.js';
import { describeEvent } from '../describe.js';
import { before, type ConnectionSecurity } from '../security.js';
import type { PacketRef, TimelineEvent, TimelineEventOf } from '../timeline.js';

/** Tunables the predicates use. */
export const RULE_TIMING = {
  /** How long after a Security Request the phone may take to start pairing or encryption before it counts as ignored. */
  securityRequestWaitMs: 10_000,
  /** The SMP timeout: a pairing procedure idle this long is dead. Core 5.4 Vol 3 Part H 3.4. */
  smpTimeoutMs: 30_000,
  /** A Security Request this close to the phone starting encryption counts as colliding with it. */
  collisionWindowMs: 1_000,
} as const;

/** The wearable-host options the fixes name (issue 5's SMP policy). One place, so a rename is one change. */
export const OPTION = {
  securityRequest: '--security-request',
  rePairing: '--repair',
  pairingWindow: '--pairing-window',
  bonds: '--bonds',
  minKeySize: '--min-key-size',
  ioCapability: '--io-capability',
  gatt: '--gatt',
} as const;

/** One piece of evidence: a packet and what it shows. */
export interface Evidence {
  readonly at: PacketRef;
  readonly what: string;
}

export function ev(e: TimelineEvent, what?: string): Evidence {
  return { at: e.at, what: what ?? describeEvent(e) };
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

export function hex(v: number, digits = 2): string {
  return `0x${v.toString(16).padStart(digits, '0')}`;
}

/** The first event of `events` after `ref`, if any. */
export function firstAfter<E extends TimelineEvent>(events: readonly E[], ref: { at: PacketRef }): E | undefined {
  return events.find((e) => before(ref, e));
}

/** LE Secure Connections is used only when both sides set the SC bit. Core 5.4 Vol 3 Part H 2.3.5.1. */
export function bothSecureConnections(req: PairingFeatures, rsp: PairingFeatures): boolean {
  return (req.authReq & AuthReq.SecureConnections) !== 0 && (rsp.authReq & AuthReq.SecureConnections) !== 0;
}

/** Bonding_Flags = 0b01 in an AuthReq. Core 5.4 Vol 3 Part H 3.5.1. */
export function bondingFlag(authReq: number): boolean {
  return (authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding;
}

/** The association model of a pairing. Core 5.4 Vol 3 Part H 2.3.5.1. */
export type PairingMethod = 'just-works' | 'passkey' | 'numeric-comparison' | 'oob';

/**
 * The association model the two Pairing Request/Response PDUs select: OOB when the OOB flags
 * allow it, Just Works when neither side sets MITM, else the IO capability mapping (Table 2.8).
 */
export function pairingMethod(req: PairingFeatures, rsp: PairingFeatures): PairingMethod {
  const sc = bothSecureConnections(req, rsp);
  if (sc ? req.oobDataFlag === 1 || rsp.oobDataFlag === 1 : req.oobDataFlag === 1 && rsp.oobDataFlag === 1) return 'oob';
  if ((req.authReq & AuthReq.Mitm) === 0 && (rsp.authReq & AuthReq.Mitm) === 0) return 'just-works';
  return ioMapping(req.ioCapability, rsp.ioCapability, sc);
}

function ioMapping(init: number, resp: number, sc: boolean): PairingMethod {
  const { DisplayOnly, DisplayYesNo, KeyboardOnly, NoInputNoOutput, KeyboardDisplay } = IoCapability;
  if (init === NoInputNoOutput || resp === NoInputNoOutput) return 'just-works';
  if (init > KeyboardDisplay || resp > KeyboardDisplay) return 'just-works';
  const pair = new Set([init, resp]);
  // Both can show a number and confirm: Numeric Comparison with LE Secure Connections, Just Works or passkey in legacy pairing.
  const canConfirm = (io: number): boolean => io === DisplayYesNo || io === KeyboardDisplay;
  if (canConfirm(init) && canConfirm(resp)) return sc ? 'numeric-comparison' : init === DisplayYesNo && resp === DisplayYesNo ? 'just-works' : 'passkey';
  // Someone has a keyboard and the other a display or keyboard: passkey entry.
  if (pair.has(KeyboardOnly) || pair.has(KeyboardDisplay)) return 'passkey';
  // DisplayOnly / DisplayYesNo with each other: nobody can type.
  void DisplayOnly;
  return 'just-works';
}

/** One pairing attempt on a connection: the phone's Pairing Request and what followed it. */
export interface PairingAttempt {
  readonly request: ConnectionSecurity['pairingRequests'][number];
  readonly response: ConnectionSecurity['pairingResponses'][number] | undefined;
  readonly failure: ConnectionSecurity['pairingFailures'][number] | undefined;
  /** The link encrypted after the response (STK or LTK of this pairing). */
  readonly encrypted: TimelineEventOf<'encryptionChange'> | undefined;
  /** The accessory's SMP PDUs after the request, before the next request. */
  readonly accessoryAnswered: boolean;
  /** Negotiated maximum key size: the smaller of the two maxima. Core 5.4 Vol 3 Part H 2.3.4. */
  readonly keySize: number | undefined;
}

/** The pairing attempts of a connection, oldest first. */
export function pairingAttempts(sec: ConnectionSecurity): PairingAttempt[] {
  const reqs = sec.pairingRequests.filter((r) => r.from !== 'accessory');
  return reqs.map((request, i) => {
    const next = reqs[i + 1];
    const within = <E extends { at: PacketRef }>(e: E): boolean => before(request, e) && (!next || before(e, next));
    const response = sec.pairingResponses.find(within);
    const failure = sec.pairingFailures.find(within);
    const encrypted = response ? sec.encryptionChanges.find((e) => e.enabled && before(response, e) && (!next || before(e, next))) : undefined;
    const accessoryAnswered = sec.smp.some((e) => e.from === 'accessory' && within(e));
    const keySize = response ? Math.min(request.pdu.maxKeySize, response.pdu.maxKeySize) : undefined;
    return { request, response, failure, encrypted, accessoryAnswered, keySize };
  });
}

/** The pairing completed: a response, no failure, and the link encrypted after it. */
export function completed(a: PairingAttempt): a is PairingAttempt & { response: NonNullable<PairingAttempt['response']>; encrypted: NonNullable<PairingAttempt['encrypted']> } {
  return a.response !== undefined && a.failure === undefined && a.encrypted !== undefined;
}

/** Names of the key distribution bits for messages. */
export function keyDistNames(v: number): string {
  const names: string[] = [];
  if (v & KeyDist.EncKey) names.push('EncKey');
  if (v & KeyDist.IdKey) names.push('IdKey');
  if (v & KeyDist.SignKey) names.push('SignKey');
  if (v & KeyDist.LinkKey) names.push('LinkKey');
  return names.length ? names.join('+') : 'none';
}

export const PAIRING_METHOD_TEXT: Record<PairingMethod, string> = {
  'just-works': 'Just Works (unauthenticated)',
  passkey: 'Passkey Entry (authenticated)',
  'numeric-comparison': 'Numeric Comparison (authenticated)',
  oob: 'Out of Band',
};
