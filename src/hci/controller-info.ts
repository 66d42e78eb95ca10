/**
 * What bring-up learned about the controller: version and maker, Zephyr vendor platform, identity
 * address, buffer sizes, the LE features that matter to this host. JSON-friendly (`toJSON()`) for
 * `wearable-host info --json`, and `toText()` for people.
 */
import { toHex } from '../util/bytes.js';
import { formatAddress, type Address } from '../util/address.js';
import { isCommandSupported, type SupportedCommandBits } from './commands.js';

/** Core specification version numbers used for HCI_Version and LMP_Version. Assigned Numbers 2.1. */
const CORE_VERSIONS: Record<number, string> = {
  0x00: '1.0b',
  0x01: '1.1',
  0x02: '1.2',
  0x03: '2.0+EDR',
  0x04: '2.1+EDR',
  0x05: '3.0+HS',
  0x06: '4.0',
  0x07: '4.1',
  0x08: '4.2',
  0x09: '5.0',
  0x0a: '5.1',
  0x0b: '5.2',
  0x0c: '5.3',
  0x0d: '5.4',
  0x0e: '6.0',
  0x0f: '6.1',
};

/** `5.4`, or `0x1f (unknown)`. */
export function coreVersionName(v: number): string {
  return CORE_VERSIONS[v] ?? `0x${v.toString(16).padStart(2, '0')} (unknown)`;
}

/** Company identifiers of controller makers one meets on a bench. Assigned Numbers 7.1 (company identifiers). */
const COMPANIES: Record<number, string> = {
  0x0002: 'Intel Corp.',
  0x000a: 'Qualcomm Technologies International (CSR)',
  0x000d: 'Texas Instruments Inc.',
  0x000f: 'Broadcom Corporation',
  0x001d: 'Qualcomm',
  0x0030: 'ST Microelectronics',
  0x0046: 'MediaTek, Inc.',
  0x004c: 'Apple, Inc.',
  0x0059: 'Nordic Semiconductor ASA',
  0x005d: 'Realtek Semiconductor Corporation',
  0x0131: 'Cypress Semiconductor',
  0x02e5: 'Espressif Systems (Shanghai) Co., Ltd.',
  0x05f1: 'The Linux Foundation (Zephyr)',
};

export function companyName(id: number): string {
  return COMPANIES[id] ?? `company 0x${id.toString(16).padStart(4, '0')}`;
}

/** Zephyr vendor Read Version Information platform and variant codes (Zephyr hci_vs.h). */
const VS_PLATFORMS: Record<number, string> = { 0x0001: 'Intel', 0x0002: 'Nordic', 0x0003: 'NXP', 0x0004: 'Espressif' };
const VS_NORDIC_VARIANTS: Record<number, string> = {
  0x0001: 'nRF51x',
  0x0002: 'nRF52x',
  0x0003: 'nRF53x',
  0x0004: 'nRF54Hx',
  0x0005: 'nRF54Lx',
};
const VS_ESPRESSIF_VARIANTS: Record<number, string> = {
  0x0001: 'ESP32',
  0x0002: 'ESP32-S3',
  0x0003: 'ESP32-C2',
  0x0004: 'ESP32-C3',
  0x0005: 'ESP32-C6',
  0x0006: 'ESP32-H2',
};
const VS_FW_VARIANTS: Record<number, string> = {
  0x0000: 'default',
  0x0001: 'standard controller',
  0x0002: 'vendor controller',
  0x0003: 'firmware loader',
  0x0004: 'rescue image',
};

function hex4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

export function vendorPlatformName(platform: number): string {
  return VS_PLATFORMS[platform] ?? `platform ${hex4(platform)}`;
}

export function vendorVariantName(platform: number, variant: number): string {
  const table = platform === 0x0002 ? VS_NORDIC_VARIANTS : platform === 0x0004 ? VS_ESPRESSIF_VARIANTS : undefined;
  return table?.[variant] ?? `variant ${hex4(variant)}`;
}

