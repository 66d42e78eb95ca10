/**
 * One direction of ATT transactions on a bearer: at most one outstanding, the rest waiting in
 * order (FIFO, O(1)) (Core 5.4 Vol 3 Part F 3.3.2), and the transaction timer: not completed
 * within the timeout (30 s, 3.3.3) calls `onTimeout`, and the bearer then closes. Our requests as
 * a client (client-requests.ts) and our indications (indications.ts) each keep one.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import { Fifo } from '../util/fifo.js';

/** A caller waiting for its transaction. */
export interface PendingTransaction {
  reject(err: Error): void;
}

export class AttTransactionQueue<E extends PendingTransaction> {
  private inFlight: E | undefined;
  private timer: TimerHandle | undefined;
  private readonly waiting = new Fifo<E>();
  private closed = false;

  /**
   * @param start puts the entry's PDU on the air; called when its transaction begins.
   * @param onTimeout called once the outstanding transaction is older than `timeoutMs`.
   */
  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly start: (entry: E) => void,
    private readonly onTimeout: () => void,
  ) {}

  /** The outstanding transaction, if any. */
  get current(): E | undefined {
    return this.inFlight;
  }

  /** Transactions not completed (the outstanding one plus the waiting ones). */
  get depth(): number {
    return (this.inFlight ? 1 : 0) + this.waiting.length;
  }

  /** Begins `entry` now, or after the transactions ahead of it. */
  submit(entry: E): void {
    if (this.inFlight) this.waiting.push(entry);
    else this.begin(entry);
  }

  private begin(entry: E): void {
    this.inFlight = entry;
    this.timer = this.clock.setTimeout(this.onTimeout, this.timeoutMs);
    this.start(entry);
  }

  /**
   * Ends the outstanding transaction (its timer stops) and returns it, or undefined when none is
   * outstanding. The caller settles it, then calls {@link beginNext}.
   */
  finish(): E | undefined {
    const entry = this.inFlight;
    if (!entry) return undefined;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight = undefined;
    return entry;
  }

  /** Begins the next waiting transaction, unless the bearer closed meanwhile. */
  beginNext(): void {
    const next = this.waiting.shift();
    if (next && !this.closed) this.begin(next);
  }

  /** The bearer closed: the timer stops and every transaction not completed rejects with `err`, oldest first. */
  close(err: Error): void {
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const all = this.inFlight ? [this.inFlight, ...this.waiting.drain()] : this.waiting.drain();
    this.inFlight = undefined;
    for (const e of all) e.reject(err);
  }
}
