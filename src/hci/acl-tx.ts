/**
 * Host-to-controller ACL flow control. The controller holds at most `count` ACL packets of at most
 * `packetLength` bytes (LE Read Buffer Size); every packet sent takes a credit, Number Of Completed
 * Packets gives them back, and so does Disconnection Complete for everything still held for that
 * handle. L2CAP frames are cut into fragments of `packetLength` (first with Packet_Boundary_Flag
 * 0b00, then 0b01), and connections take turns one fragment at a time so a bulk transfer on one
 * link cannot starve another. Core 5.4 Vol 4 Part E 4.1.1 (data flow control), 5.4.2 (ACL packets).
 *
 * Costs: O(1) per fragment (one ring of ready links, one queue per link with a moving head). A
 * frame that fits one fragment and was built in a {@link TxView} with room in front goes out
 * without a copy: the type byte and ACL header are written into that room and the transport gets a
 * view of the whole packet. Any other fragment is copied into a new buffer (type byte + header +
 * payload, written as one transport write).
 */
import { pooledView } from '../util/byte-pool.js';
import { H4Type } from './h4.js';
import { AclBoundary } from './acl.js';

/** Bytes in front of an L2CAP frame in an H:4 ACL packet: the type byte and the ACL header. Core 5.4 Vol 4 Part A 2, Part E 5.4.2. */
export const ACL_TX_HEADROOM = 5;

/**
 * An outgoing packet's bytes so far, written back to front so that no layer copies the bytes of
 * the layer above. The layer that starts the packet allocates it with room in front of its PDU
 * ({@link allocTx}); each layer below writes its header into that room ({@link claimHeadroom}).
 * Packets are carved out of shared slabs (src/util/byte-pool.ts): a fresh ArrayBuffer per packet
 * cost more than the rest of a notification's way to the transport.
 *
 * Ownership: `room` is how many bytes in front of this view belong to its packet and are still
 * free. Only a view from {@link allocTx} or {@link claimHeadroom} has room, and it runs to the end
 * of its packet; any other view (a plain array, or a part of a packet such as a `subarray()`) has
 * none. Widening a view hands its room to the wider view, so
 * each header is written once, into bytes no one else has seen, and nothing is written in front
 * of a packet after it was handed to the transport. A view handed to a lower layer belongs to it:
 * the caller must not write to it any more.
 */
export class TxView extends Uint8Array {
  /**
   * Arrays made from a TxView (`subarray()`, `slice()`, `map()`...) are plain Uint8Arrays: no
   * room, and nothing of the send path reaches whoever reads them. (A subclass's species leaves
   * V8's fast paths for other typed arrays intact.)
   */
  static get [Symbol.species](): Uint8ArrayConstructor {
    return Uint8Array;
  }

  /** Free bytes in front of this view that belong to its packet. */
  room = 0;
}

/** A view of `length` bytes for a PDU, with `headroom` free bytes in front of it for the headers below. */
export function allocTx(headroom: number, length: number): TxView {
  const view = pooledView(TxView, length, headroom);
  view.room = headroom;
  return view;
}

/**
 * Widens `view` by `n` bytes in front, for a header the caller then writes there. Undefined (the
 * caller copies instead) unless `view` is a {@link TxView} with at least `n` bytes of room: a view
 * of anything else, a part of a packet, or a packet whose room was already taken is never written
 * to. A packet with no room left comes back as a plain Uint8Array.
 */
export function claimHeadroom(view: Uint8Array, n: number): Uint8Array | undefined {
  if (!(view instanceof TxView) || view.room < n) return undefined;
  const room = view.room - n;
  view.room = 0;
  const start = view.byteOffset - n;
  const length = n + view.length;
  if (room === 0) return new Uint8Array(view.buffer, start, length);
  const wider = new TxView(view.buffer, start, length);
  wider.room = room;
  return wider;
}

export interface AclTxStats {
  /** Credits free right now. */
  freeCredits: number;
  totalCredits: number;
  packetLength: number;
  /** Per connection handle: fragments waiting for a credit, and packets the controller holds. */
  links: { handle: number; queuedPackets: number; queuedFrames: number; inFlight: number }[];
  /** Fragments written since the scheduler was configured. */
  packetsSent: number;
}

interface TxItem {
  frame: Uint8Array;
  offset: number;
  resolve: () => void;
  reject: (err: Error) => void;
  settled: boolean;
}

class TxLink {
  queue: TxItem[] = [];
  head = 0;
  /** Fragments still to send across the queue. */
  queuedPackets = 0;
  /** Packets handed to the controller and not yet completed. */
  inFlight = 0;
  inRing = false;
  open = true;
  constructor(readonly handle: number) {}
}

export interface AclSchedulerOptions {
  /** Writes one H:4 ACL packet (type byte included). */
  write: (h4Packet: Uint8Array) => Promise<void>;
  /** Builds the error for a send whose write failed. */
  writeError: (handle: number, cause: unknown) => Error;
}

export class AclScheduler {
  private packetLength = 27;
  private total = 0;
  private free = 0;
  private readonly links = new Map<number, TxLink>();
  private ring: TxLink[] = [];
  private ringHead = 0;
  private sent = 0;

  constructor(private readonly opts: AclSchedulerOptions) {}

  /** Sets the buffer figures (after bring-up); all credits free. */
  configure(packetLength: number, count: number): void {
    this.packetLength = Math.max(1, packetLength);
    this.total = count;
    this.free = count;
    this.sent = 0;
  }

  get freeCredits(): number {
    return this.free;
  }

