/**
 * One ATT bearer (the LE fixed channel 0x0004 of one connection), the facade its users see. It
 * owns the link, the ATT_MTU and its exchange, closing, the decoding and dispatch of every incoming
 * PDU against the table in pdu.ts, the serialisation of incoming requests and commands for the
 * request handler (the ATT server), notifications both ways and their back-pressure. Its other
 * parts live next to it, one concern each:
 * - client-requests.ts: our requests as a client and the matching of the peer's responses;
 * - indications.ts: our indications and the peer's confirmations;
 * - transaction.ts: what those two share: one transaction outstanding per direction, the rest
 *   waiting in order, and the 30 s transaction timer;
 * - undecodable.ts: which answer an undecodable PDU gets;
 * - types.ts: the bearer's contract (lower, handler, options, events, counters) and errors.
 * The Write Command and notification paths stay in this file on purpose: they run per PDU at
 * link speed, and here they cost no call through another object.
 *
 * Rules applied here (Core 5.4 Vol 3 Part F):
 * - 3.3 Undecodable PDUs get the answer undecodable.ts decides (Request Not Supported or Invalid
 *   PDU with handle 0x0000 for a request; nothing for a command); it is sent here, in order.
 * - 3.3.2 A client sends no other request until it has our response. The spec gives the server no
 *   rule for a client that breaks this; answering would pair our response with the wrong request
 *   in the client's view, so a second request while one is being answered is dropped (no
 *   response) and logged at warn level. Commands and confirmations are accepted at any time.
 * - 3.3.2 One indication outstanding; further ones queue until the confirmation (indications.ts).
 * - 3.3.3 A transaction (our indication, or our request as a client) not completed within 30 s
 *   fails; the bearer is then closed for good: nothing more is sent or processed until a new
 *   connection brings a new bearer. 'timeout' and 'closed' are emitted so the composition root can
 *   drop the link.
 * - 3.4.2 Exchange MTU: ATT_MTU = min(Client Rx MTU, Server Rx MTU), the default 23 when the
 *   client offers less; applied right after our response is handed over.
 * - 3.4.7.1 Notifications and indications carry at most ATT_MTU-3 bytes of value, and 3.2.9 no
 *   attribute value is longer than 512 bytes: values are cut to min(ATT_MTU-3, 512).
 *
 * Costs on the notification path: one view per notification, carved out of a shared slab with room
 * in front for the L2CAP, ACL and H:4 headers ({@link allocFixedChannelPdu}) so no layer below
 * copies it; no closure per PDU. Debug logging is decided by a per-bearer flag (see {@link AttBearer.refreshLogLevel}).
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { Fifo } from '../util/fifo.js';
import { allocFixedChannelPdu } from '../l2cap/connection.js';
import { AttClientRequests } from './client-requests.js';
import { AttIndications } from './indications.js';
import { undecodableAnswer, type AttDecodeError } from './undecodable.js';
import {
  AttErrorCode,
  AttOpcode,
  decodeAttPdu,
  encodeAttPdu,
  encodeErrorResponse,
  formatAttPdu,
  type AttCommand,
  type AttRequest,
  type AttResponse,
} from './pdu.js';
import {
  ATT_DEFAULT_MTU,
  ATT_MAX_MTU,
  ATT_MAX_VALUE_LENGTH,
  ATT_TRANSACTION_TIMEOUT_MS,
  AttBearerError,
  type AttBearerCloseReason,
  type AttBearerEvents,
  type AttBearerOptions,
  type AttBearerStats,
  type AttLower,
  type AttRequestHandler,
} from './types.js';

// The bearer's contract (handler, options, events, counters) is in types.ts; exported here too.
export type { AttBearerEvents, AttBearerOptions, AttBearerStats, AttRequestHandler } from './types.js';

/** Incoming work in arrival order: a PDU for the handler, or an error response decided on arrival. */
type WorkItem =
  | { readonly kind: 'pdu'; readonly pdu: AttRequest | AttCommand; readonly raw: Uint8Array }
  | { readonly kind: 'response'; readonly rsp: Uint8Array };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

