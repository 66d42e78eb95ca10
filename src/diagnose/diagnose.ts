/**
 * The diagnosis engine: runs the rules over each connection of a timeline and builds the report
 * (per connection: what happened to security, the findings with evidence, cause and fix), with a
 * text renderer for people and a JSON form for tools.
 */
import { hciStatusName } from '../hci/status.js';
import type { Address } from '../util/address.js';
import type { CaptureFormat } from './capture.js';
import { analyzeSecurity, type ConnectionSecurity, type SecurityOutcome } from './security.js';
import { guessPhone, type PhoneGuess } from './fingerprint.js';
import { RULES, type Fix, type RuleContext, type RuleDef, type Severity } from './rules.js';
import { peerKey, type CapturePerspective, type ConnectionRecord, type IdentitySource, type Timeline } from './timeline.js';

/** A piece of evidence as reported: packet number, time, and what it shows. */
export interface FindingEvidence {
  readonly number: number;
  /** Unix ms. */
  readonly time: number;
  /** Milliseconds since the first packet of the capture. */
  readonly sinceStartMs: number;
  readonly line?: number;
  readonly what: string;
}

/** One rule that fired on one connection. */
export interface Finding {
  readonly rule: string;
  readonly title: string;
  readonly severity: Severity;
  readonly connection: number;
  /** Tells several findings of one rule on one connection apart. */
  readonly key: string;
  readonly evidence: readonly FindingEvidence[];
  /** The likely cause (the rule's general explanation). */
  readonly cause: string;
  /** What this case shows, when the rule says more than its general cause. */
  readonly detail?: string;
  readonly fixes: readonly Fix[];
  readonly sources: readonly string[];
}

export interface ConnectionReport {
  readonly id: number;
  readonly handle: number;
  /** Which device this connection was captured on. */
  readonly capturedOn: 'accessory' | 'phone' | 'unknown';
  /** The role came from a packet other than LE Connection Complete (the capture started mid-connection). */
  readonly roleInferred: boolean;
  readonly peer?: {
    readonly address: string;
    readonly type: Address['type'];
    readonly resolvablePrivate: boolean;
    readonly identity?: Address;
    readonly identitySource?: IdentitySource;
  };
  readonly start?: FindingEvidence;
  readonly end?: FindingEvidence;
  readonly disconnectReason?: { readonly code: number; readonly text: string };
  readonly security: { readonly outcome: SecurityOutcome; readonly summary: string; readonly keySize?: number };
  readonly phone?: PhoneGuess;
  readonly findings: readonly Finding[];
}

export interface ReportSource {
  readonly file?: string;
  readonly format?: CaptureFormat;
  readonly description?: string;
  readonly skipped?: number;
  readonly warnings?: readonly string[];
}

export interface Report {
  readonly source?: ReportSource;
  readonly perspective: CapturePerspective;
  readonly packets: number;
  readonly firstTime?: number;
  readonly lastTime?: number;
  readonly connections: readonly ConnectionReport[];
  /** Every finding, connection by connection. */
  readonly findings: readonly Finding[];
  readonly decodeErrors: { readonly count: number; readonly first: readonly FindingEvidence[] };
}

export interface EvaluateOptions {
  readonly rules?: readonly RuleDef[];
  /** Unix ms: the end of the capture, or the clock when live. */
  readonly now: number;
  /** No more packets will come for this connection. Default: it has ended. */
  readonly final?: boolean;
  /** Live use: a rule asks to be evaluated again at this time. */
  readonly wakeAt?: (time: number) => void;
}

const securityCache = new WeakMap<ConnectionRecord, { n: number; sec: ConnectionSecurity }>();

/** The security analysis of a connection, cached until its event list changes. */
export function securityOf(conn: ConnectionRecord): ConnectionSecurity {
  const hit = securityCache.get(conn);
  if (hit && hit.n === conn.events.length) return hit.sec;
  const sec = analyzeSecurity(conn);
  securityCache.set(conn, { n: conn.events.length, sec });
  return sec;
}

function toEvidence(timeline: Timeline, at: { number: number; time: number; line?: number }, what: string): FindingEvidence {
  const sinceStartMs = Math.max(0, at.time - (timeline.firstTime ?? at.time));
  return at.line === undefined ? { number: at.number, time: at.time, sinceStartMs, what } : { number: at.number, time: at.time, sinceStartMs, line: at.line, what };
}

