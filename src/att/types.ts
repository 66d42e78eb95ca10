/**
 * What an ATT bearer needs from the layers around it, ATT's limits, and its errors.
 *
 * The composition root gives each connection's bearer an {@link AttLower}: a way to send one ATT
 * PDU on the fixed channel 0x0004 (L2CAP reassembles and fragments) and the peer's address. Inputs
 * from below are the bearer's `onPdu` and `onDisconnected` methods. What the GATT server needs
 * besides (the link's security, the peer's identity) is its own lower: `GattServerLower` in
 * src/gatt/server.ts.
 */
import type { Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import { attErrorName } from './pdu.js';

export interface AttLower {
  /** Sends one whole ATT PDU; resolves when it was handed to the controller (ACL credits), rejects when the link is gone. */
  send(pdu: Uint8Array): Promise<void>;
  /** The peer's address on air (may be a resolvable private address). */
  readonly peer: Address;
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
