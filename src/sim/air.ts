/**
 * The virtual air: the radio world shared by any number of {@link VirtualController}s. It runs
 * advertising events, delivers advertising reports to scanners, turns a connectable advertising
 * event into a connection for a matching initiator, and models each connection as a series of
 * connection events on which LL data PDUs and LL control procedures happen.
 *
 * Model, with its simplifications:
 * - Advertising events every Advertising_Interval_Min plus the 0..10 ms advDelay
 *   (Core 5.4 Vol 6 Part B 4.4.2.2.1), from the injected random source. All three channels count
 *   as one event; every scanning controller hears every event (no scan window duty cycle).
 * - A connection event carries data both ways: as many PDU exchanges as fit in the event length
 *   (7.5 ms by default, the SoftDevice Controller's default maximum event length) with PDU airtimes
 *   from the PHY and payload size, or a fixed number if `maxPdusPerEvent` is set. Host ACL
 *   packets are cut into LL PDUs of the negotiated data length (27 until a Data Length Update);
 *   the receiving host gets each PDU as one ACL packet (PB 0b10 first, 0b01 continuation), and the
 *   sender gets Number Of Completed Packets once the last PDU of its packet was acknowledged.
 * - LL control procedures run one at a time per connection, each taking a connection event per
 *   PDU exchange; procedures with an instant (connection update, PHY update) apply it 6 events on
 *   (Core 5.4 Vol 6 Part B 5.1.1: an instant at least 6 events ahead).
 * - Nothing is lost on air; the only way a link dies without a Disconnect is a controller that
 *   is powered off or reset: its peer reports Connection Timeout (0x08) after the supervision
 *   timeout, and an unanswered host request (LTK, connection parameters) ends in LL Response
 *   Timeout (0x22) after 40 s (Core 5.4 Vol 6 Part B 5.2).
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import { RealClock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { osRandom, randomInt, seededRandom, type RandomSource } from '../util/random.js';
import { bytesEqual, toHex } from '../util/bytes.js';
import { HciStatus } from '../hci/status.js';
import { AdvertisingReportType } from '../hci/events.js';
import { AdvType, VirtualController, type CreateConnectionParams, type VirtualControllerOptions } from './controller.js';
import type { FirmwareName, FirmwareProfile } from './firmware.js';

export interface VirtualAirOptions {
  /** Default: a {@link RealClock} (real-time pacing, for hosts in other processes). */
  clock?: Clock;
  /** Random source for advDelay, RSSI and controller seeds. Default: `seed` if given, else the OS. */
  random?: RandomSource;
  /** Seed for a deterministic air: seeded random source and controller identities. */
  seed?: string | number;
  log?: Logger;
  /**
   * Overrides the time between connection events, whatever the negotiated interval
   * (0: the next event happens on the next timer tick; for throughput tests).
   */
  connectionEventIntervalMs?: number;
  /** Fixed number of PDU exchanges per connection event instead of the airtime model. */
  maxPdusPerEvent?: number;
  /** Airtime budget of one connection event, microseconds. Default 7500. */
  connectionEventLengthUs?: number;
  /** Firmware of the controllers created on this air unless they name one (src/sim/firmware.ts). Default `ncs`. */
  firmware?: FirmwareName | FirmwareProfile;
}

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

/** connMaxTxTime reported for `octets` (LE 1M with MIC). Core 5.4 Vol 6 Part B 4.5.10. */
function octetsToTime(octets: number): number {
  return (octets + 14) * 8;
}

class Side implements LinkEnd {
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

interface EncryptionProcedure {
  ltk: Uint8Array;
  rand: bigint;
  ediv: number;
  refresh: boolean;
  stage: 'queued' | 'wait-host' | 'replied';
}

interface UpdateProcedure {
  initiator: Side;
  params: ConnParams;
  /** The side whose host must answer an LE Remote Connection Parameter Request. */
  awaiting: Side | undefined;
}

/** A connection between two controllers. */
export class AirConnection {
  readonly central: Side;
  readonly peripheral: Side;
  /** Connection interval, 1.25 ms units. */
  interval: number;
  latency: number;
  /** Supervision timeout, 10 ms units. */
  timeout: number;
  encrypted = false;
  /**
   * Size in octets of the key the link is encrypted with (Read Encryption Key Size, Encryption
   * Change v2); 0 while unencrypted. See {@link VirtualAir.keySizeOf}.
   */
  keySize = 0;
  /** Largest key sizes of the SMP Pairing Request / Response seen on this link (Core 5.4 Vol 3 Part H 3.5.1, 3.5.2). */
  private pairingKeySizes: { request?: number; response?: number } = {};
  /** Data length (octets) central to peripheral and back. */
  c2pOctets = 27;
  p2cOctets = 27;
  /** PHY central to peripheral and back (1: LE 1M, 2: LE 2M). */
  c2pPhy = 1;
  p2cPhy = 1;
  closed = false;
  /** Connection events run so far (for tests and figures). */
  eventsRun = 0;

