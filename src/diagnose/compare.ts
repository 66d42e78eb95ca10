/**
 * Two sessions side by side: "the iPhone shows no pairing prompt, Android pairs: why?". Each
 * capture is reduced to the phases of a first pairing (connect, MTU, discovery, first protected
 * access and its ATT error, Security Request, Pairing Request with its AuthReq / IO / key
 * distribution, outcome, encryption, reconnection); the phases are lined up and the first one where
 * the sessions differ in a way that matters is named, with what that difference means.
 *
 * Differences that are normal between phones (ATT MTU 185 vs 517, CT2 or key distribution bits
 * the accessory trims anyway) are shown but are not divergences. The capture side does not matter:
 * an accessory btsnoop can be compared with a phone PacketLogger file.
 *
 * Core 5.4 references: ATT Vol 3 Part F 3.4 (MTU, errors), SMP Vol 3 Part H 3.5 (Pairing
 * Request/Response, Security Request), 2.3.5.1 (association models), HCI encryption Vol 4 Part E 7.7.8.
 */
import { formatAuthReq, formatKeyDist, ioCapabilityName } from '../smp/pdu.js';
import { hciStatusName } from '../hci/status.js';
import { describeEvent } from './describe.js';
import { securityOf, type Report } from './diagnose.js';
import { before } from './security.js';
import { PAIRING_METHOD_TEXT, bondingFlag, bothSecureConnections, hex, pairingAttempts, pairingMethod } from './rules/common.js';
import { peerKey, type ConnectionRecord, type PacketRef, type Timeline, type TimelineEvent } from './timeline.js';

/** The phases, in the order a first pairing goes through them. */
export const COMPARE_PHASES = ['connect', 'mtu', 'discovery', 'protected-access', 'security-request', 'pairing-request', 'outcome', 'encryption', 'reconnection'] as const;
export type ComparePhase = (typeof COMPARE_PHASES)[number];

export const PHASE_TITLE: Record<ComparePhase, string> = {
  connect: 'Connection',
  mtu: 'ATT MTU exchange',
  discovery: 'GATT discovery',
  'protected-access': 'First protected access',
  'security-request': 'Security Request',
  'pairing-request': 'Pairing Request',
  outcome: 'Pairing outcome',
  encryption: 'Encryption',
  reconnection: 'Reconnection',
};

/** What one session shows for one phase. */
export interface PhaseView {
  /** Normalised value the comparison uses: equal keys mean "the same as far as pairing is concerned". */
  readonly key: string;
  /** What happened, for people. */
  readonly text: string;
  /** The packet that shows it, when there is one. */
  readonly at?: { readonly number: number; readonly sinceStartMs: number };
}

export interface SessionSummary {
  readonly file?: string;
  readonly capturedOn: 'accessory' | 'phone' | 'unknown';
  /** The connection the phases describe (the first one that tried to secure the link, else the first). */
  readonly connection?: number;
  readonly phases: Readonly<Record<ComparePhase, PhaseView>>;
  /** Rule ids of the findings on that connection and the reconnection. */
  readonly findings: readonly string[];
}

export interface PhaseComparison {
  readonly phase: ComparePhase;
  readonly title: string;
  readonly a: PhaseView;
  readonly b: PhaseView;
  readonly same: boolean;
  /** A difference here can decide pairing (MTU and discovery differences are shown, but never the divergence). */
  readonly decisive: boolean;
}

export interface Divergence {
  readonly phase: ComparePhase;
  readonly title: string;
  /** What the difference means. */
  readonly meaning: string;
}

export interface SessionComparison {
  readonly a: SessionSummary;
  readonly b: SessionSummary;
  readonly phases: readonly PhaseComparison[];
  /** The first phase where the sessions differ in a way that matters; undefined when they match. */
  readonly divergence?: Divergence;
}

function at(timeline: Timeline, ref: { at: PacketRef } | undefined): PhaseView['at'] {
  if (!ref) return undefined;
  return { number: ref.at.number, sinceStartMs: Math.max(0, ref.at.time - (timeline.firstTime ?? ref.at.time)) };
}

function view(key: string, text: string, timeline: Timeline, ref?: { at: PacketRef }): PhaseView {
  const a = at(timeline, ref);
  return a ? { key, text, at: a } : { key, text };
}

/** The connection whose first pairing the phases describe. */
function mainConnection(t: Timeline): ConnectionRecord | undefined {
  return t.connections.find((c) => c.events.some((e) => (e.kind === 'smp' && e.pdu.type !== 'pairingFailed') || e.kind === 'ltkRequest' || e.kind === 'startEncryption')) ?? t.connections[0];
}

