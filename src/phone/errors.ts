/**
 * What a simulated phone reports to "its app" when something goes wrong: a kind the caller can
 * branch on and a message a user can act on (the Pairing Failed reason, HCI status or ATT error
 * code it carries is named after the spec: Core 5.4 Vol 3 Part H 3.5.5, Vol 1 Part F, Vol 3 Part F 3.4.1.1).
 */
import { WearableHostError } from '../util/errors.js';

export type PhoneErrorKind = 'peer-removed-pairing' | 'pairing-failed' | 'pairing-cancelled' | 'disconnected' | 'att' | 'not-found';

/** What the phone reports to "its app": the kind, and a message a user can act on. */
export class PhoneError extends WearableHostError {
  constructor(
    readonly kind: PhoneErrorKind,
    message: string,
    /** Pairing Failed reason, HCI status or ATT error code, as the kind says. */
    readonly code?: number,
  ) {
    super('smp', message);
    this.name = 'PhoneError';
  }
}
