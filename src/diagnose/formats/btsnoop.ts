/**
 * btsnoop captures (ours from `--btsnoop FILE`, Android's `btsnoop_hci.log`, `btmon -w` files) as a
 * {@link Capture}, through the reader in src/hci/btsnoop.ts.
 */
import { BtsnoopDatalink, BtsnoopError, readBtsnoop } from '../../hci/btsnoop.js';
import { CaptureFormatError, type Capture, type CapturedPacket } from '../capture.js';

const BTSNOOP_MAGIC = [0x62, 0x74, 0x73, 0x6e, 0x6f, 0x6f, 0x70, 0x00];

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

/**
 * Reads a btsnoop file. Damage is a {@link CaptureFormatError} with the byte offset; with `lenient`,
 * a last record cut short (a capture interrupted mid-write) is dropped with a warning instead.
 */
export function readBtsnoopCapture(bytes: Uint8Array, name = 'capture', lenient = false): Capture {
  let file;
  try {
    file = readBtsnoop(bytes, { tolerateTruncatedTail: lenient });
  } catch (err) {
    if (err instanceof BtsnoopError) {
      const hint = /truncated/.test(err.message) && !lenient ? ' (a capture still being written or cut short? --lenient diagnoses the packets before it)' : '';
      throw new CaptureFormatError(`${name}: ${err.message}${hint}`, { offset: err.offset }, { cause: err });
    }
    throw err;
  }
  const packets: CapturedPacket[] = file.records.map((r) => ({
    number: r.index + 1,
    time: r.timestampMs,
    direction: r.direction === 'sent' ? 'host->controller' : 'controller->host',
    h4: r.packet,
    ...(r.truncated ? { truncated: true } : {}),
  }));
  const warnings: string[] = [];
  if (file.truncatedTail) warnings.push(`${file.truncatedTail.message} (ignored: the capture was probably interrupted)`);
  const cut = packets.filter((p) => p.truncated).length;
  if (cut > 0) warnings.push(`${cut} packet(s) were stored cut short (a filtered snoop log?): their payloads are not decoded`);
  return {
    format: 'btsnoop',
    description: `btsnoop version ${file.version}, datalink ${file.datalink} (${DATALINK_NAMES[file.datalink] ?? '?'})`,
    packets,
    skipped: file.skipped,
    warnings,
  };
}