const DISCOVERY: ReadonlySet<string> = new Set(['readByGroupTypeRequest', 'readByTypeRequest', 'findInformationRequest', 'findByTypeValueRequest']);

/** Reduces one session to its phases. */
export function summarizeSession(timeline: Timeline, report?: Report): SessionSummary {
  const conn = mainConnection(timeline);
  const t = timeline;
  const none = (text: string): PhaseView => ({ key: 'none', text });
  if (!conn) {
    const phases = Object.fromEntries(COMPARE_PHASES.map((p) => [p, none(p === 'connect' ? 'no connection in the capture' : '-')])) as Record<ComparePhase, PhaseView>;
    return { ...(report?.source?.file ? { file: report.source.file } : {}), capturedOn: 'unknown', phases, findings: [] };
  }
  const sec = securityOf(conn);
  const ev = conn.events;
  const connEv = ev.find((e) => e.kind === 'connection');
  const capturedOn = conn.localRole === 'peripheral' ? 'accessory' : conn.localRole === 'central' ? 'phone' : 'unknown';

  const connect = connEv ? view('connected', describeEvent(connEv), t, connEv) : view('connected', 'connected before the capture started', t);

  const mtuReq = ev.find((e): e is Extract<TimelineEvent, { kind: 'att' }> => e.kind === 'att' && e.pdu.type === 'exchangeMtuRequest');
  const mtuRsp = ev.find((e): e is Extract<TimelineEvent, { kind: 'att' }> => e.kind === 'att' && e.pdu.type === 'exchangeMtuResponse');
  const mtuText = (e: typeof mtuReq): string => (e && e.pdu.type === 'exchangeMtuRequest' ? `${e.from ?? 'one side'} asks ${e.pdu.clientRxMtu}` : '');
  const mtu = mtuReq
    ? view('exchanged', `${mtuText(mtuReq)}${mtuRsp && mtuRsp.pdu.type === 'exchangeMtuResponse' ? `, answered ${mtuRsp.pdu.serverRxMtu}` : ', no answer'}`, t, mtuReq)
    : none('no MTU exchange');

  const disc = ev.find((e) => e.kind === 'att' && e.from === 'phone' && DISCOVERY.has(e.pdu.type));
  const discovery = disc ? view('discovered', `the phone discovers the database (${describeEvent(disc)})`, t, disc) : none('no discovery in this connection (cached, or none)');

  // First access the accessory rejected for security, else the first ordinary read/write by the phone.
  const firstErr = sec.attSecurityErrors[0];
  const firstReq = sec.phoneRequests.find((e) => !DISCOVERY.has(e.pdu.type));
  const protectedAccess = firstErr
    ? view(`error-${hex(firstErr.pdu.errorCode)}${sec.encryptedAt && before(sec.encryptedAt, firstErr) ? '-encrypted' : ''}`, `${describeEvent(firstErr)}${sec.encryptedAt && before(sec.encryptedAt, firstErr) ? ' (on the encrypted link)' : ''}`, t, firstErr)
    : firstReq
      ? view('no-rejection', `no access rejected for security (first request: ${describeEvent(firstReq)})`, t, firstReq)
      : none('the phone read or wrote nothing');

  const sr = sec.securityRequests[0];
  const securityRequest = sr ? view('sent', describeEvent(sr), t, sr) : none('no Security Request');

  const attempts = pairingAttempts(sec);
  const first = attempts[0];
  let pairingRequest: PhaseView;
  if (first) {
    const p = first.request.pdu;
    const key = `bond=${bondingFlag(p.authReq) ? 1 : 0}/sc=${p.authReq & 0x08 ? 1 : 0}/mitm=${p.authReq & 0x04 ? 1 : 0}`;
    pairingRequest = view(
      // Bonding, SC and MITM matter; CT2, keypress and the key distribution the accessory trims do not.
      key,
      `from the phone: IO ${ioCapabilityName(p.ioCapability)}, AuthReq ${formatAuthReq(p.authReq)}, max key ${p.maxKeySize}, key distribution ${formatKeyDist(p.initiatorKeyDist)}/${formatKeyDist(p.responderKeyDist)}`,
      t,
      first.request,
    );
  } else if (sec.ltkRequests.length || sec.startEncryptions.length) {
    pairingRequest = view('stored-key', 'none: the phone encrypted with a stored key instead', t, sec.ltkRequests[0] ?? sec.startEncryptions[0]);
  } else pairingRequest = none('the phone never sent a Pairing Request');

  let outcome: PhaseView;
  if (!first) outcome = none('no pairing');
  else if (first.failure) outcome = view(`failed-${hex(first.failure.pdu.reason)}-${first.failure.from}`, `${describeEvent(first.failure)}`, t, first.failure);
  else if (first.response && first.encrypted) {
    const r = first.response.pdu;
    const method = pairingMethod(first.request.pdu, r);
    outcome = view(
      `paired-${bothSecureConnections(first.request.pdu, r) ? 'lesc' : 'legacy'}-${method}-${bondingFlag(first.request.pdu.authReq) && bondingFlag(r.authReq) ? 'bonded' : 'not-bonded'}`,
      `paired: ${bothSecureConnections(first.request.pdu, r) ? 'LE Secure Connections' : 'legacy'} ${PAIRING_METHOD_TEXT[method]}, ${bondingFlag(first.request.pdu.authReq) && bondingFlag(r.authReq) ? 'bonded' : 'not bonded'}, key size ${first.keySize}`,
      t,
      first.response,
    );
  } else if (first.response) outcome = view('unfinished', 'the accessory answered; the pairing never finished', t, first.response);
  else outcome = view('unanswered', 'the accessory never answered the Pairing Request', t, first.request);

  const encFail = sec.encryptionChanges.find((e) => !e.enabled);
  const encryption = sec.encryptedAt
    ? view('encrypted', `${describeEvent(sec.encryptedAt)}${sec.negotiatedKeySize ? `, key size ${sec.negotiatedKeySize}` : ''}`, t, sec.encryptedAt)
    : encFail
      ? view(`failed-${hex(encFail.status)}`, `encryption failed: ${hciStatusName(encFail.status)}`, t, encFail)
      : sec.ltkReplies.find((r) => !r.positive)
        ? view('refused', 'the accessory had no key (LTK negative reply)', t, sec.ltkReplies.find((r) => !r.positive))
        : none('the link was never encrypted');

  const key = peerKey(conn);
  const next = t.connections.find((c) => c.id > conn.id && peerKey(c) === key);
  let reconnection: PhaseView;
  if (!next) reconnection = none('no later connection in the capture');
  else {
    const ns = securityOf(next);
    reconnection = ns.encryptedAt && ns.pairingRequests.length === 0
      ? view('encrypted-stored-key', `connection ${next.id}: encrypted with the stored key`, t, ns.encryptedAt)
      : ns.pairingRequests.length
        ? view('paired-again', `connection ${next.id}: paired again`, t, ns.pairingRequests[0])
        : ns.outcome === 'encryption-failed'
          ? view('encryption-failed', `connection ${next.id}: ${ns.summary}`, t, ns.ltkRequests[0] ?? ns.startEncryptions[0])
          : view('not-secured', `connection ${next.id}: not secured`, t, next.events[0]);
  }

  const findings = report ? report.findings.filter((f) => f.connection === conn.id || f.connection === next?.id).map((f) => f.rule) : [];
  return {
    ...(report?.source?.file ? { file: report.source.file } : {}),
    capturedOn,
    connection: conn.id,
    phases: { connect, mtu, discovery, 'protected-access': protectedAccess, 'security-request': securityRequest, 'pairing-request': pairingRequest, outcome, encryption, reconnection },
    findings,
  };
}

