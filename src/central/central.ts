/**
 * The central composition: a phone-like device built from our layers. The device-wide stack and,
 * per connection, L2CAP + an SMP session in the initiator role (fixed channel 0x0006) come from
 * src/stack/, shared with the Peripheral; GAP central procedures (scanning with decoded
 * advertising reports, connecting by name or address with a timeout, cancelling) run here, and
 * each link gets a GATT client on an ATT bearer (0x0004): a {@link CentralLink} (./link.ts).
 *
 * Addresses are the privacy layer's (src/privacy/own-address.ts). Our identity is the controller's
 * identity address (the DK's static random address) with an IRK kept in the bond store; it is
 * distributed during pairing (Identity Information and Identity Address Information). With
 * `privacy: 'rpa'` a fresh resolvable private address is set before every connection (Core 5.4
 * Vol 6 Part B 1.3.2.2), so a bonded peripheral must resolve it with our IRK. A peripheral that
 * uses RPAs is recognised when a bond holds its IRK (Core 5.4 Vol 3 Part C 10.7).
 *
 * Security. Pairing, re-encryption with a stored key (LE Enable Encryption) and Security Requests
 * are the SmpSession's (src/smp); an optional {@link SmpTap} sees every SMP PDU both ways, which is
 * how phone profiles shape what goes on the wire (src/phone).
 */
