/**
 * Live diagnosis: the running host feeds every HCI packet (its driver's packet trace) and gets a
 * finding the moment a rule fires, including the time-based ones ("Security Request sent 10 s
 * ago, the phone has not started pairing ...") through timers on the injected Clock.
 *
 * Integration: `const d = new LiveDiagnoser({ clock, log, resolveAddress: (a) => bonds.resolve(a)?.peer,
 * serviceChangedHandle })`, then `hci.onPacketTrace((dir, h4) => d.trace(dir, h4))` (dir 'tx' = to
 * the controller), `d.on('finding', f => ...)`, and `d.stop()` on shutdown. Telling the user is the
 * listener's job; the diagnoser itself logs each finding only as a structured debug line.
 *
 * Cost per packet is O(1) amortised, and memory is bounded per connection and overall, whatever a
 * peer sends:
 * - the rules run on a connection when an event of a new kind arrives (ATT Error Responses and SMP
 *   PDUs told apart by opcode and code), and again only at the 2nd, 4th, 8th ... event of a kind
 *   already seen; the disconnection and the rules' own wake-up times always run them. A flood of one
 *   PDU therefore costs O(log n) evaluations, each bounded by the connection's retained events;
 * - HCI Reset ends every open connection (no Disconnection Complete follows it);
 * - each connection keeps a bounded number of events (timeline `maxAttEventsPerConnection`,
 *   `maxEventsPerConnection`); an ended connection keeps only what tells its security story, and
 *   only the last `keepEndedConnections` ended connections are kept at all;
 * - findings remembered for {@link findings} are bounded (the oldest go first).
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import type { CapturedPacket, HciDirection } from './capture.js';
import { diagnose, evaluateConnection, type Finding, type Report } from './diagnose.js';
import { RULES, type RuleDef } from './rules.js';
import { bondStoreFullRule } from './rules/bond-store-full.js';
import type { BondStoreCapacity } from '../bonds/types.js';
import { TimelineBuilder, type ConnectionRecord, type TimelineEvent, type TimelineOptions } from './timeline.js';

export interface LiveDiagnoserOptions extends Omit<TimelineOptions, 'keepGlobalEvents'> {
  readonly clock: Clock;
  readonly log?: Logger;
  readonly rules?: readonly RuleDef[];
  /** Ended connections kept (security events only) for cross-connection rules (default 20); older ones are dropped. */
  readonly keepEndedConnections?: number;
  /** Findings kept for {@link LiveDiagnoser.findings} (default 1000); each is still emitted once. */
  readonly keepFindings?: number;
  /**
   * The live host's bond store capacity. When given (and `rules` is not), the rule that explains a
   * pairing refused because the store is full ({@link bondStoreFullRule}) runs after the others.
   */
  readonly bondStore?: () => BondStoreCapacity | undefined;
}

export type LiveDiagnoserEvents = {
  /** A rule fired (each finding once). */
  finding: [Finding];
};

/** Events after which the rules are evaluated again (ATT requests alone change nothing a rule decides on). */
function triggersEvaluation(e: TimelineEvent): boolean {
  return e.kind !== 'att' || e.pdu.type === 'errorResponse' || e.pdu.type === 'handleValueIndication';
}

/** What tells repeated events apart for the evaluation schedule: kind, PDU type, and the codes rules read. */
function signatureOf(e: TimelineEvent): string {
  switch (e.kind) {
    case 'att':
      return e.pdu.type === 'errorResponse' ? `att:err:${e.pdu.requestOpcode}:${e.pdu.errorCode}:${e.from ?? '?'}` : `att:${e.pdu.type}:${e.from ?? '?'}`;
    case 'smp':
      return e.pdu.type === 'pairingFailed' ? `smp:failed:${e.pdu.reason}:${e.from ?? '?'}` : `smp:${e.pdu.type}:${e.from ?? '?'}`;
    default:
      return e.kind;
  }
}

