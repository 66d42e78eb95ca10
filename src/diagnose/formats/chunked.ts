/**
 * The incremental reading every capture format shares: bytes arrive in chunks (a file read
 * stream, an entry inflated out of a zip or tar archive, or one whole buffer), complete records
 * become packets as soon as their last byte arrives, and nothing but the unfinished record is kept
 * between chunks. A capture of hundreds of MB is read in the memory of one chunk.
 *
 * A capture copied while the capturing device was still writing it (an Android btsnoop_hci.log
 * pulled while Bluetooth is on) ends inside a record. By default that tail is dropped with a
 * warning and everything before it is diagnosed; `strict` turns it into an error. Damage elsewhere
 * (a corrupt length in the middle of the file) is always an error with its byte offset.
 */
import { CaptureFormatError, type CaptureFormat, type CapturedPacket } from '../capture.js';

/** What a finished reader knows about the capture, besides the packets it handed out. */
export interface CaptureSummary {
  readonly format: CaptureFormat;
  /** Details for the report header: `btsnoop datalink 1002 (H4)`, `PacketLogger, big-endian`, ... */
  readonly description: string;
  /** Records that were not HCI packets (notes, syslog, monitor index events, other log lines). */
  readonly skipped: number;
  /** Things the reader tolerated and the user should know (a cut-short last record, ...). */
  readonly warnings: string[];
  /** HCI packets handed out. */
  readonly packets: number;
}

export interface ChunkedReaderOptions {
  /** Used in messages. */
  readonly name: string;
  /** A cut-short last record is an error instead of a warning. */
  readonly strict?: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * Base of the incremental readers: keeps the bytes of the unfinished record between chunks and
 * calls {@link parse} on what is buffered. Subclasses hand packets to `onPacket`.
 */
export abstract class ChunkedReader {
  abstract readonly format: CaptureFormat;
  skipped = 0;
  packets = 0;
  readonly warnings: string[] = [];
  protected readonly name: string;
  protected readonly strict: boolean;
  /** Unconsumed bytes from earlier chunks (a copy: the chunk they came from can be collected). */
  private rest: Uint8Array = EMPTY;
  /** File offset of rest[0]. */
  private restOffset = 0;
  private ended = false;

  constructor(
    opts: ChunkedReaderOptions,
    protected readonly onPacket: (p: CapturedPacket) => void,
  ) {
    this.name = opts.name;
    this.strict = opts.strict ?? false;
  }

  /** Feeds the next bytes of the file. Throws {@link CaptureFormatError} on damage. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new Error('ChunkedReader.push after end');
    if (chunk.length === 0) return;
    const buf = this.rest.length === 0 ? chunk : concat(this.rest, chunk);
    const used = this.parse(buf, this.restOffset, false);
    this.rest = used < buf.length ? buf.slice(used) : EMPTY;
    this.restOffset += used;
  }

  /** The end of the file: a record still incomplete is the cut-short tail. */
  end(): CaptureSummary {
    if (!this.ended) {
      this.ended = true;
      const used = this.parse(this.rest, this.restOffset, true);
      if (used < this.rest.length) this.tail(this.rest.subarray(used), this.restOffset + used);
      this.rest = EMPTY;
    }
    return { format: this.format, description: this.description(), skipped: this.skipped, warnings: this.warnings, packets: this.packets };
  }

  /**
   * Parses complete records of `buf` (whose first byte is at file offset `base`) and returns how
   * many bytes it consumed. With `final`, no more bytes will come (headers and format detection
   * must decide on what there is).
   */
  protected abstract parse(buf: Uint8Array, base: number, final: boolean): number;

  /** The bytes left at the end that do not form a complete record: call {@link truncatedTail}. */
  protected abstract tail(rest: Uint8Array, offset: number): void;

  abstract description(): string;

  protected emit(p: CapturedPacket): void {
    this.packets++;
    this.onPacket(p);
  }

  /** A cut-short last record: a warning, or with `strict` an error naming the offset. */
  protected truncatedTail(message: string, offset: number): void {
    if (this.strict) throw new CaptureFormatError(`${this.name}: ${message} (the capture was cut short; without --strict the packets before it are diagnosed)`, { offset });
    this.warnings.push(`${message}: ignored, the packets before it are diagnosed (a capture copied while it was still being written ends like this)`);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Feeds a whole buffer in memory through a reader and ends it. */
export function readAll(reader: ChunkedReader, bytes: Uint8Array): CaptureSummary {
  reader.push(bytes);
  return reader.end();
}
