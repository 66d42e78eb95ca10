/**
 * Bluetooth UUIDs: 16-bit SIG-assigned values and 128-bit vendor values. Core 5.4 Vol 3 Part B 2.5.1.
 *
 * A {@link Uuid} keeps its little-endian wire form (2 or 16 bytes) and a canonical key for
 * comparisons. A 128-bit UUID built on the Bluetooth Base UUID (`0000xxxx-0000-1000-8000-00805F9B34FB`)
 * is stored in its 16-bit form, so "all attribute types are effectively compared as 128-bit UUIDs"
 * (Core 5.4 Vol 3 Part F 3.4.4.1) holds by construction. 32-bit UUIDs are carried as 128-bit ones,
 * as ATT requires (Core 5.4 Vol 3 Part G 2.5.4).
 */

/** Bluetooth Base UUID `00000000-0000-1000-8000-00805F9B34FB`, little-endian, bytes 12..15 zero. */
const BASE_LE = Uint8Array.from([0xfb, 0x34, 0x9b, 0x5f, 0x80, 0x00, 0x00, 0x80, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

/** Anything that names a UUID: a {@link Uuid}, a 16-bit number, or text (`"2A37"`, `"0x2a37"`, `"6e400001-b5a3-..."`). */
export type UuidLike = Uuid | number | string;

export class Uuid {
  /** Little-endian wire form: 2 bytes for SIG-assigned UUIDs, 16 otherwise. Do not mutate. */
  readonly bytes: Uint8Array;
  /** Canonical comparison key: 4 lower-case hex digits (`"2a37"`) or the 36-character 128-bit form. */
  readonly key: string;

  private constructor(bytes: Uint8Array, key: string) {
    this.bytes = bytes;
    this.key = key;
  }

  /** A 16-bit SIG-assigned UUID. */
  static from16(v: number): Uuid {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`not a 16-bit UUID: ${v}`);
    return new Uuid(Uint8Array.from([v & 0xff, v >> 8]), v.toString(16).padStart(4, '0'));
  }

  /** From the wire: 2 or 16 bytes little-endian (4 bytes are read as a 32-bit UUID). */
  static fromBytes(le: Uint8Array): Uuid {
    if (le.length === 2) return Uuid.from16((le[0] as number) | ((le[1] as number) << 8));
    if (le.length === 4) {
      const full = new Uint8Array(16);
      full.set(BASE_LE.subarray(0, 12));
      full.set(le, 12);
      return Uuid.fromBytes(full);
    }
    if (le.length !== 16) throw new RangeError(`a UUID is 2, 4 or 16 bytes, got ${le.length}`);
    let onBase = true;
    for (let i = 0; i < 12; i++) if (le[i] !== BASE_LE[i]) onBase = false;
    if (onBase && le[14] === 0 && le[15] === 0) return Uuid.from16((le[12] as number) | ((le[13] as number) << 8));
    const copy = Uint8Array.from(le);
    return new Uuid(copy, formatLong(copy));
  }

  /**
   * Parses `"2A37"`, `"0x2A37"`, `"0000FEAA"` (32-bit) or `"6e400001-b5a3-f393-e0a9-e50e24dcca9e"`
   * (with or without dashes, upper or lower case). Throws RangeError naming the text otherwise.
   */
  static parse(text: string): Uuid {
    const t = text.trim().replace(/^0x/i, '');
    if (/^[0-9a-fA-F]{4}$/.test(t)) return Uuid.from16(parseInt(t, 16));
    if (/^[0-9a-fA-F]{8}$/.test(t)) {
      const v = parseInt(t, 16);
      return Uuid.fromBytes(Uint8Array.from([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]));
    }
    const hex = t.replace(/-/g, '');
    const dashedOk = t.includes('-') ? /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(t) : true;
    if (dashedOk && /^[0-9a-fA-F]{32}$/.test(hex)) {
      const le = new Uint8Array(16);
      for (let i = 0; i < 16; i++) le[15 - i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
      return Uuid.fromBytes(le);
    }
    throw new RangeError(`not a UUID: ${JSON.stringify(text)} (expected 4 hex digits like "2A37" or a 128-bit UUID like "6e400001-b5a3-f393-e0a9-e50e24dcca9e")`);
  }

  static of(u: UuidLike): Uuid {
    if (u instanceof Uuid) return u;
    if (typeof u === 'number') return Uuid.from16(u);
    return Uuid.parse(u);
  }

  /** True for a SIG-assigned (16-bit) UUID. */
  get is16(): boolean {
    return this.bytes.length === 2;
  }

  /** The 16-bit value, or undefined for a 128-bit UUID. */
  get value16(): number | undefined {
    return this.is16 ? (this.bytes[0] as number) | ((this.bytes[1] as number) << 8) : undefined;
  }

  /** The 128-bit little-endian form (16-bit UUIDs expanded on the Base UUID). */
  toBytes128(): Uint8Array {
    if (!this.is16) return this.bytes;
    const out = Uint8Array.from(BASE_LE);
    out[12] = this.bytes[0] as number;
    out[13] = this.bytes[1] as number;
    return out;
  }

  equals(other: Uuid): boolean {
    return this.key === other.key;
  }

  /** `0x2A37` or `6e400001-b5a3-f393-e0a9-e50e24dcca9e`. */
  toString(): string {
    return this.is16 ? `0x${this.key.toUpperCase()}` : this.key;
  }
}

function formatLong(le: Uint8Array): string {
  let s = '';
  for (let i = 15; i >= 0; i--) {
    s += (le[i] as number).toString(16).padStart(2, '0');
    if (i === 12 || i === 10 || i === 8 || i === 6) s += '-';
  }
  return s;
}

/** Equality of a wire-form UUID (2 or 16 bytes LE) with a {@link Uuid}, without allocating for the common 16-bit case. */
export function uuidBytesEqual(le: Uint8Array, u: Uuid): boolean {
  if (le.length === 2 && u.is16) return le[0] === u.bytes[0] && le[1] === u.bytes[1];
  return Uuid.fromBytes(le).key === u.key;
}

/**
 * SIG-assigned UUIDs this stack uses (Bluetooth Assigned Numbers, sections 3.4 declarations,
 * 3.7 descriptors, 3.8 characteristics, 3.4.2 services).
 */
export const GattUuid = {
  // Services
  genericAccess: 0x1800,
  genericAttribute: 0x1801,
  deviceInformation: 0x180a,
  heartRate: 0x180d,
  battery: 0x180f,
  // Declarations
  primaryService: 0x2800,
  secondaryService: 0x2801,
  include: 0x2802,
  characteristic: 0x2803,
  // Descriptors
  characteristicExtendedProperties: 0x2900,
  characteristicUserDescription: 0x2901,
  clientCharacteristicConfiguration: 0x2902,
  serverCharacteristicConfiguration: 0x2903,
  characteristicPresentationFormat: 0x2904,
  characteristicAggregateFormat: 0x2905,
  // Characteristics
  deviceName: 0x2a00,
  appearance: 0x2a01,
  peripheralPreferredConnectionParameters: 0x2a04,
  serviceChanged: 0x2a05,
  centralAddressResolution: 0x2aa6,
  clientSupportedFeatures: 0x2b29,
  databaseHash: 0x2b2a,
  batteryLevel: 0x2a19,
  heartRateMeasurement: 0x2a37,
  bodySensorLocation: 0x2a38,
  heartRateControlPoint: 0x2a39,
  manufacturerNameString: 0x2a29,
  modelNumberString: 0x2a24,
  firmwareRevisionString: 0x2a26,
} as const;
