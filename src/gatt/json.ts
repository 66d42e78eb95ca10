/**
 * A GATT database described in JSON (`--gatt FILE`), with the expressiveness of the builder API
 * except for code (read/write handlers): writable values are stored and served back, and
 * attributes that ask for authorization go to the application's authorization hook.
 *
 * Every problem is reported with the JSON path of the offending field, e.g.
 * `services[1].characteristics[0].permissions.read: expected one of none, encrypted, ...`.
 * See docs/gatt-example.json.
 *
 * Document shape:
 * ```
 * { "gap": { "deviceName", "appearance", "deviceNameWrite", "ppcp": {..} | false, "centralAddressResolution": {..} | false } | false,
 *   "includeWearableProfile": false,
 *   "services": [ { "uuid", "id", "primary", "startHandle", "includes": [ids],
 *     "characteristics": [ { "uuid", "id", "properties": [..], "permissions": { "read", "write", "authorizeRead", "authorizeWrite" },
 *       "value", "maxLength", "fixedLength", "cccd": { "write", "authorizeWrite" },
 *       "extendedProperties": { "reliableWrite", "writableAuxiliaries" }, "userDescription",
 *       "descriptors": [ { "uuid", "id", "permissions", "value", "maxLength", "fixedLength" } ] } ] } ] }
 * ```
 * A value is a string (UTF-8 text) or one of `{ "utf8": "text" }`, `{ "hex": "0a0b" }`,
 * `{ "u8": n }`, `{ "u16": n }`, `{ "u32": n }`, `{ "s8": n }`, `{ "s16": n }` (little-endian).
 * UUIDs are strings: `"2A37"`, `"0x2A37"` or a 128-bit UUID.
 */
import { readFile } from 'node:fs/promises';
import { fromHex } from '../util/bytes.js';
import { ACCESS_REQUIREMENTS, type AccessRequirement } from './permissions.js';
import {
  buildGattDatabase,
  CHARACTERISTIC_PROPERTIES,
  UNSUPPORTED_PROPERTIES,
  GattDefinitionError,
  type CharacteristicDefinition,
  type CharacteristicProperty,
  type DescriptorDefinition,
  type GapServiceOptions,
  type GattDatabase,
  type PermissionsDefinition,
  type PreferredConnectionParameters,
  type ServiceDefinition,
} from './database.js';
import { Uuid } from './uuid.js';
import { WearableProfile, type WearableProfileOptions } from './profile.js';

export interface GattJsonIssue {
  /** JSON path of the offending field (`services[1].characteristics[0].permissions.read`), or `(file)` for syntax errors. */
  readonly path: string;
  readonly message: string;
}

export interface GattJsonDocument {
  readonly gap?: GapServiceOptions | false;
  readonly includeWearableProfile: boolean;
  readonly services: ServiceDefinition[];
}

export type GattJsonResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: readonly GattJsonIssue[] };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

class Checker {
  readonly issues: GattJsonIssue[] = [];

  fail(path: string, message: string): undefined {
    this.issues.push({ path, message });
    return undefined;
  }