/** Runs the rules on one connection. */
export function evaluateConnection(timeline: Timeline, conn: ConnectionRecord, opts: EvaluateOptions): Finding[] {
  const rules = opts.rules ?? RULES;
  const key = peerKey(conn);
  const earlier: { conn: ConnectionRecord; sec: ConnectionSecurity }[] = [];
  if (key !== undefined) {
    for (const c of timeline.connections) {
      if (c.id >= conn.id) break;
      if (peerKey(c) === key) earlier.push({ conn: c, sec: securityOf(c) });
    }
  }
  const ctx: RuleContext = {
    timeline,
    conn,
    sec: securityOf(conn),
    earlier,
    now: opts.now,
    final: opts.final ?? conn.end !== undefined,
    wakeAt: opts.wakeAt ?? (() => undefined),
  };
  const found: Finding[] = [];
  const superseded = new Set<string>();
  for (const rule of rules) {
    let hits;
    try {
      hits = rule.match(ctx);
    } catch (err) {
      // A rule bug must not take the diagnosis (or the live host) down; it shows up as a finding.
      hits = [{ evidence: [], severity: 'hint' as const, detail: `internal error in rule ${rule.id}: ${err instanceof Error ? err.message : String(err)}` }];
    }
    for (const h of hits) {
      if (!h.tentative) for (const id of rule.supersedes ?? []) superseded.add(id);
      const first = h.evidence[0];
      found.push({
        rule: rule.id,
        title: h.title ?? rule.title,
        severity: h.severity ?? rule.severity,
        connection: conn.id,
        key: h.key ?? (first ? String(first.at.number) : '-'),
        evidence: h.evidence.map((e) => toEvidence(timeline, e.at, e.what)),
        cause: h.cause ?? rule.cause,
        ...(h.detail !== undefined ? { detail: h.detail } : {}),
        fixes: h.fixes ?? rule.fixes,
        sources: rule.sources,
      });
    }
  }
  return found.filter((f) => !superseded.has(f.rule));
}

/** The report of one connection. */
export function connectionReport(timeline: Timeline, conn: ConnectionRecord, findings: readonly Finding[]): ConnectionReport {
  const sec = securityOf(conn);
  const capturedOn = conn.localRole === 'peripheral' ? 'accessory' : conn.localRole === 'central' ? 'phone' : 'unknown';
  // The negotiated size when this connection paired (Core 5.4 Vol 3 Part H 2.3.4), else what the controller reported.
  const keySize = sec.negotiatedKeySize ?? (sec.keySizes.length ? sec.keySizes[sec.keySizes.length - 1]?.keySize : undefined);
  const phone = guessPhone(conn);
  const p = conn.peer;
  return {
    id: conn.id,
    handle: conn.handle,
    capturedOn,
    roleInferred: conn.roleSource === 'inferred',
    ...(p
      ? {
          peer: {
            address: p.onAir.address,
            type: p.onAir.type,
            resolvablePrivate: p.isRpa,
            ...(p.identity && p.identitySource !== 'address' ? { identity: p.identity, identitySource: p.identitySource } : {}),
          },
        }
      : {}),
    ...(conn.start ? { start: toEvidence(timeline, conn.start, 'connected') } : {}),
    ...(conn.end ? { end: toEvidence(timeline, conn.end, 'disconnected') } : {}),
    ...(conn.disconnectReason !== undefined ? { disconnectReason: { code: conn.disconnectReason, text: hciStatusName(conn.disconnectReason) } } : {}),
    security: { outcome: sec.outcome, summary: sec.summary, ...(keySize !== undefined ? { keySize } : {}) },
    ...(phone ? { phone } : {}),
    findings,
  };
}

export interface DiagnoseOptions {
  readonly rules?: readonly RuleDef[];
  readonly source?: ReportSource;
  /**
   * Live use: the clock's time. Open connections are then judged as still going (time-based rules
   * wait); without it the capture is complete and judged as of its last packet.
   */
  readonly now?: number;
}

/** Diagnoses a whole capture: every connection, every rule, as of the end of the capture. */
export function diagnose(timeline: Timeline, opts: DiagnoseOptions = {}): Report {
  const now = opts.now ?? timeline.lastTime ?? 0;
  const connections: ConnectionReport[] = [];
  const all: Finding[] = [];
  for (const conn of timeline.connections) {
    const findings = evaluateConnection(timeline, conn, { now, ...(opts.now === undefined ? { final: true } : {}), ...(opts.rules ? { rules: opts.rules } : {}) });
    all.push(...findings);
    connections.push(connectionReport(timeline, conn, findings));
  }
  const errors = timeline.events.filter((e) => e.kind === 'decodeError');
  return {
    ...(opts.source ? { source: opts.source } : {}),
    perspective: timeline.perspective,
    packets: timeline.packetCount,
    ...(timeline.firstTime !== undefined ? { firstTime: timeline.firstTime, lastTime: timeline.lastTime ?? timeline.firstTime } : {}),
    connections,
    findings: all,
    decodeErrors: {
      count: errors.length,
      first: errors.slice(0, 10).map((e) => toEvidence(timeline, e.at, e.kind === 'decodeError' ? e.message : '')),
    },
  };
}

/** The report as JSON text (stable field names; times in Unix ms). */
export function reportToJson(report: Report): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v), 2);
}

// ---- text ----

const IDENTITY_SOURCE_TEXT: Record<IdentitySource, string> = {
  address: 'its address',
  controller: "resolved by the controller's resolving list",
  resolver: "resolved with the host's bond store",
  'trace-irk': 'resolved with an IRK seen earlier in this capture',
  pairing: 'from its Identity Address Information',
};

