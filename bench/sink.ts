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

/** Takes ACL packets for chosen handles and answers them with Number Of Completed Packets. */
export class AclSink {
  private readonly handles = new Set<number>();
  private readonly pending = new Map<number, number>();
  private readonly nocpCache = new Map<number, Uint8Array>();
  private scheduled = false;
  /** ACL packets and H:4 bytes taken. */
  packets = 0;
  bytes = 0;

  constructor(private readonly deliver: (h4Packet: Uint8Array) => void) {}

  /** From now on ACL packets for `handle` are consumed here. */
  sink(handle: number): void {
    this.handles.add(handle);
  }

  /** ACL packets go to the controller again (every Number Of Completed Packets owed was already sent). */
  releaseAll(): void {
    this.handles.clear();
  }

  get active(): boolean {
    return this.handles.size > 0;
  }

  /** True when `pkt` was an ACL packet for a sunk handle and was taken. */
  offer(pkt: Uint8Array): boolean {
    if (this.handles.size === 0 || pkt.length < 5 || pkt[0] !== H4Type.Acl) return false;
    const handle = ((pkt[1] as number) | ((pkt[2] as number) << 8)) & 0x0fff;
    if (!this.handles.has(handle)) return false;
    if (pkt.length !== 5 + ((pkt[3] as number) | ((pkt[4] as number) << 8))) return false;
    this.packets++;
    this.bytes += pkt.length;
    this.pending.set(handle, (this.pending.get(handle) ?? 0) + 1);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.size === 1) {
      const [handle, count] = this.pending.entries().next().value as [number, number];
      this.pending.clear();
      const key = handle * 0x10000 + count;
      let pkt = this.nocpCache.get(key);
      if (!pkt) {
        pkt = encodeH4(H4Type.Event, encodeEvent('NumberOfCompletedPackets', { handles: [{ handle, count }] }));
        if (this.nocpCache.size < 4096) this.nocpCache.set(key, pkt);
      }
      this.deliver(pkt);
      return;
    }
    const handles = [...this.pending.entries()].map(([handle, count]) => ({ handle, count }));
    this.pending.clear();
    // One event carries at most 63 handles (255-byte parameters).
    for (let i = 0; i < handles.length; i += 63) {
      this.deliver(encodeH4(H4Type.Event, encodeEvent('NumberOfCompletedPackets', { handles: handles.slice(i, i + 63) })));
    }
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
 * same sink in front.
 */
export class BleHostTransport extends EventEmitter {
  readonly sink: AclSink;
  private readonly framer: H4Framer;

  constructor(private readonly inner: Transport) {
    super();
    this.sink = new AclSink((p) => this.emit('data', Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    this.framer = new H4Framer({ direction: 'host', onPacket: (p) => this.emit('data', Buffer.from(p)) });
    inner.on('data', (d) => this.framer.push(d));
    inner.on('close', () => this.emit('close'));
  }

  write(packet: Buffer): void {
    if (this.sink.offer(packet)) return;
    this.inner.write(new Uint8Array(packet)).catch(() => undefined);
  }

  /** Delivers one H:4 packet to ble-host as if the controller had sent it. */
  inject(h4Packet: Buffer): void {
    this.emit('data', h4Packet);
  }
}
