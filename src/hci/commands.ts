/**
 * The HCI command table: one entry per command, keyed by name, with its opcode, parameter layout and
 * what comes back (Command Complete return parameters after the status byte, or Command Status).
 * The host encodes parameters and decodes returns; the simulator does the reverse with the same
 * entries. Core 5.4 Vol 4 Part E 7 (commands), 5.4.1 (packet format).
 */
import { ByteReader, ByteWriter } from '../util/bytes.js';
import {
  bdAddr,
  bool8,
  bytes,
  countedList,
  empty,
  i8,
  paddedData,
  rest,
  struct,
  u16,
  u32,
  u64,
  u8,
  type Codec,
  type CodecValue,
} from './codec.js';

/** How the controller answers a command. */
export type CommandReply = 'complete' | 'status';

export interface CommandDef<P, R> {
  readonly opcode: number;
  readonly params: Codec<P>;
  /** Command Complete return parameters following the status byte; unused for 'status' commands. */
  readonly returns: Codec<R>;
  readonly reply: CommandReply;
}

function complete<P, R>(opcode: number, params: Codec<P>, returns: Codec<R>): CommandDef<P, R> {
  return { opcode, params, returns, reply: 'complete' };
}
function status<P>(opcode: number, params: Codec<P>): CommandDef<P, Record<string, never>> {
  return { opcode, params, returns: empty, reply: 'status' };
}

/** OGF/OCF packing. Core 5.4 Vol 4 Part E 5.4.1. */
export function opcodeOf(ogf: number, ocf: number): number {
  return ((ogf & 0x3f) << 10) | (ocf & 0x3ff);
}

const handleOnly = struct({ handle: u16 });
const addrWithType = struct({ addressType: u8, address: bdAddr });

/** Zephyr vendor Read Static Addresses entry: address and identity root. */
const staticAddressEntry = struct({ address: bdAddr, identityRoot: bytes(16) });

