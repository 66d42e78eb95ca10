/**
 * What the virtual nRF5340 `hci_uart` controller says about itself: version numbers, feature
 * masks, the Supported Commands bitmap and event-mask layout. Kept apart from the controller so
 * tests can check the bitmap against exactly the commands the controller implements.
 */
import type { CommandName } from '../hci/commands.js';
import type { EventName } from '../hci/events.js';

/** HCI_Version / LMP_Version 0x0D = Core 5.4. Assigned Numbers 2.1. */
export const CORE_VERSION_5_4 = 0x0d;
/** Nordic Semiconductor ASA. Assigned Numbers 7.1 (company identifiers). */
export const COMPANY_NORDIC = 0x0059;

/**
 * Subversions. The SoftDevice Controller reports build-specific numbers here; these values are
 * plausible placeholders (not read from a DK) and can be overridden per controller.
 */
export const DEFAULT_HCI_SUBVERSION = 0x1a3c;
export const DEFAULT_LMP_SUBVERSION = 0x1a3c;

/**
 * Zephyr vendor Read Version Information: hardware platform 0x0002 Nordic, variant 0x0003 nRF53x
 * (Zephyr include/zephyr/bluetooth/hci_vs.h); firmware variant 0 (standard controller), firmware
 * version/revision/build from the Zephyr kernel version an NCS 2.7-era build carries.
 */
export const ZEPHYR_VERSION_INFO = {
  hwPlatform: 0x0002,
  hwVariant: 0x0003,
  fwVariant: 0x00,
  fwVersion: 3,
  fwRevision: 6,
  fwBuild: 99,
} as const;

/**
 * LMP features page 0 (Read Local Supported Features): only bit 37 "BR/EDR Not Supported" and
 * bit 38 "LE Supported (Controller)", as an LE-only controller reports. Core 5.4 Vol 2 Part C 3.3.
 */
export const LMP_FEATURES = Uint8Array.of(0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00);

/** LE feature bits. Core 5.4 Vol 6 Part B 4.6. */
export const LeFeature = {
  Encryption: 0,
  ConnectionParametersRequest: 1,
  ExtendedRejectIndication: 2,
  PeripheralInitiatedFeaturesExchange: 3,
  Ping: 4,
  DataPacketLengthExtension: 5,
  LlPrivacy: 6,
  Le2mPhy: 8,
} as const;

/** The LE features this controller claims: every bit of {@link LeFeature}, little-endian. */
export function leFeatures(): Uint8Array {
  const out = new Uint8Array(8);
  for (const bit of Object.values(LeFeature)) out[bit >> 3] = (out[bit >> 3] as number) | (1 << (bit & 7));
  return out;
}

/**
 * Supported Commands bitmap position (octet, bit) of every command the controller implements.
 * Core 5.4 Vol 4 Part E 6.27. Read Local Supported Commands has no bit of its own, and Zephyr
 * vendor commands are listed in the vendor bitmap ({@link VENDOR_COMMAND_BITS}).
 */
export const COMMAND_BITS: { readonly [N in CommandName]?: readonly [number, number] } = {
  Disconnect: [0, 5],
  ReadRemoteVersionInformation: [2, 7],
  SetEventMask: [5, 6],
  Reset: [5, 7],
  ReadLocalVersionInformation: [14, 3],
  ReadLocalSupportedFeatures: [14, 5],
  ReadBufferSize: [14, 7],
  ReadBdAddr: [15, 1],
  ReadRssi: [15, 5],
  ReadEncryptionKeySize: [20, 4],
  SetEventMaskPage2: [22, 2],
  LeSetEventMask: [25, 0],
  LeReadBufferSize: [25, 1],
  LeReadLocalSupportedFeatures: [25, 2],
  LeSetRandomAddress: [25, 4],
  LeSetAdvertisingParameters: [25, 5],
  LeReadAdvertisingPhysicalChannelTxPower: [25, 6],
  LeSetAdvertisingData: [25, 7],
  LeSetScanResponseData: [26, 0],
  LeSetAdvertisingEnable: [26, 1],
  LeSetScanParameters: [26, 2],
  LeSetScanEnable: [26, 3],
  LeCreateConnection: [26, 4],
  LeCreateConnectionCancel: [26, 5],
  LeReadFilterAcceptListSize: [26, 6],
  LeClearFilterAcceptList: [26, 7],
  LeAddDeviceToFilterAcceptList: [27, 0],
  LeRemoveDeviceFromFilterAcceptList: [27, 1],
  LeConnectionUpdate: [27, 2],
  LeReadRemoteFeatures: [27, 5],
  LeEncrypt: [27, 6],
  LeRand: [27, 7],
  LeEnableEncryption: [28, 0],
  LeLongTermKeyRequestReply: [28, 1],
  LeLongTermKeyRequestNegativeReply: [28, 2],
  LeReadSupportedStates: [28, 3],
  ReadAuthenticatedPayloadTimeout: [32, 4],
  LeRemoteConnectionParameterRequestReply: [33, 4],
  LeRemoteConnectionParameterRequestNegativeReply: [33, 5],
  LeSetDataLength: [33, 6],
  LeReadSuggestedDefaultDataLength: [33, 7],
  LeWriteSuggestedDefaultDataLength: [34, 0],
  LeAddDeviceToResolvingList: [34, 3],
  LeRemoveDeviceFromResolvingList: [34, 4],
  LeClearResolvingList: [34, 5],
  LeReadResolvingListSize: [34, 6],
  LeSetAddressResolutionEnable: [35, 1],
  LeSetResolvablePrivateAddressTimeout: [35, 2],
  LeReadMaximumDataLength: [35, 3],
  LeReadPhy: [35, 4],
  LeSetDefaultPhy: [35, 5],
  LeSetPhy: [35, 6],
  LeSetPrivacyMode: [39, 2],
  LeReadBufferSizeV2: [41, 5],
};