/** Connections over `keepEndedConnections` before ended ones not yet retired are swept up. */
const SWEEP_SLACK = 16;
/** Signatures tracked per connection; beyond this, new ones share one counter. */
const MAX_SIGNATURES = 256;
/** Timeline bounds a live diagnoser uses unless told otherwise. */
const LIVE_MAX_ATT_EVENTS = 1000;
const LIVE_MAX_OTHER_EVENTS = 1000;
const LIVE_MAX_IRKS = 256;

interface ConnState {
  /** Events seen per signature. */
  readonly seen: Map<string, number>;
  overflow: number;
  /** Finding keys already emitted on this connection. */
  readonly emitted: Set<string>;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Feeds packets one at a time, emits findings as soon as rules fire. */
export class LiveDiagnoser extends TypedEmitter<LiveDiagnoserEvents> {
  private readonly builder: TimelineBuilder;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly rules: readonly RuleDef[];
  private readonly state = new Map<number, ConnState>();
  private readonly all: Finding[] = [];
  private readonly keepFindings: number;
  private readonly timers = new Map<number, { handle: TimerHandle; at: number }>();
  private readonly ended: number[] = [];
  private readonly keepEnded: number;
  private number = 0;
  private stopped = false;

  constructor(opts: LiveDiagnoserOptions) {
    super();
    this.clock = opts.clock;
    this.log = opts.log;
    this.rules = opts.rules ?? (opts.bondStore ? [...RULES, bondStoreFullRule(opts.bondStore)] : RULES);
    this.keepEnded = opts.keepEndedConnections ?? 20;
    this.keepFindings = opts.keepFindings ?? 1000;
    this.builder = new TimelineBuilder({
      maxAttEventsPerConnection: LIVE_MAX_ATT_EVENTS,
      maxEventsPerConnection: LIVE_MAX_OTHER_EVENTS,
      maxIrks: LIVE_MAX_IRKS,
      ...opts,
      keepGlobalEvents: false,
    });
  }

  /**
   * One HCI packet, H:4 type byte first. `time` defaults to the clock. Returns the findings this
   * packet made fire (they are also emitted). Never throws on malformed packets.
   */
  feed(direction: HciDirection, h4: Uint8Array, time?: number): Finding[] {
    if (this.stopped) return [];
    const p: CapturedPacket = { number: ++this.number, time: time ?? this.clock.now(), direction, h4 };
    const events = this.builder.push(p);
    const touched = new Set<number>();
    if (direction === 'host->controller' && h4.length >= 3 && h4[0] === 0x01 && h4[1] === 0x03 && h4[2] === 0x0c) {
      // HCI Reset: every link is gone without a Disconnection Complete; end (and retire) them here.
      for (const id of this.builder.endOpenConnections({ number: p.number, time: p.time })) touched.add(id);
    }
    for (const e of events) {
      if (!('connId' in e) || e.connId === undefined || !triggersEvaluation(e)) continue;
      if (e.kind === 'disconnection' || this.due(e.connId, signatureOf(e))) touched.add(e.connId);
    }
    const fired: Finding[] = [];
    for (const id of touched) fired.push(...this.evaluate(id));
    // Connections the timeline ended without an event of their own (a new LE Connection Complete on
    // their handle: the Disconnection Complete was lost) are retired here, so they cannot pile up.
    const conns = this.builder.timeline().connections;
    if (conns.length > this.keepEnded + SWEEP_SLACK) {
      for (const c of [...conns]) if (c.end !== undefined && !this.ended.includes(c.id)) fired.push(...this.evaluate(c.id));
    }
    return fired;
  }

  /** Adapter for a packet trace that says 'tx' (to the controller) or 'rx'. */
  trace(dir: 'tx' | 'rx', h4: Uint8Array): void {
    this.feed(dir === 'tx' ? 'host->controller' : 'controller->host', h4);
  }