/** PDUs received or notified between two reads of the logger's level (see {@link AttBearer.refreshLogLevel}). */
const LOG_LEVEL_REFRESH_INTERVAL = 64;

export class AttBearer extends TypedEmitter<AttBearerEvents> {
  private readonly lower: AttLower;
  private readonly clock: Clock;
  private readonly log: Logger;
  readonly serverMtu: number;
  private readonly timeoutMs: number;
  private readonly notifyLimit: number;
  private handler: AttRequestHandler | undefined;

  private _mtu = ATT_DEFAULT_MTU;
  private mtuExchanged = false;
  private closedReason: AttBearerCloseReason | undefined;

  // Incoming work, strictly in order.
  private responsePending = false;
  private busy = false;
  private readonly backlog = new Fifo<WorkItem>();

  // Outgoing indications, and our requests as a client: their own parts (see the header).
  private readonly indications: AttIndications;
  private readonly client: AttClientRequests;

  // Outgoing notifications.
  private notifyDepth = 0;
  private readonly onNotificationSent = (): void => this.notificationDone();
  private readonly onNotificationFailed = (err: unknown): never => {
    this.notificationDone();
    throw err;
  };

  /** Whether debug logging is on, read from the logger now and then rather than per PDU. */
  private debug = false;
  private pdusSinceLevelRead = 0;

  readonly stats: AttBearerStats = {
    requests: 0,
    commands: 0,
    droppedRequests: 0,
    invalidPdus: 0,
    unknownOpcodes: 0,
    notificationsSent: 0,
    indicationsSent: 0,
  };

  constructor(opts: AttBearerOptions) {
    super();
    this.lower = opts.lower;
    this.clock = opts.clock;
    this.log = opts.log ?? silentLogger();
    const mtu = opts.mtu ?? ATT_MAX_MTU;
    if (!Number.isInteger(mtu) || mtu < ATT_DEFAULT_MTU || mtu > ATT_MAX_MTU) {
      throw new RangeError(`ATT MTU must be an integer in ${ATT_DEFAULT_MTU}..${ATT_MAX_MTU}, got ${mtu}`);
    }
    this.serverMtu = mtu;
    this.timeoutMs = opts.transactionTimeoutMs ?? ATT_TRANSACTION_TIMEOUT_MS;
    this.notifyLimit = opts.notifyQueueLimit ?? 256;
    const send = (pdu: Uint8Array): void => this.sendRaw(pdu);
    const timedOut = (transaction: 'indication' | 'request'): void => this.onTransactionTimeout(transaction);
    this.indications = new AttIndications(
      { send, timedOut, confirmed: (handle) => this.onConfirmed(handle), maxValue: () => this.maxNotificationValue },
      this.lower,
      this.clock,
      this.log,
      this.timeoutMs,
      this.stats,
    );
    this.client = new AttClientRequests({ send, timedOut, exchangedMtu: (mtu) => this.onExchangeMtuResponse(mtu) }, this.lower, this.clock, this.log, this.timeoutMs);
    this.refreshLogLevel();
  }

  /**
   * Reads the logger's level again. Asking a per-connection child logger on every PDU is a
   * megamorphic call once there are many connections, so the bearer keeps the answer: it is read
   * at construction and again after every {@link LOG_LEVEL_REFRESH_INTERVAL} PDUs received or
   * notified. Call this after changing the level to apply it at once.
   */
  refreshLogLevel(): void {
    this.debug = this.log.isLevelEnabled('debug');
    this.pdusSinceLevelRead = 0;
  }

  /** Attaches the request handler (the ATT server). Without one, every request gets Request Not Supported. */
  setHandler(handler: AttRequestHandler | undefined): void {
    this.handler = handler;
  }

  /** Current ATT_MTU. */
  get mtu(): number {
    return this._mtu;
  }

  /** Largest value a notification or indication can carry now: min(ATT_MTU-3, 512). */
  get maxNotificationValue(): number {
    return Math.min(this._mtu - 3, ATT_MAX_VALUE_LENGTH);
  }

  /** Whether the bearer is closed, and why. */
  get closed(): AttBearerCloseReason | undefined {
    return this.closedReason;
  }

