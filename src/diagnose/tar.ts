/**
 * A streaming reader for tar archives (an iOS sysdiagnose is a .tar.gz written by Apple's bsdtar):
 * each entry's name and its data as a stream of chunks, in archive order, without keeping the
 * archive. Only what finding files needs: ustar headers (name with prefix, octal or base-256 size,
 * type flag, checksum), pax extended headers ('x': path and size; 'g' ignored) and GNU long names
 * ('L'). Sources: POSIX.1-2008 pax "ustar Interchange Format" and "pax Extended Header"; GNU tar
 * manual "Basic Tar Format".
 */
import { CaptureFormatError } from './capture.js';

const BLOCK = 512;

export interface TarEntry {
  /** Path inside the archive. */
  readonly name: string;
  readonly size: number;
  /** '0' regular file, '5' directory, '2' symlink, ... */
  readonly type: string;
  /**
   * The data. Consume it (or not at all) before asking for the next entry: the archive is one
   * stream, and unread data is skipped.
   */
  readonly data: AsyncIterable<Uint8Array>;
}

/** Pulls exact byte counts out of a stream of chunks. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private have = 0;
  private done = false;
  offset = 0;
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(n: number): Promise<void> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length) {
        this.chunks.push(r.value);
        this.have += r.value.length;
      }
    }
  }

  /** Exactly n bytes, or fewer at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    await this.fill(n);
    const take = Math.min(n, this.have);
    const out = new Uint8Array(take);
    let o = 0;
    while (o < take) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length, take - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.have -= take;
    this.offset += take;
    return out;
  }

  /** Up to n bytes as they come, in pieces. */
  async *stream(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.have === 0) await this.fill(1);
      if (this.have === 0) return;
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length, left);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.have -= k;
      this.offset += k;
      left -= k;
      yield c.subarray(0, k);
    }
  }
}

function str(b: Uint8Array, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return Buffer.from(s.subarray(0, nul < 0 ? s.length : nul)).toString('utf8');
}

function num(b: Uint8Array, off: number, len: number): number {
  if ((b[off] as number) & 0x80) {
    // base-256 (GNU/star) for sizes of 8 GiB and more
    let v = (b[off] as number) & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + (b[off + i] as number);
    return v;
  }
  const t = str(b, off, len).trim();
  return t === '' ? 0 : parseInt(t, 8);
}

function checksumOk(h: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
  return num(h, 148, 8) === sum;
}

function paxRecords(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const text = Buffer.from(data).toString('utf8');
  let i = 0;
  while (i < text.length) {
    const sp = text.indexOf(' ', i);
    if (sp < 0) break;
    const len = parseInt(text.slice(i, sp), 10);
    if (!(len > 0)) break;
    const rec = text.slice(sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/**
 * The entries of a tar stream (already decompressed). Throws {@link CaptureFormatError} with the
 * byte offset on a header whose checksum is wrong (not a tar archive, or damaged) or data cut short.
 */
export async function* readTar(chunks: AsyncIterable<Uint8Array>, name = 'archive'): AsyncGenerator<TarEntry> {
  const q = new ByteQueue(chunks[Symbol.asyncIterator]());
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  for (;;) {
    const at = q.offset;
    const h = await q.read(BLOCK);
    if (h.length === 0) return;
    if (h.length < BLOCK) throw new CaptureFormatError(`${name}: tar archive cut short at offset ${at} (a header needs 512 bytes, ${h.length} left)`, { offset: at });
    if (h.every((b) => b === 0)) return; // end-of-archive marker
    if (!checksumOk(h)) {
      throw new CaptureFormatError(`${name}: not a tar archive, or damaged: the header at offset ${at} has a wrong checksum`, { offset: at });
    }
    const type = String.fromCharCode(h[156] || 0x30);
    let size = num(h, 124, 12);
    const prefix = str(h, 257, 6) === 'ustar' ? str(h, 345, 155) : '';
    let path = prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100);
    if (type === 'x' || type === 'g' || type === 'L') {
      const data = await q.read(size);
      if (data.length < size) throw new CaptureFormatError(`${name}: tar archive cut short in the entry at offset ${at}`, { offset: at });
      await q.read((BLOCK - (size % BLOCK)) % BLOCK);
      if (type === 'x') pax = paxRecords(data);
      if (type === 'L') longName = str(data, 0, data.length);
      continue;
    }
    if (pax?.has('path')) path = pax.get('path') as string;
    else if (longName !== undefined) path = longName;
    if (pax?.has('size')) size = Number(pax.get('size'));
    pax = undefined;
    longName = undefined;
    const body = type === '0' || type === '\0' || type === '7' ? size : type === '5' || type === '2' || type === '1' ? 0 : size;
    let consumed = 0;
    const data: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: async function* () {
        for await (const c of q.stream(body - consumed)) {
          consumed += c.length;
          yield c;
        }
      },
    };
    yield { name: path, size: body, type, data };
    // Skip what the consumer left, then the padding.
    while (consumed < body) {
      const skip = await q.read(Math.min(body - consumed, 1 << 20));
      if (skip.length === 0) throw new CaptureFormatError(`${name}: tar archive cut short in ${path} (${body - consumed} of ${body} bytes missing)`, { offset: q.offset });
      consumed += skip.length;
    }
    if (consumed < body) throw new CaptureFormatError(`${name}: tar archive cut short in ${path}`, { offset: q.offset });
    await q.read((BLOCK - (body % BLOCK)) % BLOCK);
  }
}
