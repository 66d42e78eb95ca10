/**
 * The files people actually hand over, opened as captures, streamed:
 *
 * - a capture file (btsnoop, PacketLogger, our JSON log);
 * - an Android bug report zip: the HCI logs under FS/data/misc/bluetooth/logs/ (btsnoop_hci.log,
 *   .last, the .filtered variants, and btsnooz_hci.log, which newer stacks write when the full log is
 *   off), or when there is none the BTSNOOP_LOG_SUMMARY in the report's main text;
 * - an Android bug report text (.txt) with its BTSNOOP_LOG_SUMMARY;
 * - an iOS sysdiagnose .tar.gz: every .pklg inside (logs/Bluetooth/ keeps the current and rotated
 *   PacketLogger files).
 *
 * Zip: yauzl (central directory, zip64, data descriptors, entry streams through zlib, CRC checked).
 * Tar: src/diagnose/tar.ts over node's gunzip.
 */
import { createReadStream } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { CaptureFormatError, type CaptureFormat, type CapturedPacket } from './capture.js';
import { openErrorText, readCaptureStream, type CaptureSummary } from './formats/index.js';
import { BtsnoozScanner, decodeBtsnooz, hasBtsnoozSection } from './formats/btsnooz.js';
import { readTar } from './tar.js';
import { TimelineBuilder, type Timeline } from './timeline.js';
import { diagnose, type Report } from './diagnose.js';

/** One capture found in an input: a file, or a log inside an archive. */
export interface CaptureInput {
  /** For the report: the path, or `archive!entry`. */
  readonly name: string;
  /** What it is, when it came out of an archive or a bug report text. */
  readonly origin?: string;
  /**
   * Reads it, handing each packet over as it is read (nothing is kept here). Throws
   * {@link CaptureFormatError}.
   */
  read(onPacket: (p: CapturedPacket) => void): Promise<CaptureSummary>;
}

export interface OpenInputOptions {
  readonly format?: CaptureFormat;
  readonly strict?: boolean;
}

export type InputKind = 'capture' | 'zip' | 'tar.gz' | 'bugreport-text';

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const EMPTY_ZIP_MAGIC = [0x50, 0x4b, 0x05, 0x06];
const GZIP_MAGIC = [0x1f, 0x8b];

function startsWith(b: Uint8Array, m: readonly number[]): boolean {
  return m.every((v, i) => b[i] === v);
}

/** An archive entry's name for messages and reports: control characters (terminal escapes) shown as '?'. */
function entryName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** An HCI log inside an Android bug report. */
const ANDROID_HCI_LOG = /(^|\/)btsnoo[pz]_hci\.log(\.filtered)?(\.last)?$/;

/** Newest first: the current log before `.last`, the full log before the summary file. */
function androidLogRank(name: string): number {
  return (name.endsWith('.last') ? 10 : 0) + (/btsnooz_/.test(name) ? 2 : 0) + (name.includes('/bluetooth/logs/') ? 0 : 1);
}

async function head(path: string, n: number): Promise<Uint8Array> {
  let fh;
  try {
    fh = await openFile(path, 'r');
  } catch (err) {
    throw new CaptureFormatError(openErrorText(path, err), {}, { cause: err });
  }
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    throw new CaptureFormatError(openErrorText(path, err), {}, { cause: err });
  } finally {
    await fh.close();
  }
}

/** What kind of input a file is, from its first bytes (and its name for a bug report text). */
export async function inputKind(path: string, format?: CaptureFormat): Promise<InputKind> {
  const h = await head(path, 1 << 20);
  if (format) return 'capture';
  if (startsWith(h, ZIP_MAGIC) || startsWith(h, EMPTY_ZIP_MAGIC)) return 'zip';
  if (startsWith(h, GZIP_MAGIC)) return 'tar.gz';
  // A bug report text starts with dumpstate's banner; its BTSNOOP_LOG_SUMMARY may be far in.
  if (h[0] !== 0x7b && (hasBtsnoozSection(h) || Buffer.from(h.subarray(0, 4096)).toString('latin1').includes('== dumpstate:'))) return 'bugreport-text';
  return 'capture';
}

function fileChunks(path: string): AsyncIterable<Uint8Array> {
  return createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>;
}

/** Wraps errors of a decompressing stream (zip entry, gunzip) as capture errors naming the input. */
async function* guarded(chunks: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const c of chunks) yield c;
  } catch (err) {
    if (err instanceof CaptureFormatError) throw err;
    throw new CaptureFormatError(`${what}: ${(err as Error).message}`, {}, { cause: err });
  }
}

