/**
 * The base of every error the stack raises on purpose. Each layer subclasses it with its spec code
 * (`HciError(status, opcode)`, `AttError(code, handle)`, `SmpError(reason)`), and the message a user
 * reads says what happened, where (port or peer) and what to try.
 */
export type Layer = 'transport' | 'hci' | 'l2cap' | 'att' | 'gatt' | 'smp' | 'bonds' | 'sim' | 'cli' | 'diagnose';

export class WearableHostError extends Error {
  constructor(
    readonly layer: Layer,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WearableHostError';
  }
}