/** LE feature bits this host cares about. Core 5.4 Vol 6 Part B 4.6 (feature support). */
export const LeFeatureBit = {
  Encryption: 0,
  ConnectionParametersRequest: 1,
  ExtendedRejectIndication: 2,
  PeripheralInitiatedFeaturesExchange: 3,
  Ping: 4,
  DataPacketLengthExtension: 5,
  LlPrivacy: 6,
  ExtendedScannerFilterPolicies: 7,
  Le2mPhy: 8,
  LeCodedPhy: 11,
  ExtendedAdvertising: 12,
  PeriodicAdvertising: 13,
  ChannelSelectionAlgorithm2: 14,
} as const;

export function hasLeFeature(features: Uint8Array, bit: number): boolean {
  return ((((features[bit >> 3] ?? 0) >> (bit & 7)) & 1) as number) === 1;
}

export interface LeFeatures {
  encryption: boolean;
  connectionParametersRequest: boolean;
  ping: boolean;
  dataLengthExtension: boolean;
  privacy: boolean;
  le2mPhy: boolean;
  leCodedPhy: boolean;
  extendedAdvertising: boolean;
  periodicAdvertising: boolean;
  channelSelectionAlgorithm2: boolean;
}

export function decodeLeFeatures(f: Uint8Array): LeFeatures {
  return {
    encryption: hasLeFeature(f, LeFeatureBit.Encryption),
    connectionParametersRequest: hasLeFeature(f, LeFeatureBit.ConnectionParametersRequest),
    ping: hasLeFeature(f, LeFeatureBit.Ping),
    dataLengthExtension: hasLeFeature(f, LeFeatureBit.DataPacketLengthExtension),
    privacy: hasLeFeature(f, LeFeatureBit.LlPrivacy),
    le2mPhy: hasLeFeature(f, LeFeatureBit.Le2mPhy),
    leCodedPhy: hasLeFeature(f, LeFeatureBit.LeCodedPhy),
    extendedAdvertising: hasLeFeature(f, LeFeatureBit.ExtendedAdvertising),
    periodicAdvertising: hasLeFeature(f, LeFeatureBit.PeriodicAdvertising),
    channelSelectionAlgorithm2: hasLeFeature(f, LeFeatureBit.ChannelSelectionAlgorithm2),
  };
}

export interface ControllerVersion {
  hciVersion: number;
  hciVersionName: string;
  hciSubversion: number;
  lmpVersion: number;
  lmpVersionName: string;
  lmpSubversion: number;
  companyId: number;
  companyName: string;
}

/** Zephyr vendor Read Version Information, decoded. */
export interface VendorVersion {
  hwPlatform: number;
  hwPlatformName: string;
  hwVariant: number;
  hwVariantName: string;
  fwVariant: number;
  fwVariantName: string;
  fwVersion: number;
  fwRevision: number;
  fwBuild: number;
}

export function decodeVendorVersion(v: {
  hwPlatform: number;
  hwVariant: number;
  fwVariant: number;
  fwVersion: number;
  fwRevision: number;
  fwBuild: number;
}): VendorVersion {
  return {
    ...v,
    hwPlatformName: vendorPlatformName(v.hwPlatform),
    hwVariantName: vendorVariantName(v.hwPlatform, v.hwVariant),
    fwVariantName: VS_FW_VARIANTS[v.fwVariant] ?? `fw variant 0x${v.fwVariant.toString(16).padStart(2, '0')}`,
  };
}

/** Where the ACL buffer figures came from. */
export type AclBufferSource = 'LeReadBufferSizeV2' | 'LeReadBufferSize' | 'ReadBufferSize';

export interface BufferSizes {
  /** Largest ACL payload per HCI packet host -> controller (fragment size). */
  aclPacketLength: number;
  /** ACL packets the controller can hold (the host's credits). */
  aclPacketCount: number;
  source: AclBufferSource;
  /** From LE Read Buffer Size v2, when read. */
  isoPacketLength?: number;
  isoPacketCount?: number;
}

