/**
 * Attribute Protocol PDUs: one table keyed by opcode, with name, length rule, decoder and encoder
 * for every PDU of Core 5.4 Vol 3 Part F 3.4 (summary in Table 3.43). The codecs serve the server
 * and the GATT client alike.
 *
 * Decoding never throws: {@link decodeAttPdu} checks the length rule before touching a field and
 * returns `{ ok: false }` with the reason for a short, long or inconsistent PDU. Decoded values
 * (`value`, UUID bytes) are views into the input buffer: copy them to keep them.
 * Multi-octet fields are little-endian (Core 5.4 Vol 3 Part F 3.3.1); UUIDs stay in their wire
 * form (2 or 16 bytes LE).
 */
import { toHex } from '../util/bytes.js';

/** Attribute opcodes. Core 5.4 Vol 3 Part F 3.4.8 Table 3.43. */
export const AttOpcode = {
  errorResponse: 0x01,
  exchangeMtuRequest: 0x02,
  exchangeMtuResponse: 0x03,
  findInformationRequest: 0x04,
  findInformationResponse: 0x05,
  findByTypeValueRequest: 0x06,
  findByTypeValueResponse: 0x07,
  readByTypeRequest: 0x08,
  readByTypeResponse: 0x09,
  readRequest: 0x0a,
  readResponse: 0x0b,
  readBlobRequest: 0x0c,
  readBlobResponse: 0x0d,
  readMultipleRequest: 0x0e,
  readMultipleResponse: 0x0f,
  readByGroupTypeRequest: 0x10,
  readByGroupTypeResponse: 0x11,
  writeRequest: 0x12,
  writeResponse: 0x13,
  prepareWriteRequest: 0x16,
  prepareWriteResponse: 0x17,
  executeWriteRequest: 0x18,
  executeWriteResponse: 0x19,
  handleValueNotification: 0x1b,
  handleValueIndication: 0x1d,
  handleValueConfirmation: 0x1e,
  readMultipleVariableRequest: 0x20,
  readMultipleVariableResponse: 0x21,
  multipleHandleValueNotification: 0x23,
  writeCommand: 0x52,
  signedWriteCommand: 0xd2,
} as const;
export type AttOpcodeValue = (typeof AttOpcode)[keyof typeof AttOpcode];

/** Command Flag of the opcode (bit 6). Core 5.4 Vol 3 Part F 3.3.1. */
export const ATT_COMMAND_FLAG = 0x40;
/** Authentication Signature Flag of the opcode (bit 7). Core 5.4 Vol 3 Part F 3.3.1. */
export const ATT_SIGNATURE_FLAG = 0x80;

/**
 * ATT error codes. Core 5.4 Vol 3 Part F 3.4.1.1 Table 3.4; 0x80..0x9F application errors;
 * 0xE0..0xFF common profile and service error codes (Core Specification Supplement Part B 1.2).
 */
export const AttErrorCode = {
  invalidHandle: 0x01,
  readNotPermitted: 0x02,
  writeNotPermitted: 0x03,
  invalidPdu: 0x04,
  insufficientAuthentication: 0x05,
  requestNotSupported: 0x06,
  invalidOffset: 0x07,
  insufficientAuthorization: 0x08,
  prepareQueueFull: 0x09,
  attributeNotFound: 0x0a,
  attributeNotLong: 0x0b,
  /** "Encryption Key Size Too Short" since Core 5.3; formerly "Insufficient Encryption Key Size". */
  encryptionKeySizeTooShort: 0x0c,
  invalidAttributeValueLength: 0x0d,
  unlikelyError: 0x0e,
  insufficientEncryption: 0x0f,
  unsupportedGroupType: 0x10,
  insufficientResources: 0x11,
  databaseOutOfSync: 0x12,
  valueNotAllowed: 0x13,
  /** First application error code (0x80..0x9F, defined by the service). */
  applicationErrorFirst: 0x80,
  applicationErrorLast: 0x9f,
  writeRequestRejected: 0xfc,
  cccdImproperlyConfigured: 0xfd,
  procedureAlreadyInProgress: 0xfe,
  outOfRange: 0xff,
} as const;

const ERROR_NAMES: Record<number, string> = {
  0x01: 'Invalid Handle',
  0x02: 'Read Not Permitted',
  0x03: 'Write Not Permitted',
  0x04: 'Invalid PDU',
  0x05: 'Insufficient Authentication',
  0x06: 'Request Not Supported',
  0x07: 'Invalid Offset',
  0x08: 'Insufficient Authorization',
  0x09: 'Prepare Queue Full',
  0x0a: 'Attribute Not Found',
  0x0b: 'Attribute Not Long',
  0x0c: 'Encryption Key Size Too Short',
  0x0d: 'Invalid Attribute Value Length',
  0x0e: 'Unlikely Error',
  0x0f: 'Insufficient Encryption',
  0x10: 'Unsupported Group Type',
  0x11: 'Insufficient Resources',
  0x12: 'Database Out Of Sync',
  0x13: 'Value Not Allowed',
  0xfc: 'Write Request Rejected',
  0xfd: 'CCCD Improperly Configured',
  0xfe: 'Procedure Already in Progress',
  0xff: 'Out of Range',
};

