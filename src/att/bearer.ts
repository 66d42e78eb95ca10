/**
 * One ATT bearer (the LE fixed channel 0x0004 of one connection): sequencing, MTU, transaction
 * timeouts, the outgoing indication queue and notification back-pressure. The bearer decodes
 * every incoming PDU against the table in pdu.ts and answers protocol errors in one place; a
 * request handler (the ATT server) answers well-formed requests.
 *
 * Rules applied here (Core 5.4 Vol 3 Part F):
 * - 3.3 A request we do not support: ATT_ERROR_RSP Request Not Supported (0x06), handle 0x0000.
 *   An unknown opcode with the Command Flag (bit 6) set is a command we do not support: ignored.
 *   A request of the wrong length or shape: Invalid PDU (0x04), handle 0x0000. A malformed
 *   command is ignored (commands never get a response, 3.4.5.3).
 * - 3.3.2 A client sends no other request until it has our response. The spec gives the server no
 *   rule for a client that breaks this; answering would pair our response with the wrong request
 *   in the client's view, so a second request while one is being answered is dropped (no
 *   response) and logged at warn level. Commands and confirmations are accepted at any time.
 * - 3.3.2 One indication outstanding; further ones queue (FIFO, O(1)) until the confirmation.
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
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { Fifo } from './fifo.js';
import { allocFixedChannelPdu } from '../l2cap/connection.js';
import {
  AttErrorCode,
  AttOpcode,
  attPduSpecOf,
  decodeAttPdu,
  encodeAttPdu,
  encodeErrorResponse,
  formatAttPdu,
  isCommandOpcode,
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
  type AttLower,
} from './types.js';

/** The server side: answers requests and carries out commands. */
export interface AttRequestHandler {
  /**
   * Answers one well-formed request (never Exchange MTU, which the bearer answers) with the
   * encoded response: the success PDU or an ATT_ERROR_RSP. May be asynchronous; the bearer
   * processes requests and commands strictly in arrival order.
   * @param raw the PDU as received (a view; do not keep).
   */
  handleRequest(req: AttRequest, raw: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Carries out one well-formed command; errors are swallowed (commands have no response). */
  handleCommand(cmd: AttCommand, raw: Uint8Array): void | Promise<void>;
  /** Called after the confirmation of our indication arrived. */
  onConfirmation?(handle: number): void;
}

export interface AttBearerOptions {
  lower: AttLower;
  clock: Clock;
  log?: Logger;
  /** Our receive MTU offered in Exchange MTU, 23..517 (default 517). */
  mtu?: number;
  /** Transaction timeout, default 30 s (Core 5.4 Vol 3 Part F 3.3.3). Tests may shorten it. */
  transactionTimeoutMs?: number;
  /** Notifications handed to `lower.send` but not yet taken by the controller before notify() rejects with 'queue-full'. Default 256. */
  notifyQueueLimit?: number;
}

export type AttBearerEvents = {
  /** ATT_MTU changed (after an MTU exchange). */
  mtuChanged: [mtu: number];
  /** A transaction timed out; 'closed' follows. */
  timeout: [transaction: 'indication' | 'request'];
  /** The bearer stopped: no PDU will be sent or processed any more. */
  closed: [reason: AttBearerCloseReason];
  /** Notifications in flight changed (only emitted when someone listens). */
  notifyQueueDepth: [depth: number];
  /** No notification is in flight any more. */
  drain: [];
  /** A notification from the peer's server (for a GATT client). */
  peerNotification: [handle: number, value: Uint8Array];
  /** An indication from the peer's server; the bearer has already confirmed it. */
  peerIndication: [handle: number, value: Uint8Array];
};

interface PendingIndication {
  readonly handle: number;
  readonly value: Uint8Array;
  resolve(): void;
  reject(err: Error): void;
}

interface PendingRequest {
  readonly pdu: AttRequest;
  resolve(rsp: AttResponse): void;
  reject(err: Error): void;
}

/** Incoming work in arrival order: a PDU for the handler, or an error response decided on arrival. */
type WorkItem =
  | { readonly kind: 'pdu'; readonly pdu: AttRequest | AttCommand; readonly raw: Uint8Array }
  | { readonly kind: 'response'; readonly rsp: Uint8Array };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

/** PDUs received or notified between two reads of the logger's level (see {@link AttBearer.refreshLogLevel}). */
const LOG_LEVEL_REFRESH_INTERVAL = 64;

/** Counters for diagnostics. */
export interface AttBearerStats {
  requests: number;
  commands: number;
  droppedRequests: number;
  invalidPdus: number;
  unknownOpcodes: number;
  notificationsSent: number;
  indicationsSent: number;
}

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

