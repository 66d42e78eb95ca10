/**
 * What happened to security on one connection, read off its timeline events: pairing (who asked,
 * what was negotiated, how it ended), encryption with a stored key, key size, and the ATT security
 * errors. The rules and the report both read this summary.
 */
import { hciStatusName } from '../hci/status.js';
import { AuthReq, smpReasonName, type PairingFeatures } from '../smp/pdu.js';
import { attErrorName } from '../att/pdu.js';
import type { ConnectionRecord, PacketRef, Side, TimelineEvent, TimelineEventOf } from './timeline.js';

export type SmpEvent<T extends string = string> = TimelineEventOf<'smp'> & { pdu: { type: T } };

/** ATT error codes that mean "not secure enough". Core 5.4 Vol 3 Part F 3.4.1.1. */
export const ATT_SECURITY_ERRORS: ReadonlySet<number> = new Set([0x05, 0x08, 0x0c, 0x0f]);

export type SecurityOutcome =
  /** Paired on this connection and the link was encrypted. */
  | 'paired'
  /** Encrypted with a key from an earlier pairing (a bonded reconnection). */
  | 'encrypted'
  /** Pairing started and failed or never finished. */
  | 'pairing-failed'
  /** Encryption with a stored key was attempted and failed. */
  | 'encryption-failed'
  /** Nothing secured the link. */
  | 'not-secured';

export interface ConnectionSecurity {
  readonly securityRequests: SmpEvent<'securityRequest'>[];
  readonly pairingRequests: (SmpEvent<'pairingRequest'> & { pdu: PairingFeatures })[];
  readonly pairingResponses: (SmpEvent<'pairingResponse'> & { pdu: PairingFeatures })[];
  readonly pairingFailures: (SmpEvent<'pairingFailed'> & { pdu: { reason: number } })[];
  readonly smp: TimelineEventOf<'smp'>[];
  readonly ltkRequests: TimelineEventOf<'ltkRequest'>[];
  readonly ltkReplies: TimelineEventOf<'ltkReply'>[];
  readonly startEncryptions: TimelineEventOf<'startEncryption'>[];
  readonly encryptionChanges: TimelineEventOf<'encryptionChange'>[];
  /** First successful encryption. */
  readonly encryptedAt: TimelineEventOf<'encryptionChange'> | undefined;
  /**
   * The key size the last pairing on this connection negotiated, when the link was then encrypted:
   * the smaller of the Maximum Encryption Key Size fields of its Pairing Request and Response.
   * Core 5.4 Vol 3 Part H 2.3.4.
   */
  readonly negotiatedKeySize: number | undefined;
  /** Key sizes reported by the controller (Read Encryption Key Size, Encryption Change v2). */
  readonly keySizes: { at: PacketRef; keySize: number }[];
  /** ATT Error Responses with a security error code, from the accessory. */
  readonly attSecurityErrors: (TimelineEventOf<'att'> & { pdu: { type: 'errorResponse'; errorCode: number; handle: number; requestOpcode: number } })[];
  /** ATT requests from the phone. */
  readonly phoneRequests: TimelineEventOf<'att'>[];
  readonly disconnection: TimelineEventOf<'disconnection'> | undefined;
  readonly outcome: SecurityOutcome;
  /** One sentence for the report. */
  readonly summary: string;
}

function smpOf<T extends string>(events: readonly TimelineEvent[], type: T, from?: Side): SmpEvent<T>[] {
  return events.filter((e): e is SmpEvent<T> => e.kind === 'smp' && e.pdu.type === type && (from === undefined || e.from === from));
}

function ofKind<K extends TimelineEvent['kind']>(events: readonly TimelineEvent[], kind: K): TimelineEventOf<K>[] {
  return events.filter((e): e is TimelineEventOf<K> => e.kind === kind);
}

/** Whether `a` comes before `b` in the capture. */
export function before(a: { at: PacketRef }, b: { at: PacketRef } | PacketRef): boolean {
  const bn = 'at' in b ? b.at.number : b.number;
  return a.at.number < bn;
}

/** AuthReq has the Secure Connections bit. Core 5.4 Vol 3 Part H 3.5.1. */
export function wantsSecureConnections(authReq: number): boolean {
  return (authReq & AuthReq.SecureConnections) !== 0;
}

