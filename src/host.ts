/**
 * The composition root: builds a wearable peripheral from the layers. The HCI driver talks to the
 * controller; per connection, an L2CAP demux feeds SMP (fixed channel 0x0006) and the ATT server
 * (0x0004). SMP gets the two HCI things it needs (LTK reply, key size) through a narrow interface
 * built here, never the driver itself.
 */
import type { Transport } from './hci/transport.js';
import { Hci, type HciOptions, type PacketDirection } from './hci/driver.js';
import type { HciConnection } from './hci/connection.js';
import type { ControllerInfo } from './hci/controller-info.js';
import { Advertiser, DEFAULT_DEVICE_NAME } from './hci/advertiser.js';
import { HciStatus } from './hci/status.js';
import { HciError } from './hci/hci-error.js';
import { L2capConnection, FixedCid, L2CAP_BASIC_HEADER, SMP_MTU, type L2capOptions } from './l2cap/connection.js';
import { DEFAULT_PERIPHERAL_PARAMETERS, type ConnectionParameters } from './l2cap/conn-params.js';
import { SecurityManager } from './smp/security-manager.js';
import type { SmpSession } from './smp/pairing.js';
import type { SmpLower, SmpPolicy, PairedInfo, PairingFailure } from './smp/types.js';
import { AttServer } from './att/server.js';
import type { GattDatabase } from './gatt/database.js';
import type { BondStore, LocalIdentity } from './bonds/types.js';
import { generateIrk } from './bonds/privacy.js';
import { RpaRotator } from './privacy/rpa-rotation.js';
import { controllerSupportsResolvingList, loadResolvingList } from './privacy/resolving-list.js';
import type { Address } from './util/address.js';
import { formatAddress } from './util/address.js';
import type { Clock, TimerHandle } from './util/clock.js';
import type { Logger } from './util/log.js';
import type { RandomSource } from './util/random.js';
import { TypedEmitter } from './util/emitter.js';
import { WearableHostError } from './util/errors.js';

/** How long stop() waits for the controller to report the links it was asked to end. */
const STOP_DISCONNECT_WAIT_MS = 1000;

/** One connection's layers. */
export interface PeripheralLink {
  readonly hci: HciConnection;
  readonly l2cap: L2capConnection;
  readonly smp: SmpSession;
  readonly att: AttServer;
}

export type PeripheralEvents = {
  ready: [ControllerInfo];
  advertising: [boolean];
  connected: [PeripheralLink];
  disconnected: [PeripheralLink, number, string];
  paired: [PeripheralLink, PairedInfo];
  pairingFailed: [PeripheralLink, PairingFailure];
  encrypted: [PeripheralLink];
  /** The controller or its port is gone; the peripheral has stopped. */
  fatal: [Error];
};

export interface PeripheralOptions {
  transport: Transport;
  clock: Clock;
  /** The OS CSPRNG in production. */
  random: RandomSource;
  log: Logger;
  bonds: BondStore;
  db: GattDatabase;
  /** Complete local name advertised. Default "Noira Band". */
  name?: string;
  /** GAP appearance advertised. */
  appearance?: number;
  /** 16-bit service UUIDs advertised. */
  serviceUuids16?: number[];
  policy?: Partial<SmpPolicy>;
  /** Largest ATT_MTU offered (default 517). */
  mtu?: number;
  /** Minimum key size for encrypted attributes (default: the SMP policy's, 16). */
  minKeySize?: number;
  /** Parameters requested after connecting; false to never ask. */
  connectionParameters?: ConnectionParameters | false;
  /** Delay before the parameter request, ms (default 5000, like Zephyr's CONFIG_BT_CONN_PARAM_UPDATE_TIMEOUT). */
  connectionParametersDelayMs?: number;
  /** Concurrent peripheral connections (advertising continues below this). Default 1. */
  maxConnections?: number;
  /** Every HCI packet both ways (btsnoop, diagnosis). */
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
  /** Passed to the driver. */
  hci?: Partial<Omit<HciOptions, 'clock' | 'log' | 'trace'>>;
  /**
   * Host-based privacy: advertise and connect from resolvable private addresses made from our IRK,
   * rotated every `rpaTimeoutS` seconds (default 900); the identity is distributed at pairing.
   */
  privacy?: { rpaTimeoutS?: number } | false;
  /**
   * Load bonded peers' IRKs into the controller's resolving list (LL privacy) at start, after
   * each bonded pairing and after a controller reset, when the controller supports it. The host
   * resolves phones' addresses itself either way; this lets the controller do it too.
   */
  resolvingList?: boolean;
}

