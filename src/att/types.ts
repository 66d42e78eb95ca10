/**
 * What ATT needs from the layers around it, and the permission vocabulary shared with GATT.
 *
 * The composition root gives each connection's bearer an {@link AttLower}: a way to send one ATT
 * PDU on the fixed channel 0x0004 (L2CAP reassembles and fragments), the link's security as SMP
 * maintains it, and the peer's addresses. Inputs from below are the bearer's/server's `onPdu`,
 * `onSecurityChanged` and `onDisconnected` methods.
 */
import type { Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import type { LinkSecurity } from '../smp/link-security.js';
import { attErrorName } from './pdu.js';

export interface AttLower {
  /** Sends one whole ATT PDU; resolves when it was handed to the controller (ACL credits), rejects when the link is gone. */
  send(pdu: Uint8Array): Promise<void>;
  /** The link's security, read at every access check. */
  readonly security: LinkSecurity;
  /** The peer's address on air (may be a resolvable private address). */
  readonly peer: Address;
  /** The peer's resolved identity address when it is bonded (CCCD and caching state persist under it). */
  peerIdentity(): Address | undefined;
  /** Told whenever we answered 0x05 Insufficient Authentication or 0x0F Insufficient Encryption (SMP's Security Request policy may act). */
  onSecurityRejection?(code: number): void;
}

/** Default ATT_MTU on an LE fixed channel. Core 5.4 Vol 3 Part G 5.2.1. */
export const ATT_DEFAULT_MTU = 23;
/** Largest ATT_MTU we offer: a 512-byte value plus the 5-byte Prepare Write header. */
export const ATT_MAX_MTU = 517;
/** Maximum length of an attribute value. Core 5.4 Vol 3 Part F 3.2.9. */
export const ATT_MAX_VALUE_LENGTH = 512;
/** ATT transaction timeout. Core 5.4 Vol 3 Part F 3.3.3. */
export const ATT_TRANSACTION_TIMEOUT_MS = 30_000;

/**
 * The security an access needs, one per direction per attribute (LE security mode 1,
 * Core 5.4 Vol 3 Part C 10.2.1):
 * - `none`: open;
 * - `encrypted`: an encrypted link (level 2+) with a key of at least the server's minimum size;
 * - `authenticated`: encrypted with a MITM-protected key (level 3+);
 * - `secureConnections`: level 4, an authenticated LE Secure Connections key of 16 bytes;
 * - `notPermitted`: never (0x02 Read Not Permitted / 0x03 Write Not Permitted).
 */
export type AccessRequirement = 'none' | 'encrypted' | 'authenticated' | 'secureConnections' | 'notPermitted';

export const ACCESS_REQUIREMENTS: readonly AccessRequirement[] = ['none', 'encrypted', 'authenticated', 'secureConnections', 'notPermitted'];

/** Read and write permissions of one attribute. Core 5.4 Vol 3 Part F 3.2.5. */
export interface AttributePermissions {
  readonly read: AccessRequirement;
  readonly write: AccessRequirement;
  /** Ask the application's authorization hook before a read (0x08 Insufficient Authorization when it refuses). */
  readonly authorizeRead?: boolean;
  /** Ask the application's authorization hook before a write. */
  readonly authorizeWrite?: boolean;
}

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
