/**
 * The HCI event table: one entry per event (and per LE Meta subevent) the host handles, keyed by
 * name, with its code and parameter layout. Every event is length-checked before decoding: shorter
 * than its layout is an error; longer is accepted and the extra bytes ignored (later spec versions
 * may append parameters). Core 5.4 Vol 4 Part E 7.7.
 */
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { bdAddr, bool8, bytes, countedList, i8, rest, struct, u16, u64, u8, type Codec, type CodecValue } from './codec.js';

export interface EventDef<P> {
  readonly code: number;
  /** LE Meta (0x3E) subevent code, when this is an LE event. */
  readonly subevent?: number;
  readonly params: Codec<P>;
}

function evt<P>(code: number, params: Codec<P>): EventDef<P> {
  return { code, params };
}
function le<P>(subevent: number, params: Codec<P>): EventDef<P> {
  return { code: 0x3e, subevent, params };
}

/** One advertising report. Core 5.4 Vol 4 Part E 7.7.65.2 (arrayed parameters interleaved per report). */
const advertisingReport: Codec<{ eventType: number; addressType: number; address: string; data: Uint8Array; rssi: number }> = {
  length: undefined,
  minLength: 10,
  encode(v, w) {
    w.u8(v.eventType).u8(v.addressType);
    bdAddr.encode(v.address, w);
    w.u8(v.data.length).bytes(v.data);
    i8.encode(v.rssi, w);
  },
  decode(r) {
    const eventType = r.u8();
    const addressType = r.u8();
    const address = bdAddr.decode(r);
    const n = r.u8();
    if (n > 31) throw new RangeError(`advertising data length ${n} > 31`);
    const data = r.bytes(n);
    const rssi = r.i8();
    return { eventType, addressType, address, data, rssi };
  },
};

const completedPackets = struct({ handle: u16, count: u16 });