/**
 * A wearable peripheral on one controller: bring-up, identity, advertising, and for each
 * connection L2CAP + SMP (responder) + ATT server over `db`.
 */
export class Peripheral extends TypedEmitter<PeripheralEvents> {
  readonly hci: Hci;
  readonly security: SecurityManager;
  readonly db: GattDatabase;
  private readonly opts: PeripheralOptions;
  private readonly log: Logger;
  private advertiser: Advertiser | undefined;
  private rotator: RpaRotator | undefined;
  /** Advertising is wanted (between start() and stop()): the rotator resumes it after a rotation. */
  private advertisingWanted = false;
  private readonly links = new Map<number, PeripheralLink>();
  private readonly paramTimers = new Map<number, TimerHandle>();
  private localIdentity: LocalIdentity | undefined;
  private stopped = false;

  constructor(opts: PeripheralOptions) {
    super();
    this.opts = opts;
    this.log = opts.log;
    this.db = opts.db;
    ({ hci: this.hci, security: this.security } = buildHciAndSecurity(opts));
    this.hci.on('connected', (c) => this.onConnected(c));
    this.hci.on('disconnected', (c, reason, name) => this.onDisconnected(c, reason, name));
    this.hci.on('acl', (handle, frame) => this.links.get(handle)?.l2cap.onFrame(frame));
    this.hci.on('longTermKeyRequest', (c, req) => {
      const link = this.links.get(c.handle);
      if (link) link.smp.onLtkRequest(req.rand, req.ediv);
      else void this.hci.command('LeLongTermKeyRequestNegativeReply', { handle: c.handle }).catch(() => undefined);
    });
    this.hci.on('encryptionChanged', (c, ch) => this.links.get(c.handle)?.smp.onEncryptionChange(ch.status, ch.enabled));
    this.hci.on('encryptionKeyRefreshed', (c, status) => this.links.get(c.handle)?.smp.onKeyRefresh(status));
    this.hci.on('transportLost', (err) => this.onFatal(err));
  }

  /** Live links by connection handle. */
  get connections(): readonly PeripheralLink[] {
    return [...this.links.values()];
  }

  get identity(): LocalIdentity | undefined {
    return this.localIdentity;
  }

  get advertising(): boolean {
    return this.advertiser?.advertising ?? false;
  }

  /** Brings the controller up, settles our identity, and starts advertising. */
  async start(): Promise<ControllerInfo> {
    const info = await this.hci.init();
    this.localIdentity = await this.settleIdentity(info);
    this.emit('ready', info);
    this.advertiser = new Advertiser(this.hci, {
      name: this.opts.name ?? DEFAULT_DEVICE_NAME,
      ...(this.opts.appearance !== undefined ? { appearance: this.opts.appearance } : {}),
      ...(this.opts.serviceUuids16 ? { serviceUuids16: this.opts.serviceUuids16 } : {}),
      maxConnections: this.opts.maxConnections ?? 1,
      // With privacy the RPA the rotator set is what goes on air, also for a public identity.
      randomOwnAddress: !!this.opts.privacy,
      log: this.log.child({ layer: 'adv' }),
    });
    this.advertiser.on('started', () => this.emit('advertising', true));
    this.advertiser.on('stopped', () => this.emit('advertising', false));
    this.advertiser.on('error', (err) => this.log.warn({ err }, `advertising on ${this.hci.port} failed; it is retried on the next disconnection`));
    this.advertisingWanted = true;
    if (this.opts.resolvingList) await this.startResolvingList(info, this.advertiser, this.localIdentity);
    if (this.opts.privacy) await this.startPrivacy(this.advertiser, this.localIdentity);
    try {
      await this.advertiser.start();
    } catch (err) {
      // A command lost on the line timed out and the driver is re-initialising the controller: the
      // advertiser restarts once that is done, so start() waits for it instead of failing.
      if (!(err instanceof HciError) || (err.kind !== 'timeout' && err.kind !== 'reset' && err.kind !== 'malformed') || this.hci.state !== 'initialising') throw err;
      await this.advertisingAfterReinit(this.advertiser);
    }
    return info;
  }

