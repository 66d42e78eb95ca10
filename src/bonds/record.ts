/**
 * Validation and copying of in-memory bond records, shared by every BondStore implementation.
 * A malformed record handed to a store is a caller bug: it is refused with a BondStoreError that
 * names the field, before anything is stored or written.
 */
import { isValidAddressText, type Address } from '../util/address.js';
import { BondStoreError } from './errors.js';
import type { BondRecord, LocalIdentity } from './types.js';

/** The map key of an identity address: `public/AA:BB:CC:DD:EE:FF`. */
export function bondKey(a: Address): string {
  return `${a.type}/${a.address.toUpperCase()}`;
}

const MAX_RAND = (1n << 64n) - 1n;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** Whether `s` is an ISO 8601 date-time with a zone that Date can parse. */
export function isIsoTime(s: unknown): s is string {
  return typeof s === 'string' && ISO_8601.test(s) && !Number.isNaN(Date.parse(s));
}

function bad(where: string, field: string, what: string, got: unknown): BondStoreError {
  let shown: string;
  if (got instanceof Uint8Array) shown = `${got.length} byte(s)`;
  else if (typeof got === 'bigint') shown = `${got}n`;
  else shown = JSON.stringify(got) ?? String(got);
  return new BondStoreError('invalidRecord', undefined, `${where}: ${field} must be ${what}, got ${shown}`);
}

function checkInt(where: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(where, field, `an integer in ${min}..${max}`, v);
  return v;
}

function checkBytes(where: string, field: string, v: unknown, n: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== n) throw bad(where, field, `${n} bytes`, v);
  return v.slice();
}

function checkBool(where: string, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw bad(where, field, 'a boolean', v);
  return v;
}

/** Checks an address and returns it with the text upper-cased. */
export function checkAddress(where: string, field: string, v: unknown): Address {
  if (typeof v !== 'object' || v === null) throw bad(where, field, 'an address { type, address }', v);
  const { type, address } = v as { type?: unknown; address?: unknown };
  if (type !== 'public' && type !== 'random') throw bad(where, `${field}.type`, '"public" or "random"', type);
  if (typeof address !== 'string' || !isValidAddressText(address)) throw bad(where, `${field}.address`, 'AA:BB:CC:DD:EE:FF', address);
  return { type, address: address.toUpperCase() };
}

/**
 * Validates every field of a bond record and returns a deep copy (byte arrays, CCCD map and GATT
 * state are copied, the address text upper-cased), so the caller's objects can change afterwards
 * without changing the store.
 */
export function checkBondRecord(r: BondRecord, where = 'bond record'): BondRecord {
  if (typeof r !== 'object' || r === null) throw bad(where, 'record', 'an object', r);
  const peer = checkAddress(where, 'peer', r.peer);
  const ltk = checkBytes(where, 'ltk', r.ltk, 16);
  const ediv = checkInt(where, 'ediv', r.ediv, 0, 0xffff);
  if (typeof r.rand !== 'bigint' || r.rand < 0n || r.rand > MAX_RAND) throw bad(where, 'rand', 'a bigint in 0..2^64-1', r.rand);
  const keySize = checkInt(where, 'keySize', r.keySize, 7, 16);
  const authenticated = checkBool(where, 'authenticated', r.authenticated);
  const secureConnections = checkBool(where, 'secureConnections', r.secureConnections);
  const out: {
    -readonly [K in keyof BondRecord]: BondRecord[K];
  } = {
    peer,
    ltk,
    ediv,
    rand: r.rand,
    keySize,
    authenticated,
    secureConnections,
    cccd: {},
    gatt: { clientFeatures: 0, changeAware: false },
    createdAt: '',
    lastSeenAt: '',
  };
  if (r.peerIrk !== undefined) out.peerIrk = checkBytes(where, 'peerIrk', r.peerIrk, 16);
  if (r.peerCsrk !== undefined) out.peerCsrk = checkBytes(where, 'peerCsrk', r.peerCsrk, 16);
  if (r.peerSignCounter !== undefined) out.peerSignCounter = checkInt(where, 'peerSignCounter', r.peerSignCounter, 0, 0xffffffff);
  if (typeof r.cccd !== 'object' || r.cccd === null) throw bad(where, 'cccd', 'an object of handle -> value', r.cccd);
  const cccd: Record<number, number> = {};
  for (const [k, v] of Object.entries(r.cccd)) {
    const handle = /^[0-9]+$/.test(k) ? Number(k) : NaN;
    checkInt(where, `cccd key ${JSON.stringify(k)}`, handle, 1, 0xffff);
    cccd[handle] = checkInt(where, `cccd[${k}]`, v, 0, 0xffff);
  }
  out.cccd = cccd;
  const g = r.gatt as unknown;
  if (typeof g !== 'object' || g === null) throw bad(where, 'gatt', 'an object', g);
  const { databaseHash, clientFeatures, changeAware } = g as { databaseHash?: unknown; clientFeatures?: unknown; changeAware?: unknown };
  if (databaseHash !== undefined && (typeof databaseHash !== 'string' || !/^[0-9a-fA-F]{32}$/.test(databaseHash))) {
    throw bad(where, 'gatt.databaseHash', '32 hex digits (16 bytes)', databaseHash);
  }
  out.gatt = {
    ...(databaseHash !== undefined ? { databaseHash: databaseHash.toLowerCase() } : {}),
    clientFeatures: checkInt(where, 'gatt.clientFeatures', clientFeatures, 0, 0xff),
    changeAware: checkBool(where, 'gatt.changeAware', changeAware),
  };
  if (!isIsoTime(r.createdAt)) throw bad(where, 'createdAt', 'an ISO 8601 date-time', r.createdAt);
  if (!isIsoTime(r.lastSeenAt)) throw bad(where, 'lastSeenAt', 'an ISO 8601 date-time', r.lastSeenAt);
  out.createdAt = r.createdAt;
  out.lastSeenAt = r.lastSeenAt;
  return out;
}

/** Validates our own identity and returns a copy. */
export function checkLocalIdentity(id: LocalIdentity, where = 'local identity'): LocalIdentity {
  if (typeof id !== 'object' || id === null) throw bad(where, 'identity', 'an object', id);
  return { address: checkAddress(where, 'address', id.address), irk: checkBytes(where, 'irk', id.irk, 16) };
}
