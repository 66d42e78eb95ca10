/**
 * Our indications as an ATT server on one bearer: one ATT_HANDLE_VALUE_IND outstanding, the rest
 * waiting in order until the peer's ATT_HANDLE_VALUE_CFM (Core 5.4 Vol 3 Part F 3.3.2, 3.4.7.2),
 * with the transaction timer (3.3.3), both kept by an {@link AttTransactionQueue}. The bearer
 * ({@link AttBearer} in bearer.ts) owns the link, the ATT_MTU and closing; it hands this part
 * every confirmation.
 */
import type { Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import { AttOpcode } from './pdu.js';
import { allocFixedChannelPdu } from '../l2cap/connection.js';
import { AttTransactionQueue } from './transaction.js';
import type { AttLower } from './types.js';

/** What the indication queue needs from its bearer. */
export interface AttIndicationsIo {
  /** Puts one PDU on the bearer (logged at debug level, a send failure only logged). */
  send(pdu: Uint8Array): void;
  /** Our indication was not confirmed in time: the bearer closes (Core 5.4 Vol 3 Part F 3.3.3). */
  timedOut(transaction: 'indication'): void;
  /** The peer confirmed the indication of `handle` (before the indicate() promise resolves). */
  confirmed(handle: number): void;
  /** Largest value an indication carries now: min(ATT_MTU-3, 512) (3.4.7.2, 3.2.9). */
  maxValue(): number;
}

interface PendingIndication {
  readonly handle: number;
  readonly value: Uint8Array;
  resolve(): void;
  reject(err: Error): void;
}

export class AttIndications {
  private readonly transactions: AttTransactionQueue<PendingIndication>;

  constructor(
    private readonly io: AttIndicationsIo,
    private readonly lower: AttLower,
    clock: Clock,
    private readonly log: Logger,
    timeoutMs: number,
    /** The bearer's counters (AttBearerStats): indications put on the air are counted here. */
    private readonly stats: { indicationsSent: number },
  ) {
    this.transactions = new AttTransactionQueue<PendingIndication>(
      clock,
      timeoutMs,
      (entry) => this.sendIndication(entry),
      () => io.timedOut('indication'),
    );
  }

  /** Indications not yet confirmed (the one in flight plus the queued ones). */
  get depth(): number {
    return this.transactions.depth;
  }

  /** Copies `value` and sends it now, or after the indications ahead of it are confirmed. */
  indicate(handle: number, value: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => this.transactions.submit({ handle, value: value.slice(), resolve, reject }));
  }

  private sendIndication(entry: PendingIndication): void {
    const len = Math.min(entry.value.length, this.io.maxValue());
    const pdu = allocFixedChannelPdu(3 + len);
    pdu[0] = AttOpcode.handleValueIndication;
    pdu[1] = entry.handle & 0xff;
    pdu[2] = entry.handle >> 8;
    pdu.set(entry.value.subarray(0, len), 3);
    this.stats.indicationsSent++;
    this.io.send(pdu);
  }

  /** ATT_HANDLE_VALUE_CFM from the peer: completes the outstanding indication and sends the next. */
  onConfirmation(): void {
    const entry = this.transactions.finish();
    if (!entry) {
      this.log.warn({ peer: this.lower.peer.address }, 'ATT_HANDLE_VALUE_CFM without an indication outstanding dropped');
      return;
    }
    this.io.confirmed(entry.handle);
    entry.resolve();
    this.transactions.beginNext();
  }

  /** The bearer closed: every indication not confirmed rejects with `err`, oldest first. */
  close(err: Error): void {
    this.transactions.close(err);
  }
}
