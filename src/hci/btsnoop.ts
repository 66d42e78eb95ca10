/**
 * btsnoop capture files: what `--btsnoop FILE` writes and `diagnose FILE` reads; Wireshark,
 * tshark and btmon open them.
 *
 * Format (RFC 1761 "snoop" style, all fields big-endian): a 16-byte header
 * (`btsnoop\0`, version 1, datalink type), then records of 24 header bytes (original length,
 * included length, flags, cumulative drops, timestamp in microseconds since 0000-01-01 AD as
 * a signed 64-bit integer) followed by the packet bytes.
 *
 * Datalink types: 1001 un-encapsulated HCI (H1: no type byte, the flags say command/event vs
 * data), 1002 HCI UART (H4: each packet starts with its H:4 type byte; Android's
 * btsnoop_hci.log and what we write), 1003 BCSP and 1004 H5 (not supported), 2001 the Linux
 * monitor format `btmon -w` writes (flags = controller index << 16 | opcode).
 */
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { RealClock, type Clock, type TimerHandle } from '../util/clock.js';
import { WearableHostError } from '../util/errors.js';
import { H4Type } from './h4.js';

/** Datalink types. */
export const BtsnoopDatalink = {
  /** Un-encapsulated HCI (H1). */
  H1: 1001,
  /** HCI UART (H4). */
  H4: 1002,
  /** HCI BCSP. */
  Bcsp: 1003,
  /** HCI Serial (H5). */
  H5: 1004,
  /** Linux Bluetooth monitor (BlueZ btmon). */
  Monitor: 2001,
} as const;
export type BtsnoopDatalink = (typeof BtsnoopDatalink)[keyof typeof BtsnoopDatalink];

const MAGIC = [0x62, 0x74, 0x73, 0x6e, 0x6f, 0x6f, 0x70, 0x00]; // "btsnoop\0"
const FILE_HEADER_SIZE = 16;
const RECORD_HEADER_SIZE = 24;
/** Microseconds from 0000-01-01 to 1970-01-01 (719528 days). */
export const BTSNOOP_EPOCH_OFFSET_US = 0x00dcddb30f2f8000n;

/** Flags bit 0: 0 = sent (host to controller), 1 = received (controller to host). */
const FLAG_RECEIVED = 0x01;
/** Flags bit 1: 0 = data (ACL, SCO, ISO), 1 = command or event. */
const FLAG_COMMAND_EVENT = 0x02;

/** Which way a packet went: 'sent' host to controller, 'received' controller to host. */
export type BtsnoopDirection = 'sent' | 'received';

export class BtsnoopError extends WearableHostError {
  constructor(
    message: string,
    /** Byte offset in the file where the problem is. */
    readonly offset: number,
    options?: { cause?: unknown },
  ) {
    super('hci', message, options);
    this.name = 'BtsnoopError';
  }
}

/** The 16-byte file header. */
export function encodeBtsnoopHeader(datalink: BtsnoopDatalink = BtsnoopDatalink.H4): Uint8Array {
  const out = new Uint8Array(FILE_HEADER_SIZE);
  out.set(MAGIC, 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, 1);
  dv.setUint32(12, datalink);
  return out;
}

/** btsnoop timestamp (microseconds since 0000-01-01) from Unix milliseconds. */
export function btsnoopTimestamp(unixMs: number): bigint {
  return BigInt(Math.round(unixMs * 1000)) + BTSNOOP_EPOCH_OFFSET_US;
}

/** Flags for an H:4 packet: direction in bit 0, command/event in bit 1. */
export function btsnoopFlags(direction: BtsnoopDirection, h4Type: number): number {
  let f = direction === 'received' ? FLAG_RECEIVED : 0;
  if (h4Type === H4Type.Command || h4Type === H4Type.Event) f |= FLAG_COMMAND_EVENT;
  return f;
}

/** Writes one record for an H:4 packet into `out` at `off`; returns the bytes written. */
function putRecord(out: Uint8Array, off: number, direction: BtsnoopDirection, packet: Uint8Array, unixMs: number, drops: number): number {
  const dv = new DataView(out.buffer, out.byteOffset + off, RECORD_HEADER_SIZE);
  dv.setUint32(0, packet.length);
  dv.setUint32(4, packet.length);
  dv.setUint32(8, btsnoopFlags(direction, packet[0] ?? 0));
  dv.setUint32(12, drops);
  dv.setBigInt64(16, btsnoopTimestamp(unixMs));
  out.set(packet, off + RECORD_HEADER_SIZE);
  return RECORD_HEADER_SIZE + packet.length;
}

