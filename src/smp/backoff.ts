/**
 * Repeated attempts: after a failed pairing, a waiting interval must pass before a new Pairing
 * Request or Security Request from (or to) a device claiming the same identity is accepted, and
 * the interval grows exponentially with each further failure. Core 5.4 Vol 3 Part H 2.3.6.
 *
 * One table per device, shared by every connection's SmpSession (the composition root creates it),
 * keyed by the peer's identity address when known, else the address it used on air.
 *
 * The per-address interval is bypassed by a peer that changes its address for every attempt, so
 * the same object also holds one device-wide token bucket on new pairing procedures: a burst of
 * `newPairingBurst` (default 10), then one more every `newPairingIntervalMs` (default 6 s, at most
 * 10 a minute). A user pairing a phone (and retrying a few times) never meets it; a stranger cycling
 * through addresses gets 0x09 Repeated Attempts instead of the device's time and CPU.
 */
import { type Address } from '../util/address.js';
import type { Clock } from '../util/clock.js';

export interface PairingBackoffOptions {
  /** Interval after the first failure, ms (default 2 000). */
  readonly initialMs?: number;
  /** Longest interval, ms (default 60 000). */
  readonly maxMs?: number;
  /** A peer whose last interval ended this long ago starts afresh, ms (default 10 minutes). */
  readonly forgetAfterMs?: number;
  /** Peers remembered at most (default 128): the oldest entry goes first, so rotating addresses cannot grow memory. */
  readonly maxEntries?: number;
  /** New pairing procedures allowed back to back, device-wide (default 10). */
  readonly newPairingBurst?: number;
  /** One more new pairing procedure is allowed per this many ms once the burst is used (default 6 000). */
  readonly newPairingIntervalMs?: number;
}

interface Entry {
  failures: number;
  blockedUntil: number;
}

/** The repeated-attempts table. Time comes from the injected clock. */
export class PairingBackoff {
  private readonly entries = new Map<string, Entry>();
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly forgetAfterMs: number;
  private readonly maxEntries: number;
  private readonly burst: number;
  private readonly refillMs: number;
  private tokens: number;
  private tokensAt: number;

  constructor(
    private readonly clock: Clock,
    opts: PairingBackoffOptions = {},
  ) {
    this.initialMs = opts.initialMs ?? 2_000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.forgetAfterMs = opts.forgetAfterMs ?? 600_000;
    this.maxEntries = opts.maxEntries ?? 128;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs)) throw new RangeError('PairingBackoff: need 0 < initialMs <= maxMs');
    this.burst = opts.newPairingBurst ?? 10;
    this.refillMs = opts.newPairingIntervalMs ?? 6_000;
    if (!Number.isInteger(this.burst) || this.burst < 1 || !(this.refillMs > 0)) throw new RangeError('PairingBackoff: need newPairingBurst >= 1 and newPairingIntervalMs > 0');
    this.tokens = this.burst;
    this.tokensAt = clock.now();
  }

  /** The table key of a peer address: `public/AA:BB:CC:DD:EE:FF`. */
  static keyOf(a: Address): string {
    return `${a.type}/${a.address.toUpperCase()}`;
  }

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && this.clock.now() >= e.blockedUntil + this.forgetAfterMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** Milliseconds the peer must still wait; 0 when a pairing may proceed. */
  remainingMs(peer: Address): number {
    const e = this.live(PairingBackoff.keyOf(peer));
    if (!e) return 0;
    return Math.max(0, e.blockedUntil - this.clock.now());
  }

  /** Counts a failed pairing and returns the interval now imposed, ms. */
  recordFailure(peer: Address): number {
    const key = PairingBackoff.keyOf(peer);
    const prev = this.live(key);
    const failures = (prev?.failures ?? 0) + 1;
    const interval = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(failures - 1, 30));
    this.entries.delete(key);
    this.entries.set(key, { failures, blockedUntil: this.clock.now() + interval });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return interval;
  }

  /** A successful pairing clears the peer's history. */
  recordSuccess(peer: Address): void {
    this.entries.delete(PairingBackoff.keyOf(peer));
  }

  private refill(): void {
    const now = this.clock.now();
    if (now <= this.tokensAt) return;
    const add = Math.floor((now - this.tokensAt) / this.refillMs);
    if (add <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + add);
    this.tokensAt = this.tokens === this.burst ? now : this.tokensAt + add * this.refillMs;
  }

  /** Milliseconds until the device-wide limit allows a new pairing procedure; 0 when one may start now. */
  newPairingWaitMs(): number {
    this.refill();
    if (this.tokens > 0) return 0;
    return Math.max(1, this.tokensAt + this.refillMs - this.clock.now());
  }

  /**
   * Takes one new pairing procedure from the device-wide allowance. Returns 0 when taken, else the
   * milliseconds to wait (nothing taken).
   */
  takeNewPairing(): number {
    const wait = this.newPairingWaitMs();
    if (wait > 0) return wait;
    if (this.tokens === this.burst) this.tokensAt = this.clock.now();
    this.tokens--;
    return 0;
  }

  /** Failures counted for a peer (0 when forgotten). */
  failures(peer: Address): number {
    return this.live(PairingBackoff.keyOf(peer))?.failures ?? 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
