/**
 * btsnoop captures (ours from `--btsnoop FILE`, Android's `btsnoop_hci.log` and `btsnooz_hci.log`,
 * `btmon -w` files) as packets, read incrementally (see chunked.ts).
 *
 * Format (RFC 1761 "snoop" style, big-endian; the same as src/hci/btsnoop.ts writes): a 16-byte
 * header (`btsnoop\0`, version 1, datalink type), then records of 24 header bytes (original
 * length, included length, flags, cumulative drops, timestamp in microseconds since 0000-01-01 AD)
 * followed by the included bytes. Datalink 1002 (H4) records start with the H:4 type byte; 1001
 * (H1) takes the type from the flags (bit 0 received, bit 1 command/event); 2001 (Linux monitor,
 * BlueZ doc/btsnoop.txt) from the monitor opcode in the flags' low 16 bits.
 */
import { BtsnoopDatalink, BtsnoopError, MONITOR_OPCODES, readBtsnoop } from '../../hci/btsnoop.js';
import { H4Type } from '../../hci/h4.js';
import { CaptureFormatError, type Capture, type CapturedPacket, type HciDirection } from '../capture.js';
import { ChunkedReader, readAll, type ChunkedReaderOptions } from './chunked.js';

const BTSNOOP_MAGIC = [0x62, 0x74, 0x73, 0x6e, 0x6f, 0x6f, 0x70, 0x00];
const FILE_HEADER = 16;
const RECORD_HEADER = 24;
/** Largest HCI packet with its H:4 byte (an ACL packet: 4 header bytes + 65535). Longer is corruption. */
const MAX_PACKET = 1 + 4 + 0xffff;
/** 0x00dcddb30f2f8000 µs (0000-01-01 to 1970-01-01) as two 32-bit words, so the arithmetic stays exact. */
const EPOCH_HI = 0x00dcddb3;
const EPOCH_LO = 0x0f2f8000;

/** Whether the bytes start with the btsnoop magic `btsnoop\0`. */
export function looksLikeBtsnoop(bytes: Uint8Array): boolean {
  if (bytes.length < BTSNOOP_MAGIC.length) return false;
  for (let i = 0; i < BTSNOOP_MAGIC.length; i++) if (bytes[i] !== BTSNOOP_MAGIC[i]) return false;
  return true;
}

const DATALINK_NAMES: Record<number, string> = {
  [BtsnoopDatalink.H1]: 'H1',
  [BtsnoopDatalink.H4]: 'H4',
  [BtsnoopDatalink.Monitor]: 'Linux monitor',
};

/** Reads a btsnoop file incrementally; see the module comment. */
export class BtsnoopReader extends ChunkedReader {
  readonly format = 'btsnoop' as const;
  private datalink: number | undefined;
  private version = 1;
  private index = 0;
  private cut = 0;

  constructor(opts: ChunkedReaderOptions, onPacket: (p: CapturedPacket) => void) {
    super(opts, onPacket);
  }

  description(): string {
    return `btsnoop version ${this.version}, datalink ${this.datalink ?? '?'} (${DATALINK_NAMES[this.datalink ?? 0] ?? '?'})`;
  }