import type { Hci, AdvertisingReport } from '../hci/driver.js';
import type { HciConnection } from '../hci/connection.js';
import type { ControllerInfo } from '../hci/controller-info.js';
import { AdvertisingReportType } from '../hci/events.js';
import { parseAdvertisement, type ParsedAdvertisement } from '../hci/advertising.js';
import { HciStatus, hciStatusName } from '../hci/status.js';
import { FixedCid } from '../l2cap/connection.js';
import { isValidConnectionParameters, type ConnectionParameters } from '../l2cap/conn-params.js';
import type { SecurityManager } from '../smp/security-manager.js';
import type { PairedInfo, PairingFailure } from '../smp/types.js';
import { AttBearer } from '../att/bearer.js';
import type { LocalIdentity } from '../bonds/types.js';
import type { OwnAddress } from '../privacy/own-address.js';
import { buildDeviceStack, type StackCoreOptions } from '../stack/device.js';
import { attLower, closeLinkStack, openLinkStack, routeLinkEvents } from '../stack/link.js';
import { addressTypeToByte, formatAddress, sameAddress, type Address } from '../util/address.js';
import type { TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import { WearableHostError } from '../util/errors.js';
import { GattClient } from '../gatt/client.js';
import { CentralLink } from './link.js';

/** Connection parameters asked for in LE Create Connection, HCI units (1.25 ms, 10 ms). */
export interface InitialConnectionParameters {
  readonly intervalMin: number;
  readonly intervalMax: number;
  readonly latency: number;
  readonly timeout: number;
}

/** 30 ms, latency 0, 5 s supervision timeout. */
export const DEFAULT_CENTRAL_CONNECTION: InitialConnectionParameters = Object.freeze({ intervalMin: 24, intervalMax: 24, latency: 0, timeout: 500 });

/** What the phone layer may do with SMP PDUs on their way in and out. */
export interface SmpTap {
  /** A PDU from the peer, before the SMP session sees it. Return false to drop it. */
  inbound?(link: CentralLink, pdu: Uint8Array): boolean;
  /**
   * A PDU our SMP session sends. Return the bytes to put on the wire (possibly changed), or
   * undefined to keep it back (the tap may send it later with {@link CentralLink.sendSmp}).
   */
  outbound?(link: CentralLink, pdu: Uint8Array): Uint8Array | undefined;
}

export interface CentralOptions extends StackCoreOptions {
  /** Our ATT receive MTU, offered in Exchange MTU (23..517, default 517). */
  mtu?: number;
  /** Own address: the static identity address, or a fresh RPA before every connection. Default 'static'. */
  privacy?: 'static' | 'rpa';
  /** Parameters asked for when connecting. */
  connection?: InitialConnectionParameters;
  /**
   * Decides on the peripheral's L2CAP Connection Parameter Update Request (Core 5.4 Vol 3 Part A
   * 4.20); accepted parameters are applied with LE Connection Update. Default: accept valid ones.
   */
  acceptParameters?: (params: ConnectionParameters) => boolean;
  /** Scan interval and window, 0.625 ms units (default 96 / 48: 60 ms / 30 ms). */
  scan?: { interval: number; window: number };
  smpTap?: SmpTap;
}

/** An advertiser as seen by our scans (advertising data and scan response merged). */
export interface Advertisement {
  /** The address on air. */
  readonly address: Address;
  /** Its identity, when a bond's IRK resolves the address (or the address is an identity we hold a bond for). */
  readonly identity: Address | undefined;
  readonly rssi: number;
  readonly connectable: boolean;
  readonly data: ParsedAdvertisement;
  readonly name: string | undefined;
  /** Clock time of the latest report. */
  readonly seenAt: number;
}

/** Who to connect to: an advertisement already seen, a name, or an address (on-air or identity). */
export type ConnectTarget = Advertisement | { readonly name: string } | { readonly address: Address };

export type CentralErrorKind = 'not-found' | 'timeout' | 'cancelled' | 'failed' | 'stopped';

/** A GAP central procedure that did not complete: the target, what happened, what to try. */
export class CentralError extends WearableHostError {
  constructor(
    readonly kind: CentralErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super('hci', message);
    this.name = 'CentralError';
  }
}

export type CentralEvents = {
  ready: [ControllerInfo];
  /** A new or updated advertisement while scanning. */
  advertisement: [Advertisement];
  connected: [CentralLink];
  disconnected: [CentralLink, number, string];
  paired: [CentralLink, PairedInfo];
  pairingFailed: [CentralLink, PairingFailure];
  /** HCI Encryption Change (or Key Refresh) on a link, with its status. */
  encryptionChanged: [CentralLink, { status: number; enabled: boolean }];
  /** The peripheral asked for new connection parameters and how we answered. */
  parameterRequest: [CentralLink, ConnectionParameters, boolean];
  /** The controller or its port is gone. */
  fatal: [Error];
};

interface PendingConnect {
  readonly target: Address;
  readonly resolve: (l: CentralLink) => void;
  readonly reject: (e: Error) => void;
  timer: TimerHandle | undefined;
  /** Why the attempt is being cancelled, once it is. */
  cancelling: CentralError | undefined;
}

interface ScanEntry {
  address: Address;
  adv: Uint8Array;
  rsp: Uint8Array;
  rssi: number;
  connectable: boolean;
  identity: Address | undefined;
  seenAt: number;
}

function targetText(t: ConnectTarget): string {
  if ('name' in t && typeof t.name === 'string' && !('address' in t)) return `"${t.name}"`;
  if ('address' in t) return formatAddress(t.address);
  return 'the device';
}

/** A central on one controller. */
export class Central extends TypedEmitter<CentralEvents> {
  readonly hci: Hci;
  readonly security: SecurityManager;
  private readonly opts: CentralOptions;
  private readonly log: Logger;
  private readonly links = new Map<number, CentralLink>();
  private readonly scanCache = new Map<string, ScanEntry>();
  private scanning = false;
  private pending: PendingConnect | undefined;
  /** Our identity and the address we use on air (identity, or a fresh RPA per connection). */
  private readonly ownAddress: OwnAddress;
  private stopped = false;

  constructor(opts: CentralOptions) {
    super();
    this.opts = opts;
    this.log = opts.log;
    ({ hci: this.hci, security: this.security, ownAddress: this.ownAddress } = buildDeviceStack(opts, { kind: opts.privacy === 'rpa' ? 'per-connection' : 'identity' }));
    this.hci.on('connected', (c) => this.onConnected(c));
    this.hci.on('connectionFailed', (f) => this.onConnectionFailed(f.status));
    this.hci.on('disconnected', (c, reason, name) => this.onDisconnected(c, reason, name));
    // SMP sees Encryption Change / Key Refresh first (routeLinkEvents), then the central reports it.
    routeLinkEvents(this.hci, (handle) => this.links.get(handle)?.stack);
    this.hci.on('encryptionChanged', (c, ch) => {
      const link = this.links.get(c.handle);
      if (link) this.emit('encryptionChanged', link, { status: ch.status, enabled: ch.enabled });
    });
    this.hci.on('encryptionKeyRefreshed', (c, status) => {
      const link = this.links.get(c.handle);
      if (link) this.emit('encryptionChanged', link, { status, enabled: true });
    });
    this.hci.on('advertisingReport', (r) => this.onReport(r));
    this.hci.on('transportLost', (err) => this.onFatal(err));
  }

  /** Our identity (address and IRK distributed when pairing). */
  get identity(): LocalIdentity | undefined {
    return this.ownAddress.identity;
  }

  /** The address we use on air now. */
  get currentAddress(): Address | undefined {
    return this.ownAddress.addressInUse();
  }

  get connections(): readonly CentralLink[] {
    return [...this.links.values()];
  }

  get isScanning(): boolean {
    return this.scanning;
  }

  /** Brings the controller up and settles our identity. */
  async start(): Promise<ControllerInfo> {
    const info = await this.hci.init();
    await this.ownAddress.settleIdentity(info.identityAddress);
    this.emit('ready', info);
    return info;
  }

  /** Stops scanning and connecting, disconnects every link and closes the driver (the transport stays the caller's). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      if (this.hci.ready) {
        if (this.pending) await this.cancelConnect().catch(() => undefined);
        if (this.scanning) await this.stopScan().catch(() => undefined);
        for (const link of [...this.links.values()]) {
          await this.hci.disconnect(link.hci.handle, HciStatus.RemoteDeviceTerminatedPowerOff).catch(() => undefined);
        }
      }
    } finally {
      this.failPending(new CentralError('stopped', 'the central was stopped'));
      for (const link of [...this.links.values()]) this.closeLink(link, HciStatus.ConnectionTerminatedByLocalHost);
      this.hci.close();
    }
  }

  // ------------------------------------------------------------------ scanning

  /**
   * LE Set Scan Parameters + LE Set Scan Enable (active scanning, duplicates reported so names
   * from scan responses arrive). Core 5.4 Vol 4 Part E 7.8.10 / 7.8.11.
   */
  async startScan(): Promise<void> {
    if (this.scanning) return;
    const s = this.opts.scan ?? { interval: 96, window: 48 };
    await this.hci.command('LeSetScanParameters', {
      scanType: 1,
      interval: s.interval,
      window: s.window,
      ownAddressType: this.ownAddress.ownAddressType(),
      filterPolicy: 0,
    });
    await this.hci.command('LeSetScanEnable', { enable: true, filterDuplicates: false });
    this.scanning = true;
  }

  async stopScan(): Promise<void> {
    if (!this.scanning) return;
    this.scanning = false;
    await this.hci.command('LeSetScanEnable', { enable: false, filterDuplicates: false });
  }

  /** What scans have seen so far. */
  get seen(): readonly Advertisement[] {
    return [...this.scanCache.values()].map((e) => this.toAdvertisement(e));
  }

  private onReport(r: AdvertisingReport): void {
    const key = `${r.address.type}/${r.address.address}`;
    let e = this.scanCache.get(key);
    if (!e) {
      e = { address: r.address, adv: new Uint8Array(0), rsp: new Uint8Array(0), rssi: r.rssi, connectable: false, identity: undefined, seenAt: 0 };
      this.scanCache.set(key, e);
    }
    if (r.eventType === AdvertisingReportType.ScanRsp) e.rsp = r.data.slice();
    else {
      e.adv = r.data.slice();
      e.connectable = r.eventType === AdvertisingReportType.AdvInd || r.eventType === AdvertisingReportType.AdvDirectInd;
    }
    e.rssi = r.rssi;
    e.seenAt = this.opts.clock.now();
    e.identity = this.opts.bonds.resolve(r.address)?.peer;
    if (this.listenerCount('advertisement') > 0) this.emit('advertisement', this.toAdvertisement(e));
  }

  private toAdvertisement(e: ScanEntry): Advertisement {
    const data = parseAdvertisement(e.adv, e.rsp);
    return { address: e.address, identity: e.identity, rssi: e.rssi, connectable: e.connectable, data, name: data.name, seenAt: e.seenAt };
  }

  private matches(a: Advertisement, t: ConnectTarget): boolean {
    if ('address' in t && 'seenAt' in t) return sameAddress(a.address, t.address);
    if ('address' in t) return sameAddress(a.address, t.address) || sameAddress(a.identity, t.address);
    return a.name === t.name;
  }

  /**
   * Scans until an advertiser matching `target` shows up (a name, or an address on air or as
   * resolved identity). Rejects with CentralError 'not-found' after `timeoutMs`.
   */
  async find(target: { name: string } | { address: Address }, timeoutMs: number): Promise<Advertisement> {
    for (const a of this.seen) if (a.connectable && this.matches(a, target) && this.opts.clock.now() - a.seenAt < 1000) return a;
    const wasScanning = this.scanning;
    await this.startScan();
    try {
      return await new Promise<Advertisement>((resolve, reject) => {
        const done = (): void => {
          this.off('advertisement', onAdv);
          this.opts.clock.clearTimeout(timer);
        };
        const onAdv = (a: Advertisement): void => {
          if (!a.connectable || !this.matches(a, target)) return;
          done();
          resolve(a);
        };
        const timer = this.opts.clock.setTimeout(() => {
          done();
          reject(new CentralError('not-found', `${targetText(target)} was not seen advertising within ${timeoutMs / 1000} s: is it powered, advertising, and not connected to another phone?`));
        }, timeoutMs);
        this.on('advertisement', onAdv);
      });
    } finally {
      if (!wasScanning) await this.stopScan().catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ connecting

  /**
   * Connects to `target` within `timeoutMs` (scan to find it, then LE Create Connection). In
   * 'rpa' mode a new resolvable private address is set first. On timeout the attempt is cancelled
   * (LE Create Connection Cancel) and the promise rejects with CentralError 'timeout'.
   */
  async connect(target: ConnectTarget, opts: { timeoutMs?: number } = {}): Promise<CentralLink> {
    if (this.stopped) throw new CentralError('stopped', 'the central was stopped');
    if (this.pending) throw new CentralError('failed', `a connection attempt to ${formatAddress(this.pending.target)} is already running; cancel it first`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const t0 = this.opts.clock.now();
    if (this.opts.privacy === 'rpa') await this.rotateAddress();
    const adv = 'seenAt' in target ? target : await this.find(target, timeoutMs);
    if (this.scanning) await this.stopScan();
    const left = Math.max(1, timeoutMs - (this.opts.clock.now() - t0));
    return this.createConnection(adv.address, left);
  }

  /** A fresh RPA from our IRK (LE Set Random Address). Scanning must be off. */
  async rotateAddress(): Promise<Address> {
    if (!this.ownAddress.identity) throw new WearableHostError('hci', 'start() the central before connecting');
    if (this.scanning) await this.stopScan();
    const rpa = await this.ownAddress.newPrivateAddress();
    this.scanCache.clear();
    this.log.debug({ rpa: rpa.address }, 'new resolvable private address');
    return rpa;
  }

  private createConnection(peer: Address, timeoutMs: number): Promise<CentralLink> {
    const p = this.opts.connection ?? DEFAULT_CENTRAL_CONNECTION;
    return new Promise<CentralLink>((resolve, reject) => {
      const pending: PendingConnect = { target: peer, resolve, reject, timer: undefined, cancelling: undefined };
      this.pending = pending;
      pending.timer = this.opts.clock.setTimeout(() => {
        pending.timer = undefined;
        this.cancelPending(new CentralError('timeout', `no connection to ${formatAddress(peer)} within ${timeoutMs / 1000} s (LE Create Connection cancelled); move the phone closer or check that it still advertises`));
      }, timeoutMs);
      this.hci
        .command('LeCreateConnection', {
          scanInterval: 0x60,
          scanWindow: 0x60,
          initiatorFilterPolicy: 0,
          peerAddressType: addressTypeToByte(peer.type),
          peerAddress: peer.address,
          ownAddressType: this.ownAddress.ownAddressType(),
          connIntervalMin: p.intervalMin,
          connIntervalMax: p.intervalMax,
          maxLatency: p.latency,
          supervisionTimeout: p.timeout,
          minCeLength: 0,
          maxCeLength: 0,
        })
        .catch((err: unknown) => {
          if (this.pending !== pending) return;
          this.clearPending();
          reject(new CentralError('failed', `LE Create Connection to ${formatAddress(peer)} was refused: ${err instanceof Error ? err.message : String(err)}`));
        });
    });
  }

  /** Cancels a pending connection attempt (LE Create Connection Cancel). Core 5.4 Vol 4 Part E 7.8.13. */
  async cancelConnect(): Promise<void> {
    this.cancelPending(new CentralError('cancelled', 'the connection attempt was cancelled'));
  }

  private cancelPending(err: CentralError): void {
    const p = this.pending;
    if (!p || p.cancelling) return;
    p.cancelling = err;
    this.hci.command('LeCreateConnectionCancel', {}).catch((e: unknown) => {
      // Command Disallowed: the connection completed meanwhile; it is kept (the connected event resolves).
      this.log.debug({ err: e }, 'LE Create Connection Cancel refused');
    });
  }

  private clearPending(): void {
    const p = this.pending;
    if (!p) return;
    this.opts.clock.clearTimeout(p.timer);
    this.pending = undefined;
  }

  private failPending(err: Error): void {
    const p = this.pending;
    if (!p) return;
    this.clearPending();
    p.reject(err);
  }

  private onConnectionFailed(status: number): void {
    const p = this.pending;
    if (!p) return;
    this.clearPending();
    if (p.cancelling) p.reject(p.cancelling);
    else p.reject(new CentralError('failed', `connection to ${formatAddress(p.target)} failed: ${hciStatusName(status)}`, status));
  }

  private onConnected(c: HciConnection): void {
    if (c.role !== 'central') {
      this.log.warn({ conn: c.toJSON() }, 'a peripheral-role connection on the central: disconnecting');
      void this.hci.disconnect(c.handle, HciStatus.RemoteUserTerminatedConnection).catch(() => undefined);
      return;
    }
    const link = this.buildLink(c);
    const p = this.pending;
    this.clearPending();
    this.emit('connected', link);
    p?.resolve(link);
  }

  private buildLink(c: HciConnection): CentralLink {
    const log = this.log.child({ conn: c.handle, peer: formatAddress(c.peer) });
    const tap = this.opts.smpTap;
    const localAddress = this.ownAddress.localAddressFor(c);
    const stack = openLinkStack(this.hci, this.security, c, {
      clock: this.opts.clock,
      log,
      mtu: this.opts.mtu ?? 517,
      localAddress,
      onParameterUpdateRequest: async (params) => {
        const accept = isValidConnectionParameters(params) && (this.opts.acceptParameters ? this.opts.acceptParameters(params) : true);
        const l = this.links.get(c.handle);
        if (l) this.emit('parameterRequest', l, params, accept);
        if (!accept) return false;
        await this.hci.command('LeConnectionUpdate', {
          handle: c.handle,
          connIntervalMin: params.intervalMin,
          connIntervalMax: params.intervalMax,
          maxLatency: params.latency,
          supervisionTimeout: params.timeout,
          minCeLength: 0,
          maxCeLength: 0,
        });
        return true;
      },
      // The phone layer's tap sees every SMP PDU both ways.
      smpSend: (pdu) => {
        const out = tap?.outbound ? tap.outbound(link, pdu) : pdu;
        if (out) link.sendSmp(out);
      },
      smpInbound: (pdu) => !tap?.inbound || tap.inbound(link, pdu),
    });
    const { l2cap, smp } = stack;
    const bearer = new AttBearer({ lower: attLower(c, stack), clock: this.opts.clock, log: log.child({ layer: 'att' }), mtu: this.opts.mtu ?? 517 });
    const gatt = new GattClient({ bearer, log: log.child({ layer: 'gatt' }) });
    const link = new CentralLink(this, c, stack, bearer, gatt, localAddress, this.opts.clock.now());
    this.links.set(c.handle, link);
    l2cap.setHandler(FixedCid.Att, (p) => bearer.onPdu(p));
    smp.on('paired', (info) => this.emit('paired', link, info));
    smp.on('pairingFailed', (f) => this.emit('pairingFailed', link, f));
    bearer.on('timeout', () => {
      log.warn('ATT transaction timed out (no response in 30 s): disconnecting');
      void this.hci.disconnect(c.handle, HciStatus.RemoteUserTerminatedConnection).catch(() => undefined);
    });
    smp.start();
    return link;
  }

  /** Disconnects a link and resolves once it is down (or was already). */
  disconnect(link: CentralLink, reason: number = HciStatus.RemoteUserTerminatedConnection): Promise<void> {
    if (!this.links.has(link.hci.handle)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const onDown = (l: CentralLink): void => {
        if (l !== link) return;
        this.off('disconnected', onDown);
        resolve();
      };
      this.on('disconnected', onDown);
      this.hci.disconnect(link.hci.handle, reason).catch((err: unknown) => {
        this.log.debug({ err }, 'disconnect refused');
        if (!this.links.has(link.hci.handle)) {
          this.off('disconnected', onDown);
          resolve();
        }
      });
    });
  }

  private onDisconnected(c: HciConnection, reason: number, name: string): void {
    const link = this.links.get(c.handle);
    if (!link) return;
    this.closeLink(link, reason);
    this.emit('disconnected', link, reason, name);
  }

  private closeLink(link: CentralLink, reason: number): void {
    if (!this.links.delete(link.hci.handle)) return;
    link.markClosed(reason);
    closeLinkStack(link.stack);
    link.bearer.onDisconnected();
  }

  private onFatal(err: Error): void {
    this.log.error({ err }, `lost the controller on ${this.hci.port}: ${err.message}`);
    this.failPending(new CentralError('failed', `lost the controller on ${this.hci.port}`));
    for (const link of [...this.links.values()]) this.closeLink(link, HciStatus.UnspecifiedError);
    this.stopped = true;
    this.emit('fatal', err);
  }
}
