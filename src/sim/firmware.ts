/**
 * Firmware profiles of the virtual controller: the two `hci_uart` builds an nRF5340-DK network
 * core can run, as its host sees them over HCI. One table per profile, field by field, with where
 * each value comes from: when a real DK answers differently, correct the row here (and say which
 * DK, which build) rather than adding a special case in the controller.
 *
 * - `ncs`: the nRF Connect SDK's `hci_uart` with Nordic's SoftDevice Controller, built with our
 *   overlay firmware/hci_uart.conf (what firmware/README.md builds). test/sim/firmware.test.ts
 *   checks the buffer figures and LL privacy against the overlay.
 * - `zephyr`: upstream Zephyr's `hci_uart` with Zephyr's own link layer (`BT_LL_SW_SPLIT`), at the
 *   sample's defaults (no overlay), as measured on Zephyr 4.1 built for
 *   `nrf5340bsim/nrf5340/cpunet` (docs/zephyr-hci-uart.md).
 *
 * Something a future option needs per profile (a public identity address, another buffer count)
 * belongs in {@link FirmwareProfile}, with the value each firmware really has.
 */
import type { CommandName } from '../hci/commands.js';
import { COMMAND_BITS, COMPANY_NORDIC, CORE_VERSION_5_4, DEFAULT_HCI_SUBVERSION, DEFAULT_LMP_SUBVERSION, LeFeature, VENDOR_COMMAND_BITS } from './capabilities.js';

/** The firmware families the virtual controller plays. */
export const FIRMWARE_NAMES = ['ncs', 'zephyr'] as const;
export type FirmwareName = (typeof FIRMWARE_NAMES)[number];

export function isFirmwareName(v: unknown): v is FirmwareName {
  return typeof v === 'string' && (FIRMWARE_NAMES as readonly string[]).includes(v);
}

/** The Linux Foundation, Zephyr's link layer's company identifier. Assigned Numbers 7.1 (company identifiers). */
export const COMPANY_LINUX_FOUNDATION = 0x05f1;

/** Zephyr vendor Read Version Information return parameters (Zephyr include/zephyr/bluetooth/hci_vs.h). */
export interface ZephyrVersionInfo {
  readonly hwPlatform: number;
  readonly hwVariant: number;
  readonly fwVariant: number;
  readonly fwVersion: number;
  readonly fwRevision: number;
  readonly fwBuild: number;
}

/** What one firmware build says about itself over HCI, and the few places it behaves differently. */
export interface FirmwareProfile {
  readonly name: FirmwareName;
  /** One line for `info`, logs and --help. */
  readonly title: string;
  /** Read Local Version Information. Core 5.4 Vol 4 Part E 7.4.1. */
  readonly version: {
    readonly hciVersion: number;
    readonly hciSubversion: number;
    readonly lmpVersion: number;
    readonly lmpSubversion: number;
    readonly companyId: number;
  };
  /** Zephyr vendor Read Version Information (0xFC01). */
  readonly zephyrVersion: ZephyrVersionInfo;
  /**
   * Read BD_ADDR. Both builds report 00:00:00:00:00:00 on a DK (the nRF5340 has no public
   * address; the identity is the static address from Zephyr Read Static Addresses).
   */
  readonly publicAddress: string;
  /** LE Read Buffer Size: Total_Num_LE_ACL_Data_Packets (CONFIG_BT_BUF_ACL_TX_COUNT). */
  readonly aclBuffers: number;
  /** LE Read Buffer Size: LE_ACL_Data_Packet_Length (CONFIG_BT_BUF_ACL_TX_SIZE). */
  readonly aclBufferSize: number;
  /** Largest LL data PDU payload (CONFIG_BT_CTLR_DATA_LENGTH_MAX). */
  readonly maxDataLength: number;
  /** LL privacy (CONFIG_BT_CTLR_PRIVACY): the LE feature bit and the resolving-list commands. */
  readonly llPrivacy: boolean;
  /** LE features claimed (Core 5.4 Vol 6 Part B 4.6); LL Privacy is added when {@link llPrivacy}. */
  readonly leFeatures: readonly (keyof typeof LeFeature)[];
  /**
   * HCI commands answered (their Supported Commands bits are set); any other gets 0x01 Unknown
   * HCI Command. Read Local Supported Commands has no bit and is always answered. The
   * resolving-list commands are added when {@link llPrivacy}.
   */
  readonly commands: readonly CommandName[];
  /** Zephyr vendor commands answered (the vendor Supported Commands bitmap). */
  readonly vendorCommands: readonly CommandName[];
  /**
   * LTK mismatch, Core 5.4 Vol 6 Part B 5.1.3.1: the LL that receives the first encrypted PDU
   * (the peripheral: LL_START_ENC_RSP) fails its MIC check and leaves the connection without a
   * LL_TERMINATE_IND. `receiver-only`: the peripheral's host gets 0x3D and the central's host a
   * Connection Timeout (0x08) a supervision timeout later (measured on Zephyr's LL).
   * `both`: both hosts get 0x3D at once (not measured on the SoftDevice Controller; kept as the
   * virtual controller always did).
   */
  readonly micFailure: 'receiver-only' | 'both';
}

/** The resolving-list commands, present only with LL privacy (Zephyr hci.c and sdk-nrf hci_internal.c: #if CONFIG_BT_CTLR_PRIVACY). */
export const PRIVACY_COMMANDS: readonly CommandName[] = [
  'LeAddDeviceToResolvingList',
  'LeRemoveDeviceFromResolvingList',
  'LeClearResolvingList',
  'LeReadResolvingListSize',
  'LeSetAddressResolutionEnable',
  'LeSetResolvablePrivateAddressTimeout',
  'LeSetPrivacyMode',
];

