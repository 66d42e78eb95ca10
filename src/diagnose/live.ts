/**
 * Live diagnosis: the running host feeds every HCI packet (its driver's packet trace) and gets a
 * finding the moment a rule fires, including the time-based ones ("Security Request sent 10 s
 * ago, the phone has not started pairing ...") through timers on the injected Clock.
 *
 * Integration: `const d = new LiveDiagnoser({ clock, log, resolveAddress: (a) => bonds.resolve(a)?.peer,
 * serviceChangedHandle })`, then `hci.onPacketTrace((dir, h4) => d.trace(dir, h4))` (dir 'tx' = to
 * the controller), `d.on('finding', f => ...)`, and `d.stop()` on shutdown. Telling the user is the
 * listener's job; the diagnoser itself logs each finding only as a structured debug line.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import type { CapturedPacket, HciDirection } from './capture.js';
import { diagnose, evaluateConnection, type Finding, type Report } from './diagnose.js';
import { RULES, type RuleDef } from './rules.js';
import { bondStoreFullRule } from './rule-bond-store-full.js';
import type { BondStoreCapacity } from '../bonds/types.js';
import { TimelineBuilder, type ConnectionRecord, type TimelineEvent, type TimelineOptions } from './timeline.js';

export interface LiveDiagnoserOptions extends Omit<TimelineOptions, 'keepGlobalEvents'> {
  readonly clock: Clock;
  readonly log?: Logger;
  readonly rules?: readonly RuleDef[];
  /** Ended connections whose events are kept for cross-connection rules (default 20); older ones are forgotten. */
  readonly keepEndedConnections?: number;
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

/** Feeds packets one at a time, emits findings as soon as rules fire. */
export class LiveDiagnoser extends TypedEmitter<LiveDiagnoserEvents> {
  private readonly builder: TimelineBuilder;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly rules: readonly RuleDef[];
  private readonly emitted = new Set<string>();
  private readonly all: Finding[] = [];
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
    this.builder = new TimelineBuilder({ ...opts, keepGlobalEvents: false });
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
    for (const e of events) if ('connId' in e && e.connId !== undefined && triggersEvaluation(e)) touched.add(e.connId);
    const fired: Finding[] = [];
    for (const id of touched) fired.push(...this.evaluate(id));
    return fired;
  }

  /** Adapter for a packet trace that says 'tx' (to the controller) or 'rx'. */
  trace(dir: 'tx' | 'rx', h4: Uint8Array): void {
    this.feed(dir === 'tx' ? 'host->controller' : 'controller->host', h4);
  }

  /** Findings emitted so far. */
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
    return this.builder.timeline().connections[id - 1];
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
    for (const f of findings) {
      const key = `${f.rule}|${f.connection}|${f.key}`;
      if (this.emitted.has(key)) continue;
      this.emitted.add(key);
      this.all.push(f);
      fresh.push(f);
    }
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

  private retire(id: number): void {
    if (this.ended.includes(id)) return;
    this.ended.push(id);
    while (this.ended.length > this.keepEnded) {
      const old = this.ended.shift();
      if (old !== undefined) this.builder.forget(old);
    }
  }
}