  private anchor: number;
  private counter = 0;
  private inEvent = false;
  private timer: TimerHandle | undefined;
  private lossTimer: TimerHandle | undefined;
  private responseTimer: TimerHandle | undefined;
  private actions: { at: number; fn: () => void }[] = [];
  private readonly procs: (() => void)[] = [];
  private procActive = false;
  private paused = false;
  private terminating = false;
  private enc: EncryptionProcedure | undefined;
  private update: UpdateProcedure | undefined;

  constructor(
    readonly air: VirtualAir,
    central: { ctrl: VirtualController; handle: number },
    peripheral: { ctrl: VirtualController; handle: number },
    params: { interval: number; latency: number; timeout: number },
  ) {
    this.central = new Side(this, central.ctrl, central.handle, 'central');
    this.peripheral = new Side(this, peripheral.ctrl, peripheral.handle, 'peripheral');
    this.central.peer = this.peripheral;
    this.peripheral.peer = this.central;
    this.interval = params.interval;
    this.latency = params.latency;
    this.timeout = params.timeout;
    // First anchor point: transmitWindowOffset 0 plus the 1.25 ms transmit window delay.
    this.anchor = air.clock.now() + 1.25;
  }

  private get clock(): Clock {
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
  private atEvent(k: number, fn: () => void): void {
    this.actions.push({ at: this.currentEvent() + k, fn });
    this.kick();
  }

  private hasWork(): boolean {
    if (this.actions.length > 0) return true;
    return !this.paused && (this.central.hasData() || this.peripheral.hasData());
  }

  /** Schedules the next connection event if there is anything to do on it. */
  private kick(): void {
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

  private enqueueProc(start: () => void): void {
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

  private procDone(): void {
    this.procActive = false;
    this.nextProc();
  }

  private startResponseTimer(): void {
    this.clock.clearTimeout(this.responseTimer);
    this.responseTimer = this.clock.setTimeout(() => {
      this.responseTimer = undefined;
      if (this.closed) return;
      this.air.log.info({ central: this.central.ctrl.name, peripheral: this.peripheral.ctrl.name }, 'a host did not answer an LL procedure within 40 s: LL Response Timeout');
      this.closeWith(HciStatus.LmpLlResponseTimeout, HciStatus.LmpLlResponseTimeout);
    }, LL_RESPONSE_TIMEOUT_MS);
  }

  private stopResponseTimer(): void {
    this.clock.clearTimeout(this.responseTimer);
    this.responseTimer = undefined;
  }

  /** Called once the connection exists: autonomous Data Length Update if a host asked for more than 27 octets. */
  start(): void {
    if (this.central.txPref > 27 || this.peripheral.txPref > 27) {
      this.enqueueProc(() => this.atEvent(1, () => this.dataLengthExchange()));
    }
  }

  // ---- data

  /** @internal */
  enqueueAcl(side: LinkEnd, data: Uint8Array, start: boolean): void {
    const s = this.side(side);
    if (start) this.notePairingKeySize(data);
    s.queue.push({ data, start });
    if (!this.paused) this.kick();
  }

  /**
   * The simulation's view of the key size the two hosts negotiate: the Maximum Encryption Key Size
   * octet of a Pairing Request (0x01) or Pairing Response (0x02) in clear on the SMP channel
   * (L2CAP CID 0x0006). A controller cannot read it (the host shortens an LE key by masking it,
   * Core 5.4 Vol 3 Part H 2.3.4); the virtual air can, so Read Encryption Key Size reports the
   * size the link really has and short-key handling can be tested end to end.
   */
  private notePairingKeySize(frame: Uint8Array): void {
    // Basic L2CAP header (length, CID 0x0006), SMP code, IO, OOB, AuthReq, Maximum Encryption Key Size.
    if (frame.length < 9 || frame[2] !== 0x06 || frame[3] !== 0x00) return;
    const code = frame[4];
    const size = frame[8] as number;
    if (code === 0x01) this.pairingKeySizes = { request: size };
    else if (code === 0x02) this.pairingKeySizes = { ...this.pairingKeySizes, response: size };
  }

  private side(end: LinkEnd): Side {
    return end.role === 'central' ? this.central : this.peripheral;
  }

  rssiFor(end: LinkEnd): number {
    const s = this.side(end);
    return this.air.rssi(s.peer.ctrl, s.ctrl);
  }

  phyFor(end: LinkEnd): { txPhy: number; rxPhy: number } {
    return end.role === 'central' ? { txPhy: this.c2pPhy, rxPhy: this.p2cPhy } : { txPhy: this.p2cPhy, rxPhy: this.c2pPhy };
  }

  // ---- disconnection

  /** Host Disconnect: LL_TERMINATE_IND on the next event. Returns the Command Status code. */
  hostDisconnect(end: LinkEnd, reason: number): number {
    if (this.terminating || this.closed) return HciStatus.CommandDisallowed;
    this.terminating = true;
    const s = this.side(end);
    this.atEvent(1, () => {
      // The initiator's host hears "terminated by local host", the peer's host the reason sent.
      this.closeWith(
        s.role === 'central' ? HciStatus.ConnectionTerminatedByLocalHost : reason,
        s.role === 'central' ? reason : HciStatus.ConnectionTerminatedByLocalHost,
      );
    });
    return HciStatus.Success;
  }

  /**
   * The peripheral's LL receives the central's LL_START_ENC_RSP, the first encrypted PDU, and its
   * MIC check fails: it leaves the connection without a LL_TERMINATE_IND (Core 5.4 Vol 6 Part B
   * 5.1.3.1). With a `receiver-only` firmware the central hears nothing more and reports Connection
   * Timeout (0x08) once the supervision timeout has passed; with `both` the two hosts get 0x3D.
   */
  private micFailure(): void {
    const p = this.peripheral;
    if (p.ctrl.firmware.micFailure === 'both') {
      this.closeWith(HciStatus.ConnectionTerminatedMicFailure, HciStatus.ConnectionTerminatedMicFailure);
      return;
    }
    const n = p.flush();
    p.lost = true;
    p.ctrl.buffersFlushed(n);
    p.ctrl.removeLink(p.handle);
    p.ctrl.emit('DisconnectionComplete', { status: HciStatus.Success, handle: p.handle, reason: HciStatus.ConnectionTerminatedMicFailure });
    this.stopResponseTimer();
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.lossTimer = this.clock.setTimeout(() => {
      this.lossTimer = undefined;
      this.closeWith(HciStatus.ConnectionTimeout, HciStatus.ConnectionTimeout);
    }, this.timeout * 10);
  }

  /** Closes the link and tells each host still present its reason. */
  private closeWith(centralReason: number, peripheralReason: number): void {
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
    this.air.connectionClosed(this);
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

  // ---- encryption (Core 5.4 Vol 6 Part B 5.1.3)

  /** Central's LE Enable Encryption. Returns the Command Status code. */
  startEncryption(end: LinkEnd, ltk: Uint8Array, rand: bigint, ediv: number): number {
    if (end.role !== 'central') return HciStatus.CommandDisallowed;
    if (this.enc || this.terminating || this.closed) return HciStatus.CommandDisallowed;
    const enc: EncryptionProcedure = { ltk, rand, ediv, refresh: this.encrypted, stage: 'queued' };
    this.enc = enc;
    this.enqueueProc(() => {
      // Data stops while LL_ENC_REQ / LL_PAUSE_ENC_REQ and the responses are exchanged.
      this.paused = true;
      this.atEvent(1, () => {
        const p = this.peripheral;
        enc.stage = 'wait-host';
        if (p.ctrl.wants('LeLongTermKeyRequest')) {
          p.ctrl.emit('LeLongTermKeyRequest', { handle: p.handle, rand, ediv });
          this.startResponseTimer();
        } else {
          // Event masked: the LL answers as a negative reply would (Zephyr hci.c le_ltk_request).
          this.ltkAnswer(undefined);
        }
      });
    });
    return HciStatus.Success;
  }

  /** Peripheral host's LTK Request Reply (`ltk`) or Negative Reply (undefined). Returns the Command Complete status. */
  ltkReply(end: LinkEnd, ltk: Uint8Array | undefined): number {
    if (end.role !== 'peripheral' || !this.enc || this.enc.stage !== 'wait-host' || this.closed) return HciStatus.CommandDisallowed;
    this.ltkAnswer(ltk);
    return HciStatus.Success;
  }

  private ltkAnswer(ltk: Uint8Array | undefined): void {
    const enc = this.enc;
    if (!enc) return;
    enc.stage = 'replied';
    this.stopResponseTimer();
    this.atEvent(1, () => {
      this.enc = undefined;
      const c = this.central;
      const p = this.peripheral;
      if (ltk === undefined) {
        if (enc.refresh) {
          // Encryption paused and no key: the link cannot go back to clear text; it ends with
          // PIN or Key Missing (Zephyr ull_conn.c ll_start_enc_req_send on refresh).
          this.closeWith(HciStatus.PinOrKeyMissing, HciStatus.PinOrKeyMissing);
          return;
        }
        // LL_REJECT_EXT_IND(PIN or Key Missing): the central's host learns it; the link stays up.
        this.paused = false;
        c.ctrl.encryptionChanged(c.handle, HciStatus.PinOrKeyMissing, false);
        this.procDone();
        this.kick();
        return;
      }
      if (!bytesEqual(ltk, enc.ltk)) {
        // Session keys differ: the first encrypted PDU fails its MIC check. Core 5.4 Vol 6 Part B 5.1.3.1.
        this.micFailure();
        return;
      }
      const k = this.pairingKeySizes;
      if (k.request !== undefined && k.response !== undefined) {
        // Encryption right after a pairing on this link: the negotiated size, remembered for the key.
        this.air.rememberKeySize(enc.ltk, Math.min(k.request, k.response));
        this.pairingKeySizes = {};
      }
      this.keySize = this.air.keySizeOf(enc.ltk);
      this.encrypted = true;
      this.paused = false;
      for (const s of [c, p]) {
        if (enc.refresh) s.ctrl.emit('EncryptionKeyRefreshComplete', { status: HciStatus.Success, handle: s.handle });
        else s.ctrl.encryptionChanged(s.handle, HciStatus.Success, true);
      }
      this.procDone();
      this.kick();
    });
  }

  // ---- connection parameters (Core 5.4 Vol 6 Part B 5.1.1 and 5.1.7)

  /** LE Connection Update from either host. Returns the Command Status code. */
  hostConnectionUpdate(end: LinkEnd, params: ConnParams): number {
    if (this.update || this.terminating || this.closed) return HciStatus.CommandDisallowed;
    const u: UpdateProcedure = { initiator: this.side(end), params, awaiting: undefined };
    this.update = u;
    this.enqueueProc(() => this.atEvent(1, () => this.connParamRequestArrives(u)));
    return HciStatus.Success;
  }

  /** LL_CONNECTION_PARAM_REQ reaches the responder. */
  private connParamRequestArrives(u: UpdateProcedure): void {
    const resp = u.initiator.peer;
    if (resp.ctrl.wants('LeRemoteConnectionParameterRequest')) {
      u.awaiting = resp;
      resp.ctrl.emit('LeRemoteConnectionParameterRequest', {
        handle: resp.handle,
        intervalMin: u.params.intervalMin,
        intervalMax: u.params.intervalMax,
        maxLatency: u.params.latency,
        timeout: u.params.timeout,
      });
      this.startResponseTimer();
      return;
    }
    // Event masked: the responder rejects with Unsupported Remote Feature (Zephyr hci.c
    // le_conn_param_req). A central initiator then falls back to the Connection Update procedure.
    if (u.initiator.role === 'central') this.scheduleInstant(u, u.params);
    else this.atEvent(1, () => this.finishUpdate(u, HciStatus.UnsupportedRemoteFeature));
  }

  /** LE Remote Connection Parameter Request Reply (params) or Negative Reply (reason). */
  hostConnParamReply(end: LinkEnd, answer: ConnParams | number): number {
    const u = this.update;
    const s = this.side(end);
    if (!u || u.awaiting !== s || this.closed) return HciStatus.CommandDisallowed;
    u.awaiting = undefined;
    this.stopResponseTimer();
    if (typeof answer === 'number') this.atEvent(1, () => this.finishUpdate(u, answer));
    else this.scheduleInstant(u, answer);
    return HciStatus.Success;
  }

  /** LL_CONNECTION_UPDATE_IND goes out; the new parameters apply at the instant 6 events later. */
  private scheduleInstant(u: UpdateProcedure, p: ConnParams): void {
    this.atEvent(1, () =>
      this.atEvent(6, () => {
        const before = { interval: this.interval, latency: this.latency, timeout: this.timeout };
        const oldMs = this.intervalMs();
        this.interval = p.intervalMax;
        this.latency = p.latency;
        this.timeout = p.timeout;
        const newMs = this.intervalMs();
        if (oldMs > 0 && newMs > 0) this.anchor = this.clock.now() - this.counter * newMs;
        const changed = before.interval !== this.interval || before.latency !== this.latency || before.timeout !== this.timeout;
        this.update = undefined;
        for (const s of [this.central, this.peripheral]) {
          if (s === u.initiator || changed) {
            s.ctrl.emit('LeConnectionUpdateComplete', {
              status: HciStatus.Success,
              handle: s.handle,
              connInterval: this.interval,
              connLatency: this.latency,
              supervisionTimeout: this.timeout,
            });
          }
        }
        this.procDone();
      }),
    );
  }

  private finishUpdate(u: UpdateProcedure, status: number): void {
    this.update = undefined;
    const s = u.initiator;
    s.ctrl.emit('LeConnectionUpdateComplete', {
      status,
      handle: s.handle,
      connInterval: this.interval,
      connLatency: this.latency,
      supervisionTimeout: this.timeout,
    });
    this.procDone();
  }

  // ---- data length (Core 5.4 Vol 6 Part B 5.1.9)

  /** LE Set Data Length: LL_LENGTH_REQ/RSP, then Data Length Change where something changed. */
  setDataLength(end: LinkEnd, txOctets: number): void {
    this.side(end).txPref = txOctets;
    this.enqueueProc(() => this.atEvent(1, () => this.dataLengthExchange()));
  }

  private dataLengthExchange(): void {
    const c = this.central;
    const p = this.peripheral;
    const c2p = Math.min(c.txPref, c.ctrl.maxDataLength, p.ctrl.maxDataLength);
    const p2c = Math.min(p.txPref, p.ctrl.maxDataLength, c.ctrl.maxDataLength);
    if (c2p !== this.c2pOctets || p2c !== this.p2cOctets) {
      this.c2pOctets = c2p;
      this.p2cOctets = p2c;
      c.ctrl.emit('LeDataLengthChange', { handle: c.handle, maxTxOctets: c2p, maxTxTime: octetsToTime(c2p), maxRxOctets: p2c, maxRxTime: octetsToTime(p2c) });
      p.ctrl.emit('LeDataLengthChange', { handle: p.handle, maxTxOctets: p2c, maxTxTime: octetsToTime(p2c), maxRxOctets: c2p, maxRxTime: octetsToTime(c2p) });
    }
    this.procDone();
  }

  // ---- PHY (Core 5.4 Vol 6 Part B 5.1.10)

  /** LE Set PHY with the host's TX/RX PHY masks (bit 0 LE 1M, bit 1 LE 2M). */
  setPhy(end: LinkEnd, pref: { tx: number; rx: number }): void {
    const s = this.side(end);
    this.enqueueProc(() =>
      this.atEvent(1, () => {
        const d = s.peer.ctrl.defaultPhy;
        const peerTx = (d.allPhys & 1) === 1 ? 0x03 : d.txPhys & 0x03;
        const peerRx = (d.allPhys & 2) === 2 ? 0x03 : d.rxPhys & 0x03;
        const pick = (m: number): number => ((m & 2) === 2 ? 2 : 1);
        const myTx = pick(pref.tx & peerRx);
        const myRx = pick(pref.rx & peerTx);
        const c2p = s.role === 'central' ? myTx : myRx;
        const p2c = s.role === 'central' ? myRx : myTx;
        const report = (x: Side): void => {
          const v = this.phyFor(x);
          x.ctrl.emit('LePhyUpdateComplete', { status: HciStatus.Success, handle: x.handle, txPhy: v.txPhy, rxPhy: v.rxPhy });
        };
        if (c2p === this.c2pPhy && p2c === this.p2cPhy) {
          // Nothing changes: no instant; only the initiating host hears about it.
          report(s);
          this.procDone();
          return;
        }
        this.atEvent(6, () => {
          this.c2pPhy = c2p;
          this.p2cPhy = p2c;
          report(this.central);
          report(this.peripheral);
          this.procDone();
        });
      }),
    );
  }

  // ---- remote information

  /** Read Remote Version Information: LL_VERSION_IND exchange. */
  readRemoteVersion(end: LinkEnd): void {
    const s = this.side(end);
    this.atEvent(1, () =>
      s.ctrl.emit('ReadRemoteVersionInformationComplete', {
        status: HciStatus.Success,
        handle: s.handle,
        version: s.peer.ctrl.firmware.version.lmpVersion,
        companyId: s.peer.ctrl.firmware.version.companyId,
        subversion: s.peer.ctrl.lmpSubversion,
      }),
    );
  }

  /** LE Read Remote Features: LL_FEATURE_REQ (or LL_PERIPHERAL_FEATURE_REQ) exchange. */
  readRemoteFeatures(end: LinkEnd): void {
    const s = this.side(end);
    this.atEvent(1, () =>
      s.ctrl.emit('LeReadRemoteFeaturesComplete', { status: HciStatus.Success, handle: s.handle, features: s.peer.ctrl.leFeatures() }),
    );
  }
}

/** The radio world linking any number of virtual controllers. */
export class VirtualAir {
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly log: Logger;
  readonly options: Readonly<VirtualAirOptions>;
  private readonly seed: string | undefined;
  private readonly controllers: VirtualController[] = [];
  private readonly advTimers = new Map<VirtualController, TimerHandle>();
  private readonly connections = new Set<AirConnection>();
  private readonly rssiBase = new Map<string, number>();
  private created = 0;
  private closed = false;
  /** Key size per LTK (hex), learnt from pairings on this air. */
  private readonly keySizes = new Map<string, number>();

  constructor(opts: VirtualAirOptions = {}) {
    this.options = { ...opts };
    this.clock = opts.clock ?? new RealClock();
    this.seed = opts.seed === undefined ? undefined : String(opts.seed);
    this.random = opts.random ?? (this.seed !== undefined ? seededRandom(`air:${this.seed}`) : osRandom);
    this.log = opts.log ?? silentLogger();
  }

  /** Creates a controller on this air. With a seeded air its identity derives from the seed. */
  createController(opts: VirtualControllerOptions = {}): VirtualController {
    if (this.closed) throw new Error('the virtual air is closed');
    const i = this.created++;
    const name = opts.name ?? `ctrl${i}`;
    const seed = opts.seed ?? (this.seed !== undefined ? `${this.seed}:${name}` : undefined);
    const c = new VirtualController(this, {
      ...opts,
      name,
      ...(seed !== undefined ? { seed } : {}),
      ...(opts.random ? {} : this.seed !== undefined ? { random: seededRandom(`rand:${this.seed}:${name}`) } : {}),
    });
    this.controllers.push(c);
    return c;
  }

  /** @internal The negotiated size of a key a pairing on this air produced. */
  rememberKeySize(ltk: Uint8Array, size: number): void {
    this.keySizes.set(toHex(ltk), size);
  }

  /**
   * Size of the key a link is encrypted with: what its pairing negotiated, when the pairing ran on
   * this air; otherwise 16 (a key from elsewhere, such as a bond made before the air started).
   */
  keySizeOf(ltk: Uint8Array): number {
    return this.keySizes.get(toHex(ltk)) ?? 16;
  }

  /** Controllers on the air, in creation order. */
  get allControllers(): readonly VirtualController[] {
    return this.controllers;
  }

  /** Open connections. */
  get allConnections(): readonly AirConnection[] {
    return [...this.connections];
  }

  /** Stops every timer and connection; controllers stop answering. */
  close(): void {
    if (this.closed) return;
    for (const c of [...this.controllers]) c.powerOff();
    for (const t of this.advTimers.values()) this.clock.clearTimeout(t);
    this.advTimers.clear();
    for (const conn of [...this.connections]) conn.close();
    this.closed = true;
  }

  /** Plausible RSSI between two controllers: a per-pair level in -80..-40 dBm, +-2 dB per reading. */
  rssi(from: VirtualController, to: VirtualController): number {
    const key = from.name < to.name ? `${from.name}|${to.name}` : `${to.name}|${from.name}`;
    let base = this.rssiBase.get(key);
    if (base === undefined) {
      base = -80 + randomInt(this.random, 41);
      this.rssiBase.set(key, base);
    }
    return base + randomInt(this.random, 5) - 2;
  }

  // ------------------------------------------------------------------ controller hooks

  /** @internal */
  removeController(ctrl: VirtualController): void {
    this.controllerReset(ctrl);
    const i = this.controllers.indexOf(ctrl);
    if (i >= 0) this.controllers.splice(i, 1);
  }

  /** The controller forgot its LE state (HCI Reset or power-off). @internal */
  controllerReset(ctrl: VirtualController): void {
    const t = this.advTimers.get(ctrl);
    if (t) this.clock.clearTimeout(t);
    this.advTimers.delete(ctrl);
    for (const conn of [...this.connections]) {
      if (conn.central.ctrl === ctrl || conn.peripheral.ctrl === ctrl) conn.sideLost(ctrl);
    }
  }

  /** @internal */
  connectionClosed(conn: AirConnection): void {
    this.connections.delete(conn);
  }

  /** @internal */
  advertisingChanged(ctrl: VirtualController): void {
    const t = this.advTimers.get(ctrl);
    if (ctrl.advertisingEnabled) {
      if (!t) this.scheduleAdvertising(ctrl, true);
    } else if (t) {
      this.clock.clearTimeout(t);
      this.advTimers.delete(ctrl);
    }
  }

  /** @internal Initiators are matched on the advertiser's next event; nothing to do now. */
  initiatingChanged(_ctrl: VirtualController): void {}

  private scheduleAdvertising(ctrl: VirtualController, first: boolean): void {
    const a = ctrl.advertising;
    const intervalMs = a.advertisingType === AdvType.AdvDirectIndHigh ? 3.75 : a.intervalMin * 0.625;
    // advDelay: a pseudo-random 0..10 ms added to every advertising event.
    const advDelay = a.advertisingType === AdvType.AdvDirectIndHigh ? 0 : randomInt(this.random, 10_001) / 1000;
    const t = this.clock.setTimeout(() => this.advertisingEvent(ctrl), (first ? 0 : intervalMs) + advDelay);
    this.advTimers.set(ctrl, t);
  }

  private advertisingEvent(ctrl: VirtualController): void {
    this.advTimers.delete(ctrl);
    if (this.closed || !ctrl.isPowered || !ctrl.advertisingEnabled) return;
    try {
      if (this.runAdvertisingEvent(ctrl)) return;
    } catch (err) {
      this.log.error({ err }, 'internal error in an advertising event');
    }
    if (ctrl.advertisingEnabled) this.scheduleAdvertising(ctrl, false);
  }

  /** One advertising event. Returns true when advertising ended (connection, timeout). */
  private runAdvertisingEvent(ctrl: VirtualController): boolean {
    const a = ctrl.advertising;
    const type = a.advertisingType;
    const highDuty = type === AdvType.AdvDirectIndHigh;
    if (highDuty && this.clock.now() - ctrl.advertisingSince >= 1280) {
      // High duty cycle directed advertising lasts 1.28 s at most. Core 5.4 Vol 4 Part E 7.8.9.
      ctrl.advertisingStopped();
      ctrl.connectionComplete({
        status: HciStatus.AdvertisingTimeout,
        handle: 0,
        role: 1,
        peerAddressType: a.peerAddressType,
        peerAddress: a.peerAddress,
        connInterval: 0,
        connLatency: 0,
        supervisionTimeout: 0,
        centralClockAccuracy: 0,
      });
      return true;
    }
    const own = ctrl.ownAddress(a.ownAddressType);
    const directed = highDuty || type === AdvType.AdvDirectIndLow;
    const connectable = type === AdvType.AdvInd || directed;
    const scannable = type === AdvType.AdvInd || type === AdvType.AdvScanInd;
    const reportType =
      type === AdvType.AdvInd
        ? AdvertisingReportType.AdvInd
        : directed
          ? AdvertisingReportType.AdvDirectInd
          : type === AdvType.AdvScanInd
            ? AdvertisingReportType.AdvScanInd
            : AdvertisingReportType.AdvNonconnInd;
    const isTarget = (addr: { type: number; address: string }): boolean => addr.type === (a.peerAddressType & 1) && addr.address === a.peerAddress;

    for (const s of this.controllers) {
      if (s === ctrl || !s.isPowered || !s.scanEnabled) continue;
      const scanner = s.ownAddress(s.scan.ownAddressType);
      if (directed && !isTarget(scanner)) continue;
      if ((s.scan.filterPolicy & 1) === 1 && !s.inFilterAcceptList(own.type, own.address)) continue;
      const rssi = this.rssi(ctrl, s);
      this.report(s, reportType, own, directed ? new Uint8Array(0) : ctrl.advertisingData, rssi);
      // Active scanning: SCAN_REQ / SCAN_RSP, unless the advertiser filters scan requests.
      const scanReqAllowed = (a.filterPolicy & 1) === 0 || ctrl.inFilterAcceptList(scanner.type, scanner.address);
      if (s.scanEnabled && s.scan.scanType === 1 && scannable && scanReqAllowed) {
        this.report(s, AdvertisingReportType.ScanRsp, own, ctrl.scanResponseData, rssi);
      }
    }

    if (!connectable) return false;
    for (const i of this.controllers) {
      const init = i.initiating;
      if (i === ctrl || !i.isPowered || !init) continue;
      const initiator = i.ownAddress(init.ownAddressType);
      const wanted =
        init.initiatorFilterPolicy === 1
          ? i.inFilterAcceptList(own.type, own.address)
          : (init.peerAddressType & 1) === own.type && init.peerAddress === own.address;
      if (!wanted) continue;
      if (directed && !isTarget(initiator)) continue;
      if ((a.filterPolicy & 2) === 2 && !ctrl.inFilterAcceptList(initiator.type, initiator.address)) continue;
      if (this.establish(i, init, initiator, ctrl, own)) return true;
    }
    return false;
  }

  private report(s: VirtualController, eventType: number, addr: { type: number; address: string }, data: Uint8Array, rssi: number): void {
    if (s.filterDuplicates) {
      const key = `${addr.type}/${addr.address}/${eventType}`;
      if (s.seenReports.has(key)) return;
      s.seenReports.add(key);
    }
    s.emit('LeAdvertisingReport', { reports: [{ eventType, addressType: addr.type, address: addr.address, data, rssi }] });
  }

  /** CONNECT_IND: both sides get their connection complete event; advertising and initiating stop. */
  private establish(
    central: VirtualController,
    init: CreateConnectionParams,
    centralAddr: { type: number; address: string },
    peripheral: VirtualController,
    peripheralAddr: { type: number; address: string },
  ): boolean {
    const ch = central.allocateHandle();
    const ph = peripheral.allocateHandle();
    if (ch === undefined || ph === undefined) return false;
    // The central picks Conn_Interval_Max, as Zephyr's ll_create_connection does.
    const conn = new AirConnection(this, { ctrl: central, handle: ch }, { ctrl: peripheral, handle: ph }, {
      interval: init.connIntervalMax,
      latency: init.maxLatency,
      timeout: init.supervisionTimeout,
    });
    this.connections.add(conn);
    central.initiatingStopped();
    peripheral.advertisingStopped();
    central.addLink(conn.central);
    peripheral.addLink(conn.peripheral);
    this.log.debug({ central: central.name, peripheral: peripheral.name, centralHandle: ch, peripheralHandle: ph }, 'connection established');
    central.connectionComplete({
      status: HciStatus.Success,
      handle: ch,
      role: 0,
      peerAddressType: peripheralAddr.type,
      peerAddress: peripheralAddr.address,
      connInterval: conn.interval,
      connLatency: conn.latency,
      supervisionTimeout: conn.timeout,
      centralClockAccuracy: 0,
    });
    peripheral.connectionComplete({
      status: HciStatus.Success,
      handle: ph,
      role: 1,
      peerAddressType: centralAddr.type,
      peerAddress: centralAddr.address,
      connInterval: conn.interval,
      connLatency: conn.latency,
      supervisionTimeout: conn.timeout,
      // 50 ppm sleep clock (value 5). Core 5.4 Vol 4 Part E 7.7.65.1.
      centralClockAccuracy: 0x05,
    });
    conn.start();
    return true;
  }
}
