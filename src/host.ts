/**
 * The composition root: builds a wearable peripheral from the layers. The device-wide stack (HCI
 * driver, Security Manager, the owner of our address on air) and, per connection, L2CAP + SMP
 * come from src/stack/, shared with the Central; here they are wired to the advertiser and a GATT
 * server (ATT fixed channel 0x0004) over `db`.
 */
import type { Hci } from './hci/driver.js';
import type { HciConnection } from './hci/connection.js';
import type { ControllerInfo } from './hci/controller-info.js';
import { Advertiser, DEFAULT_DEVICE_NAME } from './hci/advertiser.js';
import { HciStatus } from './hci/status.js';
import { HciError } from './hci/hci-error.js';
import { FixedCid, type L2capConnection } from './l2cap/connection.js';
import { DEFAULT_PERIPHERAL_PARAMETERS, type ConnectionParameters } from './l2cap/conn-params.js';
import type { SecurityManager } from './smp/security-manager.js';
import type { SmpSession } from './smp/pairing.js';
import type { PairedInfo, PairingFailure } from './smp/types.js';
import { GattServer } from './gatt/server.js';
import type { GattDatabase } from './gatt/database.js';
import type { LocalIdentity } from './bonds/types.js';
import type { AdvertisingPause, OwnAddress } from './privacy/own-address.js';
import { buildDeviceStack, type StackCoreOptions } from './stack/device.js';
import { closeLinkStack, gattServerLower, openLinkStack, routeLinkEvents } from './stack/link.js';
import type { Address } from './util/address.js';
import { formatAddress } from './util/address.js';
import type { TimerHandle } from './util/clock.js';
import type { Logger } from './util/log.js';
import { TypedEmitter } from './util/emitter.js';

/** How long stop() waits for the controller to report the links it was asked to end. */
const STOP_DISCONNECT_WAIT_MS = 1000;

/** One connection's layers. */
export interface PeripheralLink {
  readonly hci: HciConnection;
  readonly l2cap: L2capConnection;
  readonly smp: SmpSession;
  readonly att: GattServer;
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

/** The stack's options (transport, clock, random, log, bonds, SMP policy, trace, driver options) and the peripheral's. */
export interface PeripheralOptions extends Omit<StackCoreOptions, 'smpTimeoutMs'> {
  db: GattDatabase;
  /** Complete local name advertised. Default "Noira Band". */
  name?: string;
  /** GAP appearance advertised. */
  appearance?: number;
  /** 16-bit service UUIDs advertised. */
  serviceUuids16?: number[];
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
  /** Our identity and the address we use on air (identity, or rotating RPAs with `privacy`). */
  private readonly ownAddress: OwnAddress;
  private readonly opts: PeripheralOptions;
  private readonly log: Logger;
  private advertiser: Advertiser | undefined;
  /** Advertising is wanted (between start() and stop()): a pause for an address or resolving-list change resumes it. */
  private advertisingWanted = false;
  private readonly links = new Map<number, PeripheralLink>();
  private readonly paramTimers = new Map<number, TimerHandle>();
  private stopped = false;

  constructor(opts: PeripheralOptions) {
    super();
    this.opts = opts;
    this.log = opts.log;
    this.db = opts.db;
    const privacy = opts.privacy;
    ({ hci: this.hci, security: this.security, ownAddress: this.ownAddress } = buildDeviceStack(
      opts,
      privacy ? { kind: 'rotating', ...(privacy.rpaTimeoutS !== undefined ? { rpaTimeoutS: privacy.rpaTimeoutS } : {}) } : { kind: 'identity' },
    ));
    this.hci.on('connected', (c) => this.onConnected(c));
    this.hci.on('disconnected', (c, reason, name) => this.onDisconnected(c, reason, name));
    routeLinkEvents(this.hci, (handle) => this.links.get(handle));
    this.hci.on('longTermKeyRequest', (c, req) => {
      const link = this.links.get(c.handle);
      if (link) link.smp.onLtkRequest(req.rand, req.ediv);
      else void this.hci.command('LeLongTermKeyRequestNegativeReply', { handle: c.handle }).catch(() => undefined);
    });
    this.hci.on('transportLost', (err) => this.onFatal(err));
  }