  protected parse(buf: Uint8Array, base: number, final: boolean): number {
    let off = 0;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (this.datalink === undefined) {
      if (buf.length < FILE_HEADER && !final && (buf.length < BTSNOOP_MAGIC.length || looksLikeBtsnoop(buf))) return 0;
      if (buf.length < FILE_HEADER || !looksLikeBtsnoop(buf) || dv.getUint32(8) !== 1 || !(dv.getUint32(12) in DATALINK_NAMES)) {
        // The whole-file reader has the messages for a bad header (magic hints, datalink names).
        try {
          readBtsnoop(buf.subarray(0, Math.min(buf.length, 1 << 20)));
        } catch (err) {
          if (err instanceof BtsnoopError) throw new CaptureFormatError(`${this.name}: ${err.message}`, { offset: err.offset }, { cause: err });
          throw err;
        }
        throw new CaptureFormatError(`${this.name}: not a btsnoop file`, { offset: 0 });
      }
      this.version = dv.getUint32(8);
      this.datalink = dv.getUint32(12);
      off = FILE_HEADER;
    }
    const datalink = this.datalink;
    while (buf.length - off >= RECORD_HEADER) {
      const originalLength = dv.getUint32(off);
      const included = dv.getUint32(off + 4);
      if (included > originalLength) {
        throw new CaptureFormatError(`${this.name}: corrupt btsnoop record ${this.index} at offset ${base + off}: included length ${included} exceeds original length ${originalLength}`, { offset: base + off });
      }
      if (included > MAX_PACKET) {
        throw new CaptureFormatError(`${this.name}: corrupt btsnoop record ${this.index} at offset ${base + off}: included length ${included} is longer than any HCI packet`, { offset: base + off });
      }
      if (buf.length - off - RECORD_HEADER < included) break;
      const flags = dv.getUint32(off + 8);
      const time = ((dv.getUint32(off + 16) - EPOCH_HI) * 0x1_0000_0000 + (dv.getUint32(off + 20) - EPOCH_LO)) / 1000;
      const data = buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + included);
      const number = ++this.index;
      const truncated = included < originalLength;
      let h4: Uint8Array | undefined;
      let direction: HciDirection;
      if (datalink === BtsnoopDatalink.H4) {
        if (included === 0) throw new CaptureFormatError(`${this.name}: corrupt btsnoop record ${number - 1} at offset ${base + off}: empty packet, no H:4 type byte`, { offset: base + off });
        h4 = data.slice();
        direction = flags & 1 ? 'controller->host' : 'host->controller';
      } else if (datalink === BtsnoopDatalink.H1) {
        const received = (flags & 1) !== 0;
        h4 = withType(flags & 2 ? (received ? H4Type.Event : H4Type.Command) : H4Type.Acl, data);
        direction = received ? 'controller->host' : 'host->controller';
      } else {
        const m = MONITOR_OPCODES[flags & 0xffff];
        if (m) h4 = withType(m[0], data);
        direction = m?.[1] === 'received' ? 'controller->host' : 'host->controller';
      }
      off += RECORD_HEADER + included;
      if (!h4) {
        this.skipped++;
        continue;
      }
      if (truncated) this.cut++;
      this.emit(truncated ? { number, time, direction, h4, truncated } : { number, time, direction, h4 });
    }
    return off;
  }

  protected tail(rest: Uint8Array, offset: number): void {
    if (this.datalink === undefined) return;
    const message =
      rest.length < RECORD_HEADER
        ? `truncated btsnoop record ${this.index} at offset ${offset}: its header needs ${RECORD_HEADER} bytes, ${rest.length} left`
        : `truncated btsnoop record ${this.index} at offset ${offset}: ${new DataView(rest.buffer, rest.byteOffset).getUint32(4)} packet byte(s) announced, ${rest.length - RECORD_HEADER} left`;
    this.truncatedTail(message, offset);
  }

  override end() {
    const summary = super.end();
    if (this.datalink === undefined) throw new CaptureFormatError(`${this.name}: not a btsnoop file: 0 byte(s), the file header alone is ${FILE_HEADER}`, { offset: 0 });
    if (this.cut > 0) summary.warnings.push(`${this.cut} packet(s) were stored cut short (a filtered snoop log?): their payloads are not decoded`);
    return summary;
  }
}

function withType(type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out[0] = type;
  out.set(data, 1);
  return out;
}

/**
 * Reads a whole btsnoop file in memory. Damage is a {@link CaptureFormatError} with the byte
 * offset; a last record cut short is dropped with a warning (with `strict`, an error).
 */
export function readBtsnoopCapture(bytes: Uint8Array, name = 'capture', strict = false): Capture {
  const packets: CapturedPacket[] = [];
  const r = new BtsnoopReader({ name, strict }, (p) => packets.push(p));
  const s = readAll(r, bytes);
  return { format: s.format, description: s.description, packets, skipped: s.skipped, warnings: s.warnings };
}