/** Spec name of an error code (`"Insufficient Authentication"`, `"Application Error 0x80"`). */
export function attErrorName(code: number): string {
  const n = ERROR_NAMES[code];
  if (n) return n;
  if (code >= 0x80 && code <= 0x9f) return `Application Error 0x${hex2(code)}`;
  if (code >= 0xe0) return `Common Profile Error 0x${hex2(code)}`;
  return `Reserved 0x${hex2(code)}`;
}

/** Flags of ATT_EXECUTE_WRITE_REQ. Core 5.4 Vol 3 Part F 3.4.6.3. */
export const ExecuteWriteFlags = { cancel: 0x00, write: 0x01 } as const;

/** Format of ATT_FIND_INFORMATION_RSP. Core 5.4 Vol 3 Part F 3.4.3.2 Table 3.9. */
export const FindInformationFormat = { uuid16: 0x01, uuid128: 0x02 } as const;

export interface HandleUuid {
  readonly handle: number;
  /** 2 or 16 bytes LE. */
  readonly uuid: Uint8Array;
}
export interface HandlesInformation {
  readonly foundHandle: number;
  readonly groupEndHandle: number;
}
export interface HandleValue {
  readonly handle: number;
  readonly value: Uint8Array;
}
export interface GroupData {
  readonly handle: number;
  readonly endGroupHandle: number;
  readonly value: Uint8Array;
}
export interface LengthValue {
  /** Full length of the attribute value; `value` may be shorter when the tuple list was truncated. */
  readonly length: number;
  readonly value: Uint8Array;
}

/** Every ATT PDU, a closed union keyed by `type`. Names follow Core 5.4 Vol 3 Part F 3.4. */
export type AttPdu =
  | { readonly type: 'errorResponse'; readonly requestOpcode: number; readonly handle: number; readonly errorCode: number }
  | { readonly type: 'exchangeMtuRequest'; readonly clientRxMtu: number }
  | { readonly type: 'exchangeMtuResponse'; readonly serverRxMtu: number }
  | { readonly type: 'findInformationRequest'; readonly startHandle: number; readonly endHandle: number }
  | { readonly type: 'findInformationResponse'; readonly format: number; readonly entries: readonly HandleUuid[] }
  | {
      readonly type: 'findByTypeValueRequest';
      readonly startHandle: number;
      readonly endHandle: number;
      readonly attributeType: number;
      readonly value: Uint8Array;
    }
  | { readonly type: 'findByTypeValueResponse'; readonly handles: readonly HandlesInformation[] }
  | { readonly type: 'readByTypeRequest'; readonly startHandle: number; readonly endHandle: number; readonly attributeType: Uint8Array }
  | { readonly type: 'readByTypeResponse'; readonly data: readonly HandleValue[] }
  | { readonly type: 'readRequest'; readonly handle: number }
  | { readonly type: 'readResponse'; readonly value: Uint8Array }
  | { readonly type: 'readBlobRequest'; readonly handle: number; readonly offset: number }
  | { readonly type: 'readBlobResponse'; readonly value: Uint8Array }
  | { readonly type: 'readMultipleRequest'; readonly handles: readonly number[] }
  | { readonly type: 'readMultipleResponse'; readonly values: Uint8Array }
  | { readonly type: 'readByGroupTypeRequest'; readonly startHandle: number; readonly endHandle: number; readonly groupType: Uint8Array }
  | { readonly type: 'readByGroupTypeResponse'; readonly data: readonly GroupData[] }
  | { readonly type: 'writeRequest'; readonly handle: number; readonly value: Uint8Array }
  | { readonly type: 'writeResponse' }
  | { readonly type: 'writeCommand'; readonly handle: number; readonly value: Uint8Array }
  | { readonly type: 'signedWriteCommand'; readonly handle: number; readonly value: Uint8Array; readonly signature: Uint8Array }
  | { readonly type: 'prepareWriteRequest'; readonly handle: number; readonly offset: number; readonly value: Uint8Array }
  | { readonly type: 'prepareWriteResponse'; readonly handle: number; readonly offset: number; readonly value: Uint8Array }
  | { readonly type: 'executeWriteRequest'; readonly flags: number }
  | { readonly type: 'executeWriteResponse' }
  | { readonly type: 'handleValueNotification'; readonly handle: number; readonly value: Uint8Array }
  | { readonly type: 'handleValueIndication'; readonly handle: number; readonly value: Uint8Array }
  | { readonly type: 'handleValueConfirmation' }
  | { readonly type: 'readMultipleVariableRequest'; readonly handles: readonly number[] }
  | { readonly type: 'readMultipleVariableResponse'; readonly tuples: readonly LengthValue[] }
  | { readonly type: 'multipleHandleValueNotification'; readonly tuples: readonly HandleValue[] };

export type AttPduType = AttPdu['type'];
export type AttPduOf<T extends AttPduType> = Extract<AttPdu, { type: T }>;

/** Method class of a PDU. Core 5.4 Vol 3 Part F 3.3 Table 3.1. */
export type AttPduKind = 'request' | 'response' | 'command' | 'notification' | 'indication' | 'confirmation';

