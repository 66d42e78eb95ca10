/**
 * Advertising and scan response data: AD structures (length, type, data), a builder that fits a
 * wearable's advertisement into the two 31-byte legacy payloads, and a parser for the central
 * side. Core Specification Supplement Part A (data types), Core 5.4 Vol 3 Part C 11 (format),
 * Core 5.4 Vol 4 Part E 7.8.7 (31 bytes).
 *
 * Placement: everything goes into the advertising data when it fits. Otherwise the advertising
 * data keeps flags, the 16-bit service UUIDs, the appearance (what phones filter and show on), then
 * whatever else fits; the local name moves to the scan response, shortened (type 0x08) when even
 * that is too small, and items that fit nowhere are reported in `omitted`.
 */

/** AD types used here. Assigned Numbers 2.3 (common data types). */
export const AdType = {
  Flags: 0x01,
  IncompleteList16: 0x02,
  CompleteList16: 0x03,
  IncompleteList32: 0x04,
  CompleteList32: 0x05,
  IncompleteList128: 0x06,
  CompleteList128: 0x07,
  ShortenedLocalName: 0x08,
  CompleteLocalName: 0x09,
  TxPowerLevel: 0x0a,
  ServiceData16: 0x16,
  Appearance: 0x19,
  ManufacturerSpecificData: 0xff,
} as const;

/** Flags AD bits. Core Specification Supplement Part A 1.3. */
export const AdFlags = {
  LeLimitedDiscoverable: 0x01,
  LeGeneralDiscoverable: 0x02,
  BrEdrNotSupported: 0x04,
} as const;

/** Legacy advertising / scan response payload size. Core 5.4 Vol 4 Part E 7.8.7. */
export const LEGACY_AD_MAX = 31;

export interface AdStructure {
  type: number;
  data: Uint8Array;
}

/** Length-type-value encoding of a list of AD structures. Throws RangeError past 31 bytes. */
export function encodeAdStructures(list: readonly AdStructure[], max = LEGACY_AD_MAX): Uint8Array {
  const size = list.reduce((n, s) => n + 2 + s.data.length, 0);
  if (size > max) throw new RangeError(`AD structures take ${size} bytes, at most ${max} fit`);
  const out = new Uint8Array(size);
  let o = 0;
  for (const s of list) {
    out[o++] = s.data.length + 1;
    out[o++] = s.type;
    out.set(s.data, o);
    o += s.data.length;
  }
  return out;
}

/**
 * Splits AD bytes into structures. Never throws: a zero length ends the significant part (the
 * rest is padding, Core 5.4 Vol 3 Part C 11); a length past the end stops parsing with `error`.
 */
export function parseAdStructures(bytes: Uint8Array): { structures: AdStructure[]; error?: string } {
  const structures: AdStructure[] = [];
  let o = 0;
  while (o < bytes.length) {
    const len = bytes[o] as number;
    if (len === 0) break;
    if (o + 1 + len > bytes.length) {
      return { structures, error: `AD structure at offset ${o} claims ${len} byte(s), only ${bytes.length - o - 1} left` };
    }
    structures.push({ type: bytes[o + 1] as number, data: bytes.slice(o + 2, o + 1 + len) });
    o += 1 + len;
  }
  return { structures };
}

