/**
 * A {@link Transport} wrapper that behaves like a UART wire: bytes move at a given baud rate
 * (8N1 = 10 bit times per byte) in each direction independently, timed on the injected Clock,
 * and can be garbled (as with a wrong baud rate) or dropped. Benchmarks use it to put the
 * 1,000,000 baud ceiling between the host and the virtual controller; `doctor` tests use the
 * impairments.
 */
import { TypedEmitter } from '../util/emitter.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { randomInt, type RandomSource } from '../util/random.js';
import { Fifo } from '../util/fifo.js';
import type { Transport, TransportEvents } from './transport.js';
import { TransportError } from './transport-errors.js';

export interface Impairment {
  /** Probability (0..1) that a byte is replaced by a different, random byte. */
  garble?: number;
  /** Probability (0..1) that a byte is lost. */
  drop?: number;
  /** Replaces every byte through this function (e.g. a fixed wrong-baud mapping). Applied before garble/drop. */
  map?: (byte: number) => number;
}

export interface PacedLinkOptions {
  clock: Clock;
  /** Bits per second. Default 1,000,000. */
  baudRate?: number;
  /** Bit times per byte: 10 for 8N1 (start + 8 data + stop). */
  bitsPerByte?: number;
  /**
   * Bytes are handed on in slices of at most this many, each when its last byte has been
   * clocked out. Default 32. Smaller is more faithful and costs more timers.
   */
  sliceBytes?: number;
  /** Impairment of bytes going out (write -> inner transport). */
  tx?: Impairment;
  /** Impairment of bytes coming in (inner transport -> 'data'). */
  rx?: Impairment;
  /** Required when any garble/drop probability is above 0. */
  random?: RandomSource;
}

export interface PacedLinkStats {
  txBytes: number;
  rxBytes: number;
  garbled: number;
  dropped: number;
}

interface Slice {
  data: Uint8Array;
  /** Virtual time at which the last byte of the slice has been clocked out. */
  at: number;
  /** Resolves the write() that produced this slice, if it is its last slice. */
  done?: () => void;
  fail?: (err: Error) => void;
}

/** One direction of the wire: a FIFO of slices released in time order. */
class Lane {
  private readonly q = new Fifo<Slice>();
  private timer: TimerHandle | undefined;
  /** Time at which the line becomes idle. */
  busyUntil = 0;

  constructor(
    private readonly clock: Clock,
    private readonly release: (s: Slice) => void,
  ) {}

  push(s: Slice): void {
    this.q.push(s);
    if (this.timer === undefined) this.arm();
  }

  private arm(): void {
    const s = this.q.peek();
    if (!s) return;
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, s.at - this.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (let s = this.q.peek(); s && s.at <= now + 1e-9; s = this.q.peek()) {
      this.q.shift();
      this.release(s);
    }
    this.arm();
  }

  /** Drops everything queued; writers waiting on dropped slices get `err` (or resolve when undefined). */
  clear(err?: Error): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const s of this.q.drain()) {
      if (err) s.fail?.(err);
      else s.done?.();
    }
    this.busyUntil = Math.min(this.busyUntil, this.clock.now());
  }
}

/** Wraps `inner` so both directions run at `baudRate` and suffer the configured impairments. */
export class PacedTransport extends TypedEmitter<TransportEvents> implements Transport {
  readonly description: string;
  readonly stats: PacedLinkStats = { txBytes: 0, rxBytes: 0, garbled: 0, dropped: 0 };
  private readonly clock: Clock;
  private readonly msPerByte: number;
  private readonly slice: number;
  private readonly txLane: Lane;
  private readonly rxLane: Lane;
  private closed = false;

