/**
 * Legacy connectable undirected advertising (ADV_IND) for the peripheral: parameters, advertising
 * and scan response data, enable/disable, and restarting by itself when it should: after a
 * disconnection (while fewer than `maxConnections` peripheral links remain), after a connection
 * when more are allowed, and after the driver re-initialised the controller.
 * Core 5.4 Vol 4 Part E 7.8.5-7.8.9; Vol 6 Part B 4.4.2.3 (advertising ends when a connection is made).
 *
 * Which address advertises is not decided here: Own_Address_Type comes from the caller (the
 * privacy layer's OwnAddress), read each time the parameters are set.
 */
import type { Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import { WearableHostError } from '../util/errors.js';
import type { Hci } from './driver.js';
import type { HciConnection } from './connection.js';
import { buildAdvertisingPayload, type AdvertisementContent, type AdvertisingPayload } from './advertising.js';

/** Advertising_Type values. Core 5.4 Vol 4 Part E 7.8.5. */
export const AdvertisingType = {
  AdvInd: 0x00,
  AdvDirectIndHighDuty: 0x01,
  AdvScanInd: 0x02,
  AdvNonconnInd: 0x03,
  AdvDirectIndLowDuty: 0x04,
} as const;

export const DEFAULT_DEVICE_NAME = 'Noira Band';

/** 152.5 ms: one of the intervals Apple's Accessory Design Guidelines recommend after the first 30 s. */
export const DEFAULT_ADVERTISING_INTERVAL_MS = 152.5;

export interface AdvertiserOptions extends Omit<AdvertisementContent, 'name'> {
  /** Complete local name. Default "Noira Band". */
  name?: string;
  /** Interval in ms (one value, or a min/max range); 20 ms .. 10.24 s. Default 152.5 ms. */
  intervalMs?: number | { min: number; max: number };
  /** Keep advertising while fewer than this many peripheral connections exist. Default 1. */
  maxConnections?: number;
  /** Restart after disconnections and re-initialisation. Default true. */
  autoRestart?: boolean;
  /**
   * Own_Address_Type of LE Set Advertising Parameters (0x00 public, 0x01 the random address set
   * with LE Set Random Address), asked each time the parameters are set. Core 5.4 Vol 4 Part E 7.8.5.
   */
  ownAddressType: () => number;
  log: Logger;
}

export type AdvertiserEvents = {
  started: [];
  stopped: [];
  /** A (re)start failed; the advertiser tries again on the next disconnection or re-initialisation. */
  error: [Error];
};

/** ms to units of 0.625 ms, clamped to 0x0020..0x4000. Core 5.4 Vol 4 Part E 7.8.5. */
export function advertisingIntervalUnits(ms: number): number {
  return Math.min(0x4000, Math.max(0x0020, Math.round(ms / 0.625)));
}

export class Advertiser extends TypedEmitter<AdvertiserEvents> {
  readonly payload: AdvertisingPayload;
  readonly name: string;
  private readonly log: Logger;
  private readonly maxConnections: number;
  private readonly autoRestart: boolean;
  private readonly ownAddressType: () => number;
  private readonly intervalMin: number;
  private readonly intervalMax: number;
  /** The user wants advertising on. */
  private wanted = false;
  /** We believe the controller advertises. */
  private enabled = false;
  /** Parameters and data are set on the controller since its last reset. */
  private configured = false;
  /**
   * Counts the controller events that end legacy advertising (a peripheral connection, a
   * re-initialisation). An enable whose command was in flight when one of them arrived does not
   * make us believe the controller advertises: the order of a Command Complete and an LE
   * Connection Complete delivered in one read is not the order of our awaits.
   */
  private endedByController = 0;
  private chain: Promise<void> = Promise.resolve();
  private readonly detachers: (() => void)[] = [];

  constructor(
    private readonly hci: Hci,
    opts: AdvertiserOptions,
  ) {
    super();
    this.log = opts.log;
    this.name = opts.name ?? DEFAULT_DEVICE_NAME;
    this.maxConnections = Math.max(1, opts.maxConnections ?? 1);
    this.autoRestart = opts.autoRestart ?? true;
    this.ownAddressType = opts.ownAddressType;
    const iv = opts.intervalMs ?? DEFAULT_ADVERTISING_INTERVAL_MS;
    this.intervalMin = advertisingIntervalUnits(typeof iv === 'number' ? iv : iv.min);
    this.intervalMax = Math.max(this.intervalMin, advertisingIntervalUnits(typeof iv === 'number' ? iv : iv.max));
    const { log: _log, intervalMs: _iv, maxConnections: _mc, autoRestart: _ar, ownAddressType: _oa, ...content } = opts;
    this.payload = buildAdvertisingPayload({ ...content, name: this.name });
    if (this.payload.omitted.length) this.log.warn({ omitted: this.payload.omitted }, 'advertising data: some items fit neither the advertising data nor the scan response');

    const onConnected = (c: HciConnection): void => {
      if (c.role !== 'peripheral') return;
      // The controller ended legacy advertising when it accepted the connection.
      this.enabled = false;
      this.endedByController++;
      if (this.wanted && this.autoRestart && this.roomForMore()) this.schedule('a connection leaves room for more');
    };
    const onDisconnected = (c: HciConnection): void => {
      if (c.role !== 'peripheral' || !this.wanted || !this.autoRestart || !this.hci.ready) return;
      this.schedule('disconnection');
    };
    const onReinitialised = (): void => {
      this.enabled = false;
      this.endedByController++;
      this.configured = false;
      if (this.wanted && this.autoRestart) this.schedule('controller re-initialisation');
    };
    hci.on('connected', onConnected);
    hci.on('disconnected', onDisconnected);
    hci.on('reinitialised', onReinitialised);
    this.detachers.push(
      () => hci.off('connected', onConnected),
      () => hci.off('disconnected', onDisconnected),
      () => hci.off('reinitialised', onReinitialised),
    );
  }

  /** Whether the controller is advertising as far as we know. */
  get advertising(): boolean {
    return this.enabled;
  }

  /** Starts advertising (after bring-up). Resolves once the controller confirmed, or at once when the connection limit is reached. */
  start(): Promise<void> {
    if (!this.hci.ready) {
      return Promise.reject(new WearableHostError('hci', `cannot advertise on ${this.hci.port}: the controller is not initialised (call init() first)`));
    }
    this.wanted = true;
    return this.serial(() => this.enable());
  }

  /** Stops advertising and the automatic restarts. */
  stop(): Promise<void> {
    this.wanted = false;
    return this.serial(async () => {
      if (!this.enabled || !this.hci.ready) {
        this.enabled = false;
        return;
      }
      await this.hci.command('LeSetAdvertisingEnable', { enable: false });
      this.enabled = false;
      this.log.info('advertising stopped');
      this.emit('stopped');
    });
  }

  /** Detaches from the driver (does not stop advertising on the controller). */
  dispose(): void {
    this.wanted = false;
    for (const off of this.detachers.splice(0)) off();
  }

  private roomForMore(): boolean {
    let n = 0;
    for (const c of this.hci.connections) if (c.role === 'peripheral') n++;
    return n < this.maxConnections;
  }

  private serial(op: () => Promise<void>): Promise<void> {
    const p = this.chain.then(op);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private schedule(why: string): void {
    this.serial(() => this.enable()).then(
      () => this.log.debug(`advertising restarted after ${why}`),
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        this.log.warn({ err: e.message }, `advertising did not restart after ${why}`);
        this.emit('error', e);
      },
    );
  }

  private async enable(): Promise<void> {
    if (!this.wanted || this.enabled || !this.hci.ready) return;
    if (!this.roomForMore()) {
      this.log.debug('not advertising: connection limit reached');
      return;
    }
    if (!this.configured) {
      await this.hci.command('LeSetAdvertisingParameters', {
        intervalMin: this.intervalMin,
        intervalMax: this.intervalMax,
        advertisingType: AdvertisingType.AdvInd,
        ownAddressType: this.ownAddressType(),
        peerAddressType: 0x00,
        peerAddress: '00:00:00:00:00:00',
        channelMap: 0x07,
        filterPolicy: 0x00,
      });
      await this.hci.command('LeSetAdvertisingData', { data: this.payload.advertisingData });
      await this.hci.command('LeSetScanResponseData', { data: this.payload.scanResponseData });
      this.configured = true;
    }
    const before = this.endedByController;
    await this.hci.command('LeSetAdvertisingEnable', { enable: true });
    if (before !== this.endedByController) {
      // A connection (or a reset) came while the enable was in flight, before or after its Command
      // Complete: advertising may have ended with it. Enabling again costs nothing when it did not
      // (Core 5.4 Vol 4 Part E 7.8.9), so believe it stopped; the connection handler or the next
      // disconnection restarts it.
      this.enabled = false;
      this.log.debug('a connection arrived while advertising was being enabled: treating advertising as stopped');
      return;
    }
    this.enabled = true;
    this.log.info({ name: this.name, intervalMs: this.intervalMin * 0.625 }, `advertising as "${this.name}" on ${this.hci.port}`);
    this.emit('started');
  }
}