  /** Notifications handed to the lower layer and not yet taken by the controller. */
  get notifyQueueDepth(): number {
    return this.notifyDepth;
  }

  /** Indications not yet confirmed (the one in flight plus the queued ones). */
  get indicationQueueDepth(): number {
    return this.indications.depth;
  }

  // ---------------------------------------------------------------- input

  /**
   * One reassembled ATT PDU from L2CAP CID 0x0004. Never throws. The ATT layer owns the buffer
   * from then on (decoded values are views into it, read after asynchronous handlers): pass a
   * buffer the caller will not reuse.
   */
  onPdu(bytes: Uint8Array): void {
    if (++this.pdusSinceLevelRead >= LOG_LEVEL_REFRESH_INTERVAL) this.refreshLogLevel();
    if (this.closedReason) {
      this.log.debug({ opcode: bytes[0], closed: this.closedReason }, 'ATT PDU on a closed bearer dropped');
      return;
    }
    const r = decodeAttPdu(bytes);
    if (!r.ok) {
      this.onUndecodable(bytes, r.opcode, r.error, r.reason);
      return;
    }
    const pdu = r.pdu;
    if (this.debug) this.log.debug({ dir: 'rx', pdu: formatAttPdu(pdu) }, 'ATT');
    if (bytes.length > this._mtu) {
      // No ATT PDU may exceed ATT_MTU (Core 5.4 Vol 3 Part F 3.2.8): a request that does is invalid.
      this.onUndecodable(bytes, r.spec.opcode, 'invalid', `${r.spec.name} is ${bytes.length} bytes, longer than ATT_MTU ${this._mtu}`);
      return;
    }
    switch (r.spec.kind) {
      case 'request':
        this.onRequest(pdu as AttRequest, bytes);
        return;
      case 'command':
        this.stats.commands++;
        if (!this.busy && this.backlog.length === 0) {
          // Nothing ahead of it: carry it out now, without a work item.
          const r = this.executeCommand(pdu as AttCommand, bytes);
          if (r) this.awaitWork(r);
          return;
        }
        this.submit({ kind: 'pdu', pdu: pdu as AttCommand, raw: bytes });
        return;
      case 'confirmation':
        this.indications.onConfirmation();
        return;
      case 'response':
        this.client.onResponse(pdu as AttResponse);
        return;
      case 'notification':
        if (pdu.type === 'handleValueNotification') {
          if (this.listenerCount('peerNotification') > 0) this.emit('peerNotification', pdu.handle, pdu.value.slice());
        } else if (pdu.type === 'multipleHandleValueNotification' && this.listenerCount('peerNotification') > 0) {
          for (const t of pdu.tuples) this.emit('peerNotification', t.handle, t.value.slice());
        }
        return;
      case 'indication':
        if (pdu.type === 'handleValueIndication') {
          // Confirm first (Core 5.4 Vol 3 Part F 3.4.7.2): the peer's transaction must complete whatever we do with the value.
          this.sendRaw(encodeAttPdu({ type: 'handleValueConfirmation' }));
          if (this.listenerCount('peerIndication') > 0) this.emit('peerIndication', pdu.handle, pdu.value.slice());
        }
        return;
    }
  }

  private onUndecodable(bytes: Uint8Array, opcode: number, error: AttDecodeError, reason: string): void {
    switch (undecodableAnswer(opcode, error)) {
      case 'drop-empty':
        this.stats.invalidPdus++;
        this.log.warn({ peer: this.lower.peer.address }, 'empty ATT PDU dropped');
        return;
      case 'ignore-command':
        this.stats.unknownOpcodes++;
        this.log.debug({ opcode, peer: this.lower.peer.address }, 'unsupported ATT command ignored');
        return;
      case 'request-not-supported':
        this.stats.unknownOpcodes++;
        this.log.debug({ opcode, peer: this.lower.peer.address }, 'unsupported ATT request: Request Not Supported');
        this.answerOutOfBand(opcode, AttErrorCode.requestNotSupported);
        return;
      case 'invalid-pdu':
        this.stats.invalidPdus++;
        this.log.info({ opcode, reason, peer: this.lower.peer.address, length: bytes.length }, 'invalid ATT request: Invalid PDU');
        this.answerOutOfBand(opcode, AttErrorCode.invalidPdu);
        return;
      case 'confirm-indication':
        this.stats.invalidPdus++;
        this.log.info({ opcode, reason }, 'malformed ATT indication confirmed and dropped');
        this.sendRaw(encodeAttPdu({ type: 'handleValueConfirmation' }));
        return;
      case 'drop-malformed':
        this.stats.invalidPdus++;
        this.log.info({ opcode, reason, peer: this.lower.peer.address }, 'malformed ATT PDU dropped');
        return;
    }
  }