  constructor(
    private readonly inner: Transport,
    private readonly opts: PacedLinkOptions,
  ) {
    super();
    this.clock = opts.clock;
    const baud = opts.baudRate ?? 1_000_000;
    this.msPerByte = ((opts.bitsPerByte ?? 10) * 1000) / baud;
    this.slice = Math.max(1, opts.sliceBytes ?? 32);
    this.description = `${inner.description} (paced ${baud} baud)`;
    for (const imp of [opts.tx, opts.rx]) {
      if (((imp?.garble ?? 0) > 0 || (imp?.drop ?? 0) > 0) && !opts.random) {
        throw new TypeError('PacedTransport: garble/drop need a RandomSource (opts.random)');
      }
    }
    this.txLane = new Lane(this.clock, (s) => {
      if (this.closed) return;
      const data = this.impair(s.data, this.opts.tx);
      const p = data.length > 0 ? this.inner.write(data) : Promise.resolve();
      if (s.done || s.fail) p.then(s.done, s.fail);
      else p.catch(() => {}); // the error reaches the writer through its last slice or 'close'
    });
    this.rxLane = new Lane(this.clock, (s) => {
      if (this.closed) return;
      const data = this.impair(s.data, this.opts.rx);
      if (data.length > 0) this.emit('data', data);
    });
    inner.on('data', (d) => this.onInnerData(d));
    inner.on('close', (err) => this.onInnerClose(err));
  }

  get isOpen(): boolean {
    return !this.closed && this.inner.isOpen;
  }

  /** Time in ms the wire needs for `n` bytes at this rate. */
  wireTimeMs(n: number): number {
    return n * this.msPerByte;
  }

  /** Queues `data` on the wire; resolves when its last byte has been handed to the inner transport. */
  write(data: Uint8Array): Promise<void> {
    if (!this.isOpen) return Promise.reject(new TransportError('closed', this.description, `${this.description} is closed: cannot write`));
    if (data.length === 0) return Promise.resolve();
    this.stats.txBytes += data.length;
    const copy = data.slice();
    return new Promise<void>((resolve, reject) => {
      this.schedule(this.txLane, copy, resolve, reject);
    });
  }

  private onInnerData(d: Uint8Array): void {
    if (this.closed) return;
    this.stats.rxBytes += d.length;
    this.schedule(this.rxLane, d);
  }

  /** Cuts `data` into slices timed back to back after whatever the lane already carries. */
  private schedule(lane: Lane, data: Uint8Array, done?: () => void, fail?: (err: Error) => void): void {
    let t = Math.max(lane.busyUntil, this.clock.now());
    for (let o = 0; o < data.length; o += this.slice) {
      const end = Math.min(data.length, o + this.slice);
      t += (end - o) * this.msPerByte;
      const s: Slice = { data: data.subarray(o, end), at: t };
      if (end === data.length) {
        if (done) s.done = done;
        if (fail) s.fail = fail;
      }
      lane.push(s);
    }
    lane.busyUntil = t;
  }

  private impair(data: Uint8Array, imp: Impairment | undefined): Uint8Array {
    if (!imp) return data;
    const garble = imp.garble ?? 0;
    const drop = imp.drop ?? 0;
    if (!imp.map && garble <= 0 && drop <= 0) return data;
    const out = new Uint8Array(data.length);
    let n = 0;
    const rng = this.opts.random;
    for (let i = 0; i < data.length; i++) {
      let b = data[i] as number;
      if (imp.map) b = imp.map(b) & 0xff;
      if (rng && drop > 0 && randomInt(rng, 1_000_000) < drop * 1_000_000) {
        this.stats.dropped++;
        continue;
      }
      if (rng && garble > 0 && randomInt(rng, 1_000_000) < garble * 1_000_000) {
        b ^= 1 + randomInt(rng, 255); // always a different byte
        this.stats.garbled++;
      }
      out[n++] = b;
    }
    return out.subarray(0, n);
  }

  /** Drops bytes still on the incoming wire, then flushes the inner transport. */
  flushInput(): Promise<void> {
    this.rxLane.clear();
    return this.inner.flushInput();
  }

  /** Closes the inner transport; bytes still on the wire in either direction are lost. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.shutdown(new TransportError('closed', this.description, `${this.description} closed before the data went out`));
    await this.inner.close();
    this.emit('close', undefined);
  }

  private shutdown(err: Error): void {
    this.closed = true;
    this.txLane.clear(err);
    this.rxLane.clear();
  }

  private onInnerClose(err: Error | undefined): void {
    if (this.closed) return;
    this.shutdown(err ?? new TransportError('closed', this.description, `${this.description} closed`));
    this.emit('close', err);
  }
}

/** `new PacedTransport(inner, opts)`. */
export function pacedTransport(inner: Transport, opts: PacedLinkOptions): PacedTransport {
  return new PacedTransport(inner, opts);
}
