/**
 * Deadlines and cancellation for the library's awaitable helpers. Every wait names what it waited
 * for, so a failing hardware-in-the-loop test says "waited 5000 ms for the wearable's 'paired'".
 * The deadline timer is a normal (ref'd) timer while a wait is pending, so a test awaiting it is
 * not cut short by an empty event loop; it is cleared as soon as the wait settles.
 */
import { WearableHostError } from '../util/errors.js';

export type WaitErrorKind = 'timeout' | 'aborted' | 'closed';

/** A wait that did not complete: it timed out, its AbortSignal fired, or the object was closed. */
export class WaitError extends WearableHostError {
  constructor(
    readonly kind: WaitErrorKind,
    /** What was waited for, e.g. `the wearable's 'paired' event`, `phone.connect("Noira Band")`. */
    readonly waitedFor: string,
    /** The timeout, for kind 'timeout'. */
    readonly timeoutMs?: number,
    options?: { cause?: unknown },
  ) {
    super(
      'cli',
      kind === 'timeout'
        ? `waited ${timeoutMs} ms for ${waitedFor}: it did not happen`
        : kind === 'aborted'
          ? `gave up waiting for ${waitedFor}: the AbortSignal fired`
          : `gave up waiting for ${waitedFor}: closed`,
      options,
    );
    this.name = 'WaitError';
  }
}

/** Options of every awaitable helper. */
export interface WaitOptions {
  /** Reject with a WaitError (kind 'timeout') after this many ms. Each helper documents its default. */
  timeoutMs?: number;
  /** Reject with a WaitError (kind 'aborted') when this fires. */
  signal?: AbortSignal;
}

/**
 * Settles with `p`, or rejects with a WaitError when the timeout passes or the signal fires;
 * `onGiveUp` runs then (e.g. to cancel a connection attempt).
 */
export function withDeadline<T>(p: Promise<T>, waitedFor: string, o: WaitOptions, defaultTimeoutMs: number, onGiveUp?: () => void): Promise<T> {
  const timeoutMs = o.timeoutMs ?? defaultTimeoutMs;
  if (o.signal?.aborted) {
    p.catch(() => undefined);
    onGiveUp?.();
    return Promise.reject(new WaitError('aborted', waitedFor, undefined, { cause: o.signal.reason }));
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    };
    const giveUp = (err: WaitError): void => {
      if (done) return;
      finish();
      p.catch(() => undefined);
      onGiveUp?.();
      reject(err);
    };
    const onAbort = (): void => giveUp(new WaitError('aborted', waitedFor, undefined, { cause: o.signal?.reason }));
    const timer = setTimeout(() => giveUp(new WaitError('timeout', waitedFor, timeoutMs)), timeoutMs);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        if (done) return;
        finish();
        resolve(v);
      },
      (err: unknown) => {
        if (done) return;
        finish();
        reject(err);
      },
    );
  });
}
