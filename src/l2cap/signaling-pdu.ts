/**
 * LE signaling channel (CID 0x0005) PDUs. Core 5.4 Vol 3 Part A 4. One table keyed by code:
 * name, exact or minimum data length, decode, encode.
 */
import { ByteReader, ByteWriter } from '../util/bytes.js';

/** Signaling command codes used on LE. Core 5.4 Vol 3 Part A 4, Table 4.2. */
export const SignalingCode = {
  CommandReject: 0x01,
  DisconnectionRequest: 0x06,
  DisconnectionResponse: 0x07,
  ConnectionParameterUpdateRequest: 0x12,
  ConnectionParameterUpdateResponse: 0x13,
  LeCreditBasedConnectionRequest: 0x14,
  LeCreditBasedConnectionResponse: 0x15,
  FlowControlCredit: 0x16,
  CreditBasedConnectionRequest: 0x17,
  CreditBasedConnectionResponse: 0x18,
  CreditBasedReconfigureRequest: 0x19,
  CreditBasedReconfigureResponse: 0x1a,
} as const;

/** Command Reject reasons. Core 5.4 Vol 3 Part A 4.1. */
export const RejectReason = {
  CommandNotUnderstood: 0x0000,
  SignalingMtuExceeded: 0x0001,
  InvalidCidInRequest: 0x0002,
} as const;

/** LE credit-based connection results. Core 5.4 Vol 3 Part A 4.23 / 4.26. */
export const CreditBasedResult = {
  Successful: 0x0000,
  SpsmNotSupported: 0x0002,
} as const;

/** The minimum signaling MTU on LE (MTUsig). Core 5.4 Vol 3 Part A 4. */
export const LE_SIGNALING_MTU = 23;

export type SignalingPdu =
  | { type: 'commandReject'; identifier: number; reason: number; data: Uint8Array }
  | { type: 'disconnectionRequest'; identifier: number; destinationCid: number; sourceCid: number }
  | { type: 'disconnectionResponse'; identifier: number; destinationCid: number; sourceCid: number }
  | { type: 'connectionParameterUpdateRequest'; identifier: number; intervalMin: number; intervalMax: number; latency: number; timeout: number }
  | { type: 'connectionParameterUpdateResponse'; identifier: number; result: number }
  | { type: 'leCreditBasedConnectionRequest'; identifier: number; spsm: number; sourceCid: number; mtu: number; mps: number; initialCredits: number }
  | { type: 'leCreditBasedConnectionResponse'; identifier: number; destinationCid: number; mtu: number; mps: number; initialCredits: number; result: number }
  | { type: 'flowControlCredit'; identifier: number; cid: number; credits: number }
  | { type: 'creditBasedConnectionRequest'; identifier: number; spsm: number; mtu: number; mps: number; initialCredits: number; sourceCids: number[] }
  | { type: 'creditBasedConnectionResponse'; identifier: number; mtu: number; mps: number; initialCredits: number; result: number; destinationCids: number[] };

type PduOf<T extends SignalingPdu['type']> = Extract<SignalingPdu, { type: T }>;

interface Entry<T extends SignalingPdu['type']> {
  code: number;
  type: T;
  /** Exact data length, or a minimum with `variable`. */
  length: number;
  variable?: boolean;
  decode(identifier: number, r: ByteReader): PduOf<T>;
  encode(p: PduOf<T>, w: ByteWriter): void;
}

function entry<T extends SignalingPdu['type']>(e: Entry<T>): Entry<T> {
  return e;
}

function cidList(r: ByteReader): number[] {
  const out: number[] = [];
  while (r.remaining >= 2) out.push(r.u16());
  return out;
}

