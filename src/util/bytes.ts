/**
 * Byte helpers. Everything on the wire is little-endian; these helpers never reorder
 * bytes unless their name says so.
 */

/** Raised by {@link ByteReader} when a PDU is shorter than its fields need. */
export class ShortBufferError extends Error {
  constructor(
    readonly needed: number,
    readonly available: number,
  ) {
    super(`buffer too short: needed ${needed} more byte(s), ${available} available`);
    this.name = 'ShortBufferError';
  }
}

/** Lower-case hex, no separators: `0a0b`. */
export function toHex(data: Uint8Array, sep = ''): string {
  let s = '';
  for (let i = 0; i < data.length; i++) {
    if (i > 0 && sep) s += sep;
    s += (data[i] as number).toString(16).padStart(2, '0');
  }
  return s;
}

/** Parses hex with optional spaces, colons or dashes between bytes. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/[\s:_-]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new Error(`not a hex string: ${JSON.stringify(hex)}`);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A copy with the byte order reversed (crypto functions take big-endian). */
export function reversed(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[data.length - 1 - i] as number;
  return out;
}

/** Sequential little-endian reader with bounds checks; throws {@link ShortBufferError}. */
export class ByteReader {
  private off = 0;
  constructor(readonly data: Uint8Array) {}

  get offset(): number {
    return this.off;
  }
  get remaining(): number {
    return this.data.length - this.off;
  }
  private need(n: number): void {
    if (this.remaining < n) throw new ShortBufferError(n, this.remaining);
  }
  u8(): number {
    this.need(1);
    return this.data[this.off++] as number;
  }
  i8(): number {
    const v = this.u8();
    return v > 127 ? v - 256 : v;
  }
  u16(): number {
    this.need(2);
    const v = (this.data[this.off] as number) | ((this.data[this.off + 1] as number) << 8);
    this.off += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const d = this.data;
    const o = this.off;
    this.off += 3;
    return (d[o] as number) | ((d[o + 1] as number) << 8) | ((d[o + 2] as number) << 16);
  }
  u32(): number {
    this.need(4);
    const d = this.data;
    const o = this.off;
    this.off += 4;
    return ((d[o] as number) | ((d[o + 1] as number) << 8) | ((d[o + 2] as number) << 16)) + (d[o + 3] as number) * 0x1000000;
  }
  /** 64-bit little-endian as bigint. */
  u64(): bigint {
    this.need(8);
    let v = 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(this.data[this.off + i] as number);
    this.off += 8;
    return v;
  }
  /** A copy of the next n bytes. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.data.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }
  /** A copy of everything left. */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
}

/** Growable little-endian writer. */
export class ByteWriter {
  private buf: Uint8Array;
  private off = 0;
  constructor(initial = 32) {
    this.buf = new Uint8Array(initial);
  }
  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.off));
    this.buf = next;
  }
  get length(): number {
    return this.off;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.off++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf[this.off++] = v & 0xff;
    this.buf[this.off++] = (v >>> 8) & 0xff;
    return this;
  }
  u24(v: number): this {
    this.ensure(3);
    this.buf[this.off++] = v & 0xff;
    this.buf[this.off++] = (v >>> 8) & 0xff;
    this.buf[this.off++] = (v >>> 16) & 0xff;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf[this.off++] = v & 0xff;
    this.buf[this.off++] = (v >>> 8) & 0xff;
    this.buf[this.off++] = (v >>> 16) & 0xff;
    this.buf[this.off++] = Math.floor(v / 0x1000000) & 0xff;
    return this;
  }
  u64(v: bigint): this {
    this.ensure(8);
    for (let i = 0; i < 8; i++) this.buf[this.off++] = Number((v >> BigInt(8 * i)) & 0xffn);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }
  /** A view of what was written (no copy). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.off);
  }
}