  // Outgoing indications.
  private indicationInFlight: PendingIndication | undefined;
  private indicationTimer: TimerHandle | undefined;
  private readonly indicationQueue = new Fifo<PendingIndication>();

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

  // Our requests as a client.
  private requestInFlight: PendingRequest | undefined;
  private requestTimer: TimerHandle | undefined;
  private readonly requestQueue = new Fifo<PendingRequest>();

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
    return (this.indicationInFlight ? 1 : 0) + this.indicationQueue.length;
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
        this.onConfirmation();
        return;
      case 'response':
        this.onResponse(pdu as AttResponse);
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

  private onUndecodable(bytes: Uint8Array, opcode: number, error: 'empty' | 'unknown' | 'invalid', reason: string): void {
    if (error === 'empty') {
      this.stats.invalidPdus++;
      this.log.warn({ peer: this.lower.peer.address }, 'empty ATT PDU dropped');
      return;
    }
    if (error === 'unknown') {
      this.stats.unknownOpcodes++;
      if (isCommandOpcode(opcode)) {
        // Core 5.4 Vol 3 Part F 3.3: a command we do not support is ignored.
        this.log.debug({ opcode, peer: this.lower.peer.address }, 'unsupported ATT command ignored');
        return;
      }
      // Core 5.4 Vol 3 Part F 3.3: a request we do not support -> Request Not Supported, handle 0x0000.
      this.log.debug({ opcode, peer: this.lower.peer.address }, 'unsupported ATT request: Request Not Supported');
      this.answerOutOfBand(opcode, AttErrorCode.requestNotSupported);
      return;
    }
    this.stats.invalidPdus++;
    const kind = decodeKind(opcode);
    if (kind === 'request') {
      // Core 5.4 Vol 3 Part F 3.3: an invalid request -> Invalid PDU, handle 0x0000.
      this.log.info({ opcode, reason, peer: this.lower.peer.address, length: bytes.length }, 'invalid ATT request: Invalid PDU');
      this.answerOutOfBand(opcode, AttErrorCode.invalidPdu);
    } else if (kind === 'indication') {
      // The peer waits for a confirmation even for an indication we cannot use (Core 5.4 Vol 3 Part F 3.4.7.2).
      this.log.info({ opcode, reason }, 'malformed ATT indication confirmed and dropped');
      this.sendRaw(encodeAttPdu({ type: 'handleValueConfirmation' }));
    } else {
      this.log.info({ opcode, reason, peer: this.lower.peer.address }, 'malformed ATT PDU dropped');
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
    return new Promise<void>((resolve, reject) => {
      const entry: PendingIndication = { handle, value: value.slice(), resolve, reject };
      if (this.indicationInFlight) this.indicationQueue.push(entry);
      else this.sendIndication(entry);
    });
  }

  private sendIndication(entry: PendingIndication): void {
    this.indicationInFlight = entry;
    const len = Math.min(entry.value.length, this.maxNotificationValue);
    const pdu = allocFixedChannelPdu(3 + len);
    pdu[0] = AttOpcode.handleValueIndication;
    pdu[1] = entry.handle & 0xff;
    pdu[2] = entry.handle >> 8;
    pdu.set(entry.value.subarray(0, len), 3);
    this.stats.indicationsSent++;
    this.indicationTimer = this.clock.setTimeout(() => this.onTransactionTimeout('indication'), this.timeoutMs);
    this.sendRaw(pdu);
  }

  private onConfirmation(): void {
    const entry = this.indicationInFlight;
    if (!entry) {
      this.log.warn({ peer: this.lower.peer.address }, 'ATT_HANDLE_VALUE_CFM without an indication outstanding dropped');
      return;
    }
    this.clock.clearTimeout(this.indicationTimer);
    this.indicationTimer = undefined;
    this.indicationInFlight = undefined;
    try {
      this.handler?.onConfirmation?.(entry.handle);
    } catch (err) {
      this.log.error({ err }, 'confirmation hook failed');
    }
    entry.resolve();
    const next = this.indicationQueue.shift();
    if (next && !this.closedReason) this.sendIndication(next);
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
    return new Promise<AttResponse>((resolve, reject) => {
      const entry: PendingRequest = { pdu, resolve, reject };
      if (this.requestInFlight) this.requestQueue.push(entry);
      else this.sendRequest(entry);
    });
  }

  /** Sends a command (Write Command, Signed Write Command) as a client. */
  command(pdu: AttCommand): Promise<void> {
    if (this.closedReason) return Promise.reject(this.closedError());
    return this.lower.send(encodeAttPdu(pdu));
  }

  private sendRequest(entry: PendingRequest): void {
    this.requestInFlight = entry;
    this.requestTimer = this.clock.setTimeout(() => this.onTransactionTimeout('request'), this.timeoutMs);
    this.sendRaw(encodeAttPdu(entry.pdu));
  }

  private onResponse(rsp: AttResponse): void {
    const entry = this.requestInFlight;
    const expected = entry ? attPduSpecOf(entry.pdu.type).opcode : -1;
    const matches =
      entry !== undefined && (rsp.type === 'errorResponse' ? rsp.requestOpcode === expected : attPduSpecOf(rsp.type).opcode === expected + 1);
    if (!entry || !matches) {
      this.log.warn({ response: rsp.type, peer: this.lower.peer.address }, 'unexpected ATT response dropped');
      return;
    }
    this.clock.clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
    this.requestInFlight = undefined;
    if (rsp.type === 'exchangeMtuResponse' && !this.mtuExchanged) {
      this.mtuExchanged = true;
      this.applyMtu(rsp.serverRxMtu);
    }
    entry.resolve(rsp);
    const next = this.requestQueue.shift();
    if (next && !this.closedReason) this.sendRequest(next);
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
    this.clock.clearTimeout(this.indicationTimer);
    this.clock.clearTimeout(this.requestTimer);
    this.indicationTimer = undefined;
    this.requestTimer = undefined;
    const err = this.closedError();
    const inds = this.indicationInFlight ? [this.indicationInFlight, ...this.indicationQueue.drain()] : this.indicationQueue.drain();
    this.indicationInFlight = undefined;
    for (const i of inds) i.reject(err);
    const reqs = this.requestInFlight ? [this.requestInFlight, ...this.requestQueue.drain()] : this.requestQueue.drain();
    this.requestInFlight = undefined;
    for (const r of reqs) r.reject(err);
    this.backlog.drain();
    this.emit('closed', reason);
  }
}

/** PDU kind from the opcode's table row, or from the Command Flag for unknown opcodes. */
function decodeKind(opcode: number): 'request' | 'command' | 'indication' | 'other' {
  switch (opcode) {
    case AttOpcode.exchangeMtuRequest:
    case AttOpcode.findInformationRequest:
    case AttOpcode.findByTypeValueRequest:
    case AttOpcode.readByTypeRequest:
    case AttOpcode.readRequest:
    case AttOpcode.readBlobRequest:
    case AttOpcode.readMultipleRequest:
    case AttOpcode.readByGroupTypeRequest:
    case AttOpcode.writeRequest:
    case AttOpcode.prepareWriteRequest:
    case AttOpcode.executeWriteRequest:
    case AttOpcode.readMultipleVariableRequest:
      return 'request';
    case AttOpcode.handleValueIndication:
      return 'indication';
    default:
      return isCommandOpcode(opcode) ? 'command' : 'other';
  }
}