/** One record (24-byte header + packet) for an H:4 packet, as {@link BtsnoopWriter} writes it. */
export function encodeBtsnoopRecord(direction: BtsnoopDirection, h4Packet: Uint8Array, unixMs: number, cumulativeDrops = 0): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_SIZE + h4Packet.length);
  putRecord(out, 0, direction, h4Packet, unixMs, cumulativeDrops);
  return out;
}

export interface BtsnoopWriterOptions {
  /** Timestamps when write() is given none, and the periodic flush timer. Default RealClock. */
  clock?: Clock;
  /** Buffered records reach the file at least this often. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Buffer size; a fuller buffer is written at once. Default 64 KiB. */
  bufferBytes?: number;
  /** Called once if writing the file fails; later records are dropped (capturing must not stop the stack). */
  onError?: (err: BtsnoopError) => void;
}

/**
 * Appends H:4 packets to a btsnoop file (datalink 1002). Records are buffered and reach the file
 * when the buffer fills, every `flushIntervalMs`, on {@link flush} and on {@link close}; file
 * writes are synchronous and small, so a flush from a signal handler or 'exit' hook works.
 */
export class BtsnoopWriter {
  private fd: number | undefined;
  private buf: Uint8Array;
  private used = 0;
  private timer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly interval: number;
  private failed: BtsnoopError | undefined;
  /** Records written (or buffered). */
  records = 0;
  /** Records dropped after a write failure. */
  dropped = 0;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly opts: BtsnoopWriterOptions,
  ) {
    this.fd = fd;
    this.clock = opts.clock ?? new RealClock();
    this.interval = opts.flushIntervalMs ?? 1000;
    this.buf = new Uint8Array(Math.max(1024, opts.bufferBytes ?? 64 * 1024));
  }

  /** Creates (or truncates) `path` and writes the file header. Throws a {@link BtsnoopError} naming the path. */
  static open(path: string, opts: BtsnoopWriterOptions = {}): BtsnoopWriter {
    let fd: number;
    try {
      // Traces carry LTKs (LE Long Term Key Request Reply): owner only, also when the file existed.
      fd = openSync(path, 'w', 0o600);
      fchmodSync(fd, 0o600);
    } catch (err) {
      throw new BtsnoopError(`cannot create btsnoop file ${path}: ${err instanceof Error ? err.message : String(err)}`, 0, { cause: err });
    }
    const w = new BtsnoopWriter(path, fd, opts);
    w.writeOut(encodeBtsnoopHeader(BtsnoopDatalink.H4));
    if (w.failed) throw w.failed;
    return w;
  }

  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  /** The first write error, if any. */
  get error(): BtsnoopError | undefined {
    return this.failed;
  }

  /**
   * Records one H:4 packet (type byte first). `timestampMs` is Unix milliseconds (fractions
   * kept to the microsecond); default: the clock's now.
   */
  write(direction: BtsnoopDirection, h4Packet: Uint8Array, timestampMs?: number): void {
    if (this.fd === undefined || this.failed) {
      this.dropped++;
      return;
    }
    const size = RECORD_HEADER_SIZE + h4Packet.length;
    if (this.used + size > this.buf.length) this.flush();
    if (this.failed) {
      this.dropped++;
      return;
    }
    const ts = timestampMs ?? this.clock.now();
    if (size > this.buf.length) {
      this.writeOut(encodeBtsnoopRecord(direction, h4Packet, ts, this.dropped));
    } else {
      this.used += putRecord(this.buf, this.used, direction, h4Packet, ts, this.dropped);
      if (this.timer === undefined) this.timer = this.clock.setTimeout(() => this.onTimer(), this.interval);
    }
    this.records++;
  }

  private onTimer(): void {
    this.timer = undefined;
    this.flush();
  }

  /** Writes buffered records to the file now (synchronously). */
  flush(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used === 0 || this.fd === undefined) return;
    const data = this.buf.subarray(0, this.used);
    this.used = 0;
    this.writeOut(data);
  }

  private writeOut(data: Uint8Array): void {
    if (this.fd === undefined || this.failed) return;
    try {
      let off = 0;
      while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
    } catch (err) {
      this.failed = new BtsnoopError(`writing btsnoop file ${this.path} failed (${err instanceof Error ? err.message : String(err)}); capture stopped, the stack keeps running`, 0, { cause: err });
      this.opts.onError?.(this.failed);
    }
  }

  /** Flushes and closes the file. Safe to call twice. */
  close(): Promise<void> {
    if (this.fd === undefined) return Promise.resolve();
    this.flush();
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch (err) {
      return Promise.reject(new BtsnoopError(`closing btsnoop file ${this.path} failed: ${err instanceof Error ? err.message : String(err)}`, 0, { cause: err }));
    }
    return Promise.resolve();
  }
}