/** How the identity address was chosen. */
export type IdentitySource = 'zephyr-static' | 'public' | 'configured' | 'generated';

export interface ControllerInfoFields {
  /** The port the controller sits behind. */
  port: string;
  version: ControllerVersion;
  vendor: VendorVersion | undefined;
  identityAddress: Address;
  identitySource: IdentitySource;
  /** Static random addresses from Zephyr Read Static Addresses (text, MSB first). */
  staticAddresses: string[];
  /** Public address from Read BD_ADDR, when read and non-zero. */
  publicAddress: string | undefined;
  buffers: BufferSizes;
  features: LeFeatures;
  /** Raw LE features (8 bytes, little-endian). */
  leFeatures: Uint8Array;
  /** Raw LMP features page 0 (8 bytes). */
  lmpFeatures: Uint8Array;
  /** Supported Commands bitmap (64 bytes). Core 5.4 Vol 4 Part E 6.27. */
  supportedCommands: Uint8Array;
  /** Zephyr vendor supported commands bitmap, when read. */
  vendorCommands: Uint8Array | undefined;
  /** Default data length written to the controller at bring-up, when supported. */
  suggestedDataLength: { maxTxOctets: number; maxTxTime: number } | undefined;
}

/** JSON form: bytes as hex strings. */
export type ControllerInfoJson = Omit<ControllerInfoFields, 'leFeatures' | 'lmpFeatures' | 'supportedCommands' | 'vendorCommands'> & {
  leFeatures: string;
  lmpFeatures: string;
  supportedCommands: string;
  vendorCommands: string | undefined;
};

export class ControllerInfo implements ControllerInfoFields {
  readonly port!: string;
  readonly version!: ControllerVersion;
  readonly vendor!: VendorVersion | undefined;
  readonly identityAddress!: Address;
  readonly identitySource!: IdentitySource;
  readonly staticAddresses!: string[];
  readonly publicAddress!: string | undefined;
  readonly buffers!: BufferSizes;
  readonly features!: LeFeatures;
  readonly leFeatures!: Uint8Array;
  readonly lmpFeatures!: Uint8Array;
  readonly supportedCommands!: Uint8Array;
  readonly vendorCommands!: Uint8Array | undefined;
  readonly suggestedDataLength!: { maxTxOctets: number; maxTxTime: number } | undefined;

  constructor(fields: ControllerInfoFields) {
    Object.assign(this, fields);
  }

  /** Whether the Supported Commands bitmap lists the command. */
  supports(name: keyof typeof SupportedCommandBits): boolean {
    return isCommandSupported(this.supportedCommands, name);
  }

  /** `Nordic nRF53x`, or the company name when the controller has no Zephyr vendor info. */
  get description(): string {
    const v = this.vendor;
    return v ? `${this.version.companyName}, ${v.hwPlatformName} ${v.hwVariantName}` : this.version.companyName;
  }

  /**
   * Company, HCI/LL versions and the Zephyr vendor firmware in one line, e.g. `The Linux Foundation
   * (Zephyr) 0x05f1, HCI 5.4 rev 0x0000, LL 5.4 sub 0xffff, Nordic nRF53x firmware 4.1.0`: tells the
   * SoftDevice Controller (0x0059) from Zephyr's link layer (0x05F1) in logs.
   */
  get versionSummary(): string {
    const v = this.version;
    const z = this.vendor;
    const base = `${v.companyName} ${hex4(v.companyId)}, HCI ${v.hciVersionName} rev ${hex4(v.hciSubversion)}, LL ${v.lmpVersionName} sub ${hex4(v.lmpSubversion)}`;
    return z ? `${base}, ${z.hwPlatformName} ${z.hwVariantName} firmware ${z.fwVersion}.${z.fwRevision}.${z.fwBuild}` : base;
  }