export type AttRequest = AttPduOf<
  | 'exchangeMtuRequest'
  | 'findInformationRequest'
  | 'findByTypeValueRequest'
  | 'readByTypeRequest'
  | 'readRequest'
  | 'readBlobRequest'
  | 'readMultipleRequest'
  | 'readByGroupTypeRequest'
  | 'writeRequest'
  | 'prepareWriteRequest'
  | 'executeWriteRequest'
  | 'readMultipleVariableRequest'
>;
export type AttResponse = AttPduOf<
  | 'errorResponse'
  | 'exchangeMtuResponse'
  | 'findInformationResponse'
  | 'findByTypeValueResponse'
  | 'readByTypeResponse'
  | 'readResponse'
  | 'readBlobResponse'
  | 'readMultipleResponse'
  | 'readByGroupTypeResponse'
  | 'writeResponse'
  | 'prepareWriteResponse'
  | 'executeWriteResponse'
  | 'readMultipleVariableResponse'
>;
export type AttCommand = AttPduOf<'writeCommand' | 'signedWriteCommand'>;

/** One row of the PDU table. */
export interface AttPduSpec<T extends AttPduType = AttPduType> {
  readonly opcode: number;
  readonly type: T;
  /** Spec name, e.g. `ATT_READ_BY_TYPE_REQ`. */
  readonly name: string;
  readonly kind: AttPduKind;
  /** Minimum PDU length in bytes, opcode included. */
  readonly minLength: number;
  /** Maximum PDU length when fixed (exact length when equal to minLength); undefined: bounded only by ATT_MTU. */
  readonly maxLength?: number;
  /** Spec section. */
  readonly section: string;
  /** Decodes a PDU whose length already passed the min/max check; returns a reason string when inconsistent. */
  decode(b: Uint8Array): AttPduOf<T> | string;
  encode(p: AttPduOf<T>): Uint8Array;
}

// ---- little helpers (no allocation beyond the output buffer) ----

function hex2(v: number): string {
  return v.toString(16).padStart(2, '0');
}
function u16(b: Uint8Array, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8);
}
function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
function handlesFrom(b: Uint8Array, from: number): number[] | string {
  if ((b.length - from) % 2 !== 0) return 'odd number of handle bytes';
  const out: number[] = [];
  for (let o = from; o < b.length; o += 2) out.push(u16(b, o));
  return out;
}
function encodeHandles(op: number, handles: readonly number[]): Uint8Array {
  const out = new Uint8Array(1 + handles.length * 2);
  out[0] = op;
  for (let i = 0; i < handles.length; i++) put16(out, 1 + i * 2, handles[i] as number);
  return out;
}
/** opcode | handle | value. */
function encodeHandleValue(op: number, handle: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + value.length);
  out[0] = op;
  put16(out, 1, handle);
  out.set(value, 3);
  return out;
}
function opOnly(op: number): Uint8Array {
  return Uint8Array.of(op);
}

function spec<T extends AttPduType>(s: AttPduSpec<T>): AttPduSpec<T> {
  return s;
}

const O = AttOpcode;

