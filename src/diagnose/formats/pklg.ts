/**
 * Apple PacketLogger captures (`.pklg`): what iOS (a sysdiagnose with the Bluetooth logging profile)
 * and macOS's PacketLogger write. The capturing host is the phone or the Mac, i.e. the central.
 *
 * The format has no file header: the file is a sequence of records
 *
 *   offset 0  u32  length: bytes after this field (8 timestamp bytes + 1 type byte + payload)
 *   offset 4  u32  timestamp seconds (Unix epoch)
 *   offset 8  u32  timestamp microseconds
 *   offset 12 u8   record type
 *   offset 13      payload: the HCI packet without an H:4 type byte, or text for notes/logs
 *
 * Older files (PacketLogger on PowerPC-era macOS, BTstack's dumps) store the integers big-endian;
 * current PacketLogger writes them little-endian. Nothing marks which: the reader tries both on the
 * first records and keeps the one whose lengths and types make sense (the heuristic Wireshark's
 * wiretap/packetlogger.c uses, extended to check several records). Some converters read the two
 * timestamp words of little-endian files as one 64-bit value with the seconds in the high word; if
 * the second word is a plausible seconds count and the first is not (>= 1e6 microseconds), the
 * reader takes the words in that order.
 *
 * Record types (Wireshark's PacketLogger dissector): 0x00 HCI command (host to controller), 0x01
 * HCI event, 0x02 ACL sent, 0x03 ACL received, 0x08/0x09 SCO sent/received, 0x0A/0x0B LMP, 0xF7
 * syslog, 0xF8 kernel, 0xF9 kernel debug, 0xFA error, 0xFB power, 0xFC note, 0xFD config, 0xFE new
 * controller. Only the HCI ones become packets; the rest count as skipped records.
 */
import { CaptureFormatError, type Capture, type CapturedPacket, type HciDirection } from '../capture.js';
import { ChunkedReader, readAll, type ChunkedReaderOptions } from './chunked.js';

/** PacketLogger record types. */
export const PklgType = {
  HciCommand: 0x00,
  HciEvent: 0x01,
  AclSent: 0x02,
  AclReceived: 0x03,
  ScoSent: 0x08,
  ScoReceived: 0x09,
  LmpSent: 0x0a,
  LmpReceived: 0x0b,
  Syslog: 0xf7,
  Kernel: 0xf8,
  KernelDebug: 0xf9,
  Error: 0xfa,
  Power: 0xfb,
  Note: 0xfc,
  Config: 0xfd,
  NewController: 0xfe,
} as const;

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(PklgType));

/** PacketLogger type -> [H:4 type, direction] for the records that carry HCI packets. */
const HCI_TYPES: Readonly<Record<number, readonly [number, HciDirection]>> = {
  [PklgType.HciCommand]: [0x01, 'host->controller'],
  [PklgType.HciEvent]: [0x04, 'controller->host'],
  [PklgType.AclSent]: [0x02, 'host->controller'],
  [PklgType.AclReceived]: [0x02, 'controller->host'],
  [PklgType.ScoSent]: [0x03, 'host->controller'],
  [PklgType.ScoReceived]: [0x03, 'controller->host'],
};

const H4_TO_PKLG: Readonly<Record<string, number>> = {
  '1:host->controller': PklgType.HciCommand,
  '4:controller->host': PklgType.HciEvent,
  '2:host->controller': PklgType.AclSent,
  '2:controller->host': PklgType.AclReceived,
  '3:host->controller': PklgType.ScoSent,
  '3:controller->host': PklgType.ScoReceived,
};

export type PklgEndian = 'big' | 'little';

const RECORD_PREFIX = 4;
/** Timestamp (8) + type (1). */
const MIN_LENGTH = 9;
/** Largest length accepted: a 64 KiB payload plus timestamp and type. */
const MAX_LENGTH = 0x10000 + MIN_LENGTH;
const PROBE_RECORDS = 5;

function u32(dv: DataView, off: number, endian: PklgEndian): number {
  return dv.getUint32(off, endian === 'little');
}

