/**
 * Injected time. Layers take a {@link Clock} instead of calling setTimeout/Date so that tests and
 * the simulator can run on a {@link VirtualClock} and be deterministic.
 */

export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Milliseconds since the Unix epoch, monotonic non-decreasing, fractional allowed. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Wall clock on Node's timers. Timers are unref'd so a pending timeout never keeps the process alive by itself. */
export class RealClock implements Clock {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextId = 1;
  private last = 0;

  now(): number {
    const t = performance.timeOrigin + performance.now();
    if (t > this.last) this.last = t;
    return this.last;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, Math.max(0, ms));
    t.unref();
    this.timers.set(id, t);
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const t = this.timers.get(handle.id);
    if (t) {
      clearTimeout(t);
      this.timers.delete(handle.id);
    }
  }
}

interface PendingTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/** Yields to the event loop so promise chains and setImmediate callbacks settle. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A manual clock. Time moves only through {@link advance} / {@link runUntil}; timers fire in
 * deadline order (ties in creation order) and the event loop is allowed to settle after each,
 * so async code driven by these timers behaves as it would in real time, only faster and
 * reproducibly.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private nextId = 1;
  private pending: PendingTimer[] = [];

  /** Starts at 2026-01-01T00:00:00Z unless told otherwise, so traces carry plausible dates. */
  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.pending.push({ id, at: this.t + Math.max(0, ms), seq: this.seq++, fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    this.pending = this.pending.filter((p) => p.id !== handle.id);
  }

  /** Number of timers not yet fired. */
  get pendingCount(): number {
    return this.pending.length;
  }

  private popDue(limit: number): PendingTimer | undefined {
    let best = -1;
    for (let i = 0; i < this.pending.length; i++) {
      const p = this.pending[i] as PendingTimer;
      if (p.at > limit) continue;
      const b = best >= 0 ? (this.pending[best] as PendingTimer) : undefined;
      if (!b || p.at < b.at || (p.at === b.at && p.seq < b.seq)) best = i;
    }
    if (best < 0) return undefined;
    return this.pending.splice(best, 1)[0];
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await settle();
    for (;;) {
      const p = this.popDue(target);
      if (!p) break;
      this.t = Math.max(this.t, p.at);
      p.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }

  /**
   * Runs the clock until `p` settles, and returns it. Rejects with `stalled` (default: how long it
   * waited) when `maxMs` of virtual time passed first. `p` counts as handled meanwhile: its
   * rejection reaches the caller through the returned promise.
   */
  async drive<T>(p: Promise<T>, maxMs = 60_000, stalled?: string): Promise<T> {
    let settled = false;
    const watched = p.finally(() => {
      settled = true;
    });
    watched.catch(() => undefined);
    await this.runUntil(() => settled, maxMs);
    if (!settled) throw new Error(stalled ?? `still pending after ${maxMs} ms of virtual time`);
    return watched;
  }

  /**
   * Fires timers in order until `done()` is true or `maxMs` of virtual time has passed.
   * Returns whether `done()` became true.
   */
  async runUntil(done: () => boolean, maxMs = 60_000): Promise<boolean> {
    const limit = this.t + maxMs;
    await settle();
    while (!done()) {
      const p = this.popDue(limit);
      if (!p) {
        // Nothing due before the limit: give I/O a few turns (it may schedule a timer) before giving up.
        let progressed = false;
        for (let i = 0; i < 5 && !done(); i++) {
          await settle();
          if (this.pending.some((t) => t.at <= limit)) {
            progressed = true;
            break;
          }
        }
        if (done()) return true;
        if (!progressed) {
          this.t = limit;
          return done();
        }
        continue;
      }
      this.t = Math.max(this.t, p.at);
      p.fn();
      await settle();
    }
    return true;
  }
}
