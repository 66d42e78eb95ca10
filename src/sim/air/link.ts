/**
 * One connection on the virtual air as a series of connection events: the two link ends with
 * their ACL queues, the event clock (anchor, interval, actions due at an event), the data moved
 * both ways within one event's airtime and the Number Of Completed Packets that follows, the
 * queue of LL control procedures with their 40 s response timer, and how a link ends (closed,
 * or lost to a supervision timeout). The procedures themselves are in encryption.ts and
 * connection.ts. Core 5.4 Vol 6 Part B 4.5.
 */
import type { Clock, TimerHandle } from '../../util/clock.js';
import { HciStatus } from '../../hci/status.js';
import type { VirtualAir } from '../air.js';
import type { VirtualController } from '../controller.js';
import type { AirConnection } from './connection.js';

export type Role = 'central' | 'peripheral';

/** One end of a connection, as a controller sees it. */
export interface LinkEnd {
  readonly conn: AirConnection;
  readonly ctrl: VirtualController;
  readonly handle: number;
  readonly role: Role;
}

export interface ConnParams {
  intervalMin: number;
  intervalMax: number;
  latency: number;
  timeout: number;
}

interface AclOut {
  data: Uint8Array;
  start: boolean;
}

/** Response timeout of LL control procedures. Core 5.4 Vol 6 Part B 5.2. */
const LL_RESPONSE_TIMEOUT_MS = 40_000;
/** Inter-frame space. Core 5.4 Vol 6 Part B 4.1.1. */
const T_IFS_US = 150;

/** Airtime of a data channel PDU with `payload` octets: LE 1M 8 us/octet, LE 2M 4 us/octet (Core 5.4 Vol 6 Part B 2.1). */
function pduAirtimeUs(payload: number, phy: number, mic: boolean): number {
  const m = mic && payload > 0 ? 4 : 0;
  // preamble + access address + header + payload + MIC + CRC
  return phy === 2 ? (2 + 4 + 2 + payload + m + 3) * 4 : (1 + 4 + 2 + payload + m + 3) * 8;
}

/** One end of a connection with what its host queued for the air. */
export class Side implements LinkEnd {
  readonly queue: (AclOut | undefined)[] = [];
  head = 0;
  offset = 0;
  completed = 0;
  lost = false;
  /** Data length this side wants to send (connMaxTxOctets it would ask for). */
  txPref: number;
  peer!: Side;

  constructor(
    readonly conn: AirConnection,
    readonly ctrl: VirtualController,
    readonly handle: number,
    readonly role: Role,
  ) {
    this.txPref = ctrl.suggestedTxOctets;
  }

  hasData(): boolean {
    return this.head < this.queue.length;
  }

  /** Octets of the next PDU if at most `max` fit, 0 when nothing is queued. */
  nextPduLength(max: number): number {
    const e = this.queue[this.head];
    return e ? Math.min(max, e.data.length - this.offset) : 0;
  }

  /** Next LL PDU of at most `max` octets, or undefined. Marks a packet complete on its last PDU. */
  takePdu(max: number): AclOut | undefined {
    const e = this.queue[this.head];
    if (!e) return undefined;
    const off = this.offset;
    const n = Math.min(max, e.data.length - off);
    const pdu = { data: e.data.subarray(off, off + n), start: e.start && off === 0 };
    this.offset = off + n;
    if (this.offset >= e.data.length) {
      this.queue[this.head] = undefined;
      this.head++;
      this.offset = 0;
      this.completed++;
      if (this.head > 32 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
    }
    return pdu;
  }

  /** Drops everything queued; returns the number of host packets dropped. */
  flush(): number {
    const n = this.queue.length - this.head;
    this.queue.length = 0;
    this.head = 0;
    this.offset = 0;
    return n;
  }
}

/** Connection events and ACL pacing of one connection; {@link AirConnection} adds the LL procedures. */
export abstract class ConnectionEvents {
  readonly central: Side;
  readonly peripheral: Side;
  /** Connection interval, 1.25 ms units. */
  interval: number;
  latency: number;
  /** Supervision timeout, 10 ms units. */
  timeout: number;
  encrypted = false;
  /** Data length (octets) central to peripheral and back. */
  c2pOctets = 27;
  p2cOctets = 27;
  /** PHY central to peripheral and back (1: LE 1M, 2: LE 2M). */
  c2pPhy = 1;
  p2cPhy = 1;
  closed = false;
  /** Connection events run so far (for tests and figures). */
  eventsRun = 0;

