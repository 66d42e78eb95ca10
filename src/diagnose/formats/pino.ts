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
 * Other lines of the log (any JSON object whose msg is not "hci") are skipped, so the whole debug log
 * can be given to `wearable-host diagnose`. Blank lines are ignored. A line that is not JSON, or an
 * "hci" line with a missing or malformed field, is an error naming the line number.
 */
import { fromHex, toHex } from '../../util/bytes.js';
import { CaptureFormatError, type Capture, type CapturedPacket } from '../capture.js';

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

/** Reads a pino JSON log; see the module comment for the lines it uses. */
export function readPinoLog(bytes: Uint8Array, name = 'log'): Capture {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new CaptureFormatError(`${name}: not a UTF-8 text file, so not a JSON log`, { offset: 0 }, { cause: err });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  const packets: CapturedPacket[] = [];
  let skipped = 0;
  let lastNumber = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const raw = (lines[i] as string).trim();
    if (raw === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      const last = i === lines.length - 1 || lines.slice(i + 1).every((l) => l.trim() === '');
      const why = last ? 'the last line is not complete JSON (the log was cut short?)' : `not JSON (${(err as Error).message})`;
      throw new CaptureFormatError(`${name}: line ${line}: ${why}`, { line }, { cause: err });
    }
    if (!isRecord(obj)) throw new CaptureFormatError(`${name}: line ${line}: a JSON log line must be an object`, { line });
    if (obj['msg'] !== HCI_LOG_MSG) {
      skipped++;
      continue;
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
    const number = typeof n === 'number' ? n : lastNumber + 1;
    lastNumber = number;
    packets.push({ number, time, direction: dir === 'tx' ? 'host->controller' : 'controller->host', h4: packet, line });
  }
  return { format: 'json', description: 'wearable-host pino JSON log', packets, skipped, warnings: [] };
}