/**
 * Zephyr vendor Read Supported Commands bitmap positions (Zephyr hci_vs.h / hci.c
 * vs_read_supported_commands): octet 0 bit 0 Read Version Info, bit 1 Read Supported Commands,
 * bit 2 Read Supported Features, bit 5 Write BD_ADDR; octet 1 bit 0 Read Static Addresses,
 * bit 1 Read Key Hierarchy Roots.
 */
export const VENDOR_COMMAND_BITS: { readonly [N in CommandName]?: readonly [number, number] } = {
  ZephyrReadVersionInfo: [0, 0],
  ZephyrReadSupportedCommands: [0, 1],
  ZephyrReadSupportedFeatures: [0, 2],
  ZephyrWriteBdAddr: [0, 5],
  ZephyrReadStaticAddresses: [1, 0],
  ZephyrReadKeyHierarchyRoots: [1, 1],
};

export function bitmapOf(bits: { readonly [N in CommandName]?: readonly [number, number] }): Uint8Array {
  const out = new Uint8Array(64);
  for (const pos of Object.values(bits)) {
    if (!pos) continue;
    const [octet, bit] = pos;
    out[octet] = (out[octet] as number) | (1 << bit);
  }
  return out;
}

/** Default event mask after power-up and HCI Reset. Core 5.4 Vol 4 Part E 7.3.1. */
export const DEFAULT_EVENT_MASK = 0x00001fffffffffffn;
/** Default LE event mask: the first five LE subevents. Core 5.4 Vol 4 Part E 7.8.1. */
export const DEFAULT_LE_EVENT_MASK = 0x000000000000001fn;

/** Event Mask bit per event (page 1). Core 5.4 Vol 4 Part E 7.3.1. */
const EVENT_MASK_BIT: { readonly [N in EventName]?: number } = {
  DisconnectionComplete: 4,
  EncryptionChange: 7,
  ReadRemoteVersionInformationComplete: 11,
  HardwareError: 15,
  DataBufferOverflow: 25,
  EncryptionKeyRefreshComplete: 47,
};
/** Event Mask Page 2 bits. Core 5.4 Vol 4 Part E 7.3.69 (bit 25: Encryption Change [v2]). */
const EVENT_MASK_PAGE2_BIT: { readonly [N in EventName]?: number } = {
  EncryptionChangeV2: 25,
};
/** Event Mask bit 61 gates every LE Meta event. */
const LE_META_BIT = 61n;

/** Events no mask can suppress: Command Complete/Status and Number Of Completed Packets. */
const ALWAYS: ReadonlySet<EventName> = new Set<EventName>(['CommandComplete', 'CommandStatus', 'NumberOfCompletedPackets', 'VendorSpecific']);

/**
 * Whether the host's masks let `name` through. LE subevent n is LE mask bit n-1
 * (Core 5.4 Vol 4 Part E 7.8.1) and needs Event Mask bit 61 as well.
 */
export function eventAllowed(
  name: EventName,
  subevent: number | undefined,
  masks: { eventMask: bigint; eventMask2: bigint; leEventMask: bigint },
): boolean {
  if (ALWAYS.has(name)) return true;
  if (subevent !== undefined) {
    return ((masks.eventMask >> LE_META_BIT) & 1n) === 1n && ((masks.leEventMask >> BigInt(subevent - 1)) & 1n) === 1n;
  }
  const b1 = EVENT_MASK_BIT[name];
  if (b1 !== undefined) return ((masks.eventMask >> BigInt(b1)) & 1n) === 1n;
  const b2 = EVENT_MASK_PAGE2_BIT[name];
  if (b2 !== undefined) return ((masks.eventMask2 >> BigInt(b2)) & 1n) === 1n;
  return true;
}

/** LE Read Supported States: every state and state combination of Core 5.4 Vol 4 Part E 7.8.27 (bits 0..41). */
export const SUPPORTED_STATES = (1n << 42n) - 1n;
