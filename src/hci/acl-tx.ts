/**
 * Host-to-controller ACL flow control. The controller holds at most `count` ACL packets of at most
 * `packetLength` bytes (LE Read Buffer Size); every packet sent takes a credit, Number Of Completed
 * Packets gives them back, and so does Disconnection Complete for everything still held for that
 * handle. L2CAP frames are cut into fragments of `packetLength` (first with Packet_Boundary_Flag
 * 0b00, then 0b01), and connections take turns one fragment at a time so a bulk transfer on one
 * link cannot starve another. Core 5.4 Vol 4 Part E 4.1.1 (data flow control), 5.4.2 (ACL packets).
 *
 * Costs: O(1) per fragment (one ring of ready links, one queue per link with a moving head); one
 * buffer per fragment (type byte + header + payload, written as one transport write).
 */
import { H4Type } from './h4.js';
import { AclBoundary } from './acl.js';

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

  /** Queues an L2CAP frame; resolves once its last fragment was written to the transport. */
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
    const first = item.offset === 0;
    const n = Math.min(this.packetLength, item.frame.length - item.offset);
    const pkt = new Uint8Array(5 + n);
    const flags = link.handle | ((first ? AclBoundary.FirstNonFlushable : AclBoundary.Continuing) << 12);
    pkt[0] = H4Type.Acl;
    pkt[1] = flags & 0xff;
    pkt[2] = flags >> 8;
    pkt[3] = n & 0xff;
    pkt[4] = n >> 8;
    pkt.set(item.frame.subarray(item.offset, item.offset + n), 5);
    item.offset += n;
    const last = item.offset >= item.frame.length;
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