/** What a difference in `phase` means, given the two views (A first). */
function meaningOf(phase: ComparePhase, sa: SessionSummary, sb: SessionSummary): string {
  const a = sa.phases[phase];
  const b = sb.phases[phase];
  const one = (side: 'A' | 'B'): string => `session ${side}`;
  const which = (pred: (v: PhaseView) => boolean): 'A' | 'B' | undefined => (pred(a) && !pred(b) ? 'A' : pred(b) && !pred(a) ? 'B' : undefined);
  switch (phase) {
    case 'connect':
      return 'Only one session has a connection: the other capture missed it (capture started late, or the phone never connected).';
    case 'mtu':
    case 'discovery':
      return 'Not decisive for pairing.';
    case 'protected-access': {
      const bonded = sa.phases['pairing-request'].key === 'stored-key' ? 'A' : sb.phases['pairing-request'].key === 'stored-key' ? 'B' : undefined;
      if (bonded) {
        const enc = (bonded === 'A' ? sa : sb).phases.encryption;
        return `The phone of ${one(bonded)} treats the accessory as bonded: it encrypted with its stored key at once, so it needed no rejected access to pair; that encryption ${enc.key === 'encrypted' ? 'worked' : `did not work (${enc.text})`}. The other phone was not bonded and was made to pair.`;
      }
      const rejected = which((v) => v.key.startsWith('error-0x05') && !v.key.endsWith('-encrypted'));
      if (rejected) {
        return `In ${one(rejected)} a protected access was rejected with 0x05 Insufficient Authentication, which is what makes a phone pair (iOS pairs only then: it does not act on a Security Request reliably); in the other session nothing protected was accessed, so nothing asked that phone to pair. Let a protected characteristic be read on connect, or have the app read one.`;
      }
      if (a.key.endsWith('-encrypted') || b.key.endsWith('-encrypted')) return 'In one session an access is still rejected on the encrypted link: the characteristic needs more than this pairing gives (see the authentication finding).';
      if (a.key.startsWith('error-0x0f') || b.key.startsWith('error-0x0f')) return 'One session got 0x0F Insufficient Encryption: the accessory holds a key for that phone, the other got a different answer. One phone is bonded, the other is not.';
      return 'The first protected access was answered differently: the accessory treated the two phones differently (bond state or address resolution).';
    }
    case 'security-request':
      return 'The accessory sent a Security Request in one session only: its policy differs between the sessions (timing, or bond state), or one capture started too late to see it.';
    case 'pairing-request': {
      const missing = which((v) => v.key === 'none');
      if (missing) return `The phone of ${one(missing)} never sent a Pairing Request: nothing triggered pairing on it (or it encrypted with a stored key). This is usually the answer to "one phone shows no prompt".`;
      return 'The phones asked for different things in AuthReq (bonding, Secure Connections or MITM): the accessory may accept one and refuse the other (see the outcome).';
    }
    case 'outcome':
      return `The pairing ended differently: ${a.text} vs ${b.text}. The findings of the failing session name the reason.`;
    case 'encryption':
      return 'The link was encrypted in one session only; the other phone had no key the accessory accepted, or never tried.';
    case 'reconnection': {
      const again = which((v) => v.key === 'paired-again');
      if (again) return `On reconnection the phone of ${one(again)} paired again instead of using the stored key: no usable bond was kept (see pairing-without-bonding or rpa-not-resolved).`;
      return 'The reconnections differ: one phone reused its bond, the other did not (or was not captured reconnecting).';
    }
  }
}