  /** Resolves when the advertiser started again after a re-initialisation; rejects when that failed. */
  private advertisingAfterReinit(advertiser: Advertiser): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        advertiser.off('started', onStarted);
        advertiser.off('error', done);
        this.hci.off('reinitialisationFailed', done);
        if (err) reject(err);
        else resolve();
      };
      const onStarted = (): void => done();
      advertiser.on('started', onStarted);
      advertiser.on('error', done);
      this.hci.on('reinitialisationFailed', done);
    });
  }

  /**
   * Loads the resolving list now (advertising is not on yet) and again, with advertising paused
   * around it, after every bonded pairing and controller reset. Updates never overlap.
   */
  private async startResolvingList(info: ControllerInfo, advertiser: Advertiser, id: LocalIdentity): Promise<void> {
    if (!controllerSupportsResolvingList(info)) {
      this.log.warn(`the controller on ${this.hci.port} has no LL privacy resolving list; the host resolves phone addresses itself`);
      return;
    }
    const log = this.log.child({ layer: 'privacy' });
    const load = (pause: boolean): Promise<void> =>
      loadResolvingList((name, params) => this.hci.command(name, params), this.opts.bonds.list(), {
        localIrk: id.irk,
        setPrivacyMode: info.supports('LeSetPrivacyMode'),
        log,
        ...(pause ? { pause: this.advertisingPause(advertiser) } : {}),
      }).then(() => undefined);
    let chain = load(false).catch((err: unknown) => log.warn({ err }, 'could not load the controller resolving list; the host still resolves addresses'));
    await chain;
    const reload = (why: string): void => {
      chain = chain
        .then(() => (this.stopped ? undefined : load(true)))
        .catch((err: unknown) => log.warn({ err, why }, 'could not update the controller resolving list; the host still resolves addresses'));
    };
    this.on('paired', (_link, p) => p.bonded && reload('bonded pairing'));
    this.hci.on('reinitialised', () => reload('controller reset'));
  }

  /**
   * Stops advertising around a change the controller refuses while advertising (random address,
   * resolving list), and resumes it only if it is still wanted.
   */
  private advertisingPause(advertiser: Advertiser): { pauseAdvertising(): Promise<boolean>; resumeAdvertising(): Promise<void> } {
    return {
      pauseAdvertising: async () => {
        const wanted = this.advertisingWanted;
        await advertiser.stop();
        return wanted;
      },
      resumeAdvertising: () => (this.advertisingWanted ? advertiser.start() : Promise.resolve()),
    };
  }

  /** The RPA in use now, when privacy is on. */
  get privateAddress(): Address | undefined {
    return this.rotator?.addressInUse();
  }

  /**
   * Puts the first RPA on air before advertising starts (so the static address never goes out),
   * and keeps rotating it; after a controller reset the driver restores the static address, so the
   * rotator pauses advertising and sets a fresh RPA.
   */
  private async startPrivacy(advertiser: Advertiser, id: LocalIdentity): Promise<void> {
    const privacy = this.opts.privacy || {};
    const rotator = new RpaRotator({
      clock: this.opts.clock,
      random: this.opts.random,
      irk: id.irk,
      log: this.log.child({ layer: 'privacy' }),
      ...(privacy.rpaTimeoutS !== undefined ? { timeoutS: privacy.rpaTimeoutS } : {}),
      lower: {
        setRandomAddress: async (address) => {
          await this.hci.command('LeSetRandomAddress', { address });
        },
        ...this.advertisingPause(advertiser),
      },
    });
    rotator.on('error', (err) => this.log.warn({ err }, 'private address rotation failed; the previous address stays in use'));
    this.hci.on('reinitialised', () => {
      void rotator.controllerReset().catch((err: unknown) => this.log.warn({ err }, 'could not restore a private address after the controller reset'));
    });
    this.rotator = rotator;
    await rotator.start();
  }

  /** Stops advertising, disconnects every peer, and closes the driver (the transport stays the caller's). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.advertisingWanted = false;
    this.rotator?.stop();
    for (const t of this.paramTimers.values()) this.opts.clock.clearTimeout(t);
    this.paramTimers.clear();
    try {
      if (this.hci.ready) {
        await this.advertiser?.stop();
        for (const link of [...this.links.values()]) {
          await this.hci.disconnect(link.hci.handle, HciStatus.RemoteDeviceTerminatedPowerOff).catch(() => undefined);
        }
        await this.linksGone(STOP_DISCONNECT_WAIT_MS);
      }
    } catch (err) {
      this.log.debug({ err }, 'stopping: controller did not answer');
    } finally {
      this.advertiser?.dispose();
      for (const link of [...this.links.values()]) this.closeLink(link);
      this.hci.close();
    }
  }

  /**
   * Resolves once every link has its Disconnection Complete (so the trace and the phone see the
   * link end), or after `ms` if the controller does not report it.
   */
  private linksGone(ms: number): Promise<void> {
    if (this.links.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      // The injected clock's timers do not keep the process alive (a library user's test would see
      // its event loop drain with stop() pending): hold the loop for at most the same bound, in wall time.
      const keepAlive = setTimeout(() => undefined, ms);
      const done = (): void => {
        if (this.links.size > 0 && timer !== undefined) return;
        this.opts.clock.clearTimeout(timer);
        clearTimeout(keepAlive);
        this.off('disconnected', done);
        resolve();
      };
      let timer: TimerHandle | undefined = this.opts.clock.setTimeout(() => {
        timer = undefined;
        done();
      }, ms);
      this.on('disconnected', done);
    });
  }

  /**
   * Our identity: the controller's identity address (the DK's static address) and our IRK, kept
   * in the bond store so bonded phones keep recognising us across restarts.
   */
  private async settleIdentity(info: ControllerInfo): Promise<LocalIdentity> {
    const stored = this.opts.bonds.getLocalIdentity();
    const address = info.identityAddress;
    if (stored && stored.address.address === address.address && stored.address.type === address.type) return stored;
    if (stored) {
      this.log.warn(
        { stored: formatAddress(stored.address), controller: formatAddress(address), bonds: this.opts.bonds.description },
        `the bond file was made with another controller (${formatAddress(stored.address)}); this one is ${formatAddress(address)}. ` +
          'Phones bonded before will not find their bond: remove the device on the phone, or use the bond file of this DK.',
      );
    }
    const id: LocalIdentity = { address, irk: stored?.irk ?? generateIrk(this.opts.random) };
    await this.opts.bonds.setLocalIdentity(id);
    return id;
  }

  /**
   * Our address on this connection, as f5/f6 need it (Core 5.4 Vol 3 Part H 2.2.7): the local RPA
   * the controller reports in LE Enhanced Connection Complete when it generated one, else the RPA
   * the rotator had set (advertising uses Own_Address_Type random under privacy), else the identity.
   */
  private localAddressFor(c: HciConnection): Address {
    if (c.localRpa) return { type: 'random', address: c.localRpa };
    if (this.rotator) return this.rotator.addressInUse();
    const id = this.localIdentity ?? this.opts.bonds.getLocalIdentity();
    if (!id) throw new WearableHostError('hci', 'no local identity: start() was not called');
    return id.address;
  }

  private onConnected(c: HciConnection): void {
    if (c.role !== 'peripheral') {
      this.log.warn({ conn: c.toJSON() }, 'a central-role connection on the peripheral: disconnecting');
      void this.hci.disconnect(c.handle, HciStatus.RemoteUserTerminatedConnection).catch(() => undefined);
      return;
    }
    const log = this.log.child({ conn: c.handle, peer: formatAddress(c.peer) });
    const l2cap = openL2cap(this.hci, c, { clock: this.opts.clock, log, mtu: this.opts.mtu ?? 517 });
    const smpLower = buildSmpLower(this.hci, c, l2cap, this.localAddressFor(c));
    const smp = this.security.createSession(smpLower);
    // Resolve the peer's identity from the bonds before the ATT server asks for it (its caching
    // state and CCCDs are kept per bond).
    smp.start();
    const att = new AttServer({
      db: this.db,
      clock: this.opts.clock,
      log: log.child({ layer: 'att' }),
      bonds: this.opts.bonds,
      ...(this.opts.mtu !== undefined ? { mtu: this.opts.mtu } : {}),
      minKeySize: this.opts.minKeySize ?? this.opts.policy?.minKeySize ?? 16,
      lower: {
        send: (pdu) => l2cap.sendFixed(FixedCid.Att, pdu),
        get security() {
          return smp.security;
        },
        peer: c.peer,
        peerIdentity: () => smp.peerIdentity,
        onSecurityRejection: () => smp.onAttSecurityRejection(),
      },
    });
    const link: PeripheralLink = { hci: c, l2cap, smp, att };
    this.links.set(c.handle, link);
    l2cap.setHandler(FixedCid.Smp, (p) => smp.onPdu(p));
    l2cap.setHandler(FixedCid.Att, (p) => att.onPdu(p));
    smp.on('securityChanged', (s) => {
      att.onSecurityChanged();
      if (s.encrypted) this.emit('encrypted', link);
    });
    smp.on('paired', (info) => {
      // The bond exists only now (key distribution came after encryption): CCCDs written since
      // encryption are persisted with it from here on.
      att.onSecurityChanged();
      this.emit('paired', link, info);
    });
    smp.on('pairingFailed', (f) => this.emit('pairingFailed', link, f));
    att.on('timeout', () => {
      log.warn('ATT transaction timed out (no confirmation in 30 s): disconnecting');
      void this.hci.disconnect(c.handle, HciStatus.RemoteUserTerminatedConnection).catch(() => undefined);
    });
    this.emit('connected', link);
    this.scheduleParameterUpdate(link);
  }

  private scheduleParameterUpdate(link: PeripheralLink): void {
    const params = this.opts.connectionParameters ?? DEFAULT_PERIPHERAL_PARAMETERS;
    if (params === false) return;
    const handle = link.hci.handle;
    const t = this.opts.clock.setTimeout(() => {
      this.paramTimers.delete(handle);
      if (!this.links.has(handle)) return;
      void link.l2cap.requestParameterUpdate(params);
    }, this.opts.connectionParametersDelayMs ?? 5000);
    this.paramTimers.set(handle, t);
  }

  private onDisconnected(c: HciConnection, reason: number, name: string): void {
    const link = this.links.get(c.handle);
    if (!link) return;
    this.closeLink(link);
    this.emit('disconnected', link, reason, name);
  }

  private closeLink(link: PeripheralLink): void {
    const handle = link.hci.handle;
    if (!this.links.delete(handle)) return;
    this.opts.clock.clearTimeout(this.paramTimers.get(handle));
    this.paramTimers.delete(handle);
    link.l2cap.close();
    link.smp.onDisconnected();
    link.att.onDisconnected();
  }

  private onFatal(err: Error): void {
    this.log.error({ err }, `lost the controller on ${this.hci.port}: ${err.message}`);
    for (const link of [...this.links.values()]) this.closeLink(link);
    this.advertiser?.dispose();
    this.rotator?.stop();
    this.stopped = true;
    this.emit('fatal', err);
  }
}

