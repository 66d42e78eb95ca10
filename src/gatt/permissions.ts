/**
 * Attribute permissions: the vocabulary a database definition uses (Core 5.4 Vol 3 Part F 3.2.5,
 * LE security mode 1 of Vol 3 Part C 10.2.1) and the check of one requirement against a link's
 * security.
 *
 * The server checks an access in this order (Core 5.4 Vol 3 Part F 3.4.4-3.4.6, Vol 3 Part C 10.2.1):
 * 1. `notPermitted` -> 0x02 Read Not Permitted / 0x03 Write Not Permitted.
 * 2. A security requirement on an unencrypted link -> 0x05 Insufficient Authentication when no
 *    LTK exists for the peer (the client should pair), 0x0F Insufficient Encryption when one
 *    does (the client should encrypt) (docs/field-notes.md "Error semantics").
 * 3. Encrypted, but `authenticated` needs a MITM key and `secureConnections` an authenticated LE
 *    Secure Connections key -> 0x05.
 * 4. Encrypted with a key shorter than the minimum (16 unless configured; always 16 for
 *    `secureConnections`) -> 0x0C Encryption Key Size Too Short.
 * 5. Authorization required and refused by the application -> 0x08 (the server asks the hook).
 */
import type { LinkSecurity } from '../smp/link-security.js';
import { AttErrorCode } from '../att/pdu.js';

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

/**
 * 0 when `req` is met by the link security `s`, else the ATT error code (steps 1-4 of the order
 * in the file comment). `minKeySize` is the server's minimum for `encrypted` and `authenticated`.
 */
export function requirementCode(req: AccessRequirement, op: 'read' | 'write', s: LinkSecurity, minKeySize: number): number {
  switch (req) {
    case 'none':
      return 0;
    case 'notPermitted':
      return op === 'read' ? AttErrorCode.readNotPermitted : AttErrorCode.writeNotPermitted;
    default:
      if (!s.encrypted) return s.hasLtk() ? AttErrorCode.insufficientEncryption : AttErrorCode.insufficientAuthentication;
      if ((req === 'authenticated' || req === 'secureConnections') && !s.authenticated) return AttErrorCode.insufficientAuthentication;
      if (req === 'secureConnections' && !s.secureConnections) return AttErrorCode.insufficientAuthentication;
      if (s.keySize < (req === 'secureConnections' ? 16 : minKeySize)) return AttErrorCode.encryptionKeySizeTooShort;
      return 0;
  }
}

/** Step 5: the application's answer as an ATT code (0 or 0x08 Insufficient Authorization). */
export function authorizationCode(ok: boolean): number {
  return ok ? 0 : AttErrorCode.insufficientAuthorization;
}
