/**
 * The bond file format (JSON) and its field-by-field validation.
 *
 * ```json
 * {
 *   "schemaVersion": 1,
 *   "localIdentity": { "address": { "type": "random", "address": "C3:11:22:33:44:55" }, "irk": "<32 hex>" },
 *   "bonds": [
 *     {
 *       "peer": { "type": "public", "address": "00:1B:DC:F0:00:01" },
 *       "ltk": "<32 hex>", "ediv": 0, "rand": "0", "keySize": 16,
 *       "authenticated": false, "secureConnections": true,
 *       "peerIrk": "<32 hex>", "peerCsrk": "<32 hex>", "peerSignCounter": 0,
 *       "cccd": { "12": 1 },
 *       "gatt": { "databaseHash": "<32 hex>", "clientFeatures": 1, "changeAware": true },
 *       "createdAt": "2026-01-01T00:00:00.000Z", "lastSeenAt": "2026-01-02T00:00:00.000Z"
 *     }
 *   ]
 * }
 * ```
 *
 * Keys (`ltk`, `irk`, `peerIrk`, `peerCsrk`) are lower-case hex of the bytes in the order they travel
 * on the wire (little-endian), exactly as SMP received or sent them. `rand` is the 64-bit Rand as a
 * decimal string (JSON numbers lose precision above 2^53). `localIdentity`, `peerIrk`, `peerCsrk`,
 * `peerSignCounter` and `gatt.databaseHash` are optional. Unknown fields are refused, so a file
 * edited by hand or written by something else is never silently rewritten without them; a
 * `schemaVersion` newer than {@link SCHEMA_VERSION} is refused rather than downgraded.
 */
import { isValidAddressText, type Address } from '../util/address.js';
import { fromHex, toHex } from '../util/bytes.js';
import { locateJsonSyntaxError } from '../util/json-scan.js';
import { BondStoreError, recoveryAdvice } from './errors.js';
import { bondKey, isIsoTime } from './record.js';
import type { BondRecord, LocalIdentity } from './types.js';

/** The schema version this build writes, and the newest it reads. */
export const SCHEMA_VERSION = 1;

/** What a bond file holds. */
export interface BondFileContent {
  readonly localIdentity: LocalIdentity | undefined;
  readonly bonds: readonly BondRecord[];
}

// ---------------------------------------------------------------------------------------------
// Encoding

interface AddressJson {
  type: string;
  address: string;
}

function addressJson(a: Address): AddressJson {
  return { type: a.type, address: a.address };
}

function bondJson(b: BondRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    peer: addressJson(b.peer),
    ltk: toHex(b.ltk),
    ediv: b.ediv,
    rand: b.rand.toString(10),
    keySize: b.keySize,
    authenticated: b.authenticated,
    secureConnections: b.secureConnections,
  };
  if (b.peerIrk) out['peerIrk'] = toHex(b.peerIrk);
  if (b.peerCsrk) out['peerCsrk'] = toHex(b.peerCsrk);
  if (b.peerSignCounter !== undefined) out['peerSignCounter'] = b.peerSignCounter;
  const cccd: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.cccd)) cccd[k] = v;
  out['cccd'] = cccd;
  const gatt: Record<string, unknown> = {};
  if (b.gatt.databaseHash !== undefined) gatt['databaseHash'] = b.gatt.databaseHash;
  gatt['clientFeatures'] = b.gatt.clientFeatures;
  gatt['changeAware'] = b.gatt.changeAware;
  out['gatt'] = gatt;
  out['createdAt'] = b.createdAt;
  out['lastSeenAt'] = b.lastSeenAt;
  return out;
}

/** The file text for `content` (2-space indented JSON with a final newline). */
export function encodeBondFile(content: BondFileContent): string {
  const doc: Record<string, unknown> = { schemaVersion: SCHEMA_VERSION };
  if (content.localIdentity) {
    doc['localIdentity'] = { address: addressJson(content.localIdentity.address), irk: toHex(content.localIdentity.irk) };
  }
  doc['bonds'] = content.bonds.map(bondJson);
  return JSON.stringify(doc, null, 2) + '\n';
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** A validation failure at a field path (`bonds[2].ltk`). */
class FieldError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function expectObject(v: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FieldError(field, `expected an object, got ${describe(v)}`);
  const obj = v as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new FieldError(field ? `${field}.${k}` : k, `unknown field (expected one of ${allowed.join(', ')})`);
  }
  return obj;
}