export const Events = {
  /** Core 5.4 Vol 4 Part E 7.7.5 */
  DisconnectionComplete: evt(0x05, struct({ status: u8, handle: u16, reason: u8 })),
  /** Core 5.4 Vol 4 Part E 7.7.8 */
  EncryptionChange: evt(0x08, struct({ status: u8, handle: u16, enabled: u8 })),
  /** Core 5.4 Vol 4 Part E 7.7.12 */
  ReadRemoteVersionInformationComplete: evt(
    0x0c,
    struct({ status: u8, handle: u16, version: u8, companyId: u16, subversion: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.14: return parameters stay raw; the command table decodes them. */
  CommandComplete: evt(0x0e, struct({ numHciCommandPackets: u8, opcode: u16, returnParameters: rest })),
  /** Core 5.4 Vol 4 Part E 7.7.15 */
  CommandStatus: evt(0x0f, struct({ status: u8, numHciCommandPackets: u8, opcode: u16 })),
  /** Core 5.4 Vol 4 Part E 7.7.16 */
  HardwareError: evt(0x10, struct({ hardwareCode: u8 })),
  /** Core 5.4 Vol 4 Part E 7.7.19 */
  NumberOfCompletedPackets: evt(0x13, struct({ handles: countedList(completedPackets) })),
  /** Core 5.4 Vol 4 Part E 7.7.26 */
  DataBufferOverflow: evt(0x1a, struct({ linkType: u8 })),
  /** Core 5.4 Vol 4 Part E 7.7.39 */
  EncryptionKeyRefreshComplete: evt(0x30, struct({ status: u8, handle: u16 })),
  /** Core 5.4 Vol 4 Part E 7.7.8 (v2, with key size) */
  EncryptionChangeV2: evt(0x59, struct({ status: u8, handle: u16, enabled: u8, keySize: u8 })),
  /** Vendor-specific event (Zephyr: fatal error / assert reports). Core 5.4 Vol 4 Part E 5.4.4 */
  VendorSpecific: evt(0xff, struct({ data: rest })),

  /** Core 5.4 Vol 4 Part E 7.7.65.1 */
  LeConnectionComplete: le(
    0x01,
    struct({
      status: u8,
      handle: u16,
      role: u8,
      peerAddressType: u8,
      peerAddress: bdAddr,
      connInterval: u16,
      connLatency: u16,
      supervisionTimeout: u16,
      centralClockAccuracy: u8,
    }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.65.2 */
  LeAdvertisingReport: le(0x02, struct({ reports: countedList(advertisingReport) })),
  /** Core 5.4 Vol 4 Part E 7.7.65.3 */
  LeConnectionUpdateComplete: le(
    0x03,
    struct({ status: u8, handle: u16, connInterval: u16, connLatency: u16, supervisionTimeout: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.65.4 */
  LeReadRemoteFeaturesComplete: le(0x04, struct({ status: u8, handle: u16, features: bytes(8) })),
  /** Core 5.4 Vol 4 Part E 7.7.65.5 */
  LeLongTermKeyRequest: le(0x05, struct({ handle: u16, rand: u64, ediv: u16 })),
  /** Core 5.4 Vol 4 Part E 7.7.65.6 */
  LeRemoteConnectionParameterRequest: le(
    0x06,
    struct({ handle: u16, intervalMin: u16, intervalMax: u16, maxLatency: u16, timeout: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.65.7 */
  LeDataLengthChange: le(
    0x07,
    struct({ handle: u16, maxTxOctets: u16, maxTxTime: u16, maxRxOctets: u16, maxRxTime: u16 }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.65.10 */
  LeEnhancedConnectionComplete: le(
    0x0a,
    struct({
      status: u8,
      handle: u16,
      role: u8,
      peerAddressType: u8,
      peerAddress: bdAddr,
      localResolvablePrivateAddress: bdAddr,
      peerResolvablePrivateAddress: bdAddr,
      connInterval: u16,
      connLatency: u16,
      supervisionTimeout: u16,
      centralClockAccuracy: u8,
    }),
  ),
  /** Core 5.4 Vol 4 Part E 7.7.65.12 */
  LePhyUpdateComplete: le(0x0c, struct({ status: u8, handle: u16, txPhy: u8, rxPhy: u8 })),
} as const;

export type EventName = keyof typeof Events;
export type EventParams<N extends EventName> = CodecValue<(typeof Events)[N]['params']>;

/** A decoded event: `{ name: 'DisconnectionComplete', params: { status, handle, reason } }`. */
export type HciEvent = { [K in EventName]: { name: K; params: EventParams<K> } }[EventName];

export type DecodedEvent =
  | { ok: true; event: HciEvent }
  | { ok: true; event: undefined; code: number; subevent?: number; unknown: true }
  | { ok: false; code: number; subevent?: number; name?: EventName; error: string };

const BY_CODE = new Map<number, EventName>();
const BY_SUBEVENT = new Map<number, EventName>();
for (const name of Object.keys(Events) as EventName[]) {
  const def = Events[name] as EventDef<unknown>;
  if (def.subevent !== undefined) BY_SUBEVENT.set(def.subevent, name);
  else BY_CODE.set(def.code, name);
}

export function eventNameOf(code: number, subevent?: number): EventName | undefined {
  return code === 0x3e ? (subevent === undefined ? undefined : BY_SUBEVENT.get(subevent)) : BY_CODE.get(code);
}

/**
 * Decodes an event packet body (no H:4 type byte): code, length, parameters.
 * Never throws: malformed input comes back as `{ ok: false }` with the reason.
 */
export function decodeEvent(body: Uint8Array): DecodedEvent {
  if (body.length < 2) return { ok: false, code: body[0] ?? -1, error: `event packet of ${body.length} byte(s)` };
  const code = body[0] as number;
  const plen = body[1] as number;
  if (body.length !== 2 + plen) {
    return { ok: false, code, error: `length field ${plen}, ${body.length - 2} parameter bytes present` };
  }
  let payload = body.subarray(2);
  let subevent: number | undefined;
  if (code === 0x3e) {
    if (payload.length < 1) return { ok: false, code, error: 'LE Meta event without subevent code' };
    subevent = payload[0] as number;
    payload = payload.subarray(1);
  }
  const name = eventNameOf(code, subevent);
  if (!name) return subevent === undefined ? { ok: true, event: undefined, code, unknown: true } : { ok: true, event: undefined, code, subevent, unknown: true };
  const codec = Events[name].params as Codec<unknown>;
  if (payload.length < codec.minLength) {
    return { ok: false, code, ...(subevent !== undefined ? { subevent } : {}), name, error: `${name} needs ${codec.minLength} parameter bytes, got ${payload.length}` };
  }
  try {
    const params = codec.decode(new ByteReader(payload));
    return { ok: true, event: { name, params } as HciEvent };
  } catch (err) {
    return { ok: false, code, ...(subevent !== undefined ? { subevent } : {}), name, error: `${name}: ${(err as Error).message}` };
  }
}

/** Encodes an event packet body (simulator and test side). */
export function encodeEvent<N extends EventName>(name: N, params: EventParams<N>): Uint8Array {
  const def = Events[name] as unknown as EventDef<EventParams<N>>;
  const w = new ByteWriter(3 + (def.params.length ?? 32));
  w.u8(def.code).u8(0);
  if (def.subevent !== undefined) w.u8(def.subevent);
  def.params.encode(params, w);
  const out = w.finish();
  if (out.length - 2 > 255) throw new RangeError(`${name}: event parameters longer than 255 bytes`);
  out[1] = out.length - 2;
  return out;
}

/** LE advertising report event types. Core 5.4 Vol 4 Part E 7.7.65.2 */
export const AdvertisingReportType = {
  AdvInd: 0x00,
  AdvDirectInd: 0x01,
  AdvScanInd: 0x02,
  AdvNonconnInd: 0x03,
  ScanRsp: 0x04,
} as const;

/** Connection role in LE Connection Complete. */
export const Role = { Central: 0x00, Peripheral: 0x01 } as const;

/** Bits of the LE event mask (Core 5.4 Vol 4 Part E 7.8.1), bit n = subevent n+1. */
export function leEventMaskFor(subevents: readonly number[]): bigint {
  let m = 0n;
  for (const s of subevents) m |= 1n << BigInt(s - 1);
  return m;
}

/** Re-exported so users of the table need one import. */
export { bool8 };
