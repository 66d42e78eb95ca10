/**
 * A small typed event emitter: `TypedEmitter<{ connected: [Connection]; closed: [Error | undefined] }>`.
 * Listener exceptions are caught and routed to the 'listenerError' hook so one bad listener cannot
 * take the stack down from inside a protocol handler.
 */

export type EventMap = { [event: string]: unknown[] };
type Listener<A extends unknown[]> = (...args: A) => void;

export class TypedEmitter<E extends EventMap> {
  private listeners: { [K in keyof E]?: Listener<E[K]>[] } = {};
  /** Called when a listener throws; defaults to rethrowing on the next tick so the bug is not silent. */
  onListenerError: (err: unknown, event: string) => void = (err) => {
    queueMicrotask(() => {
      throw err;
    });
  };

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    (this.listeners[event] ??= []).push(fn);
    return this;
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    const wrap: Listener<E[K]> = (...args) => {
      this.off(event, wrap);
      fn(...args);
    };
    return this.on(event, wrap);
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    const l = this.listeners[event];
    if (l) {
      const i = l.indexOf(fn);
      if (i >= 0) l.splice(i, 1);
    }
    return this;
  }

  removeAllListeners(): void {
    this.listeners = {};
  }

  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners[event]?.length ?? 0;
  }

  emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const l = this.listeners[event];
    if (!l || l.length === 0) return false;
    if (l.length === 1) {
      // The common case on the data path (one listener per event): no snapshot of the list needed.
      const fn = l[0] as Listener<E[K]>;
      try {
        fn(...args);
      } catch (err) {
        this.onListenerError(err, String(event));
      }
      return true;
    }
    // A snapshot: listeners added or removed by a listener take effect from the next emit.
    for (const fn of [...l]) {
      try {
        fn(...args);
      } catch (err) {
        this.onListenerError(err, String(event));
      }
    }
    return true;
  }

  /** Resolves with the event's arguments the next time it fires. */
  wait<K extends keyof E>(event: K): Promise<E[K]> {
    return new Promise((resolve) => this.once(event, (...args) => resolve(args)));
  }
}