  toJSON(): ControllerInfoJson {
    return {
      port: this.port,
      version: this.version,
      vendor: this.vendor,
      identityAddress: this.identityAddress,
      identitySource: this.identitySource,
      staticAddresses: this.staticAddresses,
      publicAddress: this.publicAddress,
      buffers: this.buffers,
      features: this.features,
      leFeatures: toHex(this.leFeatures),
      lmpFeatures: toHex(this.lmpFeatures),
      supportedCommands: toHex(this.supportedCommands),
      vendorCommands: this.vendorCommands ? toHex(this.vendorCommands) : undefined,
      suggestedDataLength: this.suggestedDataLength,
    };
  }

  /** A few aligned lines for a terminal. */
  toText(): string {
    const v = this.version;
    const yes = (b: boolean): string => (b ? 'yes' : 'no');
    const f = this.features;
    const b = this.buffers;
    const lines: [string, string][] = [
      ['Port', this.port],
      ['Controller', `${v.companyName} (0x${v.companyId.toString(16).padStart(4, '0')})`],
      ['HCI version', `${v.hciVersionName} (0x${v.hciVersion.toString(16).padStart(2, '0')}), revision ${hex4(v.hciSubversion)}`],
      ['LMP/LL version', `${v.lmpVersionName} (0x${v.lmpVersion.toString(16).padStart(2, '0')}), subversion ${hex4(v.lmpSubversion)}`],
    ];
    if (this.vendor) {
      const z = this.vendor;
      lines.push([
        'Vendor platform',
        `${z.hwPlatformName} ${z.hwVariantName} (${hex4(z.hwPlatform)}/${hex4(z.hwVariant)}), firmware ${z.fwVariantName} ${z.fwVersion}.${z.fwRevision} build ${z.fwBuild}`,
      ]);
    }
    lines.push(['Identity address', `${formatAddress(this.identityAddress)} from ${identitySourceText(this.identitySource)}`]);
    if (this.publicAddress) lines.push(['Public address', this.publicAddress]);
    lines.push([
      'ACL buffers',
      `${b.aclPacketCount} x ${b.aclPacketLength} bytes (${b.source})${b.isoPacketCount ? `; ISO ${b.isoPacketCount} x ${b.isoPacketLength}` : ''}`,
    ]);
    lines.push(['LE encryption', yes(f.encryption)]);
    lines.push(['Data length extension', yes(f.dataLengthExtension)]);
    lines.push(['LL privacy', yes(f.privacy)]);
    lines.push(['2M PHY', yes(f.le2mPhy)]);
    lines.push(['Coded PHY', yes(f.leCodedPhy)]);
    lines.push(['Extended advertising', yes(f.extendedAdvertising)]);
    lines.push(['Conn. parameters request', yes(f.connectionParametersRequest)]);
    // Upstream Zephyr's link layer has no Read Encryption Key Size: the host keeps SMP's negotiated size.
    lines.push(['Encryption key size', this.supports('ReadEncryptionKeySize') ? 'read back (Read Encryption Key Size)' : 'from the pairing (no Read Encryption Key Size)']);
    if (this.suggestedDataLength) {
      lines.push(['Default data length', `${this.suggestedDataLength.maxTxOctets} bytes / ${this.suggestedDataLength.maxTxTime} us`]);
    }
    const w = Math.max(...lines.map(([k]) => k.length));
    return lines.map(([k, val]) => `${k.padEnd(w)}  ${val}`).join('\n');
  }
}

function identitySourceText(s: IdentitySource): string {
  switch (s) {
    case 'zephyr-static':
      return 'the controller (Zephyr Read Static Addresses)';
    case 'public':
      return 'the controller (Read BD_ADDR)';
    case 'configured':
      return 'configuration';
    case 'generated':
      return 'the host (random static, not persistent)';
  }
}
