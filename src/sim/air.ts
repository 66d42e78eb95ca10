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
import { toHex } from '../util/bytes.js';
import { HciStatus } from '../hci/status.js';
import { AdvertisingReportType } from '../hci/events.js';
import { AdvType, VirtualController, type CreateConnectionParams, type VirtualControllerOptions } from './controller.js';
import type { FirmwareName, FirmwareProfile } from './firmware.js';
import { AirConnection } from './air/connection.js';

export { AirConnection } from './air/connection.js';
export type { ConnParams, LinkEnd, Role } from './air/link.js';

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
