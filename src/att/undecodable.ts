/**
 * The answer to an ATT PDU the bearer cannot decode (empty, unknown opcode, wrong length or shape,
 * or longer than ATT_MTU), decided from its opcode alone (Core 5.4 Vol 3 Part F 3.3, 3.4.7.2).
 * The bearer ({@link AttBearer} in bearer.ts) carries the answer out: it counts, logs and sends.
 */
import { AttOpcode, isCommandOpcode } from './pdu.js';

/** How a PDU failed to decode (as decodeAttPdu in pdu.ts reports it). */
export type AttDecodeError = 'empty' | 'unknown' | 'invalid';

/**
 * What the bearer does with an undecodable PDU:
 * - `drop-empty`: nothing to answer (no opcode); dropped with a warning.
 * - `ignore-command`: an unknown opcode with the Command Flag (bit 6) set is a command we do not
 *   support: ignored (3.3).
 * - `request-not-supported`: another unknown opcode is a request we do not support:
 *   ATT_ERROR_RSP Request Not Supported (0x06), handle 0x0000 (3.3).
 * - `invalid-pdu`: a known request of the wrong length or shape: Invalid PDU (0x04), handle 0x0000 (3.3).
 * - `confirm-indication`: a malformed indication is still confirmed, since the peer waits for the
 *   confirmation whatever we do with the value (3.4.7.2); the value is dropped.
 * - `drop-malformed`: every other malformed PDU (commands never get a response, 3.4.5.3).
 */
export type UndecodableAnswer = 'drop-empty' | 'ignore-command' | 'request-not-supported' | 'invalid-pdu' | 'confirm-indication' | 'drop-malformed';

/** Decides the answer to an undecodable PDU with this opcode. */
export function undecodableAnswer(opcode: number, error: AttDecodeError): UndecodableAnswer {
  if (error === 'empty') return 'drop-empty';
  if (error === 'unknown') return isCommandOpcode(opcode) ? 'ignore-command' : 'request-not-supported';
  switch (opcode) {
    case AttOpcode.exchangeMtuRequest:
    case AttOpcode.findInformationRequest:
    case AttOpcode.findByTypeValueRequest:
    case AttOpcode.readByTypeRequest:
    case AttOpcode.readRequest:
    case AttOpcode.readBlobRequest:
    case AttOpcode.readMultipleRequest:
    case AttOpcode.readByGroupTypeRequest:
    case AttOpcode.writeRequest:
    case AttOpcode.prepareWriteRequest:
    case AttOpcode.executeWriteRequest:
    case AttOpcode.readMultipleVariableRequest:
      return 'invalid-pdu';
    case AttOpcode.handleValueIndication:
      return 'confirm-indication';
    default:
      return 'drop-malformed';
  }
}
