/**
 * Errors of the HCI layer: a command the controller refused (non-zero status), one it never
 * answered, one lost with the transport, or an answer we could not decode. The message names the
 * command (`0x0c03 Reset`), the status (`0x0c CommandDisallowed`) and the port, and for a silent
 * controller what to check. Core 5.4 Vol 1 Part F (error codes), Vol 4 Part E 4.4 (command flow).
 */
import { WearableHostError } from '../util/errors.js';
import { formatOpcode } from './commands.js';
import { hciStatusName } from './status.js';

export type HciErrorKind =
  /** The controller answered with a non-zero status (`status` is set). */
  | 'status'
  /** No Command Complete / Command Status arrived in time. */
  | 'timeout'
  /** The transport closed or a write failed before the answer arrived. */
  | 'transport'
  /** The answer could not be decoded (too short for the command's return parameters). */
  | 'malformed'
  /** The command was abandoned because the driver re-initialised the controller (Hardware Error, fault). */
  | 'reset'
  /** The connection the request was for is gone. */
  | 'disconnected'
  /** The driver was closed. */
  | 'closed';

export interface HciErrorOptions {
  kind?: HciErrorKind;
  /** The port or transport description (`/dev/ttyACM0 @ 1000000 baud`). */
  port?: string;
  /** Replaces the default message. */
  message?: string;
  cause?: unknown;
}

/** What to check when the controller does not answer; shared by the timeout messages. */
export const SILENT_CONTROLLER_CHECKS =
  'Check that: the nRF5340 network core runs the hci_uart sample (west flash, board nrf5340dk/nrf5340/cpunet); ' +
  'this is the right serial port (the DK\'s first /dev/ttyACM, better its /dev/serial/by-id/... path); ' +
  'the baud rate is 1000000; RTS/CTS hardware flow control is on at both ends (--no-rtscts only if the firmware has it off). ' +
  'Try `wearable-host doctor`.';

/** An error of the HCI layer: `HciError(status, opcode)`. */
export class HciError extends WearableHostError {
  readonly kind: HciErrorKind;
  readonly port: string | undefined;

  constructor(
    /** HCI status code (Core 5.4 Vol 1 Part F 1.3) for kind 'status'; undefined when there was no answer. */
    readonly status: number | undefined,
    /** Opcode of the command concerned, or 0 when not about one command (ACL, disconnection). */
    readonly opcode: number,
    options: HciErrorOptions = {},
  ) {
    const kind = options.kind ?? (status !== undefined ? 'status' : 'timeout');
    super('hci', options.message ?? defaultMessage(kind, status, opcode, options.port), options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'HciError';
    this.kind = kind;
    this.port = options.port;
  }

  /** Status name for messages: `0x0c CommandDisallowed`. */
  get statusName(): string | undefined {
    return this.status === undefined ? undefined : hciStatusName(this.status);
  }

  /** A command that got no answer within `ms`. */
  static timeout(opcode: number, port: string, ms: number): HciError {
    return new HciError(undefined, opcode, {
      kind: 'timeout',
      port,
      message: `HCI command ${formatOpcode(opcode)} got no answer from the controller on ${port} within ${ms} ms. ${SILENT_CONTROLLER_CHECKS}`,
    });
  }
}

function defaultMessage(kind: HciErrorKind, status: number | undefined, opcode: number, port: string | undefined): string {
  const where = port ? ` on ${port}` : '';
  const cmd = opcode ? `HCI command ${formatOpcode(opcode)}` : 'HCI request';
  switch (kind) {
    case 'status':
      return `${cmd} failed${where}: controller answered ${hciStatusName(status ?? 0)}`;
    case 'timeout':
      return `${cmd} got no answer from the controller${where}. ${SILENT_CONTROLLER_CHECKS}`;
    case 'transport':
      return `${cmd} was lost: the transport${where} closed or failed before the controller answered`;
    case 'malformed':
      return `${cmd}: the controller's answer${where} could not be decoded`;
    case 'reset':
      return `${cmd} was abandoned: the controller${where} is being re-initialised`;
    case 'disconnected':
      return `${cmd}: the connection is gone`;
    case 'closed':
      return `${cmd}: the HCI driver${where} is closed`;
  }
}
