/**
 * btsnooz: the HCI summary an Android bug report carries when the full snoop log was off. The
 * Bluetooth stack keeps the last few hundred KB of HCI traffic in a ring buffer and `dumpsys`
 * writes it into the bug report text between
 *
 *   --- BEGIN:BTSNOOP_LOG_SUMMARY (N bytes in) ---
 *   <base64, 128 characters a line>
 *   --- END:BTSNOOP_LOG_SUMMARY ---
 *
 * The decoded bytes are a 9-byte preamble (u8 version, u64 little-endian timestamp of the last
 * packet, in microseconds since the Unix epoch) followed by a zlib stream of records, all
 * little-endian:
 *
 *   version 1: u16 length, u32 delta time, u8 type, then length-1 packet bytes
 *   version 2: u16 length, u16 packet length, u32 delta time, u8 type, then length-1 packet bytes
 *
 * `length` counts the type byte; `packet length` is the packet's real length (ACL packets are cut
 * to 14 bytes except on the L2CAP signaling channel, so an SMP PDU is only partly there). The delta
 * is the time since the previous record, so the first packet's time is the last one's minus all
 * deltas. Types are the stack's internal ones shifted right by 8: 0x10 event, 0x11 ACL in, 0x12
 * SCO in, 0x17 ISO in, 0x20 command, 0x21 ACL out, 0x22 SCO out, 0x2d ISO out.
 *
 * Sources (AOSP, read for the format, nothing copied): system/bt btif/src/btif_debug_btsnoop.cc and
 * btif/include/btif_debug_btsnoop.h (the writer), tools/scripts/btsnooz.py (Google's decoder),
 * packages/modules/Bluetooth system/gd/hal/snoop_logger.cc (what the in-memory log keeps).
 */
import { inflateSync } from 'node:zlib';
import { CaptureFormatError, type Capture, type CapturedPacket, type HciDirection } from '../capture.js';

export const BTSNOOZ_BEGIN = '--- BEGIN:BTSNOOP_LOG_SUMMARY';
export const BTSNOOZ_END = '--- END:BTSNOOP_LOG_SUMMARY';

/**
 * Bound on a summary, decompressed and as base64 text: the stacks keep 128 KiB to 1 MiB; a section
 * far larger is not one (and must not exhaust memory).
 */
const MAX_SUMMARY = 64 << 20;

/** btsnooz record type -> [H:4 type, direction]. */
const TYPES: Readonly<Record<number, readonly [number, HciDirection]>> = {
  0x10: [0x04, 'controller->host'],
  0x11: [0x02, 'controller->host'],
  0x12: [0x03, 'controller->host'],
  0x17: [0x05, 'controller->host'],
  0x20: [0x01, 'host->controller'],
  0x21: [0x02, 'host->controller'],
  0x22: [0x03, 'host->controller'],
  0x2d: [0x05, 'host->controller'],
};

/**
 * Finds BTSNOOP_LOG_SUMMARY sections in text arriving in chunks (a bug report is tens of MB: only
 * the base64 of the section is kept). Bytes are read as latin1, which keeps ASCII exact.
 */
export class BtsnoozScanner {
  private carry = '';
  private inside = false;
  private b64: string[] = [];
  private b64Length = 0;
  /** The base64 text of each complete section found so far. */
  readonly sections: string[] = [];
  /** A BEGIN line was seen without its END (the report was cut short). */
  get unterminated(): boolean {
    return this.inside;
  }

  push(chunk: Uint8Array): void {
    const text = this.carry + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    const lines = text.split('\n');
    this.carry = lines.pop() ?? '';
    // A single enormous line without a newline: keep scanning without holding it all.
    if (!this.inside && this.carry.length > 4096 && !this.carry.includes('---')) this.carry = this.carry.slice(-64);
    for (const line of lines) this.line(line);
  }

  end(): void {
    if (this.carry) this.line(this.carry);
    this.carry = '';
  }

