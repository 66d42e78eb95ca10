/**
 * Typed field codecs for HCI parameters. A {@link Codec} encodes and decodes one value; {@link struct}
 * builds one from named fields in wire order, so each table entry states its layout once and gets
 * both directions (the host encodes commands and decodes events; the simulator does the reverse).
 */
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { addressFromWire, addressToWire } from '../util/address.js';

export interface Codec<T> {
  /** Exact encoded length, or undefined when variable. */
  readonly length: number | undefined;
  /** Smallest valid encoded length. */
  readonly minLength: number;
  encode(value: T, w: ByteWriter): void;
  decode(r: ByteReader): T;
}

export type CodecValue<C> = C extends Codec<infer T> ? T : never;

function fixed<T>(length: number, encode: (v: T, w: ByteWriter) => void, decode: (r: ByteReader) => T): Codec<T> {
  return { length, minLength: length, encode, decode };
}

export const u8 = fixed<number>(1, (v, w) => void w.u8(v), (r) => r.u8());
export const i8 = fixed<number>(1, (v, w) => void w.u8(v < 0 ? v + 256 : v), (r) => r.i8());
export const u16 = fixed<number>(2, (v, w) => void w.u16(v), (r) => r.u16());
export const u24 = fixed<number>(3, (v, w) => void w.u24(v), (r) => r.u24());
export const u32 = fixed<number>(4, (v, w) => void w.u32(v), (r) => r.u32());
export const u64 = fixed<bigint>(8, (v, w) => void w.u64(v), (r) => r.u64());
/** A boolean carried as one byte (0x00 / 0x01). */
export const bool8 = fixed<boolean>(1, (v, w) => void w.u8(v ? 1 : 0), (r) => r.u8() !== 0);
/** A device address: 6 bytes LE on the wire, `AA:BB:..` text in code. */
export const bdAddr = fixed<string>(6, (v, w) => void w.bytes(addressToWire(v)), (r) => addressFromWire(r.bytes(6)));

/** Exactly `n` raw bytes (keys, feature masks, command bitmaps), kept little-endian. */
export function bytes(n: number): Codec<Uint8Array> {
  return fixed<Uint8Array>(
    n,
    (v, w) => {
      if (v.length !== n) throw new RangeError(`expected ${n} bytes, got ${v.length}`);
      w.bytes(v);
    },
    (r) => r.bytes(n),
  );
}

/** Everything left in the packet. */
export const rest: Codec<Uint8Array> = {
  length: undefined,
  minLength: 0,
  encode: (v, w) => void w.bytes(v),
  decode: (r) => r.rest(),
};

/** A one-byte length followed by that many bytes, padded to `size` on the wire (advertising data). */
export function paddedData(size: number): Codec<Uint8Array> {
  return fixed<Uint8Array>(
    size + 1,
    (v, w) => {
      if (v.length > size) throw new RangeError(`data is ${v.length} bytes, at most ${size} fit`);
      w.u8(v.length).bytes(v);
      for (let i = v.length; i < size; i++) w.u8(0);
    },
    (r) => {
      const n = r.u8();
      const all = r.bytes(size);
      if (n > size) throw new RangeError(`length ${n} exceeds ${size}`);
      return all.slice(0, n);
    },
  );
}

export const empty: Codec<Record<string, never>> = {
  length: 0,
  minLength: 0,
  encode: () => undefined,
  decode: () => ({}),
};

type Fields = Record<string, Codec<unknown>>;
export type StructValue<F extends Fields> = { [K in keyof F]: CodecValue<F[K]> };

/** Named fields in wire order. */
export function struct<F extends Fields>(fields: F): Codec<StructValue<F>> {
  const entries = Object.entries(fields) as [keyof F & string, Codec<unknown>][];
  let length: number | undefined = 0;
  let minLength = 0;
  for (const [, c] of entries) {
    minLength += c.minLength;
    length = length !== undefined && c.length !== undefined ? length + c.length : undefined;
  }
  return {
    length,
    minLength,
    encode(v, w) {
      for (const [k, c] of entries) c.encode(v[k], w);
    },
    decode(r) {
      const out = {} as StructValue<F>;
      for (const [k, c] of entries) out[k] = c.decode(r) as StructValue<F>[typeof k];
      return out;
    },
  };
}

/** A count byte followed by that many items (Core 5.x arrayed parameters, interleaved per item). */
export function countedList<T>(item: Codec<T>): Codec<T[]> {
  return {
    length: undefined,
    minLength: 1,
    encode(v, w) {
      w.u8(v.length);
      for (const x of v) item.encode(x, w);
    },
    decode(r) {
      const n = r.u8();
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(item.decode(r));
      return out;
    },
  };
}

/** Encodes a value to a fresh byte array. */
export function encodeWith<T>(codec: Codec<T>, value: T): Uint8Array {
  const w = new ByteWriter(codec.length ?? 32);
  codec.encode(value, w);
  return w.finish();
}
