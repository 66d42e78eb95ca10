/**
 * Errors raised by the bond store. Every message names the file (or `memory`), says what is wrong
 * and what the user can do next.
 */
import { WearableHostError } from '../util/errors.js';

/** What went wrong, for code that reacts to it (the CLI, tests). */
export type BondStoreErrorCode =
  /** The file is not valid JSON. */
  | 'syntax'
  /** The file is JSON but a field fails validation. */
  | 'invalid'
  /** The file was written by a newer schema than this build reads. */
  | 'unsupportedVersion'
  /** The OS refused access (EACCES / EPERM). */
  | 'permission'
  /** Another live process holds the lock. */
  | 'locked'
  /** Any other I/O failure (disk full, read-only file system ...). */
  | 'io'
  /** A record handed to put()/update() or setLocalIdentity() is malformed (a bug in the caller). */
  | 'invalidRecord'
  /** The store was closed, or opened read-only, and cannot be written. */
  | 'closed'
  | 'readOnly'
  /** The store holds `maxBonds` bonds and refuses a new peer (the default; eviction is an explicit option). */
  | 'full';

/** An error of the bond store layer. */
export class BondStoreError extends WearableHostError {
  constructor(
    readonly code: BondStoreErrorCode,
    /** The bond file concerned, when there is one. */
    readonly path: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('bonds', message, options);
    this.name = 'BondStoreError';
  }
}

/** The recovery advice for a bond file that cannot be used as it is. */
export function recoveryAdvice(path: string): string {
  return (
    `The file was left untouched. To start again with no bonds, move it aside (mv '${path}' '${path}.broken') ` +
    `and restart; every phone bonded before will then need to forget this device in its Bluetooth settings ` +
    `(iOS: Settings > Bluetooth > (i) > Forget This Device) before it can pair again.`
  );
}
