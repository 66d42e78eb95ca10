/**
 * The security state of one link as the layers above SMP see it (ATT permission checks, GATT CCCD
 * persistence). SMP owns and updates it; ATT only reads it.
 */

/** Zephyr's security levels. L1 no encryption; L2 encrypted, unauthenticated (Just Works);
 * L3 encrypted, authenticated (MITM: passkey / numeric comparison); L4 L3 with LE Secure Connections
 * and a 16-byte key. Core 5.4 Vol 3 Part C 10.2.1 (LE security mode 1). */
export type SecurityLevel = 1 | 2 | 3 | 4;

export interface LinkSecurity {
  /** The link is encrypted right now. */
  readonly encrypted: boolean;
  /** Encryption key size in bytes (7..16) while encrypted, 0 otherwise. */
  readonly keySize: number;
  /** The key in use came from a MITM-protected pairing. */
  readonly authenticated: boolean;
  /** The key in use came from LE Secure Connections pairing. */
  readonly secureConnections: boolean;
  /** Security level of the link now. */
  readonly level: SecurityLevel;
  /**
   * Whether an LTK exists for this peer (a stored bond, or one from a pairing on this connection).
   * Decides between ATT 0x05 Insufficient Authentication (no key: the client should pair) and
   * 0x0F Insufficient Encryption (key exists: the client should encrypt). docs/field-notes.md, Zephyr gatt.c.
   */
  hasLtk(): boolean;
}

/** A link with no security: L1, no key. */
export const INSECURE_LINK: LinkSecurity = Object.freeze({
  encrypted: false,
  keySize: 0,
  authenticated: false,
  secureConnections: false,
  level: 1 as SecurityLevel,
  hasLtk: () => false,
});

/** Derives the level from the parts. */
export function securityLevelOf(s: { encrypted: boolean; authenticated: boolean; secureConnections: boolean; keySize: number }): SecurityLevel {
  if (!s.encrypted) return 1;
  if (!s.authenticated) return 2;
  return s.secureConnections && s.keySize === 16 ? 4 : 3;
}