  object(v: Json | undefined, path: string, allowed: readonly string[]): JsonObject | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return this.fail(path, `expected an object, got ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
    }
    return v;
  }

  array(v: Json | undefined, path: string): Json[] | undefined {
    if (!Array.isArray(v)) return this.fail(path, `expected an array, got ${describe(v)}`);
    return v;
  }

  string(v: Json | undefined, path: string): string | undefined {
    if (typeof v !== 'string') return this.fail(path, `expected a string, got ${describe(v)}`);
    return v;
  }

  boolean(v: Json | undefined, path: string): boolean | undefined {
    if (typeof v !== 'boolean') return this.fail(path, `expected true or false, got ${describe(v)}`);
    return v;
  }

  integer(v: Json | undefined, path: string, min: number, max: number): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.fail(path, `expected an integer in ${min}..${max}, got ${describe(v)}`);
    return v;
  }

  requirement(v: Json | undefined, path: string): AccessRequirement | undefined {
    if (typeof v !== 'string' || !(ACCESS_REQUIREMENTS as readonly string[]).includes(v)) {
      return this.fail(path, `expected one of ${ACCESS_REQUIREMENTS.join(', ')}; got ${describe(v)}`);
    }
    return v as AccessRequirement;
  }

  uuid(v: Json | undefined, path: string): string | undefined {
    if (typeof v !== 'string') return this.fail(path, `expected a UUID string like "2A37" or "6e400001-b5a3-f393-e0a9-e50e24dcca9e", got ${describe(v)}`);
    try {
      Uuid.parse(v);
    } catch (err) {
      return this.fail(path, (err as Error).message);
    }
    return v;
  }

  value(v: Json | undefined, path: string): Uint8Array | string | undefined {
    if (typeof v === 'string') return v;
    const o = this.object(v, path, ['utf8', 'hex', 'u8', 'u16', 'u32', 's8', 's16']);
    if (!o) return undefined;
    const keys = Object.keys(o);
    if (keys.length !== 1) return this.fail(path, 'expected exactly one of utf8, hex, u8, u16, u32, s8, s16');
    const k = keys[0] as string;
    const x = o[k];
    const p = `${path}.${k}`;
    switch (k) {
      case 'utf8':
        return this.string(x, p);
      case 'hex': {
        const s = this.string(x, p);
        if (s === undefined) return undefined;
        try {
          return fromHex(s);
        } catch {
          return this.fail(p, `not hex bytes: ${JSON.stringify(s)}`);
        }
      }
      case 'u8':
        return le(this.integer(x, p, 0, 0xff), 1);
      case 'u16':
        return le(this.integer(x, p, 0, 0xffff), 2);
      case 'u32':
        return le(this.integer(x, p, 0, 0xffffffff), 4);
      case 's8': {
        const n = this.integer(x, p, -0x80, 0x7f);
        return n === undefined ? undefined : le(n & 0xff, 1);
      }
      case 's16': {
        const n = this.integer(x, p, -0x8000, 0x7fff);
        return n === undefined ? undefined : le(n & 0xffff, 2);
      }
      default:
        return undefined;
    }
  }
}

function le(n: number | undefined, size: number): Uint8Array | undefined {
  if (n === undefined) return undefined;
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
  return out;
}

function describe(v: Json | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

function permissions(c: Checker, v: Json | undefined, path: string): PermissionsDefinition | undefined {
  const o = c.object(v, path, ['read', 'write', 'authorizeRead', 'authorizeWrite']);
  if (!o) return undefined;
  const out: { -readonly [K in keyof PermissionsDefinition]: PermissionsDefinition[K] } = {};
  if (o.read !== undefined) out.read = c.requirement(o.read, `${path}.read`);
  if (o.write !== undefined) out.write = c.requirement(o.write, `${path}.write`);
  if (o.authorizeRead !== undefined) out.authorizeRead = c.boolean(o.authorizeRead, `${path}.authorizeRead`);
  if (o.authorizeWrite !== undefined) out.authorizeWrite = c.boolean(o.authorizeWrite, `${path}.authorizeWrite`);
  return out;
}

function descriptor(c: Checker, v: Json, path: string): DescriptorDefinition | undefined {
  const o = c.object(v, path, ['uuid', 'id', 'permissions', 'value', 'maxLength', 'fixedLength']);
  if (!o) return undefined;
  const uuid = c.uuid(o.uuid, `${path}.uuid`);
  if (uuid === undefined) return undefined;
  const d: { -readonly [K in keyof DescriptorDefinition]: DescriptorDefinition[K] } = { uuid };
  if (o.id !== undefined) d.id = c.string(o.id, `${path}.id`);
  if (o.permissions !== undefined) d.permissions = permissions(c, o.permissions, `${path}.permissions`);
  if (o.value !== undefined) d.value = c.value(o.value, `${path}.value`);
  if (o.maxLength !== undefined) d.maxLength = c.integer(o.maxLength, `${path}.maxLength`, 0, 512);
  if (o.fixedLength !== undefined) d.fixedLength = c.boolean(o.fixedLength, `${path}.fixedLength`);
  return d;
}

function characteristic(c: Checker, v: Json, path: string): CharacteristicDefinition | undefined {
  const o = c.object(v, path, [
    'uuid',
    'id',
    'properties',
    'permissions',
    'value',
    'maxLength',
    'fixedLength',
    'cccd',
    'extendedProperties',
    'userDescription',
    'descriptors',
  ]);
  if (!o) return undefined;
  const uuid = c.uuid(o.uuid, `${path}.uuid`);
  const props: CharacteristicProperty[] = [];
  const pa = c.array(o.properties, `${path}.properties`);
  pa?.forEach((p, i) => {
    if (typeof p === 'string' && UNSUPPORTED_PROPERTIES[p] !== undefined) {
      c.fail(`${path}.properties[${i}]`, `${describe(p)} ${UNSUPPORTED_PROPERTIES[p]}`);
    } else if (typeof p !== 'string' || !(CHARACTERISTIC_PROPERTIES as readonly string[]).includes(p)) {
      c.fail(`${path}.properties[${i}]`, `expected one of ${CHARACTERISTIC_PROPERTIES.join(', ')}; got ${describe(p)}`);
    } else props.push(p as CharacteristicProperty);
  });
  if (uuid === undefined) return undefined;
  const d: { -readonly [K in keyof CharacteristicDefinition]: CharacteristicDefinition[K] } = { uuid, properties: props };
  if (o.id !== undefined) d.id = c.string(o.id, `${path}.id`);
  if (o.permissions !== undefined) d.permissions = permissions(c, o.permissions, `${path}.permissions`);
  if (o.value !== undefined) d.value = c.value(o.value, `${path}.value`);
  if (o.maxLength !== undefined) d.maxLength = c.integer(o.maxLength, `${path}.maxLength`, 0, 512);
  if (o.fixedLength !== undefined) d.fixedLength = c.boolean(o.fixedLength, `${path}.fixedLength`);
  if (o.userDescription !== undefined) d.userDescription = c.string(o.userDescription, `${path}.userDescription`);
  if (o.cccd !== undefined) {
    const cc = c.object(o.cccd, `${path}.cccd`, ['write', 'authorizeWrite']);
    if (cc) {
      const write = cc.write !== undefined ? c.requirement(cc.write, `${path}.cccd.write`) : undefined;
      const authorizeWrite = cc.authorizeWrite !== undefined ? c.boolean(cc.authorizeWrite, `${path}.cccd.authorizeWrite`) : undefined;
      d.cccd = { ...(write !== undefined ? { write } : {}), ...(authorizeWrite !== undefined ? { authorizeWrite } : {}) };
    }
  }
  if (o.extendedProperties !== undefined) {
    const e = c.object(o.extendedProperties, `${path}.extendedProperties`, ['reliableWrite', 'writableAuxiliaries']);
    if (e) {
      const reliableWrite = e.reliableWrite !== undefined ? c.boolean(e.reliableWrite, `${path}.extendedProperties.reliableWrite`) : undefined;
      const writableAuxiliaries = e.writableAuxiliaries !== undefined ? c.boolean(e.writableAuxiliaries, `${path}.extendedProperties.writableAuxiliaries`) : undefined;
      d.extendedProperties = {
        ...(reliableWrite !== undefined ? { reliableWrite } : {}),
        ...(writableAuxiliaries !== undefined ? { writableAuxiliaries } : {}),
      };
    }
  }
  if (o.descriptors !== undefined) {
    const list: DescriptorDefinition[] = [];
    c.array(o.descriptors, `${path}.descriptors`)?.forEach((x, i) => {
      const dd = descriptor(c, x, `${path}.descriptors[${i}]`);
      if (dd) list.push(dd);
    });
    d.descriptors = list;
  }
  return d;
}

function service(c: Checker, v: Json, path: string): ServiceDefinition | undefined {
  const o = c.object(v, path, ['uuid', 'id', 'primary', 'startHandle', 'includes', 'characteristics']);
  if (!o) return undefined;
  const uuid = c.uuid(o.uuid, `${path}.uuid`);
  if (uuid === undefined) return undefined;
  const s: { -readonly [K in keyof ServiceDefinition]: ServiceDefinition[K] } = { uuid, path };
  if (o.id !== undefined) s.id = c.string(o.id, `${path}.id`);
  if (o.primary !== undefined) s.primary = c.boolean(o.primary, `${path}.primary`);
  if (o.startHandle !== undefined) s.startHandle = c.integer(o.startHandle, `${path}.startHandle`, 1, 0xffff);
  if (o.includes !== undefined) {
    const inc: string[] = [];
    c.array(o.includes, `${path}.includes`)?.forEach((x, i) => {
      const id = c.string(x, `${path}.includes[${i}]`);
      if (id !== undefined) inc.push(id);
    });
    s.includes = inc;
  }
  const chars: CharacteristicDefinition[] = [];
  if (o.characteristics !== undefined) {
    c.array(o.characteristics, `${path}.characteristics`)?.forEach((x, i) => {
      const cd = characteristic(c, x, `${path}.characteristics[${i}]`);
      if (cd) chars.push(cd);
    });
  }
  s.characteristics = chars;
  return s;
}

function gap(c: Checker, v: Json | undefined): GapServiceOptions | false | undefined {
  if (v === false) return false;
  const o = c.object(v, 'gap', ['deviceName', 'appearance', 'deviceNameWrite', 'ppcp', 'centralAddressResolution']);
  if (!o) return undefined;
  const g: { -readonly [K in keyof GapServiceOptions]: GapServiceOptions[K] } = {};
  if (o.deviceName !== undefined) {
    const n = c.string(o.deviceName, 'gap.deviceName');
    if (n !== undefined && new TextEncoder().encode(n).length > 248) c.fail('gap.deviceName', 'longer than 248 bytes of UTF-8');
    else if (n !== undefined) g.deviceName = n;
  }
  if (o.appearance !== undefined) g.appearance = c.integer(o.appearance, 'gap.appearance', 0, 0xffff);
  if (o.deviceNameWrite !== undefined) g.deviceNameWrite = c.requirement(o.deviceNameWrite, 'gap.deviceNameWrite');
  if (o.ppcp !== undefined) {
    if (o.ppcp === false) g.ppcp = false;
    else {
      const p = c.object(o.ppcp, 'gap.ppcp', ['intervalMin', 'intervalMax', 'latency', 'timeout']);
      if (p) {
        // Core 5.4 Vol 6 Part B 4.5.1 / Vol 4 Part E 7.8.18 ranges (units 1.25 ms, events, 10 ms).
        const intervalMin = c.integer(p.intervalMin, 'gap.ppcp.intervalMin', 6, 3200);
        const intervalMax = c.integer(p.intervalMax, 'gap.ppcp.intervalMax', 6, 3200);
        const latency = c.integer(p.latency, 'gap.ppcp.latency', 0, 499);
        const timeout = c.integer(p.timeout, 'gap.ppcp.timeout', 10, 3200);
        if (intervalMin !== undefined && intervalMax !== undefined && latency !== undefined && timeout !== undefined) {
          if (intervalMin > intervalMax) c.fail('gap.ppcp.intervalMax', `is below intervalMin (${intervalMax} < ${intervalMin})`);
          const ppcp: PreferredConnectionParameters = { intervalMin, intervalMax, latency, timeout };
          g.ppcp = ppcp;
        }
      }
    }
  }
  if (o.centralAddressResolution !== undefined) {
    if (o.centralAddressResolution === false) g.centralAddressResolution = false;
    else {
      const r = c.object(o.centralAddressResolution, 'gap.centralAddressResolution', ['supported']);
      const supported = r ? c.boolean(r.supported, 'gap.centralAddressResolution.supported') : undefined;
      if (supported !== undefined) g.centralAddressResolution = { supported };
    }
  }
  return g;
}

/** Where a JSON.parse error happened, as line and column when the message gives a position. */
function syntaxIssue(err: Error, text: string): GattJsonIssue {
  const m = /position (\d+)/.exec(err.message);
  if (m) {
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const col = pos - before.lastIndexOf('\n');
    return { path: '(file)', message: `not valid JSON at line ${line} column ${col}: ${err.message}` };
  }
  return { path: '(file)', message: `not valid JSON: ${err.message}` };
}

/** Checks a JSON GATT description against the schema; does not build the database. */
export function parseGattJson(text: string): GattJsonResult<GattJsonDocument> {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (err) {
    return { ok: false, issues: [syntaxIssue(err as Error, text)] };
  }
  const c = new Checker();
  const root = c.object(doc, '(root)', ['$schema', '$comment', 'gap', 'includeWearableProfile', 'services']);
  if (!root) return { ok: false, issues: c.issues };
  const g = root.gap !== undefined ? gap(c, root.gap) : undefined;
  const includeWearableProfile = root.includeWearableProfile !== undefined ? (c.boolean(root.includeWearableProfile, 'includeWearableProfile') ?? false) : false;
  const services: ServiceDefinition[] = [];
  const list = root.services === undefined ? [] : c.array(root.services, 'services');
  list?.forEach((s, i) => {
    const sd = service(c, s, `services[${i}]`);
    if (sd) services.push(sd);
  });
  if (c.issues.length > 0) return { ok: false, issues: c.issues };
  return { ok: true, value: { ...(g !== undefined ? { gap: g } : {}), includeWearableProfile, services } };
}

export interface GattFromJson {
  readonly db: GattDatabase;
  /** Present when the document asked for the wearable profile (its services come first). */
  readonly profile?: WearableProfile;
}

/** Checks and builds. Builder-level problems (duplicate ids, unknown includes, permissions without the property...) come back with paths too. */
export function databaseFromGattJson(text: string, profileOptions: WearableProfileOptions = {}): GattJsonResult<GattFromJson> {
  const parsed = parseGattJson(text);
  if (!parsed.ok) return parsed;
  const doc = parsed.value;
  try {
    if (doc.includeWearableProfile) {
      const gapOpts = doc.gap === false ? {} : (doc.gap ?? {});
      const profile = new WearableProfile({
        ...profileOptions,
        ...(gapOpts.deviceName !== undefined ? { deviceName: gapOpts.deviceName } : {}),
        ...(gapOpts.appearance !== undefined ? { appearance: gapOpts.appearance } : {}),
        gap: {
          ...(gapOpts.deviceNameWrite !== undefined ? { deviceNameWrite: gapOpts.deviceNameWrite } : {}),
          ...(gapOpts.ppcp !== undefined ? { ppcp: gapOpts.ppcp } : {}),
          ...(gapOpts.centralAddressResolution !== undefined ? { centralAddressResolution: gapOpts.centralAddressResolution } : {}),
        },
        extraServices: doc.services,
      });
      return { ok: true, value: { db: profile.db, profile } };
    }
    const db = buildGattDatabase({ ...(doc.gap !== undefined ? { gap: doc.gap } : {}), services: doc.services });
    return { ok: true, value: { db } };
  } catch (err) {
    if (err instanceof GattDefinitionError) return { ok: false, issues: [{ path: err.path, message: err.detail }] };
    throw err;
  }
}

/** Reads and builds a `--gatt` file. Problems are returned, never thrown; a missing file is an issue at `(file)`. */
export async function loadGattJsonFile(file: string, profileOptions: WearableProfileOptions = {}): Promise<GattJsonResult<GattFromJson>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, issues: [{ path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }] };
  }
  return databaseFromGattJson(text, profileOptions);
}

/** The message a user reads for a bad `--gatt` file. */
export function formatGattJsonIssues(file: string, issues: readonly GattJsonIssue[]): string {
  const lines = issues.map((i) => `  ${i.path}: ${i.message}`);
  return `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'} in the GATT description\n${lines.join('\n')}\nSee docs/gatt-example.json for a working file.`;
}