  /** An error response to a request that never reaches the handler, still subject to sequencing. */
  private answerOutOfBand(opcode: number, code: number): void {
    if (this.responsePending) {
      this.stats.droppedRequests++;
      this.log.warn({ opcode, peer: this.lower.peer.address }, 'ATT request while another is being answered dropped (Core 5.4 Vol 3 Part F 3.3.2)');
      return;
    }
    this.stats.requests++;
    this.responsePending = true;
    const rsp = encodeErrorResponse(opcode, 0x0000, code);
    if (this.busy || this.backlog.length > 0) {
      // Keep response order behind the work in progress.
      this.backlog.push({ kind: 'response', rsp });
      this.pump();
      return;
    }
    this.sendResponse(rsp);
  }

  private onRequest(req: AttRequest, raw: Uint8Array): void {
    if (this.responsePending) {
      this.stats.droppedRequests++;
      this.log.warn(
        { request: req.type, peer: this.lower.peer.address },
        'ATT request while another is being answered dropped (Core 5.4 Vol 3 Part F 3.3.2)',
      );
      return;
    }
    this.stats.requests++;
    this.responsePending = true;
    this.submit({ kind: 'pdu', pdu: req, raw });
  }

  private submit(item: WorkItem): void {
    if (!this.busy && this.backlog.length === 0) {
      const r = this.execute(item);
      if (r) this.awaitWork(r);
      return;
    }
    this.backlog.push(item);
    this.pump();
  }

  private pump(): void {
    while (!this.busy && !this.closedReason) {
      const item = this.backlog.shift();
      if (!item) return;
      const r = this.execute(item);
      if (r) {
        this.awaitWork(r);
        return;
      }
    }
  }

  private awaitWork(p: Promise<void>): void {
    this.busy = true;
    p.then(
      () => {
        this.busy = false;
        this.pump();
      },
      (err: unknown) => {
        this.busy = false;
        this.log.error({ err }, 'ATT work failed');
        this.pump();
      },
    );
  }

  /** Runs one work item; returns a promise when it did not finish synchronously. */
  private execute(item: WorkItem): Promise<void> | undefined {
    if (item.kind === 'response') {
      this.sendResponse(item.rsp);
      return undefined;
    }
    const pdu = item.pdu;
    if (pdu.type === 'writeCommand' || pdu.type === 'signedWriteCommand') return this.executeCommand(pdu, item.raw);
    return this.executeRequest(pdu, item.raw);
  }

  private executeCommand(cmd: AttCommand, raw: Uint8Array): Promise<void> | undefined {
    if (!this.handler) return undefined;
    try {
      const r = this.handler.handleCommand(cmd, raw);
      if (isPromise(r)) {
        return r.catch((err: unknown) => {
          this.log.warn({ err, command: cmd.type }, 'ATT command handler failed; command ignored');
        });
      }
    } catch (err) {
      this.log.warn({ err, command: cmd.type }, 'ATT command handler failed; command ignored');
    }
    return undefined;
  }

  private executeRequest(req: AttRequest, raw: Uint8Array): Promise<void> | undefined {
    const opcode = raw[0] as number;
    if (req.type === 'exchangeMtuRequest') {
      this.onExchangeMtu(req.clientRxMtu);
      return undefined;
    }
    if (!this.handler) {
      this.sendResponse(encodeErrorResponse(opcode, 0x0000, AttErrorCode.requestNotSupported));
      return undefined;
    }
    const handler = this.handler;
    try {
      const r = handler.handleRequest(req, raw);
      if (isPromise(r)) {
        return r.then(
          (rsp) => this.sendResponse(rsp),
          (err: unknown) => this.failRequest(opcode, err),
        );
      }
      this.sendResponse(r);
    } catch (err) {
      this.failRequest(opcode, err);
    }
    return undefined;
  }

