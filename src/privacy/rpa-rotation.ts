/**
 * Host-based LE privacy for the peripheral: we advertise and connect from a resolvable private
 * address (RPA) generated from OUR IRK and change it every `timeoutS` seconds, so a bystander
 * cannot follow the wearable by its address; bonded phones resolve it with the IRK we
 * distributed in SMP key distribution (Identity Information + Identity Address Information).
 * Core 5.4 Vol 3 Part C 10.7.1.2 (privacy, peripheral), Vol 6 Part B 1.3.2.2 (RPA format),
 * Vol 3 Part C Appendix A (TGAP(private_addr_int), 15 minutes recommended).
 *
 * The controller's own LL privacy is left off (the DK overlay keeps CONFIG_BT_CTLR_PRIVACY off):
 * the host sets each RPA with HCI LE Set Random Address. That command is Command Disallowed while
 * legacy advertising is enabled (Core 5.4 Vol 4 Part E 7.8.4), so a rotation is always
 * pause advertising -> LE Set Random Address -> resume advertising.
 *
 * Which address a connection used. f5/f6 take A1/A2, the addresses on air when the connection was
 * made (Core 5.4 Vol 3 Part H 2.2.7, 2.2.8). Legacy advertising uses the random address set when it
 * was enabled, and the address can only change while advertising is off. HCI events arrive in
 * order: a Connection Complete for a connection made before our pause arrives before the Command
 * Complete of the disable, so it is seen while {@link RpaRotator.addressInUse} still returns the
 * old address; the new address is recorded only once LE Set Random Address completed, and any
 * later connection comes from advertising enabled after that. OwnAddress.localAddressFor (read
 * synchronously in the 'connected' handler) therefore gives `addressInUse()`, kept for the link.
 */
import type { Address } from '../util/address.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import { TypedEmitter } from '../util/emitter.js';
import { WearableHostError } from '../util/errors.js';
import { formatAddress } from '../util/address.js';
import { generateRpa } from './rpa.js';

/** Default rotation period: 15 minutes, GAP's recommended TGAP(private_addr_int) (Core 5.4 Vol 3 Part C Appendix A). */
export const DEFAULT_RPA_TIMEOUT_S = 900;
/** Accepted range, the same as the controller's RPA_Timeout (1 s .. 1 h, Core 5.4 Vol 4 Part E 7.8.45). */
export const MIN_RPA_TIMEOUT_S = 1;
export const MAX_RPA_TIMEOUT_S = 3600;
/** After a failed rotation the old address stays on air; the next attempt comes this much later. */
export const DEFAULT_RPA_RETRY_S = 30;

/** The three controller operations a rotation needs; built by OwnAddress (src/privacy/own-address.ts), never the driver itself. */
export interface RpaRotatorLower {
  /** HCI LE Set Random Address. Core 5.4 Vol 4 Part E 7.8.4. */
  setRandomAddress(address: string): Promise<void>;
  /**
   * Stops advertising if it is on, and keeps it from restarting by itself until
   * {@link resumeAdvertising}. Returns whether advertising must be resumed afterwards (it was on,
   * or was wanted and about to restart).
   */
  pauseAdvertising(): Promise<boolean>;
  /** Restarts advertising paused by {@link pauseAdvertising}. */
  resumeAdvertising(): Promise<void>;
}

/** Why an address was set. */
export type RpaRotationReason =
  /** The first address, before advertising starts. */
  | 'start'
  /** The rotation period elapsed (or a retry after a failure). */
  | 'timeout'
  /** {@link RpaRotator.rotateNow} was called. */
  | 'requested'
  /** The controller was reset and holds the static identity address again. */
  | 'controller-reset';

export interface RpaRotation {
  readonly address: Address;
  /** The address in use before, if any. */
  readonly previous: Address | undefined;
  /** Clock time at which the new address was in the controller, ms. */
  readonly at: number;
  readonly reason: RpaRotationReason;
}

/** One address and when it was set; the history is what {@link RpaRotator.addressAt} answers from. */
export interface RpaHistoryEntry {
  readonly address: Address;
  /** Clock time LE Set Random Address completed, ms. */
  readonly since: number;
}

export type RpaRotatorEvents = {
  rotated: [RpaRotation];
  /** A rotation (or the resume after it) failed; the previous address stays in use and a retry is scheduled. */
  error: [Error];
};

export interface RpaRotatorOptions {
  lower: RpaRotatorLower;
  clock: Clock;
  /** The OS CSPRNG in production. */
  random: RandomSource;
  /** Our IRK (16 bytes LE), the one SMP distributes: LocalIdentity.irk. */
  irk: Uint8Array;
  log: Logger;
  /** Rotation period in seconds, 1..3600 (default 900). */
  timeoutS?: number;
  /** Delay before retrying a failed rotation, seconds (default 30, never more than timeoutS). */
  retryS?: number;
  /** Addresses kept for {@link RpaRotator.addressAt} (default 32). */
  historySize?: number;
}

/** Validates a rotation period given in seconds (the `--privacy` option's value). */
export function checkRpaTimeout(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < MIN_RPA_TIMEOUT_S || seconds > MAX_RPA_TIMEOUT_S) {
    throw new RangeError(
      `RPA rotation period must be a whole number of seconds from ${MIN_RPA_TIMEOUT_S} to ${MAX_RPA_TIMEOUT_S} (got ${String(seconds)}); ` +
        `the default is ${DEFAULT_RPA_TIMEOUT_S} s (15 minutes)`,
    );
  }
  return seconds;
}

/**
 * Generates our RPAs and puts them on air at start, every `timeoutS` seconds, on request and after
 * a controller reset; remembers which address was in use when.
 */