  hasLink(handle: number): boolean {
    return this.links.has(handle);
  }

  addLink(handle: number): void {
    if (!this.links.has(handle)) this.links.set(handle, new TxLink(handle));
  }

  /**
   * Forgets a link: credits it held come back (the controller flushed them, Core 5.4 Vol 4 Part E
   * 4.3), queued frames are rejected with `err`. Returns the number of credits returned.
   */
  removeLink(handle: number, err: Error): number {
    const link = this.links.get(handle);
    if (!link) return 0;
    this.links.delete(handle);
    link.open = false;
    const returned = link.inFlight;
    this.free = Math.min(this.total, this.free + returned);
    link.inFlight = 0;
    for (let i = link.head; i < link.queue.length; i++) settle(link.queue[i] as TxItem, err);
    link.queue = [];
    link.head = 0;
    link.queuedPackets = 0;
    this.pump();
    return returned;
  }

  /** Rejects everything and forgets all links (re-initialisation, transport lost). */
  reset(err: Error): void {
    for (const h of [...this.links.keys()]) this.removeLink(h, err);
    this.ring = [];
    this.ringHead = 0;
    this.free = this.total;
  }

  /**
   * Queues an L2CAP frame; resolves once its last fragment was written to the transport. The frame
   * belongs to the scheduler from then on: do not modify it (when it is a {@link TxView} with room,
   * the packet headers are written in front of it and it is sent as is).
   */
  send(handle: number, frame: Uint8Array, goneError: () => Error): Promise<void> {
    const link = this.links.get(handle);
    if (!link) return Promise.reject(goneError());
    if (frame.length === 0) return Promise.reject(new RangeError('an ACL frame needs at least one byte (an L2CAP frame has a 4-byte header)'));
    return new Promise<void>((resolve, reject) => {
      link.queue.push({ frame, offset: 0, resolve, reject, settled: false });
      link.queuedPackets += Math.ceil(frame.length / this.packetLength);
      if (!link.inRing) {
        link.inRing = true;
        this.ring.push(link);
      }
      this.pump();
    });
  }

  /**
   * Number Of Completed Packets for one handle. Returns how many credits were actually returned
   * (a controller reporting more than it holds for the handle does not inflate the credits).
   */
  completed(handle: number, count: number): number {
    const link = this.links.get(handle);
    if (!link) return 0;
    const n = Math.min(count, link.inFlight);
    link.inFlight -= n;
    this.free = Math.min(this.total, this.free + n);
    if (n > 0) this.pump();
    return n;
  }

  stats(): AclTxStats {
    return {
      freeCredits: this.free,
      totalCredits: this.total,
      packetLength: this.packetLength,
      links: [...this.links.values()].map((l) => ({
        handle: l.handle,
        queuedPackets: l.queuedPackets,
        queuedFrames: l.queue.length - l.head,
        inFlight: l.inFlight,
      })),
      packetsSent: this.sent,
    };
  }

  /** Sends fragments while credits last, one per ready link in turn. */
  private pump(): void {
    while (this.free > 0 && this.ringHead < this.ring.length) {
      const link = this.ring[this.ringHead++] as TxLink;
      if (this.ringHead > 64 && this.ringHead * 2 > this.ring.length) {
        this.ring = this.ring.slice(this.ringHead);
        this.ringHead = 0;
      }
      link.inRing = false;
      if (!link.open || link.head >= link.queue.length) continue;
      this.sendOne(link);
      if (link.head < link.queue.length) {
        link.inRing = true;
        this.ring.push(link);
      }
    }
    if (this.ringHead >= this.ring.length) {
      this.ring = [];
      this.ringHead = 0;
    }
  }

  private sendOne(link: TxLink): void {
    const item = link.queue[link.head] as TxItem;
    const frame = item.frame;
    const first = item.offset === 0;
    const n = Math.min(this.packetLength, frame.length - item.offset);
    // A whole frame in one fragment: write the headers in front of it when its buffer has room.
    let pkt = first && n === frame.length ? claimHeadroom(frame, ACL_TX_HEADROOM) : undefined;
    if (!pkt) {
      pkt = new Uint8Array(ACL_TX_HEADROOM + n);
      pkt.set(n === frame.length ? frame : frame.subarray(item.offset, item.offset + n), ACL_TX_HEADROOM);
    }
    const flags = link.handle | ((first ? AclBoundary.FirstNonFlushable : AclBoundary.Continuing) << 12);
    pkt[0] = H4Type.Acl;
    pkt[1] = flags & 0xff;
    pkt[2] = flags >> 8;
    pkt[3] = n & 0xff;
    pkt[4] = n >> 8;
    item.offset += n;
    const last = item.offset >= frame.length;
    if (last) {
      link.queue[link.head] = undefined as unknown as TxItem;
      link.head++;
      if (link.head === link.queue.length) {
        link.queue = [];
        link.head = 0;
      } else if (link.head > 64 && link.head * 2 > link.queue.length) {
        link.queue = link.queue.slice(link.head);
        link.head = 0;
      }
    }
    link.queuedPackets--;
    link.inFlight++;
    this.free--;
    this.sent++;
    let p: Promise<void>;
    try {
      p = this.opts.write(pkt);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => {
        if (last) settle(item);
      },
      (err: unknown) => settle(item, this.opts.writeError(link.handle, err)),
    );
  }
}

function settle(item: TxItem, err?: Error): void {
  if (item.settled) return;
  item.settled = true;
  if (err) item.reject(err);
  else item.resolve();
}