  /** Bounds of what is retained, for tests and diagnostics. */
  retained(): { connections: number; events: number; findings: number; signatures: number; timers: number; droppedEvents: number } {
    let events = 0;
    for (const c of this.builder.timeline().connections) events += c.events.length;
    let signatures = 0;
    for (const s of this.state.values()) signatures += s.seen.size;
    return {
      connections: this.builder.timeline().connections.length,
      events,
      findings: this.all.length,
      signatures,
      timers: this.timers.size,
      droppedEvents: this.builder.droppedEvents,
    };
  }

  /** Findings emitted so far (the last `keepFindings` of them). */
  findings(): readonly Finding[] {
    return this.all;
  }

  /** A report of everything so far (open connections evaluated as of now). */
  report(): Report {
    return diagnose(this.builder.timeline(), { rules: this.rules, now: this.clock.now() });
  }

  /** Cancels the timers; later packets are ignored. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) this.clock.clearTimeout(t.handle);
    this.timers.clear();
  }

  private connection(id: number): ConnectionRecord | undefined {
    return this.builder.connectionById(id);
  }

  private stateOf(id: number): ConnState {
    let s = this.state.get(id);
    if (!s) {
      s = { seen: new Map(), overflow: 0, emitted: new Set() };
      this.state.set(id, s);
    }
    return s;
  }

  /** Counts an event of `signature` on connection `id`; true when the rules should run for it (1st, 2nd, 4th, 8th ...). */
  private due(id: number, signature: string): boolean {
    const s = this.stateOf(id);
    const n = s.seen.get(signature);
    if (n === undefined && s.seen.size >= MAX_SIGNATURES) return isPowerOfTwo(++s.overflow);
    const next = (n ?? 0) + 1;
    s.seen.set(signature, next);
    return isPowerOfTwo(next);
  }

  private evaluate(id: number): Finding[] {
    const conn = this.connection(id);
    if (!conn || this.stopped) return [];
    let wake: number | undefined;
    const findings = evaluateConnection(this.builder.timeline(), conn, {
      rules: this.rules,
      now: this.clock.now(),
      final: conn.end !== undefined,
      wakeAt: (t) => {
        if (wake === undefined || t < wake) wake = t;
      },
    });
    const fresh: Finding[] = [];
    const emitted = this.stateOf(id).emitted;
    for (const f of findings) {
      const key = `${f.rule}|${f.key}`;
      if (emitted.has(key)) continue;
      emitted.add(key);
      this.all.push(f);
      fresh.push(f);
    }
    if (this.all.length > this.keepFindings) this.all.splice(0, this.all.length - this.keepFindings);
    this.schedule(id, conn.end === undefined ? wake : undefined);
    if (conn.end !== undefined) this.retire(id);
    for (const f of fresh) {
      this.log?.debug({ rule: f.rule, connection: f.connection, evidence: f.evidence.map((e) => e.number) }, `diagnosis: ${f.title}`);
      this.emit('finding', f);
    }
    return fresh;
  }

  private schedule(id: number, at: number | undefined): void {
    const current = this.timers.get(id);
    if (current && (at === undefined || current.at !== at)) {
      this.clock.clearTimeout(current.handle);
      this.timers.delete(id);
    }
    if (at === undefined || this.timers.has(id)) return;
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(id);
      this.evaluate(id);
    }, Math.max(0, at - this.clock.now()));
    this.timers.set(id, { handle, at });
  }

  /** An ended connection keeps its security events only; beyond `keepEndedConnections` the oldest are dropped whole. */
  private retire(id: number): void {
    if (this.ended.includes(id)) return;
    this.ended.push(id);
    this.builder.forget(id);
    while (this.ended.length > this.keepEnded) {
      const old = this.ended.shift();
      if (old === undefined) break;
      this.builder.drop(old);
      this.state.delete(old);
      const t = this.timers.get(old);
      if (t) {
        this.clock.clearTimeout(t.handle);
        this.timers.delete(old);
      }
    }
  }
}