export class RpaRotator extends TypedEmitter<RpaRotatorEvents> {
  /** Rotation period, ms. */
  readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly lower: RpaRotatorLower;
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly irk: Uint8Array;
  private readonly log: Logger;
  private readonly historySize: number;
  private readonly entries: RpaHistoryEntry[] = [];
  private timer: TimerHandle | undefined;
  private started = false;
  private stopped = false;
  /** Rotations running or queued; 0 means the next one starts synchronously. */
  private queued = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(opts: RpaRotatorOptions) {
    super();
    if (opts.irk.length !== 16) throw new RangeError(`an IRK is 16 bytes, got ${opts.irk.length}`);
    const timeoutS = checkRpaTimeout(opts.timeoutS ?? DEFAULT_RPA_TIMEOUT_S);
    this.timeoutMs = timeoutS * 1000;
    this.retryMs = Math.min(timeoutS, Math.max(1, opts.retryS ?? DEFAULT_RPA_RETRY_S)) * 1000;
    this.lower = opts.lower;
    this.clock = opts.clock;
    this.random = opts.random;
    this.irk = opts.irk.slice();
    this.log = opts.log;
    this.historySize = Math.max(1, opts.historySize ?? 32);
  }

  /** Whether an RPA is in the controller (start() completed once). */
  get active(): boolean {
    return this.entries.length > 0 && !this.stopped;
  }

  /** Addresses used so far, oldest first (bounded by `historySize`). */
  get history(): readonly RpaHistoryEntry[] {
    return this.entries;
  }

  /**
   * Sets the first RPA and starts the rotation timer. Call after the controller is initialised and
   * before advertising starts (advertising on is fine too: it is paused around the change).
   */
  start(): Promise<Address> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    if (this.started) return Promise.resolve(this.addressInUse());
    this.started = true;
    return this.enqueue('start');
  }

  /** Stops rotating; the address in the controller stays as it is. Leaves no timer behind. */
  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A new RPA now (the timer restarts from here). */
  rotateNow(): Promise<Address> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    return this.enqueue('requested');
  }

  /**
   * The controller was reset (the driver re-initialised it and set the static identity address
   * again): puts a fresh RPA in before advertising comes back. Call it synchronously from the
   * driver's 'reinitialised' event: when no rotation is running, pauseAdvertising() is called
   * before this returns, so an advertiser restart scheduled by the same event never goes on air
   * with the identity address.
   */
  controllerReset(): Promise<Address> {
    if (this.stopped || !this.started) return Promise.reject(this.stopped ? this.stoppedError() : new WearableHostError('hci', 'RPA rotation was not started'));
    return this.enqueue('controller-reset');
  }

  /**
   * The RPA in the controller now: the local address of a connection whose Connection Complete is
   * being handled (see the module comment for why this is the address that was on air).
   */
  addressInUse(): Address {
    const last = this.entries[this.entries.length - 1];
    if (!last) throw new WearableHostError('hci', 'no resolvable private address yet: RpaRotator.start() has not completed');
    return last.address;
  }

  /** The address in use at clock time `ms`, if it is still in the history. */
  addressAt(ms: number): Address | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i] as RpaHistoryEntry;
      if (e.since <= ms) return e.address;
    }
    return undefined;
  }

  private stoppedError(): WearableHostError {
    return new WearableHostError('hci', 'RPA rotation is stopped');
  }

  /** Runs rotations one at a time; when idle the rotation starts synchronously (see controllerReset). */
  private enqueue(reason: RpaRotationReason): Promise<Address> {
    const run = (): Promise<Address> => this.rotate(reason);
    const p = this.queued === 0 ? run() : this.tail.then(run, run);
    this.queued++;
    const done = (): void => {
      this.queued--;
    };
    this.tail = p.then(done, done);
    return p;
  }

  private async rotate(reason: RpaRotationReason): Promise<Address> {
    if (this.stopped) throw this.stoppedError();
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const next = generateRpa(this.irk, this.random);
    const previous = this.entries[this.entries.length - 1]?.address;
    let resume = false;
    let entry: RpaHistoryEntry | undefined;
    try {
      resume = await this.lower.pauseAdvertising();
      await this.lower.setRandomAddress(next.address);
      entry = this.record(next);
    } catch (err) {
      const e = toError(err);
      this.log.warn(
        { err: e.message, reason, keeping: previous ? formatAddress(previous) : undefined },
        `could not change our resolvable private address (${e.message}); ` +
          `${previous ? `${previous.address} stays in use` : 'no private address is set yet'}, retrying in ${this.retryMs / 1000} s`,
      );
      this.emit('error', e);
      throw new WearableHostError('hci', `RPA rotation failed: ${e.message}`, { cause: e });
    } finally {
      if (resume) {
        try {
          await this.lower.resumeAdvertising();
        } catch (err) {
          const e = toError(err);
          this.log.warn({ err: e.message }, `advertising did not resume after the address change: ${e.message}`);
          this.emit('error', e);
        }
      }
      this.schedule(entry ? this.timeoutMs : this.retryMs);
    }
    const rotation: RpaRotation = { address: next, previous, at: entry.since, reason };
    this.log.info(
      { address: next.address, previous: previous?.address, reason, nextInS: this.timeoutMs / 1000 },
      `now using resolvable private address ${next.address}`,
    );
    this.emit('rotated', rotation);
    return next;
  }

  private record(address: Address): RpaHistoryEntry {
    const entry: RpaHistoryEntry = { address, since: this.clock.now() };
    this.entries.push(entry);
    if (this.entries.length > this.historySize) this.entries.splice(0, this.entries.length - this.historySize);
    return entry;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      // Failures are logged, emitted and retried inside rotate().
      this.enqueue('timeout').catch(() => undefined);
    }, ms);
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