/**
 * How many of the first {@link PROBE_RECORDS} records parse as PacketLogger records in `endian`;
 * -1 when the first one does not. A short last record still counts (the file may be cut short).
 */
function probe(bytes: Uint8Array, endian: PklgEndian): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  let n = 0;
  while (n < PROBE_RECORDS && off < bytes.length) {
    if (bytes.length - off < RECORD_PREFIX + MIN_LENGTH) return n === 0 ? -1 : n;
    const len = u32(dv, off, endian);
    if (len < MIN_LENGTH || len > MAX_LENGTH) return n === 0 ? -1 : n;
    const a = u32(dv, off + 4, endian);
    const b = u32(dv, off + 8, endian);
    if (a >= 1_000_000 && b >= 1_000_000) return n === 0 ? -1 : n;
    if (!KNOWN_TYPES.has(bytes[off + 12] as number)) return n === 0 ? -1 : n;
    n++;
    off += RECORD_PREFIX + len;
  }
  return n;
}

/** Which byte order the file uses, or undefined when it does not look like PacketLogger at all. */
export function detectPklgEndian(bytes: Uint8Array): PklgEndian | undefined {
  const le = probe(bytes, 'little');
  const be = probe(bytes, 'big');
  if (le < 1 && be < 1) return undefined;
  return be >= le ? 'big' : 'little';
}

/** Whether the bytes parse as PacketLogger records (no magic exists: this checks the first records). */
export function looksLikePklg(bytes: Uint8Array): boolean {
  return detectPklgEndian(bytes) !== undefined;
}

/** Bytes buffered before the byte order is decided (enough for the first {@link PROBE_RECORDS} records). */
const DETECT_BYTES = PROBE_RECORDS * (RECORD_PREFIX + MAX_LENGTH);

/**
 * Reads a PacketLogger file incrementally (see chunked.ts). A {@link CaptureFormatError} with the
 * byte offset when the first record does not parse in either byte order or a record is corrupt; a
 * cut-short last record is dropped with a warning (with `strict`, an error).
 */
export class PklgReader extends ChunkedReader {
  readonly format = 'pklg' as const;
  private endian: PklgEndian | undefined;
  private swappedTime: boolean | undefined;
  private index = 0;

  constructor(opts: ChunkedReaderOptions, onPacket: (p: CapturedPacket) => void) {
    super(opts, onPacket);
  }

  description(): string {
    return `Apple PacketLogger, ${this.endian ?? '?'}-endian${this.swappedTime ? ' (timestamp words swapped)' : ''}`;
  }

  protected parse(bytes: Uint8Array, base: number, final: boolean): number {
    if (this.endian === undefined) {
      if (!final && bytes.length < DETECT_BYTES) return 0;
      if (bytes.length === 0) throw new CaptureFormatError(`${this.name}: empty file, not a PacketLogger capture`, { offset: 0 });
      this.endian = detectPklgEndian(bytes);
      if (!this.endian) throw new CaptureFormatError(`${this.name}: not a PacketLogger file: ${describeFirstRecord(bytes)}`, { offset: 0 });
    }
    const endian = this.endian;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    while (bytes.length - off >= RECORD_PREFIX + MIN_LENGTH) {
      const len = u32(dv, off, endian);
      if (len < MIN_LENGTH || len > MAX_LENGTH) {
        throw new CaptureFormatError(
          `${this.name}: corrupt PacketLogger record ${this.index + 1} at offset ${base + off}: length ${len} is outside ${MIN_LENGTH}..${MAX_LENGTH}`,
          { offset: base + off },
        );
      }
      if (len > bytes.length - off - RECORD_PREFIX) break;
      const a = u32(dv, off + 4, endian);
      const b = u32(dv, off + 8, endian);
      if (this.swappedTime === undefined && (a >= 1_000_000) !== (b >= 1_000_000)) this.swappedTime = b >= 1_000_000;
      const [secs, usecs] = this.swappedTime ? [b, a] : [a, b];
      const type = bytes[off + 12] as number;
      const hci = HCI_TYPES[type];
      const number = ++this.index;
      if (hci) {
        const payload = bytes.subarray(off + 13, off + RECORD_PREFIX + len);
        const h4 = new Uint8Array(payload.length + 1);
        h4[0] = hci[0];
        h4.set(payload, 1);
        this.emit({ number, time: secs * 1000 + usecs / 1000, direction: hci[1], h4 });
      } else {
        this.skipped++;
      }
      off += RECORD_PREFIX + len;
    }
    return off;
  }

