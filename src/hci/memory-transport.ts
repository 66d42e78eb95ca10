/**
 * Two in-memory {@link Transport}s wired back to back: what one writes, the other receives,
 * asynchronously and in order. Used by tests, the simulator (host <-> virtual controller) and
 * interop runs against other stacks.
 */
import { TypedEmitter } from '../util/emitter.js';
import type { Transport, TransportEvents } from './transport.js';
import { TransportError } from './transport-errors.js';

export interface MemoryTransportOptions {
  /**
   * When queued bytes reach the other side: `'microtask'` (default; a whole request/response
   * exchange settles within one event-loop turn, which keeps VirtualClock runs deterministic)
   * or `'immediate'` (setImmediate; lets I/O and timers interleave with long transfers).
   */
  delivery?: 'microtask' | 'immediate';
  /** Sees every chunk as it is delivered: `from` and `to` are the transports' names. */
  tap?: (from: string, to: string, bytes: Uint8Array) => void;
  /**
   * Splits every delivered chunk into pieces of at most this many bytes, so consumers see
   * arbitrary chunking as from a real UART. Default: chunks arrive as written.
   */
  maxChunk?: number;
  /** Copy written bytes (default true), so a writer may reuse its buffer after write() returns. */
  copy?: boolean;
}

interface Pending {
  data: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** One end of an in-memory pair. Create with {@link createMemoryTransportPair}. */
export class MemoryTransport extends TypedEmitter<TransportEvents> implements Transport {
  readonly description: string;
  private open = true;
  /** Bytes waiting to be delivered to this end (written by the peer). */
  private inbox: Pending[] = [];
  private inboxHead = 0;
  private scheduled = false;
  private peer!: MemoryTransport;
  /** Error to report once the inbox is drained (peer closed). */
  private closeAfterDrain: { err: Error | undefined } | undefined;
  bytesWritten = 0;
  bytesReceived = 0;

  /** @internal */
  constructor(
    readonly name: string,
    private readonly opts: MemoryTransportOptions,
  ) {
    super();
    this.description = `memory:${name}`;
  }

  /** @internal */
  link(peer: MemoryTransport): void {
    this.peer = peer;
  }

  get isOpen(): boolean {
    return this.open;
  }

  write(data: Uint8Array): Promise<void> {
    if (!this.open) {
      return Promise.reject(new TransportError('closed', this.description, `${this.description} is closed: cannot write`));
    }
    if (!this.peer.open) {
      return Promise.reject(new TransportError('lost', this.description, `${this.description}: the other end (${this.peer.description}) is closed`));
    }
    this.bytesWritten += data.length;
    const bytes = this.opts.copy === false ? data : data.slice();
    return new Promise<void>((resolve, reject) => {
      this.peer.enqueue({ data: bytes, resolve, reject });
    });
  }

  /** Drops bytes the peer wrote that were not delivered yet; their writers' promises resolve. */
  flushInput(): Promise<void> {
    for (let i = this.inboxHead; i < this.inbox.length; i++) (this.inbox[i] as Pending).resolve();
    this.inbox = [];
    this.inboxHead = 0;
    return Promise.resolve();
  }

  /** Number of bytes written by the peer and not yet delivered here. */
  get pendingInput(): number {
    let n = 0;
    for (let i = this.inboxHead; i < this.inbox.length; i++) n += (this.inbox[i] as Pending).data.length;
    return n;
  }

  /**
   * Closes this end: emits 'close' here (no error); the peer receives what was already written
   * to it, then closes with a 'lost' {@link TransportError}.
   */
  close(): Promise<void> {
    if (!this.open) return Promise.resolve();
    this.open = false;
    // Undelivered input to a closed end is dropped: reject its writers.
    const err = new TransportError('closed', this.description, `${this.description} closed before the data was delivered`);
    for (let i = this.inboxHead; i < this.inbox.length; i++) (this.inbox[i] as Pending).reject(err);
    this.inbox = [];
    this.inboxHead = 0;
    this.peer.peerClosed(this.description);
    this.emit('close', undefined);
    return Promise.resolve();
  }

  private peerClosed(by: string): void {
    if (!this.open) return;
    this.closeAfterDrain = {
      err: new TransportError('lost', this.description, `${this.description}: peer closed (${by} closed its end)`),
    };
    this.schedule();
  }

  private enqueue(p: Pending): void {
    this.inbox.push(p);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.opts.delivery === 'immediate') setImmediate(() => this.drain());
    else queueMicrotask(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    const max = this.opts.maxChunk ?? 0;
    while (this.open && this.inboxHead < this.inbox.length) {
      const p = this.inbox[this.inboxHead++] as Pending;
      if (this.inboxHead > 64 && this.inboxHead * 2 > this.inbox.length) {
        this.inbox = this.inbox.slice(this.inboxHead);
        this.inboxHead = 0;
      }
      this.bytesReceived += p.data.length;
      if (max > 0 && p.data.length > max) {
        for (let o = 0; o < p.data.length && this.open; o += max) this.deliver(p.data.subarray(o, Math.min(o + max, p.data.length)));
      } else {
        this.deliver(p.data);
      }
      p.resolve();
    }
    if (this.open && this.inboxHead >= this.inbox.length) {
      this.inbox = [];
      this.inboxHead = 0;
      const c = this.closeAfterDrain;
      if (c) {
        this.closeAfterDrain = undefined;
        this.open = false;
        this.emit('close', c.err);
      }
    }
  }

  private deliver(bytes: Uint8Array): void {
    this.opts.tap?.(this.peer.name, this.name, bytes);
    this.emit('data', bytes);
  }
}

/**
 * Two transports back to back. `const [host, controller] = createMemoryTransportPair('host', 'controller')`.
 * A write on one end arrives as 'data' on the other, asynchronously and in order; closing one
 * end closes the other with a 'lost' error ("peer closed").
 */
export function createMemoryTransportPair(
  nameA: string,
  nameB: string,
  opts: MemoryTransportOptions = {},
): [MemoryTransport, MemoryTransport] {
  const a = new MemoryTransport(nameA, opts);
  const b = new MemoryTransport(nameB, opts);
  a.link(b);
  b.link(a);
  return [a, b];
}