  private failRequest(opcode: number, err: unknown): void {
    // Core 5.4 Vol 3 Part F 3.3: an error while processing -> Unlikely Error, handle 0x0000.
    this.log.error({ err, opcode, peer: this.lower.peer.address }, 'ATT request handler failed: Unlikely Error');
    this.sendResponse(encodeErrorResponse(opcode, 0x0000, AttErrorCode.unlikelyError));
  }

  private onExchangeMtu(clientRxMtu: number): void {
    const rsp = encodeAttPdu({ type: 'exchangeMtuResponse', serverRxMtu: this.serverMtu });
    this.sendResponse(rsp);
    if (this.closedReason) return;
    if (this.mtuExchanged) {
      // Core 5.4 Vol 3 Part F 3.4.2.1: sent once per connection; answer again but keep the MTU.
      this.log.info({ clientRxMtu, mtu: this._mtu, peer: this.lower.peer.address }, 'repeated Exchange MTU; ATT_MTU unchanged');
      return;
    }
    this.mtuExchanged = true;
    this.applyMtu(clientRxMtu);
  }

  private applyMtu(peerMtu: number): void {
    // Core 5.4 Vol 3 Part F 3.4.2.2: min of both, the default when the peer's is below it.
    const mtu = peerMtu < ATT_DEFAULT_MTU ? ATT_DEFAULT_MTU : Math.min(peerMtu, this.serverMtu);
    if (mtu !== this._mtu) {
      this._mtu = mtu;
      this.log.debug({ mtu, peer: this.lower.peer.address }, 'ATT_MTU set');
      this.emit('mtuChanged', mtu);
    }
  }

  /** The peer's Server Rx MTU in its Exchange MTU Response to our request (client side). */
  private onExchangeMtuResponse(serverRxMtu: number): void {
    if (this.mtuExchanged) return;
    this.mtuExchanged = true;
    this.applyMtu(serverRxMtu);
  }

  private sendResponse(rsp: Uint8Array): void {
    this.responsePending = false;
    if (this.closedReason) return;
    let out = rsp;
    if (out.length > this._mtu) {
      // A bug in the handler; never put an oversized PDU on the air.
      this.log.error({ length: out.length, mtu: this._mtu, opcode: out[1] }, 'ATT response longer than ATT_MTU replaced by Unlikely Error');
      out = encodeErrorResponse(out[0] === AttOpcode.errorResponse ? (out[1] as number) : 0, 0, AttErrorCode.unlikelyError);
    }
    this.sendRaw(out);
  }

  private sendRaw(pdu: Uint8Array): void {
    if (this.debug) {
      const d = decodeAttPdu(pdu);
      this.log.debug({ dir: 'tx', pdu: d.ok ? formatAttPdu(d.pdu) : d.reason }, 'ATT');
    }
    this.lower.send(pdu).catch((err: unknown) => {
      this.log.debug({ err }, 'ATT PDU not sent (link gone?)');
    });
  }

  // ---------------------------------------------------------------- indications

  /**
   * Sends ATT_HANDLE_VALUE_IND; resolves on the peer's confirmation. One indication is in flight at
   * a time, the rest wait in order. The value is copied now and cut to min(ATT_MTU-3, 512) bytes when sent.
   * Rejects with {@link AttBearerError} if the bearer closes (timeout, disconnection) first.
   */
  indicate(handle: number, value: Uint8Array): Promise<void> {
    if (this.closedReason) return Promise.reject(this.closedError());
    return this.indications.indicate(handle, value);
  }

  /** The confirmation of our indication arrived: the handler's hook runs before indicate() resolves. */
  private onConfirmed(handle: number): void {
    try {
      this.handler?.onConfirmation?.(handle);
    } catch (err) {
      this.log.error({ err }, 'confirmation hook failed');
    }
  }

  // ---------------------------------------------------------------- notifications

