/**
 * The virtual controller's options, the LE state it keeps between commands (advertising and scan
 * parameters with their power-up defaults), its counters, and the connection-parameter limits the
 * commands check, and the identity a seed gives. Types, constants and pure functions; the class is in src/sim/controller.ts.
 */
import { createHash } from 'node:crypto';
import type { CommandParams } from '../../hci/commands.js';
import { addressFromWire } from '../../util/address.js';
import type { FirmwareName, FirmwareProfile } from '../firmware.js';
import type { RandomSource } from '../../util/random.js';
import type { Logger } from '../../util/log.js';

export interface VirtualControllerOptions {
  /** Shown in logs and descriptions: `ctrl0`. */
  name?: string;
  /**
   * Identity seed: the static random address, its identity root and the IR/ER key roots derive
   * from it, so they survive HCI Reset and are the same on every run with the same seed.
   */
  seed?: string;
  /** Source of LE Rand output. Default: derived from the air's random source. */
  random?: RandomSource;
  log?: Logger;
  /**
   * The firmware the DK runs (src/sim/firmware.ts): `ncs` (the nRF Connect SDK's SoftDevice
   * Controller with firmware/hci_uart.conf, the default) or `zephyr` (upstream Zephyr's link
   * layer), or a profile object. The options below override single values of the profile.
   */
  firmware?: FirmwareName | FirmwareProfile;
  /** Number of ACL buffers (LE Read Buffer Size Total_Num_LE_ACL_Data_Packets). Default: the profile's. */
  aclBuffers?: number;
  /** Largest ACL data length accepted from the host. Default: the profile's. */
  aclBufferSize?: number;
  /** Largest LL data PDU payload (CONFIG_BT_CTLR_DATA_LENGTH_MAX). Default: the profile's. */
  maxDataLength?: number;
  /** LL privacy (CONFIG_BT_CTLR_PRIVACY=y): feature bit and resolving-list commands. Default: the profile's. */
  llPrivacy?: boolean;
  filterAcceptListSize?: number;
  resolvingListSize?: number;
  /** Simultaneous connections. Default 4. */
  maxConnections?: number;
  hciSubversion?: number;
  lmpSubversion?: number;
  /**
   * A public address (BD_ADDR) programmed into the controller, and no static random address: Zephyr
   * Read Static Addresses returns none, so the host's identity address is this public one. Default:
   * no public address, a static address derived from the seed (the DK as shipped).
   */
  publicAddress?: string;
}

/** Advertising parameters as set by LE Set Advertising Parameters. Core 5.4 Vol 4 Part E 7.8.5. */
export interface AdvertisingParams {
  intervalMin: number;
  intervalMax: number;
  advertisingType: number;
  ownAddressType: number;
  peerAddressType: number;
  peerAddress: string;
  channelMap: number;
  filterPolicy: number;
}

/** LE Set Advertising Parameters Advertising_Type values. Core 5.4 Vol 4 Part E 7.8.5. */
export const AdvType = { AdvInd: 0, AdvDirectIndHigh: 1, AdvScanInd: 2, AdvNonconnInd: 3, AdvDirectIndLow: 4 } as const;

export interface ScanParams {
  scanType: number;
  interval: number;
  window: number;
  ownAddressType: number;
  filterPolicy: number;
}

export type CreateConnectionParams = CommandParams<'LeCreateConnection'>;

/** Counters of what the controller refused or dropped (tests and diagnostics). */
export interface VirtualControllerStats {
  commands: number;
  events: number;
  aclIn: number;
  aclOut: number;
  droppedAcl: number;
  bufferOverflows: number;
  framingErrors: number;
  unknownCommands: number;
  badLengthCommands: number;
  internalErrors: number;
}

/** The address a controller reports when it has none (no public address, no random address set). */
export const ZERO_ADDRESS = '00:00:00:00:00:00';

export function defaultAdvertising(): AdvertisingParams {
  // Defaults of Core 5.4 Vol 4 Part E 7.8.5: 1.28 s, ADV_IND, public, all channels, no filter.
  return {
    intervalMin: 0x0800,
    intervalMax: 0x0800,
    advertisingType: AdvType.AdvInd,
    ownAddressType: 0,
    peerAddressType: 0,
    peerAddress: ZERO_ADDRESS,
    channelMap: 0x07,
    filterPolicy: 0,
  };
}

export function defaultScan(): ScanParams {
  // Defaults of Core 5.4 Vol 4 Part E 7.8.10: passive, 10 ms interval and window.
  return { scanType: 0, interval: 0x0010, window: 0x0010, ownAddressType: 0, filterPolicy: 0 };
}

/** LE connection interval, latency and timeout limits. Core 5.4 Vol 4 Part E 7.8.12 / 7.8.18. */
export function connectionParamsValid(p: {
  intervalMin: number;
  intervalMax: number;
  latency: number;
  timeout: number;
}): boolean {
  if (p.intervalMin < 0x0006 || p.intervalMax > 0x0c80 || p.intervalMin > p.intervalMax) return false;
  if (p.latency > 0x01f3) return false;
  if (p.timeout < 0x000a || p.timeout > 0x0c80) return false;
  // Supervision timeout (10 ms units) must exceed (1 + latency) * interval_max * 2 (1.25 ms units).
  return p.timeout * 10 > (1 + p.latency) * p.intervalMax * 1.25 * 2;
}

/** The firmware profile with the single values `opts` overrides. */
export function firmwareWithOverrides(base: FirmwareProfile, opts: VirtualControllerOptions): FirmwareProfile {
  return {
    ...base,
    ...(opts.aclBuffers !== undefined ? { aclBuffers: opts.aclBuffers } : {}),
    ...(opts.aclBufferSize !== undefined ? { aclBufferSize: opts.aclBufferSize } : {}),
    ...(opts.maxDataLength !== undefined ? { maxDataLength: opts.maxDataLength } : {}),
    ...(opts.llPrivacy !== undefined ? { llPrivacy: opts.llPrivacy } : {}),
    version: {
      ...base.version,
      ...(opts.hciSubversion !== undefined ? { hciSubversion: opts.hciSubversion } : {}),
      ...(opts.lmpSubversion !== undefined ? { lmpSubversion: opts.lmpSubversion } : {}),
    },
  };
}

function sha256(...parts: (string | Uint8Array)[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Identity material derived from the seed, stable across resets: static address (two top bits 0b11), identity root, IR, ER. */
export function controllerIdentity(seed: string): { staticAddress: string; identityRoot: Uint8Array; ir: Uint8Array; er: Uint8Array } {
  const a = sha256('wearable-host sim static address', seed).subarray(0, 6);
  a[5] = (a[5] as number) | 0xc0;
  return {
    staticAddress: addressFromWire(a),
    identityRoot: sha256('wearable-host sim identity root', seed).slice(0, 16),
    ir: sha256('wearable-host sim IR', seed).slice(0, 16),
    er: sha256('wearable-host sim ER', seed).slice(0, 16),
  };
}