/** What both roles build their stack from. */
export interface StackCoreOptions {
  transport: Transport;
  clock: Clock;
  random: RandomSource;
  log: Logger;
  bonds: BondStore;
  policy?: Partial<SmpPolicy>;
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
  hci?: Partial<Omit<HciOptions, 'clock' | 'log' | 'trace'>>;
  /** SMP timeout (tests only; default 30 s). */
  smpTimeoutMs?: number;
}

/** The driver on the transport and the device-wide Security Manager, shared by the peripheral and the central. */
export function buildHciAndSecurity(o: StackCoreOptions): { hci: Hci; security: SecurityManager } {
  const hci = new Hci(o.transport, {
    ...o.hci,
    clock: o.clock,
    log: o.log.child({ layer: 'hci' }),
    ...(o.trace ? { trace: o.trace } : {}),
  });
  const security = new SecurityManager({
    bonds: o.bonds,
    clock: o.clock,
    random: o.random,
    ...(o.policy ? { policy: o.policy } : {}),
    ...(o.smpTimeoutMs !== undefined ? { timeoutMs: o.smpTimeoutMs } : {}),
    log: o.log.child({ layer: 'smp' }),
  });
  return { hci, security };
}

/**
 * L2CAP on a new connection, for either role. The driver's reassembly is bounded by the largest
 * valid frame on our fixed channels: an ATT PDU at our MTU (SMP: 65, signaling: 23), so a peer
 * cannot make it buffer up to 64 KiB.
 */