/** Phases where a difference is not a divergence: the value differs between phones but pairing does not depend on it. */
function differenceMatters(phase: ComparePhase, a: PhaseView, b: PhaseView): boolean {
  if (a.key === b.key) return false;
  // Capture coverage: "no later connection" on one side says nothing about the other.
  if (phase === 'reconnection' && (a.key === 'none' || b.key === 'none')) return false;
  return true;
}

/** Lines two sessions up phase by phase. */
export function compareSessions(a: { timeline: Timeline; report?: Report }, b: { timeline: Timeline; report?: Report }): SessionComparison {
  const sa = summarizeSession(a.timeline, a.report);
  const sb = summarizeSession(b.timeline, b.report);
  const phases: PhaseComparison[] = COMPARE_PHASES.map((phase) => ({
    phase,
    title: PHASE_TITLE[phase],
    a: sa.phases[phase],
    b: sb.phases[phase],
    same: !differenceMatters(phase, sa.phases[phase], sb.phases[phase]),
    decisive: phase !== 'mtu' && phase !== 'discovery',
  }));
  const first = phases.find((p) => !p.same && p.decisive);
  return {
    a: sa,
    b: sb,
    phases,
    ...(first ? { divergence: { phase: first.phase, title: first.title, meaning: meaningOf(first.phase, sa, sb) } } : {}),
  };
}

function cell(v: PhaseView): string {
  return `${v.at ? `#${v.at.number} ` : ''}${v.text}`;
}

/** The comparison as text for a terminal. */
export function renderComparison(c: SessionComparison): string {
  const out: string[] = [];
  const name = (s: SessionSummary, l: string): string => `${l}: ${s.file ?? 'capture'} (taken on the ${s.capturedOn}${s.connection ? `, connection ${s.connection}` : ''})`;
  out.push(name(c.a, 'A'), name(c.b, 'B'), '');
  for (const p of c.phases) {
    out.push(`${p.same ? '  ' : '≠ '}${p.title}${!p.same && !p.decisive ? ' (differs; does not decide pairing)' : ''}`);
    out.push(`    A: ${cell(p.a)}`);
    out.push(`    B: ${cell(p.b)}`);
  }
  out.push('');
  if (c.divergence) {
    out.push(`First divergence: ${c.divergence.title}.`);
    out.push(...wrap(c.divergence.meaning, '  '));
  } else out.push('The sessions do not diverge in any phase that decides pairing.');
  const f = (s: SessionSummary): string => (s.findings.length ? s.findings.join(', ') : 'none');
  out.push('', `Findings: A ${f(c.a)}; B ${f(c.b)} (run diagnose on one file for the details).`);
  return out.join('\n') + '\n';
}

function wrap(text: string, indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line.length > indent.length && line.length + 1 + w.length > width) {
      lines.push(line);
      line = indent + w;
    } else line += (line.length > indent.length ? ' ' : '') + w;
  }
  if (line.trim()) lines.push(line);
  return lines;
}
