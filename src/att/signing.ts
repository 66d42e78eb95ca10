/**
 * The Authentication Signature of ATT_SIGNED_WRITE_CMD. Core 5.4 Vol 3 Part H 2.4.5 (data
 * signing) and Vol 3 Part F 3.4.5.4 (worked example): the signed message m is the PDU from the
 * opcode to the end of the value; the CMAC input is m || SignCounter (32-bit LE) taken as one
 * little-endian number, keyed with the CSRK; the signature on the wire is SignCounter (4 bytes LE)
 * followed by the most significant 64 bits of the CMAC, little-endian.
 */
import { aesCmac, bytesEqualConstantTime } from '../crypto/index.js';
import { reversed } from '../util/bytes.js';

/**
 * The 12-byte Authentication Signature for `message` (opcode .. value).
 * @param csrk 16 bytes little-endian, as distributed in Signing Information.
 */
export function attSignature(csrk: Uint8Array, message: Uint8Array, signCounter: number): Uint8Array {
  const m = new Uint8Array(message.length + 4);
  m.set(message);
  const c = message.length;
  m[c] = signCounter & 0xff;
  m[c + 1] = (signCounter >>> 8) & 0xff;
  m[c + 2] = (signCounter >>> 16) & 0xff;
  m[c + 3] = (signCounter >>> 24) & 0xff;
  const mac = aesCmac(reversed(csrk), reversed(m));
  const out = new Uint8Array(12);
  out.set(m.subarray(c, c + 4), 0);
  out.set(reversed(mac.subarray(0, 8)), 4);
  return out;
}

/** The SignCounter carried in a signature. */
export function signatureCounter(signature: Uint8Array): number {
  return ((signature[0] as number) | ((signature[1] as number) << 8) | ((signature[2] as number) << 16)) + (signature[3] as number) * 0x1000000;
}

/** Verifies a received ATT_SIGNED_WRITE_CMD (the whole PDU, signature last). */
export function verifySignedWrite(csrk: Uint8Array, pdu: Uint8Array): boolean {
  if (pdu.length < 15) return false;
  const signature = pdu.subarray(pdu.length - 12);
  const expected = attSignature(csrk, pdu.subarray(0, pdu.length - 12), signatureCounter(signature));
  return bytesEqualConstantTime(expected, signature);
}
