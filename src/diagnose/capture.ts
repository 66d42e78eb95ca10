/**
 * What every capture reader produces and what the live diagnoser is fed: HCI packets as H:4 bytes,
 * each with its direction, time and number. The timeline decoder (timeline.ts) takes nothing else,
 * so a btsnoop file, an Apple PacketLogger file, our pino log and the running host's packet trace
 * all go through the same decoding and the same rules.
 */
import { WearableHostError } from '../util/errors.js';

/** Which way a packet went on the HCI of the capturing device. */
export type HciDirection = 'host->controller' | 'controller->host';

/** One HCI packet of a capture. */
export interface CapturedPacket {
  /**
   * 1-based packet number as a capture viewer shows it (Wireshark's frame number: records that
   * are not HCI packets, such as PacketLogger notes, still count).
   */
  readonly number: number;
  /** Unix milliseconds (fractional). */
  readonly time: number;
  readonly direction: HciDirection;
  /** The packet with its H:4 type byte first (0x01 command, 0x02 ACL, 0x04 event, ...). */
  readonly h4: Uint8Array;
  /** The capture kept fewer bytes than the packet had (Android's filtered snoop logs cut ACL payloads). */
  readonly truncated?: boolean;
  /** Line of the pino JSON log the packet came from. */
  readonly line?: number;
}

export type CaptureFormat = 'btsnoop' | 'pklg' | 'json';

/** A capture file read into packets. */
export interface Capture {
  readonly format: CaptureFormat;
  /** Details for the report header: `btsnoop datalink 1002 (H4)`, `PacketLogger, big-endian`, ... */
  readonly description: string;
  readonly packets: CapturedPacket[];
  /** Records that were not HCI packets (notes, syslog, monitor index events, other log lines). */
  readonly skipped: number;
  /** Things the reader tolerated and the user should know (a cut-short last record, ...). */
  readonly warnings: string[];
}

/**
 * A capture file that cannot be read. `offset` is the byte offset of the problem (binary formats);
 * `line` is the 1-based line (JSON logs). The message says both, and what to try.
 */
export class CaptureFormatError extends WearableHostError {
  constructor(
    message: string,
    readonly where: { offset?: number; line?: number } = {},
    options?: { cause?: unknown },
  ) {
    super('diagnose', message, options);
    this.name = 'CaptureFormatError';
  }
  get offset(): number | undefined {
    return this.where.offset;
  }
  get line(): number | undefined {
    return this.where.line;
  }
}
