/**
 * HCI ACL data packets. Core 5.4 Vol 4 Part E 5.4.2.
 */
import { ByteWriter } from '../util/bytes.js';

/** Packet_Boundary_Flag values. */
export const AclBoundary = {
  /** Host to controller: first fragment, non-automatically-flushable (what LE uses). */
  FirstNonFlushable: 0b00,
  Continuing: 0b01,
  /** Controller to host: first fragment. */
  FirstFlushable: 0b10,
  Complete: 0b11,
} as const;

export interface AclPacket {
  handle: number;
  boundary: number;
  broadcast: number;
  data: Uint8Array;
}

export type DecodedAcl = { ok: true; packet: AclPacket } | { ok: false; error: string };

/**
 * Why the ACL packet body starting at `bytes[at]` and running to the end of `bytes` is malformed
 * (`at` 1 skips an H:4 type byte), or undefined when its header is whole and its length field
 * matches the data present. The receive path checks this and then reads the fields in place
 * ({@link aclHandleAndFlags}), without decoding the packet into objects.
 */
export function aclFormatError(bytes: Uint8Array, at = 0): string | undefined {
  const size = bytes.length - at;
  if (size < 4) return `ACL packet of ${size} bytes, header needs 4`;
  const len = (bytes[at + 2] as number) | ((bytes[at + 3] as number) << 8);
  if (size !== 4 + len) return `ACL length field ${len}, ${size - 4} bytes present`;
  return undefined;
}

/** The first header field of the body at `bytes[at]`: handle in bits 0-11, Packet_Boundary_Flag in 12-13, Broadcast_Flag in 14-15. */
export function aclHandleAndFlags(bytes: Uint8Array, at = 0): number {
  return (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
}

/** Decodes an ACL packet body (no H:4 type byte). Never throws. */
export function decodeAcl(body: Uint8Array): DecodedAcl {
  const error = aclFormatError(body);
  if (error !== undefined) return { ok: false, error };
  const hf = aclHandleAndFlags(body);
  return {
    ok: true,
    packet: { handle: hf & 0x0fff, boundary: (hf >> 12) & 0x3, broadcast: (hf >> 14) & 0x3, data: body.subarray(4) },
  };
}

/** Encodes an ACL packet body (no H:4 type byte). */
export function encodeAcl(handle: number, boundary: number, data: Uint8Array, broadcast = 0): Uint8Array {
  const w = new ByteWriter(4 + data.length);
  w.u16((handle & 0x0fff) | ((boundary & 0x3) << 12) | ((broadcast & 0x3) << 14)).u16(data.length).bytes(data);
  return w.finish();
}