export interface BtsnoopRecord {
  /** 0-based record number. */
  index: number;
  /** Byte offset of the record header in the file. */
  offset: number;
  direction: BtsnoopDirection;
  /** Flags as stored (for datalink 2001: controller index << 16 | monitor opcode). */
  flags: number;
  /** Length of the packet as captured on the wire, as stored in the file. */
  originalLength: number;
  cumulativeDrops: number;
  /** Microseconds since 0000-01-01 AD, as stored. */
  timestampUs: bigint;
  /** Unix milliseconds (fractional). */
  timestampMs: number;
  /**
   * The packet as H:4, type byte first. For datalink 1002 it is a view into the file bytes; for
   * 1001 and 2001 the type byte is reconstructed from flags / opcode.
   */
  packet: Uint8Array;
  /** The file holds fewer bytes than the packet had (included length < original length). */
  truncated: boolean;
  /** Datalink 2001 only: the controller index. */
  controllerIndex?: number;
}

export interface BtsnoopFile {
  version: number;
  datalink: BtsnoopDatalink;
  records: BtsnoopRecord[];
  /** Datalink 2001 records that are not HCI packets (index added/removed, notes, logging). */
  skipped: number;
  /** With `tolerateTruncatedTail`: the last record was cut short (a capture interrupted mid-write). */
  truncatedTail?: { offset: number; message: string };
}

export interface ReadBtsnoopOptions {
  /**
   * Accept a cut-short final record (the writer was killed mid-write) and report it in
   * `truncatedTail` instead of throwing. Default false.
   */
  tolerateTruncatedTail?: boolean;
}

/** Linux monitor opcodes that carry HCI packets -> [H:4 type, direction]. BlueZ doc/btsnoop.txt. */
export const MONITOR_OPCODES: Readonly<Record<number, readonly [H4Type, BtsnoopDirection]>> = {
  0x0002: [H4Type.Command, 'sent'],
  0x0003: [H4Type.Event, 'received'],
  0x0004: [H4Type.Acl, 'sent'],
  0x0005: [H4Type.Acl, 'received'],
  0x0006: [H4Type.Sco, 'sent'],
  0x0007: [H4Type.Sco, 'received'],
  0x0012: [H4Type.Iso, 'sent'],
  0x0013: [H4Type.Iso, 'received'],
};

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function badMagicHint(bytes: Uint8Array): string {
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) {
    return 'it is a zip archive (an Android bug report?): `wearable-host diagnose` reads it when --format is not given';
  }
  if (startsWith(bytes, [0xd4, 0xc3, 0xb2, 0xa1]) || startsWith(bytes, [0xa1, 0xb2, 0xc3, 0xd4]) || startsWith(bytes, [0x0a, 0x0d, 0x0d, 0x0a])) {
    return 'it is a pcap/pcapng capture: save it from Wireshark as "BTSnoop" instead';
  }
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, Math.min(bytes.length, 1 << 20)));
  if (head.includes('BTSNOOP_LOG_SUMMARY')) {
    return 'it is an Android bug report text: `wearable-host diagnose` decodes its BTSNOOP_LOG_SUMMARY when --format is not given';
  }
  return 'expected the bytes "btsnoop\\0"';
}

/**
 * Parses a btsnoop file (datalink 1001, 1002 or 2001). Throws a {@link BtsnoopError} with the byte
 * offset on a bad header, an unsupported datalink or a truncated/corrupt record.
 */