const SEVERITY_LABEL: Record<Severity, string> = { error: 'PROBLEM', warning: 'WARNING', hint: 'NOTE' };
const FIX_LABEL: Record<Fix['where'], string> = { phone: 'On the phone', firmware: 'In the firmware configuration', 'wearable-host': 'In wearable-host' };

function since(ms: number): string {
  return `+${(ms / 1000).toFixed(3)} s`;
}

function wrap(text: string, indent: string, width = 100): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = indent;
  for (const w of words) {
    if (line.length > indent.length && line.length + 1 + w.length > width) {
      lines.push(line);
      line = indent + '  ' + w;
    } else line += (line.length > indent.length ? ' ' : '') + w;
  }
  if (line.trim()) lines.push(line);
  return lines;
}

function packetRef(e: FindingEvidence): string {
  return `#${e.number}${e.line !== undefined ? ` (line ${e.line})` : ''} ${since(e.sinceStartMs)}`;
}

function renderFinding(f: Finding, out: string[]): void {
  out.push(`  ${SEVERITY_LABEL[f.severity]}: ${f.title} [${f.rule}]`);
  if (f.detail) out.push(...wrap(f.detail, '    '));
  if (f.evidence.length) {
    out.push('    Evidence:');
    for (const e of f.evidence) out.push(...wrap(`${packetRef(e)}  ${e.what}`, '      '));
  }
  out.push(...wrap(`Likely cause: ${f.cause}`, '    '));
  for (const fix of f.fixes) out.push(...wrap(`${FIX_LABEL[fix.where]}: ${fix.text}`, '    '));
  out.push(...wrap(`Sources: ${f.sources.join('; ')}`, '    '));
}

/** The report as text for a terminal. */
export function renderReport(report: Report): string {
  const out: string[] = [];
  const src = report.source;
  const span = report.firstTime !== undefined && report.lastTime !== undefined ? ` over ${((report.lastTime - report.firstTime) / 1000).toFixed(1)} s` : '';
  const taken =
    report.perspective === 'accessory'
      ? 'taken on the accessory (it is the peripheral)'
      : report.perspective === 'phone'
        ? 'taken on the phone (it is the central)'
        : 'taken on an unknown side';
  out.push(`${src?.file ?? 'capture'}${src?.description ? `: ${src.description}` : ''}; ${report.packets} HCI packet(s)${span}; ${taken}`);
  if (report.firstTime !== undefined) out.push(`Starts ${new Date(report.firstTime).toISOString()}; times below are since the first packet, #N is the packet number.`);
  for (const w of src?.warnings ?? []) out.push(...wrap(`Warning: ${w}`, ''));
  if (report.decodeErrors.count > 0) {
    out.push(`${report.decodeErrors.count} packet(s) could not be decoded, first:`);
    for (const e of report.decodeErrors.first.slice(0, 3)) out.push(...wrap(`${packetRef(e)}  ${e.what}`, '  '));
  }
  if (report.connections.length === 0) out.push('', 'No connection in this capture: nothing to diagnose (was the phone connected while capturing?).');
  for (const c of report.connections) {
    out.push('');
    const peer = c.peer
      ? `${c.capturedOn === 'phone' ? 'accessory' : 'phone'} ${c.peer.address} (${c.peer.type}${c.peer.resolvablePrivate ? ', resolvable private' : ''})${c.peer.identity ? `, identity ${c.peer.identity.address} (${c.peer.identity.type}, ${c.peer.identitySource ? IDENTITY_SOURCE_TEXT[c.peer.identitySource] : 'known'})` : c.peer.resolvablePrivate ? ', not resolved' : ''}`
      : 'peer unknown (connected before the capture started)';
    out.push(`Connection ${c.id} (handle 0x${c.handle.toString(16).padStart(4, '0')})${c.start ? ` at ${packetRef(c.start)}` : ''}: ${peer}`);
    if (c.end) out.push(`  Ended at ${packetRef(c.end)}${c.disconnectReason ? `: ${c.disconnectReason.text}` : ''}`);
    else out.push('  Still connected at the end of the capture');
    if (c.roleInferred) out.push(`  (captured on the ${c.capturedOn}: inferred, the connection started before the capture)`);
    out.push(...wrap(`Security: ${c.security.summary}`, '  '));
    if (c.phone) {
      const what = c.phone.platform ? `looks like ${c.phone.platform}` : 'unclear';
      out.push(...wrap(`Phone (a guess, not used by the diagnosis): ${what}: ${c.phone.signals.map((s) => s.what).join('; ')}`, '  '));
    }
    if (c.findings.length === 0) out.push('  No problem found.');
    for (const f of c.findings) renderFinding(f, out);
  }
  out.push('');
  const errors = report.findings.filter((f) => f.severity === 'error').length;
  const warnings = report.findings.filter((f) => f.severity === 'warning').length;
  const conns = new Set(report.findings.map((f) => f.connection)).size;
  out.push(
    report.findings.length === 0
      ? `No problem found on ${report.connections.length} connection(s).`
      : `${report.findings.length} finding(s) (${errors} problem(s), ${warnings} warning(s)) on ${conns} of ${report.connections.length} connection(s).`,
  );
  return out.join('\n') + '\n';
}
