/**
 * The ATT bearer's contract with the layers around it (what it needs, its options, events and
 * counters), ATT's limits, and its errors.
 *
 * The composition root gives each connection's bearer an {@link AttLower}: a way to send one ATT
 * PDU on the fixed channel 0x0004 (L2CAP reassembles and fragments) and the peer's address. Inputs
 * from below are the bearer's `onPdu` and `onDisconnected` methods; above it sits an
 * {@link AttRequestHandler} (the GATT server). What the GATT server needs
 * besides (the link's security, the peer's identity) is its own lower: `GattServerLower` in
 * src/gatt/server.ts.
 */
import type { Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import { attErrorName, type AttCommand, type AttRequest } from './pdu.js';

export interface AttLower {
  /** Sends one whole ATT PDU; resolves when it was handed to the controller (ACL credits), rejects when the link is gone. */
  send(pdu: Uint8Array): Promise<void>;
  /** The peer's address on air (may be a resolvable private address). */
  readonly peer: Address;
}

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

/** Default ATT_MTU on an LE fixed channel. Core 5.4 Vol 3 Part G 5.2.1. */
export const ATT_DEFAULT_MTU = 23;
/** Largest ATT_MTU we offer: a 512-byte value plus the 5-byte Prepare Write header. */
export const ATT_MAX_MTU = 517;
/** Maximum length of an attribute value. Core 5.4 Vol 3 Part F 3.2.9. */
export const ATT_MAX_VALUE_LENGTH = 512;
/** ATT transaction timeout. Core 5.4 Vol 3 Part F 3.3.3. */
export const ATT_TRANSACTION_TIMEOUT_MS = 30_000;

/** A spec error from the ATT layer: code and handle as they go (or came) on the wire. */
export class AttError extends WearableHostError {
  constructor(
    readonly code: number,
    readonly handle: number,
    message?: string,
  ) {
    super('att', message ?? `ATT error 0x${code.toString(16).padStart(2, '0')} (${attErrorName(code)}) at handle 0x${handle.toString(16).padStart(4, '0')}`);
    this.name = 'AttError';
  }
}

/** Why a bearer stopped carrying PDUs. */
export type AttBearerCloseReason = 'timeout' | 'disconnected';

/** Raised for operations on a bearer that is closed (transaction timeout or disconnection). */
export class AttBearerError extends WearableHostError {
  constructor(
    readonly reason: AttBearerCloseReason | 'queue-full',
    message: string,
  ) {
    super('att', message);
    this.name = 'AttBearerError';
  }
}