/** The ATT PDU table. Core 5.4 Vol 3 Part F 3.4. */
export const ATT_PDUS = [
  spec({
    opcode: O.errorResponse,
    type: 'errorResponse',
    name: 'ATT_ERROR_RSP',
    kind: 'response',
    minLength: 5,
    maxLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.1.1',
    decode: (b) => ({ type: 'errorResponse', requestOpcode: b[1] as number, handle: u16(b, 2), errorCode: b[4] as number }),
    encode: (p) => {
      const out = new Uint8Array(5);
      out[0] = O.errorResponse;
      out[1] = p.requestOpcode;
      put16(out, 2, p.handle);
      out[4] = p.errorCode;
      return out;
    },
  }),
  spec({
    opcode: O.exchangeMtuRequest,
    type: 'exchangeMtuRequest',
    name: 'ATT_EXCHANGE_MTU_REQ',
    kind: 'request',
    minLength: 3,
    maxLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.2.1',
    decode: (b) => ({ type: 'exchangeMtuRequest', clientRxMtu: u16(b, 1) }),
    encode: (p) => encodeHandles(O.exchangeMtuRequest, [p.clientRxMtu]),
  }),
  spec({
    opcode: O.exchangeMtuResponse,
    type: 'exchangeMtuResponse',
    name: 'ATT_EXCHANGE_MTU_RSP',
    kind: 'response',
    minLength: 3,
    maxLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.2.2',
    decode: (b) => ({ type: 'exchangeMtuResponse', serverRxMtu: u16(b, 1) }),
    encode: (p) => encodeHandles(O.exchangeMtuResponse, [p.serverRxMtu]),
  }),
  spec({
    opcode: O.findInformationRequest,
    type: 'findInformationRequest',
    name: 'ATT_FIND_INFORMATION_REQ',
    kind: 'request',
    minLength: 5,
    maxLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.3.1',
    decode: (b) => ({ type: 'findInformationRequest', startHandle: u16(b, 1), endHandle: u16(b, 3) }),
    encode: (p) => encodeHandles(O.findInformationRequest, [p.startHandle, p.endHandle]),
  }),
  spec({
    opcode: O.findInformationResponse,
    type: 'findInformationResponse',
    name: 'ATT_FIND_INFORMATION_RSP',
    kind: 'response',
    minLength: 6,
    section: 'Core 5.4 Vol 3 Part F 3.4.3.2',
    decode: (b) => {
      const format = b[1] as number;
      const size = format === 0x01 ? 4 : format === 0x02 ? 18 : 0;
      if (size === 0) return `unknown format 0x${hex2(format)}`;
      if ((b.length - 2) % size !== 0) return `information data is not a whole number of ${size}-byte entries`;
      const entries: HandleUuid[] = [];
      for (let o = 2; o < b.length; o += size) entries.push({ handle: u16(b, o), uuid: b.subarray(o + 2, o + size) });
      return { type: 'findInformationResponse', format, entries };
    },
    encode: (p) => {
      const size = p.format === 0x01 ? 4 : 18;
      const out = new Uint8Array(2 + p.entries.length * size);
      out[0] = O.findInformationResponse;
      out[1] = p.format;
      let o = 2;
      for (const e of p.entries) {
        put16(out, o, e.handle);
        out.set(e.uuid, o + 2);
        o += size;
      }
      return out;
    },
  }),
  spec({
    opcode: O.findByTypeValueRequest,
    type: 'findByTypeValueRequest',
    name: 'ATT_FIND_BY_TYPE_VALUE_REQ',
    kind: 'request',
    minLength: 7,
    section: 'Core 5.4 Vol 3 Part F 3.4.3.3',
    decode: (b) => ({
      type: 'findByTypeValueRequest',
      startHandle: u16(b, 1),
      endHandle: u16(b, 3),
      attributeType: u16(b, 5),
      value: b.subarray(7),
    }),
    encode: (p) => {
      const out = new Uint8Array(7 + p.value.length);
      out[0] = O.findByTypeValueRequest;
      put16(out, 1, p.startHandle);
      put16(out, 3, p.endHandle);
      put16(out, 5, p.attributeType);
      out.set(p.value, 7);
      return out;
    },
  }),
  spec({
    opcode: O.findByTypeValueResponse,
    type: 'findByTypeValueResponse',
    name: 'ATT_FIND_BY_TYPE_VALUE_RSP',
    kind: 'response',
    minLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.3.4',
    decode: (b) => {
      if ((b.length - 1) % 4 !== 0) return 'handles information list is not a whole number of 4-byte entries';
      const handles: HandlesInformation[] = [];
      for (let o = 1; o < b.length; o += 4) handles.push({ foundHandle: u16(b, o), groupEndHandle: u16(b, o + 2) });
      return { type: 'findByTypeValueResponse', handles };
    },
    encode: (p) => {
      const out = new Uint8Array(1 + p.handles.length * 4);
      out[0] = O.findByTypeValueResponse;
      let o = 1;
      for (const h of p.handles) {
        put16(out, o, h.foundHandle);
        put16(out, o + 2, h.groupEndHandle);
        o += 4;
      }
      return out;
    },
  }),
  spec({
    opcode: O.readByTypeRequest,
    type: 'readByTypeRequest',
    name: 'ATT_READ_BY_TYPE_REQ',
    kind: 'request',
    minLength: 7,
    maxLength: 21,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.1',
    decode: (b) => {
      if (b.length !== 7 && b.length !== 21) return `attribute type must be 2 or 16 bytes, got ${b.length - 5}`;
      return { type: 'readByTypeRequest', startHandle: u16(b, 1), endHandle: u16(b, 3), attributeType: b.subarray(5) };
    },
    encode: (p) => {
      const out = new Uint8Array(5 + p.attributeType.length);
      out[0] = O.readByTypeRequest;
      put16(out, 1, p.startHandle);
      put16(out, 3, p.endHandle);
      out.set(p.attributeType, 5);
      return out;
    },
  }),
  spec({
    opcode: O.readByTypeResponse,
    type: 'readByTypeResponse',
    name: 'ATT_READ_BY_TYPE_RSP',
    kind: 'response',
    minLength: 4,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.2',
    decode: (b) => {
      const len = b[1] as number;
      if (len < 2) return `pair length ${len} is shorter than a handle`;
      if ((b.length - 2) % len !== 0) return `attribute data list is not a whole number of ${len}-byte pairs`;
      const data: HandleValue[] = [];
      for (let o = 2; o < b.length; o += len) data.push({ handle: u16(b, o), value: b.subarray(o + 2, o + len) });
      return { type: 'readByTypeResponse', data };
    },
    encode: (p) => {
      const len = 2 + (p.data[0]?.value.length ?? 0);
      const out = new Uint8Array(2 + p.data.length * len);
      out[0] = O.readByTypeResponse;
      out[1] = len;
      let o = 2;
      for (const d of p.data) {
        put16(out, o, d.handle);
        out.set(d.value.subarray(0, len - 2), o + 2);
        o += len;
      }
      return out;
    },
  }),
  spec({
    opcode: O.readRequest,
    type: 'readRequest',
    name: 'ATT_READ_REQ',
    kind: 'request',
    minLength: 3,
    maxLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.3',
    decode: (b) => ({ type: 'readRequest', handle: u16(b, 1) }),
    encode: (p) => encodeHandles(O.readRequest, [p.handle]),
  }),
  spec({
    opcode: O.readResponse,
    type: 'readResponse',
    name: 'ATT_READ_RSP',
    kind: 'response',
    minLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.4',
    decode: (b) => ({ type: 'readResponse', value: b.subarray(1) }),
    encode: (p) => prefixed(O.readResponse, p.value),
  }),
  spec({
    opcode: O.readBlobRequest,
    type: 'readBlobRequest',
    name: 'ATT_READ_BLOB_REQ',
    kind: 'request',
    minLength: 5,
    maxLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.5',
    decode: (b) => ({ type: 'readBlobRequest', handle: u16(b, 1), offset: u16(b, 3) }),
    encode: (p) => encodeHandles(O.readBlobRequest, [p.handle, p.offset]),
  }),
  spec({
    opcode: O.readBlobResponse,
    type: 'readBlobResponse',
    name: 'ATT_READ_BLOB_RSP',
    kind: 'response',
    minLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.6',
    decode: (b) => ({ type: 'readBlobResponse', value: b.subarray(1) }),
    encode: (p) => prefixed(O.readBlobResponse, p.value),
  }),
  spec({
    opcode: O.readMultipleRequest,
    type: 'readMultipleRequest',
    name: 'ATT_READ_MULTIPLE_REQ',
    kind: 'request',
    minLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.7',
    decode: (b) => {
      const handles = handlesFrom(b, 1);
      return typeof handles === 'string' ? handles : { type: 'readMultipleRequest', handles };
    },
    encode: (p) => encodeHandles(O.readMultipleRequest, p.handles),
  }),
  spec({
    opcode: O.readMultipleResponse,
    type: 'readMultipleResponse',
    name: 'ATT_READ_MULTIPLE_RSP',
    kind: 'response',
    minLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.8',
    decode: (b) => ({ type: 'readMultipleResponse', values: b.subarray(1) }),
    encode: (p) => prefixed(O.readMultipleResponse, p.values),
  }),
  spec({
    opcode: O.readByGroupTypeRequest,
    type: 'readByGroupTypeRequest',
    name: 'ATT_READ_BY_GROUP_TYPE_REQ',
    kind: 'request',
    minLength: 7,
    maxLength: 21,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.9',
    decode: (b) => {
      if (b.length !== 7 && b.length !== 21) return `group type must be 2 or 16 bytes, got ${b.length - 5}`;
      return { type: 'readByGroupTypeRequest', startHandle: u16(b, 1), endHandle: u16(b, 3), groupType: b.subarray(5) };
    },
    encode: (p) => {
      const out = new Uint8Array(5 + p.groupType.length);
      out[0] = O.readByGroupTypeRequest;
      put16(out, 1, p.startHandle);
      put16(out, 3, p.endHandle);
      out.set(p.groupType, 5);
      return out;
    },
  }),
  spec({
    opcode: O.readByGroupTypeResponse,
    type: 'readByGroupTypeResponse',
    name: 'ATT_READ_BY_GROUP_TYPE_RSP',
    kind: 'response',
    minLength: 6,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.10',
    decode: (b) => {
      const len = b[1] as number;
      if (len < 4) return `attribute data length ${len} is shorter than two handles`;
      if ((b.length - 2) % len !== 0) return `attribute data list is not a whole number of ${len}-byte entries`;
      const data: GroupData[] = [];
      for (let o = 2; o < b.length; o += len) data.push({ handle: u16(b, o), endGroupHandle: u16(b, o + 2), value: b.subarray(o + 4, o + len) });
      return { type: 'readByGroupTypeResponse', data };
    },
    encode: (p) => {
      const len = 4 + (p.data[0]?.value.length ?? 0);
      const out = new Uint8Array(2 + p.data.length * len);
      out[0] = O.readByGroupTypeResponse;
      out[1] = len;
      let o = 2;
      for (const d of p.data) {
        put16(out, o, d.handle);
        put16(out, o + 2, d.endGroupHandle);
        out.set(d.value.subarray(0, len - 4), o + 4);
        o += len;
      }
      return out;
    },
  }),
  spec({
    opcode: O.writeRequest,
    type: 'writeRequest',
    name: 'ATT_WRITE_REQ',
    kind: 'request',
    minLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.5.1',
    decode: (b) => ({ type: 'writeRequest', handle: u16(b, 1), value: b.subarray(3) }),
    encode: (p) => encodeHandleValue(O.writeRequest, p.handle, p.value),
  }),
  spec({
    opcode: O.writeResponse,
    type: 'writeResponse',
    name: 'ATT_WRITE_RSP',
    kind: 'response',
    minLength: 1,
    maxLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.5.2',
    decode: () => ({ type: 'writeResponse' }),
    encode: () => opOnly(O.writeResponse),
  }),
  spec({
    opcode: O.writeCommand,
    type: 'writeCommand',
    name: 'ATT_WRITE_CMD',
    kind: 'command',
    minLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.5.3',
    decode: (b) => ({ type: 'writeCommand', handle: u16(b, 1), value: b.subarray(3) }),
    encode: (p) => encodeHandleValue(O.writeCommand, p.handle, p.value),
  }),
  spec({
    opcode: O.signedWriteCommand,
    type: 'signedWriteCommand',
    name: 'ATT_SIGNED_WRITE_CMD',
    kind: 'command',
    minLength: 15,
    section: 'Core 5.4 Vol 3 Part F 3.4.5.4',
    decode: (b) => ({ type: 'signedWriteCommand', handle: u16(b, 1), value: b.subarray(3, b.length - 12), signature: b.subarray(b.length - 12) }),
    encode: (p) => {
      const out = new Uint8Array(3 + p.value.length + 12);
      out[0] = O.signedWriteCommand;
      put16(out, 1, p.handle);
      out.set(p.value, 3);
      out.set(p.signature.subarray(0, 12), 3 + p.value.length);
      return out;
    },
  }),
  spec({
    opcode: O.prepareWriteRequest,
    type: 'prepareWriteRequest',
    name: 'ATT_PREPARE_WRITE_REQ',
    kind: 'request',
    minLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.6.1',
    decode: (b) => ({ type: 'prepareWriteRequest', handle: u16(b, 1), offset: u16(b, 3), value: b.subarray(5) }),
    encode: (p) => encodePrepare(O.prepareWriteRequest, p.handle, p.offset, p.value),
  }),
  spec({
    opcode: O.prepareWriteResponse,
    type: 'prepareWriteResponse',
    name: 'ATT_PREPARE_WRITE_RSP',
    kind: 'response',
    minLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.6.2',
    decode: (b) => ({ type: 'prepareWriteResponse', handle: u16(b, 1), offset: u16(b, 3), value: b.subarray(5) }),
    encode: (p) => encodePrepare(O.prepareWriteResponse, p.handle, p.offset, p.value),
  }),
  spec({
    opcode: O.executeWriteRequest,
    type: 'executeWriteRequest',
    name: 'ATT_EXECUTE_WRITE_REQ',
    kind: 'request',
    minLength: 2,
    maxLength: 2,
    section: 'Core 5.4 Vol 3 Part F 3.4.6.3',
    decode: (b) => ({ type: 'executeWriteRequest', flags: b[1] as number }),
    encode: (p) => Uint8Array.of(O.executeWriteRequest, p.flags),
  }),
  spec({
    opcode: O.executeWriteResponse,
    type: 'executeWriteResponse',
    name: 'ATT_EXECUTE_WRITE_RSP',
    kind: 'response',
    minLength: 1,
    maxLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.6.4',
    decode: () => ({ type: 'executeWriteResponse' }),
    encode: () => opOnly(O.executeWriteResponse),
  }),
  spec({
    opcode: O.handleValueNotification,
    type: 'handleValueNotification',
    name: 'ATT_HANDLE_VALUE_NTF',
    kind: 'notification',
    minLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.7.1',
    decode: (b) => ({ type: 'handleValueNotification', handle: u16(b, 1), value: b.subarray(3) }),
    encode: (p) => encodeHandleValue(O.handleValueNotification, p.handle, p.value),
  }),
  spec({
    opcode: O.handleValueIndication,
    type: 'handleValueIndication',
    name: 'ATT_HANDLE_VALUE_IND',
    kind: 'indication',
    minLength: 3,
    section: 'Core 5.4 Vol 3 Part F 3.4.7.2',
    decode: (b) => ({ type: 'handleValueIndication', handle: u16(b, 1), value: b.subarray(3) }),
    encode: (p) => encodeHandleValue(O.handleValueIndication, p.handle, p.value),
  }),
  spec({
    opcode: O.handleValueConfirmation,
    type: 'handleValueConfirmation',
    name: 'ATT_HANDLE_VALUE_CFM',
    kind: 'confirmation',
    minLength: 1,
    maxLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.7.3',
    decode: () => ({ type: 'handleValueConfirmation' }),
    encode: () => opOnly(O.handleValueConfirmation),
  }),
  spec({
    opcode: O.readMultipleVariableRequest,
    type: 'readMultipleVariableRequest',
    name: 'ATT_READ_MULTIPLE_VARIABLE_REQ',
    kind: 'request',
    minLength: 5,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.11',
    decode: (b) => {
      const handles = handlesFrom(b, 1);
      return typeof handles === 'string' ? handles : { type: 'readMultipleVariableRequest', handles };
    },
    encode: (p) => encodeHandles(O.readMultipleVariableRequest, p.handles),
  }),
  spec({
    opcode: O.readMultipleVariableResponse,
    type: 'readMultipleVariableResponse',
    name: 'ATT_READ_MULTIPLE_VARIABLE_RSP',
    kind: 'response',
    minLength: 1,
    section: 'Core 5.4 Vol 3 Part F 3.4.4.12',
    decode: (b) => {
      // The list may be truncated inside the last value (Core 5.4 Vol 3 Part F 3.4.4.12), never inside a length field.
      const tuples: LengthValue[] = [];
      let o = 1;
      while (o < b.length) {
        if (b.length - o < 2) return 'truncated inside a Value Length field';
        const length = u16(b, o);
        const end = Math.min(b.length, o + 2 + length);
        tuples.push({ length, value: b.subarray(o + 2, end) });
        o = end;
      }
      return { type: 'readMultipleVariableResponse', tuples };
    },
    encode: (p) => {
      let n = 1;
      for (const t of p.tuples) n += 2 + t.value.length;
      const out = new Uint8Array(n);
      out[0] = O.readMultipleVariableResponse;
      let o = 1;
      for (const t of p.tuples) {
        put16(out, o, t.length);
        out.set(t.value, o + 2);
        o += 2 + t.value.length;
      }
      return out;
    },
  }),
  spec({
    opcode: O.multipleHandleValueNotification,
    type: 'multipleHandleValueNotification',
    name: 'ATT_MULTIPLE_HANDLE_VALUE_NTF',
    kind: 'notification',
    minLength: 9,
    section: 'Core 5.4 Vol 3 Part F 3.4.7.4',
    decode: (b) => {
      const tuples: HandleValue[] = [];
      let o = 1;
      while (o < b.length) {
        if (b.length - o < 4) return 'truncated handle length value tuple';
        const handle = u16(b, o);
        const length = u16(b, o + 2);
        if (o + 4 + length > b.length) return `tuple for handle 0x${handle.toString(16).padStart(4, '0')} claims ${length} bytes, fewer present`;
        tuples.push({ handle, value: b.subarray(o + 4, o + 4 + length) });
        o += 4 + length;
      }
      if (tuples.length < 2) return 'fewer than two tuples';
      return { type: 'multipleHandleValueNotification', tuples };
    },
    encode: (p) => {
      let n = 1;
      for (const t of p.tuples) n += 4 + t.value.length;
      const out = new Uint8Array(n);
      out[0] = O.multipleHandleValueNotification;
      let o = 1;
      for (const t of p.tuples) {
        put16(out, o, t.handle);
        put16(out, o + 2, t.value.length);
        out.set(t.value, o + 4);
        o += 4 + t.value.length;
      }
      return out;
    },
  }),
] as const;