  /**
   * Sends ATT_HANDLE_VALUE_NTF; resolves when the PDU was handed to the controller, so an
   * application awaiting it is paced by the link (back-pressure). The value is cut to
   * min(ATT_MTU-3, 512) bytes (Core 5.4 Vol 3 Part F 3.4.7.1, 3.2.9) and copied before notify()
   * returns: the caller may reuse it at once. Rejects with {@link AttBearerError} when the bearer
   * is closed or `notifyQueueLimit` notifications are already waiting.
   */
  notify(handle: number, value: Uint8Array): Promise<void> {
    if (this.closedReason) return Promise.reject(this.closedError());
    if (this.notifyDepth >= this.notifyLimit) {
      return Promise.reject(new AttBearerError('queue-full', `notification queue full (${this.notifyDepth} waiting for the controller) on ${this.lower.peer.address}: await notify() before sending more`));
    }
    const len = Math.min(value.length, this._mtu - 3, ATT_MAX_VALUE_LENGTH);
    // Room in front for the headers below: L2CAP, ACL and H:4 write into it instead of copying.
    const pdu = allocFixedChannelPdu(3 + len);
    pdu[0] = AttOpcode.handleValueNotification;
    pdu[1] = handle & 0xff;
    pdu[2] = handle >> 8;
    pdu.set(len === value.length ? value : value.subarray(0, len), 3);
    this.notifyDepth++;
    this.stats.notificationsSent++;
    if (this.listenerCount('notifyQueueDepth') > 0) this.emit('notifyQueueDepth', this.notifyDepth);
    if (++this.pdusSinceLevelRead >= LOG_LEVEL_REFRESH_INTERVAL) this.refreshLogLevel();
    if (this.debug) this.log.debug({ dir: 'tx', pdu: formatAttPdu({ type: 'handleValueNotification', handle, value: pdu.subarray(3) }) }, 'ATT');
    // The PDU belongs to the layers below from here on.
    return this.lower.send(pdu).then(this.onNotificationSent, this.onNotificationFailed);
  }

  private notificationDone(): void {
    this.notifyDepth--;
    if (this.listenerCount('notifyQueueDepth') > 0) this.emit('notifyQueueDepth', this.notifyDepth);
    if (this.notifyDepth === 0) this.emit('drain');
  }

  // ---------------------------------------------------------------- client requests

  /**
   * Sends a request as a GATT client and resolves with the peer's response (its success PDU or
   * ATT_ERROR_RSP). Requests are sent one at a time in call order (Core 5.4 Vol 3 Part F 3.3.2).
   * An Exchange MTU response updates ATT_MTU.
   */
  request(pdu: AttRequest): Promise<AttResponse> {
    if (this.closedReason) return Promise.reject(this.closedError());
    return this.client.request(pdu);
  }

  /** Sends a command (Write Command, Signed Write Command) as a client. */
  command(pdu: AttCommand): Promise<void> {
    if (this.closedReason) return Promise.reject(this.closedError());
    return this.lower.send(encodeAttPdu(pdu));
  }

  // ---------------------------------------------------------------- closing

  private onTransactionTimeout(transaction: 'indication' | 'request'): void {
    if (this.closedReason) return;
    this.log.warn(
      { peer: this.lower.peer.address, transaction },
      `ATT ${transaction} not answered within ${this.timeoutMs / 1000} s: bearer closed until the peer reconnects (Core 5.4 Vol 3 Part F 3.3.3)`,
    );
    this.emit('timeout', transaction);
    this.close('timeout');
  }

  /** The link went down. */
  onDisconnected(): void {
    this.close('disconnected');
  }

  private closedError(): AttBearerError {
    return this.closedReason === 'timeout'
      ? new AttBearerError('timeout', `ATT bearer to ${this.lower.peer.address} closed after a transaction timeout; the peer must reconnect`)
      : new AttBearerError('disconnected', `ATT bearer to ${this.lower.peer.address} closed: disconnected`);
  }

  private close(reason: AttBearerCloseReason): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    const err = this.closedError();
    this.indications.close(err);
    this.client.close(err);
    this.backlog.drain();
    this.emit('closed', reason);
  }
}