export function openL2cap(
  hci: Hci,
  c: HciConnection,
  o: { clock: Clock; log: Logger; mtu: number; onParameterUpdateRequest?: L2capOptions['onParameterUpdateRequest'] },
): L2capConnection {
  hci.setRxFrameLimit(c.handle, L2CAP_BASIC_HEADER + Math.max(o.mtu, SMP_MTU));
  return new L2capConnection({
    handle: c.handle,
    role: c.role,
    lower: { send: (frame) => hci.sendAcl(c.handle, frame) },
    clock: o.clock,
    log: o.log.child({ layer: 'l2cap' }),
    attMtu: o.mtu,
    ...(o.onParameterUpdateRequest ? { onParameterUpdateRequest: o.onParameterUpdateRequest } : {}),
  });
}

/**
 * SMP's view of one connection: L2CAP channel 0x0006 for PDUs, and the HCI commands it needs.
 * Shared by the peripheral and the central compositions.
 */
export function buildSmpLower(hci: Hci, c: HciConnection, l2cap: L2capConnection, localAddress: Address): SmpLower {
  const handle = c.handle;
  return {
    role: c.role,
    localAddress,
    peerAddress: c.peerRpa ? { type: 'random', address: c.peerRpa } : c.peer,
    send: (pdu) => {
      l2cap.sendFixed(FixedCid.Smp, pdu).catch(() => undefined);
    },
    ltkReply: async (ltk) => {
      await hci.command('LeLongTermKeyRequestReply', { handle, ltk });
    },
    ltkNegativeReply: async () => {
      await hci.command('LeLongTermKeyRequestNegativeReply', { handle });
    },
    startEncryption: async (ltk, ediv, rand) => {
      await hci.command('LeEnableEncryption', { handle, rand, ediv, ltk });
    },
    readKeySize: async () => {
      // Not in the Supported Commands bitmap (Zephyr's LL answers 0x01 Unknown HCI Command): the
      // controller cannot tell; SMP keeps the size it negotiated.
      if (hci.info && !hci.info.supports('ReadEncryptionKeySize')) return undefined;
      const r = await hci.command('ReadEncryptionKeySize', { handle });
      return r.keySize;
    },
    disconnect: async (reason) => {
      await hci.disconnect(handle, reason);
    },
  };
}

/** True when two addresses are the same device address. */
export function sameAddress(a: Address, b: Address): boolean {
  return a.type === b.type && a.address === b.address;
}