function prefixed(op: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + value.length);
  out[0] = op;
  out.set(value, 1);
  return out;
}
function encodePrepare(op: number, handle: number, offset: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + value.length);
  out[0] = op;
  put16(out, 1, handle);
  put16(out, 3, offset);
  out.set(value, 5);
  return out;
}

const BY_OPCODE: (AttPduSpec | undefined)[] = new Array(256);
const BY_TYPE = new Map<AttPduType, AttPduSpec>();
for (const s of ATT_PDUS as readonly AttPduSpec[]) {
  BY_OPCODE[s.opcode] = s;
  BY_TYPE.set(s.type, s);
}

/** The table row for an opcode, if it is one ATT defines. */
export function attPduSpec(opcode: number): AttPduSpec | undefined {
  return BY_OPCODE[opcode & 0xff];
}

/** The table row for a PDU type. */
export function attPduSpecOf<T extends AttPduType>(type: T): AttPduSpec<T> {
  return BY_TYPE.get(type) as unknown as AttPduSpec<T>;
}

export type AttDecodeResult =
  | { readonly ok: true; readonly pdu: AttPdu; readonly spec: AttPduSpec }
  | {
      readonly ok: false;
      /** The first byte (0 for an empty buffer). */
      readonly opcode: number;
      /** 'unknown': opcode not in the table; 'invalid': known opcode, bad length or content. */
      readonly error: 'empty' | 'unknown' | 'invalid';
      readonly reason: string;
      readonly spec?: AttPduSpec;
    };