  private line(raw: string): void {
    if (this.inside) {
      if (raw.includes(BTSNOOZ_END)) {
        this.sections.push(this.b64.join(''));
        this.b64 = [];
        this.b64Length = 0;
        this.inside = false;
      } else {
        const line = raw.trim();
        this.b64Length += line.length;
        if (this.b64Length > MAX_SUMMARY) {
          throw new CaptureFormatError(`BTSNOOP_LOG_SUMMARY section longer than ${MAX_SUMMARY >> 20} MiB of base64 without its END line: not a btsnooz summary`, {});
        }
        this.b64.push(line);
      }
    } else if (raw.includes(BTSNOOZ_BEGIN)) this.inside = true;
  }
}

/** Whether a text has a btsnooz section (checked on its first bytes or all of it). */
export function hasBtsnoozSection(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(BTSNOOZ_BEGIN, 0, 'latin1');
}

/**
 * Decodes one btsnooz section (its base64 text) into a capture. Throws {@link CaptureFormatError}
 * when it is not base64, not zlib, an unknown version, or a record runs past the end.
 */
export function decodeBtsnooz(base64: string, name = 'bug report'): Capture {
  const where = `${name}: BTSNOOP_LOG_SUMMARY`;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) {
    throw new CaptureFormatError(`${where} is not base64 (the section was edited or cut?)`, { offset: 0 });
  }
  const raw = Buffer.from(base64, 'base64');
  if (raw.length < 9) throw new CaptureFormatError(`${where}: ${raw.length} byte(s), the btsnooz preamble alone is 9`, { offset: 0 });
  const version = raw[0] as number;
  if (version !== 1 && version !== 2) {
    throw new CaptureFormatError(`${where}: unsupported btsnooz version ${version} at offset 0 (known: 1 and 2)`, { offset: 0 });
  }
  const lastUs = Number(raw.readBigUInt64LE(1));
  let body: Buffer;
  try {
    body = inflateSync(raw.subarray(9), { maxOutputLength: MAX_SUMMARY });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new CaptureFormatError(`${where}: the records inflate to more than ${MAX_SUMMARY >> 20} MiB, far more than any stack keeps in memory: not a btsnooz summary`, { offset: 9 }, { cause: err });
    }
    throw new CaptureFormatError(`${where}: the records after the 9-byte preamble are not a zlib stream (${(err as Error).message})`, { offset: 9 }, { cause: err });
  }
  const head = version === 1 ? 7 : 9;
  // First pass: the sum of the deltas gives the first packet's time.
  let off = 0;
  let total = 0;
  let count = 0;
  const warnings: string[] = [];
  let end = body.length;
  while (off < body.length) {
    if (body.length - off < head) {
      end = off;
      break;
    }
    const len = body.readUInt16LE(off);
    if (len < 1 || off + head + len - 1 > body.length) {
      end = off;
      break;
    }
    total += body.readUInt32LE(off + (version === 1 ? 2 : 4));
    off += head + len - 1;
    count++;
  }
  if (end < body.length) warnings.push(`btsnooz record ${count + 1} at offset ${end} of the decompressed summary is cut short: ignored`);
  const packets: CapturedPacket[] = [];
  let skipped = 0;
  let cut = 0;
  let t = lastUs - total;
  off = 0;
  for (let i = 0; i < count; i++) {
    const len = body.readUInt16LE(off);
    const packetLength = version === 1 ? len : body.readUInt16LE(off + 2);
    t += body.readUInt32LE(off + (version === 1 ? 2 : 4));
    const type = body[off + head - 1] as number;
    const data = body.subarray(off + head, off + head + len - 1);
    off += head + len - 1;
    const m = TYPES[type];
    if (!m) {
      skipped++;
      continue;
    }
    const h4 = new Uint8Array(data.length + 1);
    h4[0] = m[0];
    h4.set(data, 1);
    const truncated = len < packetLength;
    if (truncated) cut++;
    packets.push({ number: i + 1, time: t / 1000, direction: m[1], h4, ...(truncated ? { truncated: true } : {}) });
  }
  if (cut > 0) {
    warnings.push(
      `${cut} packet(s) are cut short in the summary (it keeps 14 bytes of ACL data): SMP and ATT details may be missing; ` +
        'for a full log enable Developer options > Enable Bluetooth HCI snoop log, reproduce, and take a new bug report',
    );
  }
  return {
    format: 'btsnoop',
    description: `btsnooz v${version} summary (BTSNOOP_LOG_SUMMARY, the last ${count} HCI packet(s) the stack kept in memory)`,
    packets,
    skipped,
    warnings,
  };
}
