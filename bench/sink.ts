/**
 * A controller that "consumes instantly", as seen from a host's transport: ACL packets the host
 * writes for the sunk connection handles are taken at once (counted, never sent on) and answered
 * with Number Of Completed Packets on the next microtask, so the host's own path is all that is
 * measured. Everything else passes through to the real (virtual) controller, which is how the
 * connection, the MTU exchange and the subscription were set up beforehand.
 *
 * The sink assumes one whole H:4 packet per write: true of our driver (one write per packet) and
 * of ble-host (its transport contract). A write that is not a whole ACL packet passes through.
 */
import { EventEmitter } from 'node:events';
import { TypedEmitter } from '../src/util/emitter.js';
import { encodeEvent } from '../src/hci/events.js';
import { encodeH4, H4Framer, H4Type } from '../src/hci/h4.js';
import type { Transport, TransportEvents } from '../src/hci/transport.js';

const RESOLVED: Promise<void> = Promise.resolve();

/** Connection handles are 12 bits. Core 5.4 Vol 4 Part E 5.4.2. */
const HANDLES = 0x1000;

/**
 * Number Of Completed Packets for `n` handles, as src/hci/events.ts lays it out (Num_Handles, then
 * a handle/count pair per handle). Core 5.4 Vol 4 Part E 7.7.19. Written by hand so that the sink
 * costs as little as possible; checked against the codec once (see {@link AclSink}).
 */
function encodeNocp(handles: ArrayLike<number>, counts: ArrayLike<number>, from: number, n: number): Uint8Array {
  const pkt = new Uint8Array(3 + 1 + 4 * n);
  pkt[0] = H4Type.Event;
  pkt[1] = 0x13;
  pkt[2] = 1 + 4 * n;
  pkt[3] = n;
  for (let i = 0; i < n; i++) {
    const h = handles[from + i] as number;
    const c = counts[from + i] as number;
    const o = 4 + 4 * i;
    pkt[o] = h & 0xff;
    pkt[o + 1] = h >> 8;
    pkt[o + 2] = c & 0xff;
    pkt[o + 3] = c >> 8;
  }
  return pkt;
}

/** Takes ACL packets for chosen handles and answers them with Number Of Completed Packets. */
export class AclSink {
  private readonly sunk = new Uint8Array(HANDLES);
  private readonly pending = new Uint16Array(HANDLES);
  private readonly pendingHandles: number[] = [];
  private readonly counts: number[] = [];
  private readonly single = new Map<number, Uint8Array>();
  private sunkCount = 0;
  private scheduled = false;
  /** ACL packets and H:4 bytes taken, and Number Of Completed Packets events sent for them. */
  packets = 0;
  bytes = 0;
  events = 0;

  /**
   * @param deliver hands an event to the host as if the controller had sent it
   * @param asReceived makes an encoded event the kind of array the host's transport receives
   *   (a Buffer for ble-host), once per event encoded, not per delivery
   */
  constructor(
    private readonly deliver: (h4Packet: Uint8Array) => void,
    private readonly asReceived: (h4Packet: Uint8Array) => Uint8Array = (p) => p,
  ) {
    const mine = encodeNocp([0x0001, 0x0e02], [3, 0x0104], 0, 2);
    const codec = encodeH4(H4Type.Event, encodeEvent('NumberOfCompletedPackets', { handles: [{ handle: 0x0001, count: 3 }, { handle: 0x0e02, count: 0x0104 }] }));
    if (mine.length !== codec.length || mine.some((b, i) => b !== codec[i])) throw new Error('benchmark: the sink encodes Number Of Completed Packets differently from src/hci/events.ts');
  }

  /** From now on ACL packets for `handle` are consumed here. */
  sink(handle: number): void {
    if (this.sunk[handle & 0x0fff] === 0) this.sunkCount++;
    this.sunk[handle & 0x0fff] = 1;
  }

  /** ACL packets go to the controller again (every Number Of Completed Packets owed was already sent). */
  releaseAll(): void {
    this.sunk.fill(0);
    this.sunkCount = 0;
  }

  get active(): boolean {
    return this.sunkCount > 0;
  }