/** Decodes one ATT PDU. Never throws. */
export function decodeAttPdu(b: Uint8Array): AttDecodeResult {
  if (b.length === 0) return { ok: false, opcode: 0, error: 'empty', reason: 'empty ATT PDU' };
  const opcode = b[0] as number;
  const s = BY_OPCODE[opcode];
  if (!s) return { ok: false, opcode, error: 'unknown', reason: `unknown opcode 0x${hex2(opcode)}` };
  if (b.length < s.minLength || (s.maxLength !== undefined && b.length > s.maxLength)) {
    const want = s.maxLength === s.minLength ? `${s.minLength}` : s.maxLength !== undefined ? `${s.minLength}..${s.maxLength}` : `at least ${s.minLength}`;
    return { ok: false, opcode, error: 'invalid', reason: `${s.name} is ${want} bytes, got ${b.length}`, spec: s };
  }
  let r: AttPdu | string;
  try {
    r = s.decode(b);
  } catch (err) {
    // Decoders index within the checked length; this is a safety net, not a path.
    r = `decoder failed: ${(err as Error).message}`;
  }
  if (typeof r === 'string') return { ok: false, opcode, error: 'invalid', reason: `${s.name}: ${r}`, spec: s };
  return { ok: true, pdu: r, spec: s };
}

