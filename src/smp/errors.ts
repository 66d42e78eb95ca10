/** SMP errors: the layer is 'smp' and the spec code is the Pairing Failed reason (Core 5.4 Vol 3 Part H 3.5.5). */
import { WearableHostError } from '../util/errors.js';
import { smpReasonName } from './pdu.js';

export class SmpError extends WearableHostError {
  /** The Pairing Failed reason; undefined for a timeout or a lost link. */
  readonly reason: number | undefined;

  constructor(reason: number | undefined, message: string, options?: { cause?: unknown }) {
    super('smp', message, options);
    this.name = 'SmpError';
    this.reason = reason;
  }

  /** `0x03 (Authentication Requirements)`, or `no reason`. */
  get reasonText(): string {
    return this.reason === undefined ? 'no reason' : `0x${this.reason.toString(16).padStart(2, '0')} (${smpReasonName(this.reason)})`;
  }
}
