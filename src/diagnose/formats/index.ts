/**
 * Capture format detection and reading: btsnoop by its magic, JSON logs by their first character,
 * PacketLogger by its records (it has no magic), with the file extension as a tie-breaker.
 */
import { readFile } from 'node:fs/promises';
import { CaptureFormatError, type Capture, type CaptureFormat, type CapturedPacket } from '../capture.js';
import { BtsnoopReader, looksLikeBtsnoop } from './btsnoop.js';
import { looksLikePklg, PklgReader } from './pklg.js';
import { looksLikeJsonLog, PinoLogReader } from './pino.js';
import { readAll, type ChunkedReader, type CaptureSummary } from './chunked.js';

export { readBtsnoopCapture, BtsnoopReader } from './btsnoop.js';
export { ChunkedReader, type CaptureSummary } from './chunked.js';
export { readPklg, PklgReader, encodePklg, PklgType, type PklgRecordInput, type PklgEndian } from './pklg.js';
export { readPinoLog, PinoLogReader, hciLogFields, HCI_LOG_MSG, type HciLogFields } from './pino.js';

export const CAPTURE_FORMATS: readonly CaptureFormat[] = ['btsnoop', 'pklg', 'json'];

/** The format of a capture, from its bytes (and its name's extension when the bytes are ambiguous). */
export function detectFormat(bytes: Uint8Array, fileName?: string): CaptureFormat | undefined {
  if (looksLikeBtsnoop(bytes)) return 'btsnoop';
  if (looksLikeJsonLog(bytes)) return 'json';
  const ext = fileName?.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1];
  if (ext === 'pklg' || looksLikePklg(bytes)) return 'pklg';
  return undefined;
}

export interface ReadCaptureOptions {
  /** Force a format instead of detecting it. */
  format?: CaptureFormat;
  /** Used in messages and for the extension hint. */
  fileName?: string;
  /**
   * A cut-short last record is an error. Default: it is dropped with a warning and the packets
   * before it are read (a capture copied while it was being written always ends mid-record).
   */
  strict?: boolean;
}

function unrecognised(name: string, bytes: Uint8Array): CaptureFormatError {
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return new CaptureFormatError(
    `${name}: unrecognised capture format at offset 0 (first bytes: ${head || 'none'}): not btsnoop (no "btsnoop\\0" magic), ` +
      `not a JSON log (does not start with "{"), and its first record does not parse as Apple PacketLogger. ` +
      `Supported: btsnoop (wearable-host --btsnoop, Android btsnoop_hci.log), PacketLogger .pklg, wearable-host's JSON log, ` +
      `an Android bug report (.zip or its .txt) and an iOS sysdiagnose (.tar.gz); --format forces one`,
    { offset: 0 },
  );
}

/** The incremental reader for a format (see chunked.ts). */
export function createReader(format: CaptureFormat, opts: { name: string; strict?: boolean }, onPacket: (p: CapturedPacket) => void): ChunkedReader {
  switch (format) {
    case 'btsnoop':
      return new BtsnoopReader(opts, onPacket);
    case 'pklg':
      return new PklgReader(opts, onPacket);
    case 'json':
      return new PinoLogReader(opts, onPacket);
  }
}

/** Reads capture bytes in the given or detected format. Throws {@link CaptureFormatError}. */
export function readCapture(bytes: Uint8Array, opts: ReadCaptureOptions = {}): Capture {
  const name = opts.fileName ?? 'capture';
  const format = opts.format ?? detectFormat(bytes, opts.fileName);
  if (format === undefined) throw unrecognised(name, bytes);
  const packets: CapturedPacket[] = [];
  const s = readAll(createReader(format, { name, ...(opts.strict ? { strict: true } : {}) }, (p) => packets.push(p)), bytes);
  return { format: s.format, description: s.description, packets, skipped: s.skipped, warnings: s.warnings };
}

/** Bytes looked at to detect the format of a stream (PacketLogger is recognised by its first records). */
const DETECT_HEAD = 512 * 1024;

/**
 * Reads a capture from a stream of chunks without keeping it: each packet goes to `onPacket` as
 * soon as it is complete, so memory stays at one chunk plus what the caller keeps. Throws
 * {@link CaptureFormatError}.
 */
export async function readCaptureStream(
  chunks: AsyncIterable<Uint8Array>,
  opts: ReadCaptureOptions,
  onPacket: (p: CapturedPacket) => void,
): Promise<CaptureSummary> {
  const name = opts.fileName ?? 'capture';
  let reader: ChunkedReader | undefined = opts.format ? createReader(opts.format, { name, ...(opts.strict ? { strict: true } : {}) }, onPacket) : undefined;
  const head: Uint8Array[] = [];
  let headBytes = 0;
  const start = (): ChunkedReader => {
    const bytes = Buffer.concat(head);
    const format = detectFormat(bytes, opts.fileName);
    if (format === undefined) throw unrecognised(name, bytes);
    const r = createReader(format, { name, ...(opts.strict ? { strict: true } : {}) }, onPacket);
    r.push(bytes);
    head.length = 0;
    return r;
  };
  for await (const chunk of chunks) {
    if (reader) {
      reader.push(chunk);
      continue;
    }
    head.push(chunk);
    headBytes += chunk.length;
    if (headBytes >= DETECT_HEAD) reader = start();
  }
  reader ??= start();
  return reader.end();
}

/** Why a file cannot be opened, in words. */
export function openErrorText(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
  return `cannot read capture ${path}: ${why}`;
}

/** Reads a capture file from disk. A missing or unreadable file is a {@link CaptureFormatError} too. */
export async function readCaptureFile(path: string, opts: Omit<ReadCaptureOptions, 'fileName'> = {}): Promise<Capture> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new CaptureFormatError(openErrorText(path, err), {}, { cause: err });
  }
  return readCapture(bytes, { ...opts, fileName: path });
}