  protected anchor: number;
  protected counter = 0;
  private inEvent = false;
  protected timer: TimerHandle | undefined;
  protected lossTimer: TimerHandle | undefined;
  private responseTimer: TimerHandle | undefined;
  private actions: { at: number; fn: () => void }[] = [];
  private readonly procs: (() => void)[] = [];
  private procActive = false;
  protected paused = false;
  protected terminating = false;

  constructor(
    readonly air: VirtualAir,
    central: { ctrl: VirtualController; handle: number },
    peripheral: { ctrl: VirtualController; handle: number },
    params: { interval: number; latency: number; timeout: number },
  ) {
    // AirConnection is the only subclass: the link ends point at the whole connection.
    const conn = this as unknown as AirConnection;
    this.central = new Side(conn, central.ctrl, central.handle, 'central');
    this.peripheral = new Side(conn, peripheral.ctrl, peripheral.handle, 'peripheral');
    this.central.peer = this.peripheral;
    this.peripheral.peer = this.central;
    this.interval = params.interval;
    this.latency = params.latency;
    this.timeout = params.timeout;
    // First anchor point: transmitWindowOffset 0 plus the 1.25 ms transmit window delay.
    this.anchor = air.clock.now() + 1.25;
  }

  protected get clock(): Clock {
    return this.air.clock;
  }

  /** Time between connection events, ms. */
  intervalMs(): number {
    return this.air.options.connectionEventIntervalMs ?? this.interval * 1.25;
  }

  private currentEvent(): number {
    if (this.inEvent) return this.counter;
    const i = this.intervalMs();
    if (i <= 0) return this.counter;
    return Math.max(this.counter, Math.floor((this.clock.now() - this.anchor) / i + 1e-6));
  }

  /** Runs `fn` at the connection event `k` events from now. */
  protected atEvent(k: number, fn: () => void): void {
    this.actions.push({ at: this.currentEvent() + k, fn });
    this.kick();
  }

  private hasWork(): boolean {
    if (this.actions.length > 0) return true;
    return !this.paused && (this.central.hasData() || this.peripheral.hasData());
  }

  /** Schedules the next connection event if there is anything to do on it. */
  protected kick(): void {
    if (this.closed || this.timer || !this.hasWork()) return;
    if (this.central.lost || this.peripheral.lost) return;
    const i = this.intervalMs();
    let next: number;
    let delay: number;
    if (i <= 0) {
      next = this.counter + 1;
      delay = 0;
    } else {
      next = this.currentEvent() + 1;
      delay = Math.max(0, this.anchor + next * i - this.clock.now());
    }
    this.timer = this.clock.setTimeout(() => this.runEvent(next), delay);
  }

  private runEvent(e: number): void {
    this.timer = undefined;
    if (this.closed) return;
    this.counter = e;
    this.eventsRun++;
    this.inEvent = true;
    try {
      if (this.actions.length > 0) {
        const due = this.actions.filter((a) => a.at <= e);
        if (due.length > 0) {
          this.actions = this.actions.filter((a) => a.at > e);
          for (const a of due) {
            if (this.closed) break;
            a.fn();
          }
        }
      }
      if (!this.closed && !this.paused) this.transfer();
    } catch (err) {
      this.air.log.error({ err }, 'internal error in a connection event');
    } finally {
      this.inEvent = false;
    }
    this.kick();
  }

  /** Moves queued data both ways within one event's airtime, then reports completed packets. */
  private transfer(): void {
    const c = this.central;
    const p = this.peripheral;
    if (!c.hasData() && !p.hasData()) return;
    const o = this.air.options;
    const budget = Math.min(o.connectionEventLengthUs ?? 7500, this.intervalMs() > 0 ? this.intervalMs() * 1000 : Infinity);
    const maxExchanges = o.maxPdusPerEvent ?? Infinity;
    let used = 0;
    let exchanges = 0;
    while (exchanges < maxExchanges && (c.hasData() || p.hasData())) {
      const cLen = c.nextPduLength(this.c2pOctets);
      const pLen = p.nextPduLength(this.p2cOctets);
      const cost = pduAirtimeUs(cLen, this.c2pPhy, this.encrypted) + T_IFS_US + pduAirtimeUs(pLen, this.p2cPhy, this.encrypted) + T_IFS_US;
      if (exchanges > 0 && used + cost > budget) break;
      used += cost;
      exchanges++;
      const fromC = c.takePdu(this.c2pOctets);
      if (fromC && fromC.data.length > 0) p.ctrl.deliverAcl(p.handle, fromC.start, fromC.data);
      const fromP = p.takePdu(this.p2cOctets);
      if (fromP && fromP.data.length > 0) c.ctrl.deliverAcl(c.handle, fromP.start, fromP.data);
    }
    for (const s of [c, p]) {
      if (s.completed > 0) {
        const n = s.completed;
        s.completed = 0;
        s.ctrl.packetsCompleted(s.handle, n);
      }
    }
  }