  /** True when `pkt` was an ACL packet for a sunk handle and was taken. */
  offer(pkt: Uint8Array): boolean {
    if (this.sunkCount === 0 || pkt.length < 5 || pkt[0] !== H4Type.Acl) return false;
    const handle = ((pkt[1] as number) | ((pkt[2] as number) << 8)) & 0x0fff;
    if (this.sunk[handle] === 0) return false;
    if (pkt.length !== 5 + ((pkt[3] as number) | ((pkt[4] as number) << 8))) return false;
    this.packets++;
    this.bytes += pkt.length;
    if (this.pending[handle]++ === 0) this.pendingHandles.push(handle);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.scheduled = false;
    const hs = this.pendingHandles;
    const n = hs.length;
    const counts = this.counts;
    counts.length = n;
    for (let i = 0; i < n; i++) {
      const h = hs[i] as number;
      counts[i] = this.pending[h] as number;
      this.pending[h] = 0;
    }
    if (n === 1) {
      // The common case (one link, one packet per microtask): the same few packets every time.
      const key = (hs[0] as number) * 0x10000 + (counts[0] as number);
      let pkt = this.single.get(key);
      if (!pkt) {
        pkt = this.asReceived(encodeNocp(hs, counts, 0, 1));
        if (this.single.size < 4096) this.single.set(key, pkt);
      }
      hs.length = 0;
      this.events++;
      this.deliver(pkt);
      return;
    }
    // One event carries at most 63 handles (255 bytes of parameters).
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i += 63) out.push(this.asReceived(encodeNocp(hs, counts, i, Math.min(63, n - i))));
    hs.length = 0;
    this.events += out.length;
    for (const pkt of out) this.deliver(pkt);
  }
}

/**
 * Our driver's transport with a sink in front: passes everything through until handles are sunk,
 * and lets a benchmark inject whole H:4 packets as if the controller had sent them.
 */
export class SinkTransport extends TypedEmitter<TransportEvents> implements Transport {
  readonly sink: AclSink;

  constructor(private readonly inner: Transport) {
    super();
    this.sink = new AclSink((p) => this.emit('data', p));
    inner.on('data', (d) => this.emit('data', d));
    inner.on('close', (err) => this.emit('close', err));
  }

  get description(): string {
    return `${this.inner.description} (bench sink)`;
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  write(data: Uint8Array): Promise<void> {
    if (this.sink.offer(data)) return RESOLVED;
    return this.inner.write(data);
  }

  /** Delivers one H:4 packet to the host as if the controller had sent it. */
  inject(h4Packet: Uint8Array): void {
    this.emit('data', h4Packet);
  }

  flushInput(): Promise<void> {
    return this.inner.flushInput();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * ble-host's transport contract (node_modules/ble-host/docs/api/ble-manager.md): an EventEmitter
 * with write(Buffer) taking one whole H:4 packet, and 'data' events carrying one whole packet.
 * Bridged to one of our byte transports (to a virtual controller) through our H:4 framer, with the
 * same sink in front. Everything ble-host receives (the controller's bytes, the sink's Number Of
 * Completed Packets, injected packets) goes through that framer, as everything our driver receives
 * goes through its own; the framer's packets are handed over as Buffer views of the received bytes
 * (no copy), as a serial transport written for ble-host would.
 */
export class BleHostTransport extends EventEmitter {
  readonly sink: AclSink;
  private readonly framer: H4Framer;

  constructor(private readonly inner: Transport) {
    super();
    // Number Of Completed Packets from the sink goes through the framer too, as it does for our driver.
    this.sink = new AclSink((p) => this.framer.push(p), asBuffer);
    // A chunk that is exactly one packet comes out of the framer as it went in: a Buffer needs no wrapping.
    this.framer = new H4Framer({ direction: 'host', onPacket: (p) => this.emit('data', asBuffer(p)) });
    inner.on('data', (d) => this.framer.push(d));
    inner.on('close', () => this.emit('close'));
  }

  write(packet: Buffer): void {
    if (this.sink.offer(packet)) return;
    this.inner.write(new Uint8Array(packet)).catch(() => undefined);
  }

  /**
   * Delivers the bytes of one H:4 packet to ble-host as if the controller had sent them: through
   * the same H:4 framer as everything else the controller sends, so ble-host's side of the
   * benchmark starts from transport bytes, as ours does (our driver frames its own input). Pass a
   * Buffer, as a transport written for ble-host would receive.
   */
  inject(h4Packet: Buffer): void {
    this.framer.push(h4Packet);
  }
}

/** `p` as a Buffer over the same bytes (itself when it is one already). */
function asBuffer(p: Uint8Array): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
}