export function readBtsnoop(bytes: Uint8Array, opts: ReadBtsnoopOptions = {}): BtsnoopFile {
  if (bytes.length < FILE_HEADER_SIZE || !startsWith(bytes, MAGIC)) {
    if (bytes.length >= MAGIC.length && !startsWith(bytes, MAGIC)) {
      throw new BtsnoopError(`not a btsnoop file: bad magic at offset 0 (${badMagicHint(bytes)})`, 0);
    }
    throw new BtsnoopError(`not a btsnoop file: ${bytes.length} byte(s), the file header alone is ${FILE_HEADER_SIZE}`, bytes.length);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8);
  if (version !== 1) throw new BtsnoopError(`unsupported btsnoop version ${version} at offset 8 (only version 1 exists)`, 8);
  const datalink = dv.getUint32(12);
  if (datalink !== BtsnoopDatalink.H1 && datalink !== BtsnoopDatalink.H4 && datalink !== BtsnoopDatalink.Monitor) {
    const name = datalink === BtsnoopDatalink.Bcsp ? ' (HCI BCSP)' : datalink === BtsnoopDatalink.H5 ? ' (HCI Serial H5)' : '';
    throw new BtsnoopError(`unsupported btsnoop datalink type ${datalink}${name} at offset 12: supported are 1001 (H1), 1002 (H4) and 2001 (Linux monitor)`, 12);
  }
  const records: BtsnoopRecord[] = [];
  let skipped = 0;
  let off = FILE_HEADER_SIZE;
  const result = (tail?: { offset: number; message: string }): BtsnoopFile => {
    const f: BtsnoopFile = { version, datalink: datalink as BtsnoopDatalink, records, skipped };
    if (tail) f.truncatedTail = tail;
    return f;
  };
  while (off < bytes.length) {
    const index = records.length + skipped;
    if (bytes.length - off < RECORD_HEADER_SIZE) {
      const message = `truncated btsnoop record ${index} at offset ${off}: its header needs ${RECORD_HEADER_SIZE} bytes, ${bytes.length - off} left`;
      if (opts.tolerateTruncatedTail) return result({ offset: off, message });
      throw new BtsnoopError(message, off);
    }
    const originalLength = dv.getUint32(off);
    const included = dv.getUint32(off + 4);
    const flags = dv.getUint32(off + 8);
    const drops = dv.getUint32(off + 12);
    const timestampUs = dv.getBigInt64(off + 16);
    const dataOff = off + RECORD_HEADER_SIZE;
    if (included > originalLength) {
      throw new BtsnoopError(`corrupt btsnoop record ${index} at offset ${off}: included length ${included} exceeds original length ${originalLength}`, off);
    }
    if (included > bytes.length - dataOff) {
      const message = `truncated btsnoop record ${index} at offset ${off}: ${included} packet byte(s) announced, ${bytes.length - dataOff} left`;
      if (opts.tolerateTruncatedTail) return result({ offset: off, message });
      throw new BtsnoopError(message, off);
    }
    const data = bytes.subarray(dataOff, dataOff + included);
    const timestampMs = Number(timestampUs - BTSNOOP_EPOCH_OFFSET_US) / 1000;
    const base = { index, offset: off, flags, originalLength, cumulativeDrops: drops, timestampUs, timestampMs, truncated: included < originalLength };
    off = dataOff + included;
    if (datalink === BtsnoopDatalink.H4) {
      if (included === 0) throw new BtsnoopError(`corrupt btsnoop record ${index} at offset ${base.offset}: empty packet, no H:4 type byte`, base.offset);
      records.push({ ...base, direction: flags & FLAG_RECEIVED ? 'received' : 'sent', packet: data });
    } else if (datalink === BtsnoopDatalink.H1) {
      const received = (flags & FLAG_RECEIVED) !== 0;
      const type = flags & FLAG_COMMAND_EVENT ? (received ? H4Type.Event : H4Type.Command) : H4Type.Acl;
      records.push({ ...base, direction: received ? 'received' : 'sent', packet: withType(type, data) });
    } else {
      const m = MONITOR_OPCODES[flags & 0xffff];
      if (!m) {
        skipped++;
        continue;
      }
      records.push({ ...base, direction: m[1], packet: withType(m[0], data), controllerIndex: flags >>> 16 });
    }
  }
  return result();
}

function withType(type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out[0] = type;
  out.set(data, 1);
  return out;
}