  // ------------------------------------------------------------------ procedures

  protected enqueueProc(start: () => void): void {
    this.procs.push(start);
    if (!this.procActive) this.nextProc();
  }

  private nextProc(): void {
    const p = this.procs.shift();
    if (!p || this.closed) {
      this.procActive = false;
      return;
    }
    this.procActive = true;
    p();
  }

  protected procDone(): void {
    this.procActive = false;
    this.nextProc();
  }

  protected startResponseTimer(): void {
    this.clock.clearTimeout(this.responseTimer);
    this.responseTimer = this.clock.setTimeout(() => {
      this.responseTimer = undefined;
      if (this.closed) return;
      this.air.log.info({ central: this.central.ctrl.name, peripheral: this.peripheral.ctrl.name }, 'a host did not answer an LL procedure within 40 s: LL Response Timeout');
      this.closeWith(HciStatus.LmpLlResponseTimeout, HciStatus.LmpLlResponseTimeout);
    }, LL_RESPONSE_TIMEOUT_MS);
  }

  protected stopResponseTimer(): void {
    this.clock.clearTimeout(this.responseTimer);
    this.responseTimer = undefined;
  }

  // ---- data

  /** @internal */
  enqueueAcl(side: LinkEnd, data: Uint8Array, start: boolean): void {
    const s = this.side(side);
    if (start) this.noteHostFrame(data);
    s.queue.push({ data, start });
    if (!this.paused) this.kick();
  }

  /** Sees each host packet's first fragment as it is queued (the air reads the pairing key size there). */
  protected abstract noteHostFrame(frame: Uint8Array): void;

  protected side(end: LinkEnd): Side {
    return end.role === 'central' ? this.central : this.peripheral;
  }

  rssiFor(end: LinkEnd): number {
    const s = this.side(end);
    return this.air.rssi(s.peer.ctrl, s.ctrl);
  }

  phyFor(end: LinkEnd): { txPhy: number; rxPhy: number } {
    return end.role === 'central' ? { txPhy: this.c2pPhy, rxPhy: this.p2cPhy } : { txPhy: this.p2cPhy, rxPhy: this.c2pPhy };
  }

  // ---- end of the link

  /** Closes the link and tells each host still present its reason. */
  protected closeWith(centralReason: number, peripheralReason: number): void {
    if (this.closed) return;
    this.close();
    const c = this.central;
    const p = this.peripheral;
    if (!c.lost) c.ctrl.emit('DisconnectionComplete', { status: HciStatus.Success, handle: c.handle, reason: centralReason });
    if (!p.lost) p.ctrl.emit('DisconnectionComplete', { status: HciStatus.Success, handle: p.handle, reason: peripheralReason });
  }

  /** Ends the connection without events; queued host packets are flushed (no NOCP for them). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.lossTimer);
    this.clock.clearTimeout(this.responseTimer);
    this.timer = this.lossTimer = this.responseTimer = undefined;
    this.actions = [];
    this.procs.length = 0;
    for (const s of [this.central, this.peripheral]) {
      const n = s.flush();
      if (!s.lost) {
        s.ctrl.buffersFlushed(n);
        s.ctrl.removeLink(s.handle);
      }
    }
    this.air.connectionClosed(this.central.conn);
  }

  /**
   * One side vanished (powered off, reset): its host hears nothing more; the other side reports
   * Connection Timeout (0x08) once the supervision timeout has passed. Core 5.4 Vol 6 Part B 4.5.2.
   */
  sideLost(ctrl: VirtualController): void {
    if (this.closed) return;
    const s = this.central.ctrl === ctrl && !this.central.lost ? this.central : this.peripheral;
    if (s.ctrl !== ctrl || s.lost) return;
    s.lost = true;
    s.flush();
    s.ctrl.removeLink(s.handle);
    this.stopResponseTimer();
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (s.peer.lost) {
      this.close();
      return;
    }
    this.lossTimer = this.clock.setTimeout(() => {
      this.lossTimer = undefined;
      this.closeWith(HciStatus.ConnectionTimeout, HciStatus.ConnectionTimeout);
    }, this.timeout * 10);
  }
}