function expectHexBytes(v: unknown, field: string, n: number): Uint8Array {
  if (typeof v !== 'string' || v.length !== n * 2 || !/^[0-9a-fA-F]*$/.test(v)) {
    throw new FieldError(field, `expected ${n * 2} hex digits (${n} bytes), got ${describe(v)}`);
  }
  return fromHex(v);
}

function expectInt(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new FieldError(field, `expected an integer in ${min}..${max}, got ${describe(v)}`);
  }
  return v;
}

function expectBool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new FieldError(field, `expected true or false, got ${describe(v)}`);
  return v;
}

function expectTime(v: unknown, field: string): string {
  if (!isIsoTime(v)) throw new FieldError(field, `expected an ISO 8601 date-time like "2026-01-01T00:00:00.000Z", got ${describe(v)}`);
  return v;
}

function expectAddress(v: unknown, field: string): Address {
  const o = expectObject(v, field, ['type', 'address']);
  const type = o['type'];
  if (type !== 'public' && type !== 'random') throw new FieldError(`${field}.type`, `expected "public" or "random", got ${describe(type)}`);
  const address = o['address'];
  if (typeof address !== 'string' || !isValidAddressText(address)) {
    throw new FieldError(`${field}.address`, `expected an address like "AA:BB:CC:DD:EE:FF", got ${describe(address)}`);
  }
  return { type, address: address.toUpperCase() };
}

const BOND_FIELDS = [
  'peer',
  'ltk',
  'ediv',
  'rand',
  'keySize',
  'authenticated',
  'secureConnections',
  'peerIrk',
  'peerCsrk',
  'peerSignCounter',
  'cccd',
  'gatt',
  'createdAt',
  'lastSeenAt',
] as const;

function decodeBond(v: unknown, field: string): BondRecord {
  const o = expectObject(v, field, BOND_FIELDS);
  const randText = o['rand'];
  if (typeof randText !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(randText) || BigInt(randText) > (1n << 64n) - 1n) {
    throw new FieldError(`${field}.rand`, `expected a decimal string for a 64-bit unsigned integer, got ${describe(randText)}`);
  }
  const cccdObj = o['cccd'];
  if (typeof cccdObj !== 'object' || cccdObj === null || Array.isArray(cccdObj)) {
    throw new FieldError(`${field}.cccd`, `expected an object of attribute handle -> CCCD value, got ${describe(cccdObj)}`);
  }
  const cccd: Record<number, number> = {};
  for (const [k, val] of Object.entries(cccdObj as Record<string, unknown>)) {
    const handle = /^[1-9][0-9]{0,4}$/.test(k) ? Number(k) : NaN;
    if (!(handle >= 1 && handle <= 0xffff)) throw new FieldError(`${field}.cccd.${k}`, 'expected a decimal attribute handle 1..65535 as the key');
    cccd[handle] = expectInt(val, `${field}.cccd.${k}`, 0, 0xffff);
  }
  const g = expectObject(o['gatt'], `${field}.gatt`, ['databaseHash', 'clientFeatures', 'changeAware']);
  const databaseHash = g['databaseHash'];
  if (databaseHash !== undefined && (typeof databaseHash !== 'string' || !/^[0-9a-fA-F]{32}$/.test(databaseHash))) {
    throw new FieldError(`${field}.gatt.databaseHash`, `expected 32 hex digits (16 bytes), got ${describe(databaseHash)}`);
  }
  const bond: { -readonly [K in keyof BondRecord]: BondRecord[K] } = {
    peer: expectAddress(o['peer'], `${field}.peer`),
    ltk: expectHexBytes(o['ltk'], `${field}.ltk`, 16),
    ediv: expectInt(o['ediv'], `${field}.ediv`, 0, 0xffff),
    rand: BigInt(randText),
    keySize: expectInt(o['keySize'], `${field}.keySize`, 7, 16),
    authenticated: expectBool(o['authenticated'], `${field}.authenticated`),
    secureConnections: expectBool(o['secureConnections'], `${field}.secureConnections`),
    cccd,
    gatt: {
      ...(databaseHash !== undefined ? { databaseHash: databaseHash.toLowerCase() } : {}),
      clientFeatures: expectInt(g['clientFeatures'], `${field}.gatt.clientFeatures`, 0, 0xff),
      changeAware: expectBool(g['changeAware'], `${field}.gatt.changeAware`),
    },
    createdAt: expectTime(o['createdAt'], `${field}.createdAt`),
    lastSeenAt: expectTime(o['lastSeenAt'], `${field}.lastSeenAt`),
  };
  if (o['peerIrk'] !== undefined) bond.peerIrk = expectHexBytes(o['peerIrk'], `${field}.peerIrk`, 16);
  if (o['peerCsrk'] !== undefined) bond.peerCsrk = expectHexBytes(o['peerCsrk'], `${field}.peerCsrk`, 16);
  if (o['peerSignCounter'] !== undefined) bond.peerSignCounter = expectInt(o['peerSignCounter'], `${field}.peerSignCounter`, 0, 0xffffffff);
  return bond;
}