export const Commands = {
  // Link control (OGF 0x01)
  /** Core 5.4 Vol 4 Part E 7.1.6 */
  Disconnect: status(0x0406, struct({ handle: u16, reason: u8 })),
  /** Core 5.4 Vol 4 Part E 7.1.23 */
  ReadRemoteVersionInformation: status(0x041d, handleOnly),

  // Controller & baseband (OGF 0x03)
  /** Core 5.4 Vol 4 Part E 7.3.1 */
  SetEventMask: complete(0x0c01, struct({ mask: u64 }), empty),
  /** Core 5.4 Vol 4 Part E 7.3.2 */
  Reset: complete(0x0c03, empty, empty),
  /** Core 5.4 Vol 4 Part E 7.3.69 */
  SetEventMaskPage2: complete(0x0c63, struct({ mask: u64 }), empty),
  /** Core 5.4 Vol 4 Part E 7.3.94 */
  ReadAuthenticatedPayloadTimeout: complete(0x0c7b, handleOnly, struct({ handle: u16, timeout: u16 })),

  // Informational (OGF 0x04)
  /** Core 5.4 Vol 4 Part E 7.4.1 */
  ReadLocalVersionInformation: complete(
    0x1001,
    empty,
    struct({ hciVersion: u8, hciSubversion: u16, lmpVersion: u8, companyId: u16, lmpSubversion: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.4.2: 64-octet bitmap, Core 5.4 Vol 4 Part E 6.27 */
  ReadLocalSupportedCommands: complete(0x1002, empty, struct({ commands: bytes(64) })),
  /** Core 5.4 Vol 4 Part E 7.4.3 */
  ReadLocalSupportedFeatures: complete(0x1003, empty, struct({ features: bytes(8) })),
  /** Core 5.4 Vol 4 Part E 7.4.5 */
  ReadBufferSize: complete(
    0x1005,
    empty,
    struct({ aclDataPacketLength: u16, syncDataPacketLength: u8, totalNumAclDataPackets: u16, totalNumSyncDataPackets: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.4.6 */
  ReadBdAddr: complete(0x1009, empty, struct({ address: bdAddr })),

  // Status (OGF 0x05)
  /** Core 5.4 Vol 4 Part E 7.5.4 */
  ReadRssi: complete(0x1405, handleOnly, struct({ handle: u16, rssi: i8 })),
  /** Core 5.4 Vol 4 Part E 7.5.7 */
  ReadEncryptionKeySize: complete(0x1408, handleOnly, struct({ handle: u16, keySize: u8 })),

  // LE controller (OGF 0x08)
  /** Core 5.4 Vol 4 Part E 7.8.1 */
  LeSetEventMask: complete(0x2001, struct({ mask: u64 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.2 */
  LeReadBufferSize: complete(0x2002, empty, struct({ leAclDataPacketLength: u16, totalNumLeAclDataPackets: u8 })),
  /** Core 5.4 Vol 4 Part E 7.8.3 */
  LeReadLocalSupportedFeatures: complete(0x2003, empty, struct({ features: bytes(8) })),
  /** Core 5.4 Vol 4 Part E 7.8.4 */
  LeSetRandomAddress: complete(0x2005, struct({ address: bdAddr }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.5 */
  LeSetAdvertisingParameters: complete(
    0x2006,
    struct({
      intervalMin: u16,
      intervalMax: u16,
      advertisingType: u8,
      ownAddressType: u8,
      peerAddressType: u8,
      peerAddress: bdAddr,
      channelMap: u8,
      filterPolicy: u8,
    }),
    empty,
  ),
  /** Core 5.4 Vol 4 Part E 7.8.6 */
  LeReadAdvertisingPhysicalChannelTxPower: complete(0x2007, empty, struct({ txPowerLevel: i8 })),
  /** Core 5.4 Vol 4 Part E 7.8.7 */
  LeSetAdvertisingData: complete(0x2008, struct({ data: paddedData(31) }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.8 */
  LeSetScanResponseData: complete(0x2009, struct({ data: paddedData(31) }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.9 */
  LeSetAdvertisingEnable: complete(0x200a, struct({ enable: bool8 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.10 */
  LeSetScanParameters: complete(
    0x200b,
    struct({ scanType: u8, interval: u16, window: u16, ownAddressType: u8, filterPolicy: u8 }),
    empty,
  ),
  /** Core 5.4 Vol 4 Part E 7.8.11 */
  LeSetScanEnable: complete(0x200c, struct({ enable: bool8, filterDuplicates: bool8 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.12 */
  LeCreateConnection: status(
    0x200d,
    struct({
      scanInterval: u16,
      scanWindow: u16,
      initiatorFilterPolicy: u8,
      peerAddressType: u8,
      peerAddress: bdAddr,
      ownAddressType: u8,
      connIntervalMin: u16,
      connIntervalMax: u16,
      maxLatency: u16,
      supervisionTimeout: u16,
      minCeLength: u16,
      maxCeLength: u16,
    }),
  ),
  /** Core 5.4 Vol 4 Part E 7.8.13 */
  LeCreateConnectionCancel: complete(0x200e, empty, empty),
  /** Core 5.4 Vol 4 Part E 7.8.14 */
  LeReadFilterAcceptListSize: complete(0x200f, empty, struct({ size: u8 })),
  /** Core 5.4 Vol 4 Part E 7.8.15 */
  LeClearFilterAcceptList: complete(0x2010, empty, empty),
  /** Core 5.4 Vol 4 Part E 7.8.16 */
  LeAddDeviceToFilterAcceptList: complete(0x2011, addrWithType, empty),
  /** Core 5.4 Vol 4 Part E 7.8.17 */
  LeRemoveDeviceFromFilterAcceptList: complete(0x2012, addrWithType, empty),
  /** Core 5.4 Vol 4 Part E 7.8.18 */
  LeConnectionUpdate: status(
    0x2013,
    struct({
      handle: u16,
      connIntervalMin: u16,
      connIntervalMax: u16,
      maxLatency: u16,
      supervisionTimeout: u16,
      minCeLength: u16,
      maxCeLength: u16,
    }),
  ),
  /** Core 5.4 Vol 4 Part E 7.8.21 */
  LeReadRemoteFeatures: status(0x2016, handleOnly),
  /** Core 5.4 Vol 4 Part E 7.8.22: AES-128, key and data as the spec's byte order (MSO first on the wire? no: LSO first) */
  LeEncrypt: complete(0x2017, struct({ key: bytes(16), plaintext: bytes(16) }), struct({ encrypted: bytes(16) })),
  /** Core 5.4 Vol 4 Part E 7.8.23 */
  LeRand: complete(0x2018, empty, struct({ random: bytes(8) })),
  /** Core 5.4 Vol 4 Part E 7.8.24 */
  LeEnableEncryption: status(0x2019, struct({ handle: u16, rand: u64, ediv: u16, ltk: bytes(16) })),
  /** Core 5.4 Vol 4 Part E 7.8.25 */
  LeLongTermKeyRequestReply: complete(0x201a, struct({ handle: u16, ltk: bytes(16) }), handleOnly),
  /** Core 5.4 Vol 4 Part E 7.8.26 */
  LeLongTermKeyRequestNegativeReply: complete(0x201b, handleOnly, handleOnly),
  /** Core 5.4 Vol 4 Part E 7.8.27 */
  LeReadSupportedStates: complete(0x201c, empty, struct({ states: u64 })),
  /** Core 5.4 Vol 4 Part E 7.8.31 */
  LeRemoteConnectionParameterRequestReply: complete(
    0x2020,
    struct({
      handle: u16,
      intervalMin: u16,
      intervalMax: u16,
      maxLatency: u16,
      timeout: u16,
      minCeLength: u16,
      maxCeLength: u16,
    }),
    handleOnly,
  ),
  /** Core 5.4 Vol 4 Part E 7.8.32 */
  LeRemoteConnectionParameterRequestNegativeReply: complete(0x2021, struct({ handle: u16, reason: u8 }), handleOnly),
  /** Core 5.4 Vol 4 Part E 7.8.33 */
  LeSetDataLength: complete(0x2022, struct({ handle: u16, txOctets: u16, txTime: u16 }), handleOnly),
  /** Core 5.4 Vol 4 Part E 7.8.34 */
  LeReadSuggestedDefaultDataLength: complete(0x2023, empty, struct({ maxTxOctets: u16, maxTxTime: u16 })),
  /** Core 5.4 Vol 4 Part E 7.8.35 */
  LeWriteSuggestedDefaultDataLength: complete(0x2024, struct({ maxTxOctets: u16, maxTxTime: u16 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.38 */
  LeAddDeviceToResolvingList: complete(
    0x2027,
    struct({ peerIdentityAddressType: u8, peerIdentityAddress: bdAddr, peerIrk: bytes(16), localIrk: bytes(16) }),
    empty,
  ),
  /** Core 5.4 Vol 4 Part E 7.8.39 */
  LeRemoveDeviceFromResolvingList: complete(
    0x2028,
    struct({ peerIdentityAddressType: u8, peerIdentityAddress: bdAddr }),
    empty,
  ),
  /** Core 5.4 Vol 4 Part E 7.8.40 */
  LeClearResolvingList: complete(0x2029, empty, empty),
  /** Core 5.4 Vol 4 Part E 7.8.41 */
  LeReadResolvingListSize: complete(0x202a, empty, struct({ size: u8 })),
  /** Core 5.4 Vol 4 Part E 7.8.44 */
  LeSetAddressResolutionEnable: complete(0x202d, struct({ enable: bool8 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.45 */
  LeSetResolvablePrivateAddressTimeout: complete(0x202e, struct({ timeout: u16 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.46 */
  LeReadMaximumDataLength: complete(
    0x202f,
    empty,
    struct({ maxTxOctets: u16, maxTxTime: u16, maxRxOctets: u16, maxRxTime: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.8.47 */
  LeReadPhy: complete(0x2030, handleOnly, struct({ handle: u16, txPhy: u8, rxPhy: u8 })),
  /** Core 5.4 Vol 4 Part E 7.8.48 */
  LeSetDefaultPhy: complete(0x2031, struct({ allPhys: u8, txPhys: u8, rxPhys: u8 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.49 */
  LeSetPhy: status(0x2032, struct({ handle: u16, allPhys: u8, txPhys: u8, rxPhys: u8, phyOptions: u16 })),
  /** Core 5.4 Vol 4 Part E 7.8.77 */
  LeSetPrivacyMode: complete(0x204e, struct({ peerIdentityAddressType: u8, peerIdentityAddress: bdAddr, privacyMode: u8 }), empty),
  /** Core 5.4 Vol 4 Part E 7.8.2 (v2) */
  LeReadBufferSizeV2: complete(
    0x2060,
    empty,
    struct({ leAclDataPacketLength: u16, totalNumLeAclDataPackets: u8, isoDataPacketLength: u16, totalNumIsoDataPackets: u8 }),
  ),

  // Zephyr vendor-specific (OGF 0x3F). Zephyr include/zephyr/bluetooth/hci_vs.h
  /** Zephyr HCI VS Read Version Information: hw platform 0x0002 = Nordic, variant 0x0003 = nRF53x. */
  ZephyrReadVersionInfo: complete(
    0xfc01,
    empty,
    struct({ hwPlatform: u16, hwVariant: u16, fwVariant: u8, fwVersion: u8, fwRevision: u16, fwBuild: u32 }),
  ),
  /** Zephyr HCI VS Read Supported Commands: 64-octet bitmap of vendor commands. */
  ZephyrReadSupportedCommands: complete(0xfc02, empty, struct({ commands: bytes(64) })),
  /** Zephyr HCI VS Read Supported Features. */
  ZephyrReadSupportedFeatures: complete(0xfc03, empty, struct({ features: bytes(8) })),
  /** Zephyr HCI VS Write BD_ADDR. */
  ZephyrWriteBdAddr: complete(0xfc06, struct({ address: bdAddr }), empty),
  /** Zephyr HCI VS Read Static Addresses: count, then address + 16-byte identity root each. */
  ZephyrReadStaticAddresses: complete(0xfc09, empty, struct({ addresses: countedList(staticAddressEntry) })),
  /** Zephyr HCI VS Read Key Hierarchy Roots: IR and ER. */
  ZephyrReadKeyHierarchyRoots: complete(0xfc0a, empty, struct({ ir: bytes(16), er: bytes(16) })),
} as const;

export type CommandName = keyof typeof Commands;
export type CommandParams<N extends CommandName> = CodecValue<(typeof Commands)[N]['params']>;
export type CommandReturn<N extends CommandName> = CodecValue<(typeof Commands)[N]['returns']>;

const BY_OPCODE = new Map<number, CommandName>(
  (Object.keys(Commands) as CommandName[]).map((n) => [Commands[n].opcode, n]),
);

export function commandNameOf(opcode: number): CommandName | undefined {
  return BY_OPCODE.get(opcode);
}

/** `0x0c03 Reset`, or `0xfc99 (unknown)`. */
export function formatOpcode(opcode: number): string {
  return `0x${opcode.toString(16).padStart(4, '0')} ${BY_OPCODE.get(opcode) ?? '(unknown)'}`;
}

/** HCI command packet body (no H:4 type byte): opcode, length, parameters. Core 5.4 Vol 4 Part E 5.4.1. */
export function encodeCommand<N extends CommandName>(name: N, params: CommandParams<N>): Uint8Array {
  const def = Commands[name] as unknown as CommandDef<CommandParams<N>, unknown>;
  const w = new ByteWriter(3 + (def.params.length ?? 32));
  w.u16(def.opcode).u8(0);
  def.params.encode(params, w);
  const out = w.finish();
  if (out.length - 3 > 255) throw new RangeError(`${name}: parameters longer than 255 bytes`);
  out[2] = out.length - 3;
  return out;
}

/** A command packet as the controller sees it. */
export type DecodedCommand =
  | { ok: true; name: CommandName; opcode: number; params: { [K in CommandName]: CommandParams<K> }[CommandName] }
  | { ok: false; opcode: number; reason: 'unknown-opcode' | 'bad-length' | 'truncated'; detail: string };

/**
 * Decodes a command packet body. Parameter length must match the entry exactly for fixed layouts
 * and reach the minimum for variable ones; anything else is `bad-length` (a real controller answers
 * Invalid HCI Command Parameters or drops it).
 */
export function decodeCommand(body: Uint8Array): DecodedCommand {
  if (body.length < 3) return { ok: false, opcode: -1, reason: 'truncated', detail: `command packet of ${body.length} bytes` };
  const opcode = (body[0] as number) | ((body[1] as number) << 8);
  const plen = body[2] as number;
  if (body.length !== 3 + plen) {
    return { ok: false, opcode, reason: 'truncated', detail: `length field ${plen}, ${body.length - 3} parameter bytes present` };
  }
  const name = BY_OPCODE.get(opcode);
  if (!name) return { ok: false, opcode, reason: 'unknown-opcode', detail: formatOpcode(opcode) };
  const codec = Commands[name].params as Codec<unknown>;
  if ((codec.length !== undefined && plen !== codec.length) || plen < codec.minLength) {
    return { ok: false, opcode, reason: 'bad-length', detail: `${name} takes ${codec.length ?? `>= ${codec.minLength}`} parameter bytes, got ${plen}` };
  }
  try {
    const params = codec.decode(new ByteReader(body.subarray(3))) as { [K in CommandName]: CommandParams<K> }[CommandName];
    return { ok: true, name, opcode, params };
  } catch (err) {
    return { ok: false, opcode, reason: 'bad-length', detail: `${name}: ${(err as Error).message}` };
  }
}

/** Decodes Command Complete return parameters after the status byte. Throws ShortBufferError/RangeError if malformed. */
export function decodeReturn<N extends CommandName>(name: N, afterStatus: Uint8Array): CommandReturn<N> {
  const codec = Commands[name].returns as Codec<CommandReturn<N>>;
  return codec.decode(new ByteReader(afterStatus));
}

/** Encodes Command Complete return parameters: status, then the fields (simulator side). */
export function encodeReturn<N extends CommandName>(name: N, statusCode: number, ret?: CommandReturn<N>): Uint8Array {
  const codec = Commands[name].returns as Codec<CommandReturn<N>>;
  const w = new ByteWriter(1 + (codec.length ?? 32));
  w.u8(statusCode);
  if (ret !== undefined) codec.encode(ret, w);
  return w.finish();
}

/**
 * Position of a command in the Supported Commands bitmap (octet, bit). Core 5.4 Vol 4 Part E 6.27.
 * Only the commands the host checks for are listed.
 */
export const SupportedCommandBits = {
  LeReadBufferSizeV2: [41, 5],
  LeSetPrivacyMode: [39, 2],
  LeSetDataLength: [33, 6],
  LeReadMaximumDataLength: [35, 3],
  LeSetPhy: [35, 6],
  LeAddDeviceToResolvingList: [34, 3],
  LeSetAddressResolutionEnable: [35, 1],
  ReadEncryptionKeySize: [20, 4],
  LeEncrypt: [27, 6],
  LeRand: [27, 7],
  LeLongTermKeyRequestReply: [28, 1],
  LeEnableEncryption: [28, 0],
  SetEventMaskPage2: [22, 2],
  ReadBdAddr: [15, 1],
  ReadRssi: [15, 5],
  LeRemoteConnectionParameterRequestReply: [33, 4],
  LeReadSuggestedDefaultDataLength: [33, 7],
  LeWriteSuggestedDefaultDataLength: [34, 0],
} as const satisfies Record<string, readonly [number, number]>;

export function isCommandSupported(bitmap: Uint8Array, name: keyof typeof SupportedCommandBits): boolean {
  const [octet, bit] = SupportedCommandBits[name];
  return (((bitmap[octet] ?? 0) >> bit) & 1) === 1;
}

// Re-exported for the event table.
export { rest };