const ALL_COMMANDS = Object.keys(COMMAND_BITS) as CommandName[];
const ALL_VENDOR_COMMANDS = Object.keys(VENDOR_COMMAND_BITS) as CommandName[];
const BASE_FEATURES: readonly (keyof typeof LeFeature)[] = [
  'Encryption',
  'ConnectionParametersRequest',
  'ExtendedRejectIndication',
  'PeripheralInitiatedFeaturesExchange',
  'Ping',
  'DataPacketLengthExtension',
  'Le2mPhy',
];

/**
 * nRF Connect SDK `hci_uart`, SoftDevice Controller, with firmware/hci_uart.conf:
 * CONFIG_BT_BUF_ACL_TX_SIZE=251, CONFIG_BT_BUF_ACL_TX_COUNT=10, CONFIG_BT_CTLR_DATA_LENGTH_MAX=251,
 * CONFIG_BT_CTLR_PRIVACY=n. Company 0x0059 Nordic; the subversions are build-specific (these are
 * placeholders, not read from a DK). Zephyr vendor version: Nordic (0x0002) nRF53x (0x0003), the
 * Zephyr kernel an NCS 2.7-era build carries (3.6.99).
 */
export const NCS_SOFTDEVICE_CONTROLLER: FirmwareProfile = {
  name: 'ncs',
  title: 'nRF Connect SDK hci_uart, SoftDevice Controller (firmware/hci_uart.conf)',
  version: {
    hciVersion: CORE_VERSION_5_4,
    hciSubversion: DEFAULT_HCI_SUBVERSION,
    lmpVersion: CORE_VERSION_5_4,
    lmpSubversion: DEFAULT_LMP_SUBVERSION,
    companyId: COMPANY_NORDIC,
  },
  zephyrVersion: { hwPlatform: 0x0002, hwVariant: 0x0003, fwVariant: 0x00, fwVersion: 3, fwRevision: 6, fwBuild: 99 },
  publicAddress: '00:00:00:00:00:00',
  aclBuffers: 10,
  aclBufferSize: 251,
  maxDataLength: 251,
  llPrivacy: false,
  leFeatures: BASE_FEATURES,
  commands: ALL_COMMANDS.filter((c) => !PRIVACY_COMMANDS.includes(c)),
  vendorCommands: ALL_VENDOR_COMMANDS,
  micFailure: 'both',
};

/**
 * Upstream Zephyr 4.1 `hci_uart`, Zephyr's link layer, sample defaults, as measured on
 * `nrf5340bsim/nrf5340/cpunet`: HCI and LL version 5.4 (0x0D), company 0x05F1 The Linux
 * Foundation, HCI revision 0 and LL subversion 0xFFFF (Zephyr hci.c read_local_version_info,
 * CONFIG_BT_CTLR_SUBVERSION_NUMBER default); Read BD_ADDR all zeros; 27-byte x 7 ACL buffers and
 * 27-byte LL data (CONFIG_BT_BUF_ACL_TX_SIZE / _COUNT and CONFIG_BT_CTLR_DATA_LENGTH_MAX defaults);
 * no Read Encryption Key Size (0x01 Unknown HCI Command); no LL privacy (the sample's Kconfig turns
 * CONFIG_BT_CTLR_PRIVACY off); no LE Read Buffer Size v2 (only with ISO); Zephyr vendor version
 * Nordic nRF53x, firmware 4.1.0; MIC failure on the receiving side only.
 */
export const ZEPHYR_LL: FirmwareProfile = {
  name: 'zephyr',
  title: 'upstream Zephyr hci_uart, Zephyr link layer (sample defaults)',
  version: {
    hciVersion: CORE_VERSION_5_4,
    hciSubversion: 0x0000,
    lmpVersion: CORE_VERSION_5_4,
    lmpSubversion: 0xffff,
    companyId: COMPANY_LINUX_FOUNDATION,
  },
  zephyrVersion: { hwPlatform: 0x0002, hwVariant: 0x0003, fwVariant: 0x00, fwVersion: 4, fwRevision: 1, fwBuild: 0 },
  publicAddress: '00:00:00:00:00:00',
  aclBuffers: 7,
  aclBufferSize: 27,
  maxDataLength: 27,
  llPrivacy: false,
  leFeatures: BASE_FEATURES,
  commands: ALL_COMMANDS.filter((c) => !PRIVACY_COMMANDS.includes(c) && c !== 'ReadEncryptionKeySize' && c !== 'LeReadBufferSizeV2'),
  vendorCommands: ALL_VENDOR_COMMANDS,
  micFailure: 'receiver-only',
};

export const FIRMWARE_PROFILES: Readonly<Record<FirmwareName, FirmwareProfile>> = {
  ncs: NCS_SOFTDEVICE_CONTROLLER,
  zephyr: ZEPHYR_LL,
};

/** The profile for a name (or the profile itself); default `ncs`. */
export function firmwareProfile(f: FirmwareName | FirmwareProfile | undefined): FirmwareProfile {
  if (f === undefined) return NCS_SOFTDEVICE_CONTROLLER;
  return typeof f === 'string' ? FIRMWARE_PROFILES[f] : f;
}

/** One line per profile for --help and `--sim --scenario list`. */
export function describeFirmware(p: FirmwareProfile): string {
  const v = p.version;
  return `${p.name}: ${p.title}; company 0x${v.companyId.toString(16).padStart(4, '0')}, ${p.aclBuffers} x ${p.aclBufferSize}-byte ACL buffers, LL data ${p.maxDataLength}, LL privacy ${p.llPrivacy ? 'on' : 'off'}, Read Encryption Key Size ${p.commands.includes('ReadEncryptionKeySize') ? 'yes' : 'no'}`;
}
