/**
 * Our requests as an ATT client on one bearer: sent one at a time in call order (Core 5.4 Vol 3
 * Part F 3.3.2) with the transaction timer (3.3.3), both kept by an {@link AttTransactionQueue};
 * and matching each response the peer sends to the request it answers. The bearer
 * ({@link AttBearer} in bearer.ts) owns the link, the ATT_MTU and closing; it hands this part
 * every PDU of kind 'response'.
 */
import type { Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import { attPduSpecOf, encodeAttPdu, type AttRequest, type AttResponse } from './pdu.js';
import { AttTransactionQueue } from './transaction.js';
import type { AttLower } from './types.js';

/** What the client side needs from its bearer. */
export interface AttClientRequestsIo {
  /** Puts one PDU on the bearer (logged at debug level, a send failure only logged). */
  send(pdu: Uint8Array): void;
  /** Our request was not answered in time: the bearer closes (Core 5.4 Vol 3 Part F 3.3.3). */
  timedOut(transaction: 'request'): void;
  /** The peer answered our Exchange MTU Request with its Server Rx MTU (3.4.2.2). */
  exchangedMtu(serverRxMtu: number): void;
}

interface PendingRequest {
  readonly pdu: AttRequest;
  resolve(rsp: AttResponse): void;
  reject(err: Error): void;
}

export class AttClientRequests {
  private readonly transactions: AttTransactionQueue<PendingRequest>;

  constructor(
    private readonly io: AttClientRequestsIo,
    private readonly lower: AttLower,
    clock: Clock,
    private readonly log: Logger,
    timeoutMs: number,
  ) {
    this.transactions = new AttTransactionQueue<PendingRequest>(
      clock,
      timeoutMs,
      (entry) => io.send(encodeAttPdu(entry.pdu)),
      () => io.timedOut('request'),
    );
  }

  /** Sends `pdu` now, or after the requests ahead of it; resolves with the peer's response. */
  request(pdu: AttRequest): Promise<AttResponse> {
    return new Promise<AttResponse>((resolve, reject) => this.transactions.submit({ pdu, resolve, reject }));
  }

  /**
   * A response PDU from the peer. It completes the outstanding request when it is that request's
   * response (its opcode plus one) or an ATT_ERROR_RSP naming its opcode; anything else is dropped.
   */
  onResponse(rsp: AttResponse): void {
    const outstanding = this.transactions.current;
    const expected = outstanding ? attPduSpecOf(outstanding.pdu.type).opcode : -1;
    const matches =
      outstanding !== undefined && (rsp.type === 'errorResponse' ? rsp.requestOpcode === expected : attPduSpecOf(rsp.type).opcode === expected + 1);
    const entry = matches ? this.transactions.finish() : undefined;
    if (!entry) {
      this.log.warn({ response: rsp.type, peer: this.lower.peer.address }, 'unexpected ATT response dropped');
      return;
    }
    if (rsp.type === 'exchangeMtuResponse') this.io.exchangedMtu(rsp.serverRxMtu);
    entry.resolve(rsp);
    this.transactions.beginNext();
  }

  /** The bearer closed: every request not answered rejects with `err`, oldest first. */
  close(err: Error): void {
    this.transactions.close(err);
  }
}
