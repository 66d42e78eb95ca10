/**
 * Capture format detection and reading: btsnoop by its magic, JSON logs by their first character,
 * PacketLogger by its records (it has no magic), with the file extension as a tie-breaker.
 */
import { readFile } from 'node:fs/promises';
import { CaptureFormatError, type Capture, type CaptureFormat } from '../capture.js';
import { looksLikeBtsnoop, readBtsnoopCapture } from './btsnoop.js';
import { looksLikePklg, readPklg } from './pklg.js';
import { looksLikeJsonLog, readPinoLog } from './pino.js';

export { readBtsnoopCapture } from './btsnoop.js';
export { readPklg, encodePklg, PklgType, type PklgRecordInput, type PklgEndian } from './pklg.js';
export { readPinoLog, hciLogFields, HCI_LOG_MSG, type HciLogFields } from './pino.js';

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
  /** Drop a cut-short last record with a warning instead of failing. */
  lenient?: boolean;
}

/** Reads capture bytes in the given or detected format. Throws {@link CaptureFormatError}. */
export function readCapture(bytes: Uint8Array, opts: ReadCaptureOptions = {}): Capture {
  const name = opts.fileName ?? 'capture';
  const format = opts.format ?? detectFormat(bytes, opts.fileName);
  switch (format) {
    case 'btsnoop':
      return readBtsnoopCapture(bytes, name, opts.lenient ?? false);
    case 'pklg':
      return readPklg(bytes, name, opts.lenient ?? false);
    case 'json':
      return readPinoLog(bytes, name);
    case undefined: {
      const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
      throw new CaptureFormatError(
        `${name}: unrecognised capture format at offset 0 (first bytes: ${head || 'none'}): not btsnoop (no "btsnoop\\0" magic), ` +
          `not a JSON log (does not start with "{"), and its first record does not parse as Apple PacketLogger. ` +
          `Supported: btsnoop (wearable-host --btsnoop, Android btsnoop_hci.log), PacketLogger .pklg, wearable-host's JSON log; --format forces one`,
        { offset: 0 },
      );
    }
  }
}

/** Reads a capture file from disk. A missing or unreadable file is a {@link CaptureFormatError} too. */
export async function readCaptureFile(path: string, opts: Omit<ReadCaptureOptions, 'fileName'> = {}): Promise<Capture> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new CaptureFormatError(`cannot read capture ${path}: ${why}`, {}, { cause: err });
  }
  return readCapture(bytes, { ...opts, fileName: path });
}
