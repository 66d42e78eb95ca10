/**
 * The device-wide part of the Security Manager: what every connection's {@link SmpSession}
 * shares (bond store, policy, clock, randomness, the repeated-attempts table). The composition
 * root makes one and asks it for a session per connection.
 */
import type { BondStore, LocalIdentity } from '../bonds/types.js';
import { formatAddress } from '../util/address.js';
import type { Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import { PairingBackoff, type PairingBackoffOptions } from './backoff.js';
import { SmpSession } from './pairing.js';
import type { SmpLower, SmpPolicy } from './types.js';

export interface SecurityManagerOptions {
  readonly bonds: BondStore;
  readonly clock: Clock;
  /** The OS CSPRNG in production (`osRandom`). */
  readonly random: RandomSource;
  readonly policy?: Partial<SmpPolicy>;
  /** Our identity to distribute; defaults to the bond store's. */
  readonly localIdentity?: LocalIdentity;
  /** A shared table, or options for a new one. */
  readonly backoff?: PairingBackoff | PairingBackoffOptions;
  readonly log?: Logger;
  /** SMP timeout, ms (default 30 000; tests only). */
  readonly timeoutMs?: number;
}

export class SecurityManager {
  readonly backoff: PairingBackoff;
  private readonly live = new Set<SmpSession>();

  constructor(private readonly opts: SecurityManagerOptions) {
    this.backoff = opts.backoff instanceof PairingBackoff ? opts.backoff : new PairingBackoff(opts.clock, opts.backoff);
  }

  /**
   * A session for a new connection. Attach listeners, then call `session.start()`; call
   * `session.onDisconnected()` when the link goes down.
   */
  createSession(lower: SmpLower): SmpSession {
    const session = new SmpSession({
      lower,
      bonds: this.opts.bonds,
      clock: this.opts.clock,
      random: this.opts.random,
      backoff: this.backoff,
      ...(this.opts.policy ? { policy: this.opts.policy } : {}),
      ...(this.opts.localIdentity ? { localIdentity: this.opts.localIdentity } : {}),
      ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}),
      log: (this.opts.log ?? silentLogger()).child({ conn: formatAddress(lower.peerAddress) }),
    });
    this.prune();
    this.live.add(session);
    return session;
  }

  private prune(): void {
    for (const s of this.live) if (s.phase === 'closed') this.live.delete(s);
  }

  /** Sessions whose link has not been reported down (`onDisconnected()`). */
  get sessions(): readonly SmpSession[] {
    this.prune();
    return [...this.live];
  }
}