function bonding(authReq: number): boolean {
  return (authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding;
}

/** Reads the security story of one connection. */
export function analyzeSecurity(conn: ConnectionRecord): ConnectionSecurity {
  const ev = conn.events;
  const pairingRequests = smpOf(ev, 'pairingRequest') as ConnectionSecurity['pairingRequests'];
  const pairingResponses = smpOf(ev, 'pairingResponse') as ConnectionSecurity['pairingResponses'];
  const pairingFailures = smpOf(ev, 'pairingFailed') as ConnectionSecurity['pairingFailures'];
  const encryptionChanges = ofKind(ev, 'encryptionChange');
  const encryptedAt = encryptionChanges.find((e) => e.enabled);
  const keySizes: { at: PacketRef; keySize: number }[] = [];
  for (const e of ev) {
    if (e.kind === 'keySize') keySizes.push({ at: e.at, keySize: e.keySize });
    else if (e.kind === 'encryptionChange' && e.keySize !== undefined && e.enabled) keySizes.push({ at: e.at, keySize: e.keySize });
  }
  const attSecurityErrors = ev.filter(
    (e): e is ConnectionSecurity['attSecurityErrors'][number] =>
      e.kind === 'att' && e.pdu.type === 'errorResponse' && e.from === 'accessory' && ATT_SECURITY_ERRORS.has(e.pdu.errorCode),
  );
  const phoneRequests = ofKind(ev, 'att').filter((e) => e.from === 'phone' && e.pdu.type !== 'exchangeMtuRequest' && e.pdu.type !== 'handleValueConfirmation' && e.pdu.type !== 'errorResponse');
  const disconnection = ofKind(ev, 'disconnection')[0];
  const ltkRequests = ofKind(ev, 'ltkRequest');
  const ltkReplies = ofKind(ev, 'ltkReply');
  const startEncryptions = ofKind(ev, 'startEncryption');
  const securityRequests = smpOf(ev, 'securityRequest', 'accessory');

  const firstPairing = pairingRequests[0];
  let outcome: SecurityOutcome;
  if (firstPairing && encryptedAt && before(firstPairing, encryptedAt)) outcome = 'paired';
  else if (encryptedAt) outcome = 'encrypted';
  else if (firstPairing || pairingFailures.length > 0) outcome = 'pairing-failed';
  else if (ltkRequests.length > 0 || startEncryptions.length > 0 || encryptionChanges.some((e) => e.status !== 0)) outcome = 'encryption-failed';
  else outcome = 'not-secured';

  const lastResponse = pairingResponses[pairingResponses.length - 1];
  const lastRequest = lastResponse ? [...pairingRequests].reverse().find((r) => before(r, lastResponse)) : undefined;
  // Only a pairing that went on to encrypt the link has a key size worth reporting.
  const negotiatedKeySize = lastResponse && lastRequest && encryptionChanges.some((e) => e.enabled && before(lastResponse, e)) ? Math.min(lastRequest.pdu.maxKeySize, lastResponse.pdu.maxKeySize) : undefined;
  const keySize = negotiatedKeySize ?? (keySizes.length ? keySizes[keySizes.length - 1]?.keySize : undefined);
  const parts: string[] = [];
  switch (outcome) {
    case 'paired': {
      const req = firstPairing as (typeof pairingRequests)[number];
      const rsp = pairingResponses[0];
      const sc = wantsSecureConnections(req.pdu.authReq) && (!rsp || wantsSecureConnections(rsp.pdu.authReq));
      const bonded = bonding(req.pdu.authReq) && (!rsp || bonding(rsp.pdu.authReq));
      parts.push(`paired (${sc ? 'LE Secure Connections' : 'legacy pairing'}${bonded ? ', bonded' : ', not bonded'}) and encrypted`);
      break;
    }
    case 'encrypted':
      parts.push('encrypted with a key from an earlier pairing (bonded reconnection)');
      break;
    case 'pairing-failed': {
      const f = pairingFailures[0];
      parts.push(
        f
          ? `pairing failed: ${f.from ?? 'one side'} sent Pairing Failed 0x${f.pdu.reason.toString(16).padStart(2, '0')} (${smpReasonName(f.pdu.reason)})`
          : 'pairing started and never finished',
      );
      break;
    }
    case 'encryption-failed': {
      const neg = ltkReplies.find((r) => !r.positive);
      const bad = encryptionChanges.find((e) => e.status !== 0);
      parts.push(
        neg
          ? 'encryption with a stored key failed: the accessory had no key for the phone (LTK negative reply)'
          : bad
            ? `encryption with a stored key failed (${hciStatusName(bad.status)})`
            : 'encryption with a stored key was started and never completed',
      );
      break;
    }
    case 'not-secured':
      parts.push(securityRequests.length ? 'not secured: the accessory sent a Security Request and the phone did not pair' : 'not secured: no pairing or encryption on this link');
      break;
  }
  if (keySize !== undefined) parts.push(`key size ${keySize}`);
  if (attSecurityErrors.length) {
    const codes = [...new Set(attSecurityErrors.map((e) => e.pdu.errorCode))].map((c) => `0x${c.toString(16).padStart(2, '0')} ${attErrorName(c)}`);
    parts.push(`${attSecurityErrors.length} ATT request(s) rejected (${codes.join(', ')})`);
  }
  return {
    securityRequests,
    pairingRequests,
    pairingResponses,
    pairingFailures,
    smp: ofKind(ev, 'smp'),
    ltkRequests,
    ltkReplies,
    startEncryptions,
    encryptionChanges,
    encryptedAt,
    negotiatedKeySize,
    keySizes,
    attSecurityErrors,
    phoneRequests,
    disconnection,
    outcome,
    summary: parts.join('; '),
  };
}
