/**
 * Builders for the inputs people hand over: btsnooz sections (an Android bug report without the
 * full snoop log), zip archives (bug reports; stored, deflated, with data descriptors, zip64) and
 * tar.gz archives (iOS sysdiagnose; ustar, pax and GNU long names). Byte-level, from the formats'
 * public descriptions (PKWARE APPNOTE.TXT, POSIX pax/ustar), so the readers are tested against
 * what the formats allow, not against themselves.
 */
import { crc32, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import type { HciDirection } from '../../src/diagnose/capture.js';

const SNOOZ_TYPES: Record<string, number> = {
  '4:controller->host': 0x10,
  '2:controller->host': 0x11,
  '1:host->controller': 0x20,
  '2:host->controller': 0x21,
};

/** Encodes packets as a btsnooz section's base64, as the Android stack writes it (ACL cut to `aclKeep` bytes). */
export function encodeBtsnooz(packets: readonly { h4: Uint8Array; direction: HciDirection; time: number }[], version: 1 | 2 = 2, aclKeep = 14): string {
  const recs: Buffer[] = [];
  let last = 0;
  for (const p of packets) {
    const us = Math.round(p.time * 1000);
    const delta = last ? us - last : 0;
    last = us;
    const h4Type = p.h4[0] ?? 0;
    const type = SNOOZ_TYPES[`${h4Type}:${p.direction}`];
    if (type === undefined) throw new RangeError(`no btsnooz type for H:4 type ${h4Type} ${p.direction}`);
    const payload = p.h4.subarray(1, h4Type === 0x02 ? 1 + aclKeep : p.h4.length);
    const head = Buffer.alloc(version === 1 ? 7 : 9);
    head.writeUInt16LE(payload.length + 1, 0);
    if (version === 2) head.writeUInt16LE(p.h4.length, 2);
    head.writeUInt32LE(delta, version === 1 ? 2 : 4);
    head[head.length - 1] = type;
    recs.push(head, Buffer.from(payload));
  }
  const pre = Buffer.alloc(9);
  pre[0] = version;
  pre.writeBigUInt64LE(BigInt(last), 1);
  return Buffer.concat([pre, deflateSync(Buffer.concat(recs))]).toString('base64');
}

/** A bug report text with a btsnooz section among other dumpsys output, 128 base64 characters a line. */
export function bugreportText(base64: string): string {
  const lines = base64.match(/.{1,128}/g) ?? [];
  return [
    '========================================================',
    '== dumpstate: 2026-12-01 10:00:00',
    '------ DUMPSYS (/system/bin/dumpsys bluetooth_manager) ------',
    'Bluetooth Status',
    '  enabled: true',
    `--- BEGIN:BTSNOOP_LOG_SUMMARY (${base64.length} bytes in) ---`,
    ...lines,
    '--- END:BTSNOOP_LOG_SUMMARY ---',
    'other output',
    '',
  ].join('\n');
}

export interface ZipEntryInput {
  name: string;
  data: Uint8Array;
  /** Deflate (8) or store (0). Default deflate. */
  method?: 0 | 8;
  /** Sizes and CRC in a data descriptor after the data (general purpose flag bit 3), zeros in the local header. */
  dataDescriptor?: boolean;
}

/** A zip archive; `zip64` writes zip64 extra fields, the zip64 end records and 0xFFFFFFFF in the 32-bit fields. */
export function buildZip(entries: readonly ZipEntryInput[], opts: { zip64?: boolean } = {}): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const body = method === 8 ? deflateRawSync(e.data) : Buffer.from(e.data);
    const crc = crc32(e.data);
    const name = Buffer.from(e.name, 'utf8');
    const flags = (e.dataDescriptor ? 0x08 : 0) | 0x800;
    const z64 = opts.zip64 === true;
    const localExtra = z64 ? zip64Extra([e.dataDescriptor ? 0 : e.data.length, e.dataDescriptor ? 0 : body.length]) : Buffer.alloc(0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(z64 ? 45 : 20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(e.dataDescriptor ? 0 : crc, 14);
    local.writeUInt32LE(z64 ? 0xffffffff : e.dataDescriptor ? 0 : body.length, 18);
    local.writeUInt32LE(z64 ? 0xffffffff : e.dataDescriptor ? 0 : e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    parts.push(local, name, localExtra, body);
    let size = 30 + name.length + localExtra.length + body.length;
    if (e.dataDescriptor) {
      const dd = Buffer.alloc(z64 ? 24 : 16);
      dd.writeUInt32LE(0x08074b50, 0);
      dd.writeUInt32LE(crc, 4);
      if (z64) {
        dd.writeBigUInt64LE(BigInt(body.length), 8);
        dd.writeBigUInt64LE(BigInt(e.data.length), 16);
      } else {
        dd.writeUInt32LE(body.length, 8);
        dd.writeUInt32LE(e.data.length, 12);
      }
      parts.push(dd);
      size += dd.length;
    }
    const cExtra = z64 ? zip64Extra([e.data.length, body.length, offset]) : Buffer.alloc(0);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(z64 ? 45 : 20, 4);
    c.writeUInt16LE(z64 ? 45 : 20, 6);
    c.writeUInt16LE(flags, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(z64 ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(cExtra.length, 30);
    c.writeUInt32LE(z64 ? 0xffffffff : offset, 42);
    central.push(c, name, cExtra);
    offset += size;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const e64 = Buffer.alloc(56);
    e64.writeUInt32LE(0x06064b50, 0);
    e64.writeBigUInt64LE(44n, 4);
    e64.writeUInt16LE(45, 12);
    e64.writeUInt16LE(45, 14);
    e64.writeBigUInt64LE(BigInt(entries.length), 24);
    e64.writeBigUInt64LE(BigInt(entries.length), 32);
    e64.writeBigUInt64LE(BigInt(cd.length), 40);
    e64.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(e64, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cd, ...tail, eocd]);
}

function zip64Extra(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

export interface TarEntryInput {
  name: string;
  data?: Uint8Array;
  /** '0' file (default), '5' directory, 'x' pax header written for the next entry automatically when the name is long. */
  type?: '0' | '5' | '2';
  /** How a name over 100 bytes is stored: a pax 'x' header (default, what bsdtar writes) or a GNU 'L' record. */
  longName?: 'pax' | 'gnu';
}

function tarHeader(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('15123456700\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

function padded(data: Uint8Array): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([Buffer.from(data), Buffer.alloc(pad)]);
}

/** A tar archive (ustar; long names as pax or GNU records), gzip-compressed like a sysdiagnose. */
export function buildTarGz(entries: readonly TarEntryInput[]): Uint8Array {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? new Uint8Array(0);
    if (Buffer.byteLength(e.name) > 100) {
      if (e.longName === 'gnu') {
        const n = Buffer.from(e.name + '\0');
        parts.push(tarHeader('././@LongLink', n.length, 'L'), padded(n));
      } else {
        const rec = (len: number): string => `${len} path=${e.name}\n`;
        let len = rec(0).length;
        while (rec(len).length !== len) len = rec(len).length;
        const pax = Buffer.from(rec(len));
        parts.push(tarHeader('PaxHeader/x', pax.length, 'x'), padded(pax));
      }
    }
    parts.push(tarHeader(e.name, data.length, e.type ?? '0'), padded(data));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}
