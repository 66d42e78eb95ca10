/**
 * Errors raised by transports (serial, TCP, in-memory). The message names the port and says
 * what to try; `kind` lets callers (the CLI, `doctor`) react without parsing text.
 */
import { WearableHostError } from '../util/errors.js';

export type TransportErrorKind =
  /** The port or host does not exist, or nothing listens there. */
  | 'not-found'
  /** The OS refused access (serial: not in the dialout group). */
  | 'permission'
  /** Another process holds the port (a terminal, another host, ModemManager). */
  | 'busy'
  /** The link went away while in use (USB unplug, peer closed the socket). */
  | 'lost'
  /** Connecting took longer than allowed. */
  | 'timeout'
  /** Any other I/O failure. */
  | 'io'
  /** Used after close(). */
  | 'closed';

export class TransportError extends WearableHostError {
  constructor(
    readonly kind: TransportErrorKind,
    /** The port path or URL, as the user gave it. */
    readonly port: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('transport', message, options);
    this.name = 'TransportError';
  }
}

/** The `code` of a Node system error (`ENOENT`, `ECONNREFUSED`...), if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

/** The error's message, or its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