/** Encodes one ATT PDU. */
export function encodeAttPdu(p: AttPdu): Uint8Array {
  const s = BY_TYPE.get(p.type) as AttPduSpec;
  return s.encode(p as never);
}

/** Encodes an ATT_ERROR_RSP directly (hot path for permission errors). Core 5.4 Vol 3 Part F 3.4.1.1. */
export function encodeErrorResponse(requestOpcode: number, handle: number, errorCode: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = O.errorResponse;
  out[1] = requestOpcode;
  put16(out, 2, handle);
  out[4] = errorCode;
  return out;
}

/** True when an opcode has the Command Flag set. Core 5.4 Vol 3 Part F 3.3.1. */
export function isCommandOpcode(opcode: number): boolean {
  return (opcode & ATT_COMMAND_FLAG) !== 0;
}

function h4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}
function uuidText(le: Uint8Array): string {
  if (le.length === 2) return h4(u16(le, 0));
  let s = '';
  for (let i = le.length - 1; i >= 0; i--) s += hex2(le[i] as number);
  return s;
}
function valueText(v: Uint8Array): string {
  return v.length > 32 ? `${toHex(v.subarray(0, 32))}… (${v.length} bytes)` : toHex(v);
}

/** One-line human-readable form for debug logs: `ATT_READ_BY_TYPE_REQ start=0x0001 end=0xffff type=0x2803`. */
export function formatAttPdu(p: AttPdu): string {
  const name = (BY_TYPE.get(p.type) as AttPduSpec).name;
  switch (p.type) {
    case 'errorResponse':
      return `${name} request=${BY_OPCODE[p.requestOpcode]?.name ?? `0x${hex2(p.requestOpcode)}`} handle=${h4(p.handle)} error=0x${hex2(p.errorCode)} (${attErrorName(p.errorCode)})`;
    case 'exchangeMtuRequest':
      return `${name} clientRxMtu=${p.clientRxMtu}`;
    case 'exchangeMtuResponse':
      return `${name} serverRxMtu=${p.serverRxMtu}`;
    case 'findInformationRequest':
      return `${name} start=${h4(p.startHandle)} end=${h4(p.endHandle)}`;
    case 'findInformationResponse':
      return `${name} ${p.entries.map((e) => `${h4(e.handle)}:${uuidText(e.uuid)}`).join(' ')}`;
    case 'findByTypeValueRequest':
      return `${name} start=${h4(p.startHandle)} end=${h4(p.endHandle)} type=${h4(p.attributeType)} value=${valueText(p.value)}`;
    case 'findByTypeValueResponse':
      return `${name} ${p.handles.map((h) => `${h4(h.foundHandle)}-${h4(h.groupEndHandle)}`).join(' ')}`;
    case 'readByTypeRequest':
      return `${name} start=${h4(p.startHandle)} end=${h4(p.endHandle)} type=${uuidText(p.attributeType)}`;
    case 'readByTypeResponse':
      return `${name} ${p.data.map((d) => `${h4(d.handle)}=${valueText(d.value)}`).join(' ')}`;
    case 'readRequest':
      return `${name} handle=${h4(p.handle)}`;
    case 'readBlobRequest':
      return `${name} handle=${h4(p.handle)} offset=${p.offset}`;
    case 'readResponse':
    case 'readBlobResponse':
      return `${name} value=${valueText(p.value)}`;
    case 'readMultipleRequest':
    case 'readMultipleVariableRequest':
      return `${name} handles=${p.handles.map(h4).join(',')}`;
    case 'readMultipleResponse':
      return `${name} values=${valueText(p.values)}`;
    case 'readMultipleVariableResponse':
      return `${name} ${p.tuples.map((t) => `[${t.length}]${valueText(t.value)}`).join(' ')}`;
    case 'readByGroupTypeRequest':
      return `${name} start=${h4(p.startHandle)} end=${h4(p.endHandle)} type=${uuidText(p.groupType)}`;
    case 'readByGroupTypeResponse':
      return `${name} ${p.data.map((d) => `${h4(d.handle)}-${h4(d.endGroupHandle)}=${valueText(d.value)}`).join(' ')}`;
    case 'writeRequest':
    case 'writeCommand':
    case 'handleValueNotification':
    case 'handleValueIndication':
      return `${name} handle=${h4(p.handle)} value=${valueText(p.value)}`;
    case 'signedWriteCommand':
      return `${name} handle=${h4(p.handle)} value=${valueText(p.value)} signature=${toHex(p.signature)}`;
    case 'prepareWriteRequest':
    case 'prepareWriteResponse':
      return `${name} handle=${h4(p.handle)} offset=${p.offset} value=${valueText(p.value)}`;
    case 'executeWriteRequest':
      return `${name} flags=0x${hex2(p.flags)}${p.flags === 0 ? ' (cancel)' : p.flags === 1 ? ' (write)' : ''}`;
    case 'multipleHandleValueNotification':
      return `${name} ${p.tuples.map((t) => `${h4(t.handle)}=${valueText(t.value)}`).join(' ')}`;
    case 'writeResponse':
    case 'executeWriteResponse':
    case 'handleValueConfirmation':
      return name;
  }
}
