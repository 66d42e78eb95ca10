/**
 * The one owner of "which address are we using on air", for both roles:
 * - our identity: the controller's identity address (public, or the DK's static random address)
 *   with our IRK, kept in the bond store so bonded peers keep recognising us across restarts;
 * - Own_Address_Type for advertising, scanning and initiating (Core 5.4 Vol 4 Part E 7.8.5,
 *   7.8.10, 7.8.12);
 * - our resolvable private addresses: rotated on a timer for the peripheral ({@link RpaRotator}),
 *   or a fresh one before each connection for the central;
 * - the local address of a connection, as SMP's f5/f6 need it (Core 5.4 Vol 3 Part H 2.2.7);
 * - the controller's resolving list of bonded peers ({@link loadResolvingList}).
 *
 * It talks to the controller through {@link OwnAddressLower}, built by the composition root; the
 * advertiser asks it for Own_Address_Type and the per-connection stack asks it for a
 * connection's local address.
 */
import type { BondStore, LocalIdentity } from '../bonds/types.js';
import type { ControllerInfo } from '../hci/controller-info.js';
import { formatAddress, type Address } from '../util/address.js';
import type { Clock } from '../util/clock.js';
import { WearableHostError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import { generateIrk, generateRpa } from './rpa.js';
import { RpaRotator, type RpaRotatorLower } from './rpa-rotation.js';
import { controllerSupportsResolvingList, loadResolvingList, type ResolvingListCommand } from './resolving-list.js';

/**
 * Own_Address_Type values we use. Core 5.4 Vol 4 Part E 7.8.5. (0x02/0x03, an RPA the controller
 * generates, are not used: the host makes our RPAs and the controller's LL privacy stays off.)
 */
export const OwnAddressType = {
  Public: 0x00,
  Random: 0x01,
} as const;
export type OwnAddressType = (typeof OwnAddressType)[keyof typeof OwnAddressType];

/** Which address goes on air. */
export type OwnAddressMode =
  /** The identity address, always. */
  | { readonly kind: 'identity' }
  /**
   * Host-based privacy for the peripheral: an RPA from our IRK, set before advertising starts and
   * changed every `rpaTimeoutS` seconds (default 900). Core 5.4 Vol 3 Part C 10.7.1.2.
   */
  | { readonly kind: 'rotating'; readonly rpaTimeoutS?: number }
  /** For the central: a fresh RPA before each connection ({@link OwnAddress.newPrivateAddress}). */
  | { readonly kind: 'per-connection' };

/** The controller operations the owner needs; built by the composition root, never the driver itself. */
export interface OwnAddressLower {
  /** The identity address the controller reported at bring-up, if it is up (ControllerInfo.identityAddress). */
  controllerIdentity(): Address | undefined;
  /** HCI LE Set Random Address. Core 5.4 Vol 4 Part E 7.8.4. */
  setRandomAddress(address: string): Promise<void>;
  /** The resolving-list commands: `(name, params) => hci.command(name, params)`. */
  command: ResolvingListCommand;
}

/** Stops advertising around a change the controller refuses while advertising, and resumes it if still wanted. */
export type AdvertisingPause = Pick<RpaRotatorLower, 'pauseAdvertising' | 'resumeAdvertising'>;

export interface OwnAddressOptions {
  lower: OwnAddressLower;
  bonds: Pick<BondStore, 'description' | 'getLocalIdentity' | 'setLocalIdentity' | 'list'>;
  clock: Clock;
  /** The OS CSPRNG in production: our IRK and RPAs come from it. */
  random: RandomSource;
  log: Logger;
  mode: OwnAddressMode;
}

/** Our identity and the address we use on air; see the module comment. */
export class OwnAddress {
  readonly mode: OwnAddressMode;
  private readonly lower: OwnAddressLower;
  private readonly bonds: OwnAddressOptions['bonds'];
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly log: Logger;
  private localIdentity: LocalIdentity | undefined;
  private rotator: RpaRotator | undefined;
  /** The RPA the central set before its latest connection. */
  private connectionRpa: Address | undefined;
  /** Queues a resolving-list reload, once the list was loaded at start. */
  private reloadResolvingList: ((why: string) => void) | undefined;
  private stopped = false;

  constructor(opts: OwnAddressOptions) {
    this.mode = opts.mode;
    this.lower = opts.lower;
    this.bonds = opts.bonds;
    this.clock = opts.clock;
    this.random = opts.random;
    this.log = opts.log;
  }

  /** Our identity (address and IRK, distributed when pairing), once settled. */
  get identity(): LocalIdentity | undefined {
    return this.localIdentity;
  }

  /**
   * Settles our identity: the controller's identity address with the IRK from the bond store, or a
   * new IRK (stored) when there is none. A bond file made with another controller keeps its IRK
   * but gets this controller's address, with a warning: bonds made before are for the other address.
   */
  async settleIdentity(controllerIdentity: Address): Promise<LocalIdentity> {
    const stored = this.bonds.getLocalIdentity();
    const address = controllerIdentity;
    if (stored && stored.address.address === address.address && stored.address.type === address.type) {
      this.localIdentity = stored;
      return stored;
    }
    if (stored) {
      this.log.warn(
        { stored: formatAddress(stored.address), controller: formatAddress(address), bonds: this.bonds.description },
        `the bond file was made with another controller (${formatAddress(stored.address)}); this one is ${formatAddress(address)}. ` +
          'Devices bonded before will not find their bond: remove the bond on them (on a phone: forget the device), or use the bond file of this DK.',
      );
    }
    const id: LocalIdentity = { address, irk: stored?.irk ?? generateIrk(this.random) };
    await this.bonds.setLocalIdentity(id);
    this.localIdentity = id;
    return id;
  }

  /** The address on air now: the current RPA under privacy, else the identity address; undefined before {@link settleIdentity}. */
  addressInUse(): Address | undefined {
    if (this.rotator && this.rotator.history.length > 0) return this.rotator.addressInUse();
    return this.connectionRpa ?? this.localIdentity?.address;
  }

  /** The RPA the rotation put in the controller, when the mode is 'rotating'. */
  get rotatingAddress(): Address | undefined {
    return this.rotator?.addressInUse();
  }

  /**
   * Own_Address_Type for advertising, scanning and initiating: random under rotating privacy (also
   * when the identity is public, so a public address never goes on air), else the type of the
   * address in use. Core 5.4 Vol 4 Part E 7.8.5.
   */
  ownAddressType(): OwnAddressType {
    if (this.mode.kind === 'rotating') return OwnAddressType.Random;
    const address = this.addressInUse() ?? this.lower.controllerIdentity();
    return address?.type === 'public' ? OwnAddressType.Public : OwnAddressType.Random;
  }

  /**
   * Our address on a connection, as f5/f6 take it (Core 5.4 Vol 3 Part H 2.2.7): the local RPA the
   * controller reports in LE Enhanced Connection Complete when it generated one, else the address
   * in use now. Call it synchronously from the Connection Complete handler: an RPA changes only
   * while advertising is off, and the event of a connection made before the change arrives before
   * the change completes (see src/privacy/rpa-rotation.ts), so this is the address that was on air.
   */
  localAddressFor(c: { readonly localRpa: string | undefined }): Address {
    if (c.localRpa) return { type: 'random', address: c.localRpa };
    const address = this.addressInUse() ?? this.bonds.getLocalIdentity()?.address ?? this.lower.controllerIdentity();
    if (!address) throw new WearableHostError('hci', 'no local identity: start() was not called');
    return address;
  }

  /**
   * Mode 'rotating': puts the first RPA in the controller (before advertising starts, so the
   * identity address never goes on air) and keeps rotating it; advertising is paused around
   * each change (LE Set Random Address is Command Disallowed while advertising, Core 5.4 Vol 4
   * Part E 7.8.4).
   */
  async startRotation(pause: AdvertisingPause): Promise<void> {
    if (this.mode.kind !== 'rotating') throw new WearableHostError('hci', `RPA rotation needs the 'rotating' mode, not '${this.mode.kind}'`);
    const id = this.requireIdentity();
    const rotator = new RpaRotator({
      clock: this.clock,
      random: this.random,
      irk: id.irk,
      log: this.log.child({ layer: 'privacy' }),
      ...(this.mode.rpaTimeoutS !== undefined ? { timeoutS: this.mode.rpaTimeoutS } : {}),
      lower: { setRandomAddress: (address) => this.lower.setRandomAddress(address), ...pause },
    });
    rotator.on('error', (err) => this.log.warn({ err }, 'private address rotation failed; the previous address stays in use'));
    this.rotator = rotator;
    await rotator.start();
  }

  /** Mode 'per-connection': a fresh RPA from our IRK in the controller (LE Set Random Address). Scanning and initiating must be off. */
  async newPrivateAddress(): Promise<Address> {
    const id = this.requireIdentity();
    const rpa = generateRpa(id.irk, this.random);
    await this.lower.setRandomAddress(rpa.address);
    this.connectionRpa = rpa;
    return rpa;
  }

  /**
   * Loads bonded peers' IRKs into the controller's resolving list now (advertising is not on yet)
   * and again, with advertising paused, on {@link bondsChanged} and {@link controllerReset}.
   * Updates never overlap. A controller without LL privacy is reported once and left alone: the
   * host resolves peers' RPAs itself either way.
   */
  async startResolvingList(info: Pick<ControllerInfo, 'port' | 'features' | 'supports'>, pause: AdvertisingPause): Promise<void> {
    if (!controllerSupportsResolvingList(info)) {
      this.log.warn(`the controller on ${info.port} has no LL privacy resolving list; the host resolves phone addresses itself`);
      return;
    }
    const id = this.requireIdentity();
    const log = this.log.child({ layer: 'privacy' });
    const load = (paused: boolean): Promise<void> =>
      loadResolvingList(this.lower.command, this.bonds.list(), {
        localIrk: id.irk,
        setPrivacyMode: info.supports('LeSetPrivacyMode'),
        log,
        ...(paused ? { pause } : {}),
      }).then(() => undefined);
    let chain = load(false).catch((err: unknown) => log.warn({ err }, 'could not load the controller resolving list; the host still resolves addresses'));
    await chain;
    this.reloadResolvingList = (why) => {
      chain = chain
        .then(() => (this.stopped ? undefined : load(true)))
        .catch((err: unknown) => log.warn({ err, why }, 'could not update the controller resolving list; the host still resolves addresses'));
    };
  }

  /** A bond was added or changed: the resolving list (when loaded) is brought up to date. */
  bondsChanged(why: string): void {
    this.reloadResolvingList?.(why);
  }

  /**
   * The driver re-initialised the controller, which then holds the identity address and an empty
   * resolving list: reloads the list and puts a fresh RPA in. Call it synchronously from the
   * driver's 'reinitialised' event: the rotation pauses advertising before this returns, so an
   * advertiser restart scheduled by the same event never goes on air with the identity address.
   */
  controllerReset(): void {
    this.reloadResolvingList?.('controller reset');
    if (!this.rotator) return;
    this.rotator.controllerReset().catch((err: unknown) => this.log.warn({ err }, 'could not restore a private address after the controller reset'));
  }

  /** Stops the rotation and any further resolving-list update; leaves no timer behind. */
  stop(): void {
    this.stopped = true;
    this.rotator?.stop();
  }

  private requireIdentity(): LocalIdentity {
    if (!this.localIdentity) throw new WearableHostError('hci', 'no local identity yet: settle it (start()) first');
    return this.localIdentity;
  }
}