  /** Live links by connection handle. */
  get connections(): readonly PeripheralLink[] {
    return [...this.links.values()];
  }

  get identity(): LocalIdentity | undefined {
    return this.ownAddress.identity;
  }

  get advertising(): boolean {
    return this.advertiser?.advertising ?? false;
  }

  /** Brings the controller up, settles our identity, and starts advertising. */
  async start(): Promise<ControllerInfo> {
    const info = await this.hci.init();
    await this.ownAddress.settleIdentity(info.identityAddress);
    this.emit('ready', info);
    this.advertiser = new Advertiser(this.hci, {
      name: this.opts.name ?? DEFAULT_DEVICE_NAME,
      ...(this.opts.appearance !== undefined ? { appearance: this.opts.appearance } : {}),
      ...(this.opts.serviceUuids16 ? { serviceUuids16: this.opts.serviceUuids16 } : {}),
      maxConnections: this.opts.maxConnections ?? 1,
      ownAddressType: () => this.ownAddress.ownAddressType(),
      log: this.log.child({ layer: 'adv' }),
    });
    this.advertiser.on('started', () => this.emit('advertising', true));
    this.advertiser.on('stopped', () => this.emit('advertising', false));
    this.advertiser.on('error', (err) => this.log.warn({ err }, `advertising on ${this.hci.port} failed; it is retried on the next disconnection`));
    this.advertisingWanted = true;
    // After the advertiser's own listener: the controller holds the identity address again and an
    // empty resolving list; the privacy owner pauses advertising before it restarts.
    this.hci.on('reinitialised', () => this.ownAddress.controllerReset());
    const pause = this.advertisingPause(this.advertiser);
    if (this.opts.resolvingList) {
      await this.ownAddress.startResolvingList(info, pause);
      this.on('paired', (_link, p) => p.bonded && this.ownAddress.bondsChanged('bonded pairing'));
    }
    // The first RPA goes in before advertising starts, so the identity address never goes on air.
    if (this.ownAddress.mode.kind === 'rotating') await this.ownAddress.startRotation(pause);
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
   * Stops advertising around a change the controller refuses while advertising (random address,
   * resolving list), and resumes it only if it is still wanted.
   */
  private advertisingPause(advertiser: Advertiser): AdvertisingPause {
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
    return this.ownAddress.rotatingAddress;
  }

  /** Stops advertising, disconnects every peer, and closes the driver (the transport stays the caller's). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.advertisingWanted = false;
    this.ownAddress.stop();
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

  private onConnected(c: HciConnection): void {
    if (c.role !== 'peripheral') {
      this.log.warn({ conn: c.toJSON() }, 'a central-role connection on the peripheral: disconnecting');
      void this.hci.disconnect(c.handle, HciStatus.RemoteUserTerminatedConnection).catch(() => undefined);
      return;
    }
    const log = this.log.child({ conn: c.handle, peer: formatAddress(c.peer) });
    // Our address on this link is read now, while it is the one that was on air (see OwnAddress.localAddressFor).
    const stack = openLinkStack(this.hci, this.security, c, { clock: this.opts.clock, log, mtu: this.opts.mtu ?? 517, localAddress: this.ownAddress.localAddressFor(c) });
    const { l2cap, smp } = stack;
    // Resolve the peer's identity from the bonds before the ATT server asks for it (its caching
    // state and CCCDs are kept per bond).
    smp.start();
    const att = new GattServer({
      db: this.db,
      clock: this.opts.clock,
      log: log.child({ layer: 'att' }),
      bonds: this.opts.bonds,
      ...(this.opts.mtu !== undefined ? { mtu: this.opts.mtu } : {}),
      minKeySize: this.opts.minKeySize ?? this.opts.policy?.minKeySize ?? 16,
      lower: gattServerLower(c, stack),
    });
    const link: PeripheralLink = { hci: c, l2cap, smp, att };
    this.links.set(c.handle, link);
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
    closeLinkStack(link);
    link.att.onDisconnected();
  }

  private onFatal(err: Error): void {
    this.log.error({ err }, `lost the controller on ${this.hci.port}: ${err.message}`);
    for (const link of [...this.links.values()]) this.closeLink(link);
    this.advertiser?.dispose();
    this.ownAddress.stop();
    this.stopped = true;
    this.emit('fatal', err);
  }
}