function summaryInput(name: string, origin: string, base64: string): CaptureInput {
  return {
    name,
    origin,
    read: (onPacket) => {
      const c = decodeBtsnooz(base64, name);
      for (const p of c.packets) onPacket(p);
      return Promise.resolve({ format: c.format, description: c.description, skipped: c.skipped, warnings: c.warnings, packets: c.packets.length });
    },
  };
}

async function scanText(chunks: AsyncIterable<Uint8Array>): Promise<BtsnoozScanner> {
  const s = new BtsnoozScanner();
  for await (const c of chunks) s.push(c);
  s.end();
  return s;
}

function noSummary(name: string, scanner: BtsnoozScanner): CaptureFormatError {
  return new CaptureFormatError(
    `${name}: no HCI log in this bug report${scanner.unterminated ? ' (its BTSNOOP_LOG_SUMMARY section is cut short)' : ''}: ` +
      'on the phone enable Developer options > Enable Bluetooth HCI snoop log, turn Bluetooth off and on, reproduce the problem, and take a new bug report',
    {},
  );
}

// ---- zip (yauzl) ----

interface ZipEntryInfo {
  readonly fileName: string;
  readonly uncompressedSize: number;
  readonly entry: yauzl.Entry;
}

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false }, (err, zip) => {
      if (err || !zip) reject(new CaptureFormatError(`${path}: not a readable zip archive (${err?.message ?? 'no archive'})`, {}, { cause: err }));
      else resolve(zip);
    });
  });
}

function zipEntries(zip: yauzl.ZipFile, path: string): Promise<ZipEntryInfo[]> {
  return new Promise((resolve, reject) => {
    const out: ZipEntryInfo[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      out.push({ fileName: entry.fileName, uncompressedSize: entry.uncompressedSize, entry });
      zip.readEntry();
    });
    zip.on('end', () => resolve(out));
    zip.on('error', (err: Error) => reject(new CaptureFormatError(`${path}: damaged zip archive (${err.message})`, {}, { cause: err })));
    zip.readEntry();
  });
}

function zipEntryChunks(zip: yauzl.ZipFile, e: ZipEntryInfo, label: string): AsyncIterable<Uint8Array> {
  const opened = new Promise<Readable>((resolve, reject) => {
    zip.openReadStream(e.entry, (err, stream) => {
      if (err || !stream) reject(new CaptureFormatError(`${label}: cannot read the entry (${err?.message ?? 'no stream'})`, {}, { cause: err }));
      else resolve(stream);
    });
  });
  return guarded(
    (async function* () {
      yield* (await opened) as AsyncIterable<Uint8Array>;
    })(),
    label,
  );
}

/** The main text of a bug report zip: named by main_entry.txt, else the largest bugreport*.txt at the root. */
async function mainText(zip: yauzl.ZipFile, entries: readonly ZipEntryInfo[], label: string): Promise<ZipEntryInfo | undefined> {
  const pointer = entries.find((e) => e.fileName === 'main_entry.txt');
  if (pointer && pointer.uncompressedSize < 4096) {
    const parts: Uint8Array[] = [];
    for await (const c of zipEntryChunks(zip, pointer, `${label}!main_entry.txt`)) parts.push(c);
    const named = Buffer.concat(parts).toString('utf8').trim();
    const hit = entries.find((e) => e.fileName === named);
    if (hit) return hit;
  }
  const texts = entries.filter((e) => !e.fileName.includes('/') && /\.txt$/i.test(e.fileName) && e.fileName !== 'main_entry.txt');
  texts.sort((a, b) => Number(/^bugreport/i.test(b.fileName)) - Number(/^bugreport/i.test(a.fileName)) || b.uncompressedSize - a.uncompressedSize);
  return texts[0];
}

