/**
 * Our own pino JSON log as a capture. THE CONTRACT the host follows (the integrator wires it):
 *
 * For every HCI packet, at debug level, the host's logger writes one JSON line carrying
 *
 *   "msg":  "hci"
 *   "dir":  "tx" (host to controller) | "rx" (controller to host)
 *   "h4":   the packet as lower-case hex, H:4 type byte first ("0103 0c00" style without spaces)
 *   "time": Unix milliseconds (pino's default timestamp; numbers with a fraction are fine)
 *   "n":    optional packet number (1-based); when the host also writes a btsnoop file, use the same
 *           numbering so evidence points at the same frame in both
 *
 * e.g. `{"level":20,"time":1767225600123,"name":"wearable-host","n":7,"dir":"rx","h4":"040e0401030c00","msg":"hci"}`.
 * {@link hciLogFields} builds the fields: `log.debug(hciLogFields('rx', packet, n), HCI_LOG_MSG)`.
 *
 * Other lines of the log (JSON objects whose msg is not "hci") are skipped, so the whole debug log
 * can be given to `wearable-host diagnose`. Blank lines are ignored. A line that is not JSON, or an
 * "hci" line with a missing or malformed field, is an error naming the line number; a last line cut
 * short (a log copied while the host was writing it) is dropped with a warning (an error with --strict).
 */
import { fromHex, toHex } from '../../util/bytes.js';
import { CaptureFormatError, type Capture, type CapturedPacket } from '../capture.js';
import { ChunkedReader, readAll, type ChunkedReaderOptions } from './chunked.js';

/** The `msg` of an HCI packet line. */
export const HCI_LOG_MSG = 'hci';

export interface HciLogFields {
  dir: 'tx' | 'rx';
  h4: string;
  n?: number;
}

/** The fields to log for one HCI packet (pino adds `time` and `msg`). */
export function hciLogFields(dir: 'tx' | 'rx', h4Packet: Uint8Array, n?: number): HciLogFields {
  return n === undefined ? { dir, h4: toHex(h4Packet) } : { n, dir, h4: toHex(h4Packet) };
}

/** Whether the bytes look like JSON lines: the first non-blank character is `{`. */
export function looksLikeJsonLog(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length && i < 4096; i++) {
    const c = bytes[i] as number;
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (i === 0 && c === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      i += 2; // UTF-8 byte order mark
      continue;
    }
    return c === 0x7b;
  }
  return false;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a pino JSON log incrementally, line by line; see the module comment for the lines it uses. */
export class PinoLogReader extends ChunkedReader {
  readonly format = 'json' as const;
  private line = 0;
  private lastNumber = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(opts: ChunkedReaderOptions, onPacket: (p: CapturedPacket) => void) {
    super(opts, onPacket);
  }

  description(): string {
    return 'wearable-host pino JSON log';
  }

  protected parse(buf: Uint8Array, base: number, final: boolean): number {
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      this.handleLine(buf.subarray(start, nl), base + start, false);
      start = nl + 1;
    }
    if (final && start < buf.length) {
      // The last line has no newline: a complete JSON object is fine, anything else is the cut-short tail.
      if (this.handleLine(buf.subarray(start), base + start, true)) start = buf.length;
    }
    return start;
  }

  protected tail(_rest: Uint8Array, offset: number): void {
    const line = this.line;
    const message = `line ${line}: the last line is not complete JSON`;
    if (this.strict) throw new CaptureFormatError(`${this.name}: ${message} (the log was cut short; without --strict the lines before it are diagnosed)`, { line, offset });
    this.truncatedTail(message, offset);
  }

  /** Returns false when `last` and the line is not complete JSON (left for {@link tail}). */
  private handleLine(bytes: Uint8Array, offset: number, last: boolean): boolean {
    const line = ++this.line;
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch (err) {
      if (last) return false;
      throw new CaptureFormatError(`${this.name}: line ${line}: not UTF-8 text, so not a JSON log`, { line, offset }, { cause: err });
    }
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const raw = text.trim();
    if (raw === '') return true;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      if (last) return false;
      throw new CaptureFormatError(`${this.name}: line ${line}: not JSON (${(err as Error).message})`, { line }, { cause: err });
    }
    const name = this.name;
    if (!isRecord(obj)) throw new CaptureFormatError(`${name}: line ${line}: a JSON log line must be an object`, { line });
    if (obj['msg'] !== HCI_LOG_MSG) {
      this.skipped++;
      return true;
    }
    const dir = obj['dir'];
    const h4 = obj['h4'];
    const time = obj['time'];
    const n = obj['n'];
    if (dir !== 'tx' && dir !== 'rx') {
      throw new CaptureFormatError(`${name}: line ${line}: an "hci" line needs "dir": "tx" or "rx", got ${JSON.stringify(dir)}`, { line });
    }
    if (typeof h4 !== 'string' || h4.length < 2) {
      throw new CaptureFormatError(`${name}: line ${line}: an "hci" line needs "h4" as a hex string`, { line });
    }
    let packet: Uint8Array;
    try {
      packet = fromHex(h4);
    } catch (err) {
      throw new CaptureFormatError(`${name}: line ${line}: "h4" is not hex: ${JSON.stringify(h4.slice(0, 40))}`, { line }, { cause: err });
    }
    if (typeof time !== 'number' || !Number.isFinite(time)) {
      throw new CaptureFormatError(`${name}: line ${line}: an "hci" line needs "time" in Unix milliseconds (pino's default timestamp)`, { line });
    }
    if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 1)) {
      throw new CaptureFormatError(`${name}: line ${line}: "n" must be a packet number >= 1, got ${JSON.stringify(n)}`, { line });
    }
    const number = typeof n === 'number' ? n : this.lastNumber + 1;
    this.lastNumber = number;
    this.emit({ number, time, direction: dir === 'tx' ? 'host->controller' : 'controller->host', h4: packet, line });
    return true;
  }
}

/** Reads a whole pino JSON log in memory; see {@link PinoLogReader}. */
export function readPinoLog(bytes: Uint8Array, name = 'log', strict = false): Capture {
  const packets: CapturedPacket[] = [];
  const s = readAll(new PinoLogReader({ name, strict }, (p) => packets.push(p)), bytes);
  return { format: s.format, description: s.description, packets, skipped: s.skipped, warnings: s.warnings };
}