const TABLE = [
  entry({
    code: 0x01, type: 'commandReject', length: 2, variable: true,
    decode: (identifier, r) => ({ type: 'commandReject', identifier, reason: r.u16(), data: r.rest() }),
    encode: (p, w) => void w.u16(p.reason).bytes(p.data),
  }),
  entry({
    code: 0x06, type: 'disconnectionRequest', length: 4,
    decode: (identifier, r) => ({ type: 'disconnectionRequest', identifier, destinationCid: r.u16(), sourceCid: r.u16() }),
    encode: (p, w) => void w.u16(p.destinationCid).u16(p.sourceCid),
  }),
  entry({
    code: 0x07, type: 'disconnectionResponse', length: 4,
    decode: (identifier, r) => ({ type: 'disconnectionResponse', identifier, destinationCid: r.u16(), sourceCid: r.u16() }),
    encode: (p, w) => void w.u16(p.destinationCid).u16(p.sourceCid),
  }),
  entry({
    code: 0x12, type: 'connectionParameterUpdateRequest', length: 8,
    decode: (identifier, r) => ({ type: 'connectionParameterUpdateRequest', identifier, intervalMin: r.u16(), intervalMax: r.u16(), latency: r.u16(), timeout: r.u16() }),
    encode: (p, w) => void w.u16(p.intervalMin).u16(p.intervalMax).u16(p.latency).u16(p.timeout),
  }),
  entry({
    code: 0x13, type: 'connectionParameterUpdateResponse', length: 2,
    decode: (identifier, r) => ({ type: 'connectionParameterUpdateResponse', identifier, result: r.u16() }),
    encode: (p, w) => void w.u16(p.result),
  }),
  entry({
    code: 0x14, type: 'leCreditBasedConnectionRequest', length: 10,
    decode: (identifier, r) => ({ type: 'leCreditBasedConnectionRequest', identifier, spsm: r.u16(), sourceCid: r.u16(), mtu: r.u16(), mps: r.u16(), initialCredits: r.u16() }),
    encode: (p, w) => void w.u16(p.spsm).u16(p.sourceCid).u16(p.mtu).u16(p.mps).u16(p.initialCredits),
  }),
  entry({
    code: 0x15, type: 'leCreditBasedConnectionResponse', length: 10,
    decode: (identifier, r) => ({ type: 'leCreditBasedConnectionResponse', identifier, destinationCid: r.u16(), mtu: r.u16(), mps: r.u16(), initialCredits: r.u16(), result: r.u16() }),
    encode: (p, w) => void w.u16(p.destinationCid).u16(p.mtu).u16(p.mps).u16(p.initialCredits).u16(p.result),
  }),
  entry({
    code: 0x16, type: 'flowControlCredit', length: 4,
    decode: (identifier, r) => ({ type: 'flowControlCredit', identifier, cid: r.u16(), credits: r.u16() }),
    encode: (p, w) => void w.u16(p.cid).u16(p.credits),
  }),
  entry({
    code: 0x17, type: 'creditBasedConnectionRequest', length: 10, variable: true,
    decode: (identifier, r) => ({ type: 'creditBasedConnectionRequest', identifier, spsm: r.u16(), mtu: r.u16(), mps: r.u16(), initialCredits: r.u16(), sourceCids: cidList(r) }),
    encode: (p, w) => {
      w.u16(p.spsm).u16(p.mtu).u16(p.mps).u16(p.initialCredits);
      for (const c of p.sourceCids) w.u16(c);
    },
  }),
  entry({
    code: 0x18, type: 'creditBasedConnectionResponse', length: 8, variable: true,
    decode: (identifier, r) => ({ type: 'creditBasedConnectionResponse', identifier, mtu: r.u16(), mps: r.u16(), initialCredits: r.u16(), result: r.u16(), destinationCids: cidList(r) }),
    encode: (p, w) => {
      w.u16(p.mtu).u16(p.mps).u16(p.initialCredits).u16(p.result);
      for (const c of p.destinationCids) w.u16(c);
    },
  }),
] as const;

type AnyEntry = Entry<SignalingPdu['type']>;
const BY_CODE = new Map<number, AnyEntry>(TABLE.map((e) => [e.code, e as unknown as AnyEntry]));
const BY_TYPE = new Map<string, AnyEntry>(TABLE.map((e) => [e.type, e as unknown as AnyEntry]));

export type DecodedSignaling =
  | { ok: true; pdu: SignalingPdu }
  | { ok: false; code: number; identifier: number; reason: 'unknown-code' | 'bad-length'; detail: string };

/**
 * Decodes one signaling command (code, identifier, length, data). LE allows one command per
 * C-frame. Core 5.4 Vol 3 Part A 4. Never throws.
 */
export function decodeSignaling(frame: Uint8Array): DecodedSignaling {
  if (frame.length < 4) return { ok: false, code: frame[0] ?? 0, identifier: frame[1] ?? 0, reason: 'bad-length', detail: `command of ${frame.length} bytes` };
  const code = frame[0] as number;
  const identifier = frame[1] as number;
  const len = (frame[2] as number) | ((frame[3] as number) << 8);
  const e = BY_CODE.get(code);
  if (!e) return { ok: false, code, identifier, reason: 'unknown-code', detail: `code 0x${code.toString(16).padStart(2, '0')}` };
  if (frame.length - 4 !== len) return { ok: false, code, identifier, reason: 'bad-length', detail: `length field ${len}, ${frame.length - 4} bytes present` };
  if (e.variable ? len < e.length : len !== e.length) {
    return { ok: false, code, identifier, reason: 'bad-length', detail: `${e.type} takes ${e.variable ? '>= ' : ''}${e.length} bytes, got ${len}` };
  }
  return { ok: true, pdu: e.decode(identifier, new ByteReader(frame.subarray(4))) };
}

export function encodeSignaling(pdu: SignalingPdu): Uint8Array {
  const e = BY_TYPE.get(pdu.type) as AnyEntry;
  const w = new ByteWriter(16);
  w.u8(e.code).u8(pdu.identifier).u16(0);
  e.encode(pdu, w);
  const out = w.finish();
  const len = out.length - 4;
  out[2] = len & 0xff;
  out[3] = len >> 8;
  return out;
}

/** Short text for logs. */
export function formatSignaling(pdu: SignalingPdu): string {
  const { type, ...rest } = pdu;
  return `${type} ${JSON.stringify(rest, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}`;
}