async function zipInputs(path: string, opts: OpenInputOptions, handle: (input: CaptureInput) => Promise<void>): Promise<number> {
  const zip = await openZip(path);
  try {
    const entries = await zipEntries(zip, path);
    const logs = entries.filter((e) => ANDROID_HCI_LOG.test(e.fileName) && !e.fileName.endsWith('/'));
    logs.sort((a, b) => androidLogRank(a.fileName) - androidLogRank(b.fileName) || a.fileName.localeCompare(b.fileName));
    for (const e of logs) {
      const name = `${path}!${entryName(e.fileName)}`;
      await handle({
        name,
        origin: `Android bug report, ${entryName(e.fileName)}`,
        read: (onPacket) => readCaptureStream(zipEntryChunks(zip, e, name), { fileName: name, ...(opts.format ? { format: opts.format } : {}), ...(opts.strict ? { strict: true } : {}) }, onPacket),
      });
    }
    if (logs.length > 0) return logs.length;
    const text = await mainText(zip, entries, path);
    if (!text) throw new CaptureFormatError(`${path}: a zip archive without an HCI log (FS/data/misc/bluetooth/logs/btsnoop_hci.log) or a bug report text: is it an Android bug report?`, {});
    const scanner = await scanText(zipEntryChunks(zip, text, `${path}!${text.fileName}`));
    const section = scanner.sections[0];
    if (section === undefined) throw noSummary(path, scanner);
    await handle(summaryInput(`${path}!${entryName(text.fileName)}`, `Android bug report without a full HCI log: the BTSNOOP_LOG_SUMMARY in ${entryName(text.fileName)}`, section));
    return 1;
  } finally {
    zip.close();
  }
}

// ---- tar.gz ----

async function tarInputs(path: string, opts: OpenInputOptions, handle: (input: CaptureInput) => Promise<void>): Promise<number> {
  const gunzip = createReadStream(path, { highWaterMark: 1 << 20 }).pipe(createGunzip());
  let n = 0;
  for await (const entry of readTar(guarded(gunzip as AsyncIterable<Uint8Array>, `${path} (gzip)`), path)) {
    if (!/\.pklg$/i.test(entry.name) || entry.type === '5' || entry.type === '2') continue;
    const name = `${path}!${entryName(entry.name)}`;
    n++;
    await handle({
      name,
      origin: `iOS sysdiagnose, ${entryName(entry.name)}`,
      read: (onPacket) => readCaptureStream(entry.data, { fileName: name, format: opts.format ?? 'pklg', ...(opts.strict ? { strict: true } : {}) }, onPacket),
    });
  }
  if (n === 0) {
    throw new CaptureFormatError(
      `${path}: no PacketLogger (.pklg) file in this archive: install Apple's Bluetooth logging profile on the iPhone, reproduce the problem, then take a sysdiagnose (both volume buttons and the side button)`,
      {},
    );
  }
  return n;
}

/**
 * Calls `handle` for every capture in the input file, one after the other (an archive is read
 * once, front to back: `handle` must read its capture before returning). Returns how many there
 * were and what kind the input is. Throws {@link CaptureFormatError}.
 */
export async function forEachCapture(path: string, opts: OpenInputOptions, handle: (input: CaptureInput) => Promise<void>): Promise<{ kind: InputKind; count: number }> {
  const kind = await inputKind(path, opts.format);
  switch (kind) {
    case 'zip':
      return { kind, count: await zipInputs(path, opts, handle) };
    case 'tar.gz':
      return { kind, count: await tarInputs(path, opts, handle) };
    case 'bugreport-text': {
      const scanner = await scanText(guarded(fileChunks(path), path));
      const section = scanner.sections[0];
      if (section === undefined) throw noSummary(path, scanner);
      await handle(summaryInput(path, 'Android bug report text: its BTSNOOP_LOG_SUMMARY', section));
      return { kind, count: 1 };
    }
    case 'capture':
      await handle({
        name: path,
        read: (onPacket) =>
          readCaptureStream(guarded(fileChunks(path), path), { fileName: path, ...(opts.format ? { format: opts.format } : {}), ...(opts.strict ? { strict: true } : {}) }, onPacket),
      });
      return { kind, count: 1 };
  }
}

/** One capture of an input, read and diagnosed. */
export interface DiagnosedCapture {
  readonly name: string;
  readonly timeline: Timeline;
  readonly report: Report;
}

/**
 * Reads one capture straight into the timeline (packets are decoded as they are read and not
 * kept: the timeline keeps only what the rules need) and diagnoses it.
 */
export async function diagnoseInput(input: CaptureInput): Promise<DiagnosedCapture> {
  const builder = new TimelineBuilder();
  const s = await input.read((p) => builder.push(p));
  const timeline = builder.timeline();
  const description = input.origin ? `${input.origin}; ${s.description}` : s.description;
  const report = diagnose(timeline, { source: { file: input.name, format: s.format, description, skipped: s.skipped, warnings: s.warnings } });
  return { name: input.name, timeline, report };
}