  protected tail(rest: Uint8Array, offset: number): void {
    const number = this.index + 1;
    const message =
      rest.length < RECORD_PREFIX + MIN_LENGTH
        ? `truncated PacketLogger record ${number} at offset ${offset}: its header needs ${RECORD_PREFIX + MIN_LENGTH} bytes, ${rest.length} left`
        : `truncated PacketLogger record ${number} at offset ${offset}: ${u32(new DataView(rest.buffer, rest.byteOffset, rest.byteLength), 0, this.endian ?? 'big')} bytes announced, ${rest.length - RECORD_PREFIX} left`;
    this.truncatedTail(message, offset);
  }
}

/** Reads a whole PacketLogger file in memory; see {@link PklgReader}. */
export function readPklg(bytes: Uint8Array, name = 'capture', strict = false): Capture {
  const packets: CapturedPacket[] = [];
  const s = readAll(new PklgReader({ name, strict }, (p) => packets.push(p)), bytes);
  return { format: s.format, description: s.description, packets, skipped: s.skipped, warnings: s.warnings };
}

function describeFirstRecord(bytes: Uint8Array): string {
  if (bytes.length < RECORD_PREFIX + MIN_LENGTH) {
    return `${bytes.length} byte(s), a record header alone is ${RECORD_PREFIX + MIN_LENGTH}`;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = dv.getUint32(0, true);
  const be = dv.getUint32(0, false);
  const type = bytes[12] as number;
  const parts = [`the record at offset 0 announces length ${be} (big-endian) / ${le} (little-endian)`];
  if (!KNOWN_TYPES.has(type)) parts.push(`type byte 0x${type.toString(16).padStart(2, '0')} at offset 12 is not a PacketLogger record type`);
  return parts.join('; ');
}

/** One record for the writer: an H:4 packet with direction and time, or a note. */
export type PklgRecordInput =
  | { direction: HciDirection; h4: Uint8Array; time: number }
  | { note: string; time: number };

/**
 * Encodes records as a PacketLogger file (tests, and converting our traces for Apple's tools).
 * Big-endian by default, as the older tools and BTstack write it.
 */
export function encodePklg(records: readonly PklgRecordInput[], endian: PklgEndian = 'big'): Uint8Array {
  const bodies: Uint8Array[] = [];
  let total = 0;
  for (const r of records) {
    let type: number;
    let payload: Uint8Array;
    if ('note' in r) {
      type = PklgType.Note;
      payload = new TextEncoder().encode(r.note);
    } else {
      const t = H4_TO_PKLG[`${r.h4[0] ?? 0}:${r.direction}`];
      if (t === undefined) throw new RangeError(`no PacketLogger record type for H:4 type ${r.h4[0]} ${r.direction}`);
      type = t;
      payload = r.h4.subarray(1);
    }
    const rec = new Uint8Array(RECORD_PREFIX + MIN_LENGTH + payload.length);
    const dv = new DataView(rec.buffer);
    const secs = Math.floor(r.time / 1000);
    const usecs = Math.round((r.time - secs * 1000) * 1000);
    dv.setUint32(0, MIN_LENGTH + payload.length, endian === 'little');
    dv.setUint32(4, secs, endian === 'little');
    dv.setUint32(8, Math.min(usecs, 999_999), endian === 'little');
    rec[12] = type;
    rec.set(payload, 13);
    bodies.push(rec);
    total += rec.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of bodies) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