function decodeDocument(doc: unknown, path: string): BondFileContent {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new FieldError('(top level)', `expected an object, got ${describe(doc)}`);
  const version = (doc as Record<string, unknown>)['schemaVersion'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new FieldError('schemaVersion', `expected a positive integer, got ${describe(version)}`);
  }
  if (version > SCHEMA_VERSION) {
    throw new BondStoreError(
      'unsupportedVersion',
      path,
      `${path} uses bond file schema version ${version}, but this wearable-host reads versions up to ${SCHEMA_VERSION}: ` +
        `it was written by a newer wearable-host. Run that newer version (or upgrade); ` +
        `the file was left untouched so no bond is lost.`,
    );
  }
  const o = expectObject(doc, '', ['schemaVersion', 'localIdentity', 'bonds']);
  let localIdentity: LocalIdentity | undefined;
  if (o['localIdentity'] !== undefined && o['localIdentity'] !== null) {
    const li = expectObject(o['localIdentity'], 'localIdentity', ['address', 'irk']);
    localIdentity = { address: expectAddress(li['address'], 'localIdentity.address'), irk: expectHexBytes(li['irk'], 'localIdentity.irk', 16) };
  }
  const list = o['bonds'];
  if (!Array.isArray(list)) throw new FieldError('bonds', `expected an array, got ${describe(list)}`);
  const bonds: BondRecord[] = [];
  const seen = new Set<string>();
  list.forEach((item: unknown, i: number) => {
    const b = decodeBond(item, `bonds[${i}]`);
    const key = bondKey(b.peer);
    if (seen.has(key)) throw new FieldError(`bonds[${i}].peer`, `a second bond for ${b.peer.address} (${b.peer.type})`);
    seen.add(key);
    bonds.push(b);
  });
  return { localIdentity, bonds };
}

/**
 * Parses and validates a bond file. Throws {@link BondStoreError} with code `syntax` (with line,
 * column and character offset), `invalid` (with the field path) or `unsupportedVersion`; every
 * message names `path` and says how to recover.
 */
export function decodeBondFile(text: string, path: string): BondFileContent {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const where = locateJsonSyntaxError(text);
    const at = where ? `at line ${where.line} column ${where.column} (character ${where.offset})` : '';
    const detail = err instanceof Error ? err.message : String(err);
    throw new BondStoreError('syntax', path, `${path} is not valid JSON ${at}: ${detail}. ${recoveryAdvice(path)}`, { cause: err });
  }
  try {
    return decodeDocument(doc, path);
  } catch (err) {
    if (err instanceof FieldError) {
      throw new BondStoreError('invalid', path, `${path} is not a valid bond file: field ${err.field}: ${err.problem}. ${recoveryAdvice(path)}`, {
        cause: err,
      });
    }
    throw err;
  }
}

/** Where a JSON syntax error is (JSON.parse does not always say): src/util/json-scan.ts. */
export { locateJsonSyntaxError };