/** `6e400001-b5a3-f393-e0a9-e50e24dcca9e` (most significant first, as printed) to 16 wire bytes (least significant first). */
export function uuid128ToWire(text: string): Uint8Array {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a 128-bit UUID: ${JSON.stringify(text)}`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[15 - i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** 16 wire bytes to `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case. */
export function uuid128FromWire(b: Uint8Array): string {
  let h = '';
  for (let i = 15; i >= 0; i--) h += (b[i] as number).toString(16).padStart(2, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface ManufacturerData {
  companyId: number;
  data: Uint8Array;
}

/** What to advertise. */
export interface AdvertisementContent {
  /** Flags AD; default LE General Discoverable | BR/EDR Not Supported. `null` leaves it out (non-discoverable). */
  flags?: number | null;
  name?: string;
  /** GAP Appearance value (Assigned Numbers 2.6), for example 0x00C0 Generic Watch. */
  appearance?: number;
  serviceUuids16?: readonly number[];
  serviceUuids128?: readonly string[];
  /** TX power level in dBm, when advertised. */
  txPower?: number;
  manufacturerData?: ManufacturerData;
}

export interface AdvertisingPayload {
  advertisingData: Uint8Array;
  scanResponseData: Uint8Array;
  /** Where the local name went, and whether it had to be shortened. */
  nameIn: 'advertising' | 'scanResponse' | 'none';
  nameShortened: boolean;
  /** Items that fit nowhere (UUIDs dropped from an incomplete list, TX power, manufacturer data). */
  omitted: string[];
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of `s` cut to at most `max` bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): Uint8Array {
  const b = utf8.encode(s);
  if (b.length <= max) return b;
  let n = max;
  // Back off continuation bytes (10xxxxxx) so the cut falls on a character boundary.
  while (n > 0 && ((b[n] as number) & 0xc0) === 0x80) n--;
  return b.slice(0, n);
}

function list16(type: number, uuids: readonly number[]): AdStructure {
  const d = new Uint8Array(uuids.length * 2);
  uuids.forEach((u, i) => {
    if (!Number.isInteger(u) || u < 0 || u > 0xffff) throw new RangeError(`not a 16-bit UUID: ${u}`);
    d[2 * i] = u & 0xff;
    d[2 * i + 1] = u >> 8;
  });
  return { type, data: d };
}

function list128(type: number, uuids: readonly string[]): AdStructure {
  const d = new Uint8Array(uuids.length * 16);
  uuids.forEach((u, i) => d.set(uuid128ToWire(u), 16 * i));
  return { type, data: d };
}

const size = (s: AdStructure): number => 2 + s.data.length;
const total = (l: readonly AdStructure[]): number => l.reduce((n, s) => n + size(s), 0);

/** Builds advertising and scan response data for legacy advertising (see the module comment for placement). */
export function buildAdvertisingPayload(c: AdvertisementContent): AdvertisingPayload {
  const flags = c.flags === undefined ? AdFlags.LeGeneralDiscoverable | AdFlags.BrEdrNotSupported : c.flags;
  const uuids16 = c.serviceUuids16 ?? [];
  const uuids128 = c.serviceUuids128 ?? [];
  const omitted: string[] = [];

  const head: AdStructure[] = flags === null ? [] : [{ type: AdType.Flags, data: Uint8Array.of(flags) }];
  // Everything but the name, most important first.
  const items: { label: string; s: AdStructure; uuids16?: boolean }[] = [];
  if (uuids16.length) items.push({ label: '16-bit service UUIDs', s: list16(AdType.CompleteList16, uuids16), uuids16: true });
  if (c.appearance !== undefined) items.push({ label: 'appearance', s: { type: AdType.Appearance, data: Uint8Array.of(c.appearance & 0xff, (c.appearance >> 8) & 0xff) } });
  if (uuids128.length) items.push({ label: '128-bit service UUIDs', s: list128(AdType.CompleteList128, uuids128) });
  if (c.txPower !== undefined) items.push({ label: 'TX power', s: { type: AdType.TxPowerLevel, data: Uint8Array.of(c.txPower & 0xff) } });
  if (c.manufacturerData) {
    const m = c.manufacturerData;
    const d = new Uint8Array(2 + m.data.length);
    d[0] = m.companyId & 0xff;
    d[1] = (m.companyId >> 8) & 0xff;
    d.set(m.data, 2);
    items.push({ label: 'manufacturer data', s: { type: AdType.ManufacturerSpecificData, data: d } });
  }
  const nameBytes = c.name !== undefined && c.name !== '' ? utf8.encode(c.name) : undefined;
  const completeName = nameBytes ? { type: AdType.CompleteLocalName, data: nameBytes } : undefined;

  // 1. All in the advertising data.
  const all = [...head, ...items.map((i) => i.s), ...(completeName ? [completeName] : [])];
  if (total(all) <= LEGACY_AD_MAX) {
    return {
      advertisingData: encodeAdStructures(all),
      scanResponseData: new Uint8Array(0),
      nameIn: completeName ? 'advertising' : 'none',
      nameShortened: false,
      omitted,
    };
  }

  // 2. Advertising data: flags, then items in priority order while they fit.
  const adv: AdStructure[] = [...head];
  const overflow: { label: string; s: AdStructure }[] = [];
  for (const it of items) {
    if (total(adv) + size(it.s) <= LEGACY_AD_MAX) {
      adv.push(it.s);
    } else if (it.uuids16 && adv.length === head.length) {
      // The 16-bit list alone is too long: advertise what fits as an incomplete list.
      const room = Math.floor((LEGACY_AD_MAX - total(adv) - 2) / 2);
      adv.push(list16(AdType.IncompleteList16, uuids16.slice(0, room)));
      omitted.push(...uuids16.slice(room).map((u) => `16-bit UUID 0x${u.toString(16).padStart(4, '0')}`));
    } else {
      overflow.push(it);
    }
  }

  // 3. Scan response: the name first (shortened if needed), then what did not fit.
  const rsp: AdStructure[] = [];
  let nameShortened = false;
  let nameIn: AdvertisingPayload['nameIn'] = 'none';
  if (nameBytes) {
    if (nameBytes.length <= LEGACY_AD_MAX - 2) {
      rsp.push({ type: AdType.CompleteLocalName, data: nameBytes });
    } else {
      rsp.push({ type: AdType.ShortenedLocalName, data: truncateUtf8(c.name as string, LEGACY_AD_MAX - 2) });
      nameShortened = true;
    }
    nameIn = 'scanResponse';
  }
  for (const it of overflow) {
    if (total(rsp) + size(it.s) <= LEGACY_AD_MAX) rsp.push(it.s);
    else omitted.push(it.label);
  }
  return { advertisingData: encodeAdStructures(adv), scanResponseData: encodeAdStructures(rsp), nameIn, nameShortened, omitted };
}

/** An advertisement as a central reads it (advertising data and scan response merged). */
export interface ParsedAdvertisement {
  flags: number | undefined;
  name: string | undefined;
  /** False when only a shortened name was seen. */
  nameComplete: boolean;
  appearance: number | undefined;
  serviceUuids16: number[];
  serviceUuids128: string[];
  /** False when a list was marked incomplete. */
  uuidListsComplete: boolean;
  txPower: number | undefined;
  manufacturerData: ManufacturerData[];
  serviceData16: { uuid: number; data: Uint8Array }[];
  /** Structures of other types, kept raw. */
  other: AdStructure[];
  /** Set when the bytes were malformed; what came before the problem is still decoded. */
  error: string | undefined;
}

const utf8d = new TextDecoder('utf-8', { fatal: false });

/** Decodes advertising data (and scan response data, in any number of chunks). Never throws. */
export function parseAdvertisement(...chunks: Uint8Array[]): ParsedAdvertisement {
  const out: ParsedAdvertisement = {
    flags: undefined,
    name: undefined,
    nameComplete: false,
    appearance: undefined,
    serviceUuids16: [],
    serviceUuids128: [],
    uuidListsComplete: true,
    txPower: undefined,
    manufacturerData: [],
    serviceData16: [],
    other: [],
    error: undefined,
  };
  const errors: string[] = [];
  for (const chunk of chunks) {
    const { structures, error } = parseAdStructures(chunk);
    if (error) errors.push(error);
    for (const s of structures) {
      const d = s.data;
      switch (s.type) {
        case AdType.Flags:
          if (d.length >= 1) out.flags = d[0];
          else errors.push('empty Flags');
          break;
        case AdType.IncompleteList16:
        case AdType.CompleteList16:
          if (s.type === AdType.IncompleteList16) out.uuidListsComplete = false;
          if (d.length % 2 !== 0) errors.push(`16-bit UUID list of ${d.length} bytes`);
          for (let i = 0; i + 1 < d.length; i += 2) out.serviceUuids16.push((d[i] as number) | ((d[i + 1] as number) << 8));
          break;
        case AdType.IncompleteList128:
        case AdType.CompleteList128:
          if (s.type === AdType.IncompleteList128) out.uuidListsComplete = false;
          if (d.length % 16 !== 0) errors.push(`128-bit UUID list of ${d.length} bytes`);
          for (let i = 0; i + 16 <= d.length; i += 16) out.serviceUuids128.push(uuid128FromWire(d.subarray(i, i + 16)));
          break;
        case AdType.ShortenedLocalName:
          if (!out.nameComplete) out.name = utf8d.decode(d);
          break;
        case AdType.CompleteLocalName:
          out.name = utf8d.decode(d);
          out.nameComplete = true;
          break;
        case AdType.TxPowerLevel:
          if (d.length >= 1) out.txPower = (d[0] as number) > 127 ? (d[0] as number) - 256 : d[0];
          break;
        case AdType.Appearance:
          if (d.length >= 2) out.appearance = (d[0] as number) | ((d[1] as number) << 8);
          else errors.push(`Appearance of ${d.length} byte(s)`);
          break;
        case AdType.ManufacturerSpecificData:
          if (d.length >= 2) out.manufacturerData.push({ companyId: (d[0] as number) | ((d[1] as number) << 8), data: d.slice(2) });
          else errors.push(`manufacturer data of ${d.length} byte(s)`);
          break;
        case AdType.ServiceData16:
          if (d.length >= 2) out.serviceData16.push({ uuid: (d[0] as number) | ((d[1] as number) << 8), data: d.slice(2) });
          break;
        default:
          out.other.push(s);
      }
    }
  }
  if (errors.length) out.error = errors.join('; ');
  return out;
}
