import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BTSNOOP_EPOCH_OFFSET_US,
  BtsnoopError,
  BtsnoopWriter,
  encodeBtsnoopHeader,
  encodeBtsnoopRecord,
  readBtsnoop,
  type BtsnoopDirection,
} from '../../src/hci/btsnoop.js';
import { VirtualClock } from '../../src/util/clock.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const T0 = Date.UTC(2026, 0, 1);

/** HCI Reset, its Command Complete, an LE Connection Complete, and ATT Read Request/Response over ACL. */
const SAMPLE: [BtsnoopDirection, string, number][] = [
  ['sent', '01 03 0c 00', T0],
  ['received', '04 0e 04 01 03 0c 00', T0 + 1.5],
  ['received', '04 3e 13 01 00 40 00 00 01 06 05 04 03 02 c1 18 00 00 00 48 00 00', T0 + 2.25],
  ['received', '02 40 20 07 00 03 00 04 00 0a 03 00', T0 + 3],
  ['sent', '02 40 00 07 00 03 00 04 00 0b 41 42', T0 + 4.001],
];

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wh-btsnoop-'));
}

function writeSample(path: string, clock = new VirtualClock(T0)): BtsnoopWriter {
  const w = BtsnoopWriter.open(path, { clock });
  for (const [dir, hex, ts] of SAMPLE) w.write(dir, fromHex(hex), ts);
  return w;
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
  });
}

test('the file header is "btsnoop\\0", version 1, datalink 1002 (H4), big-endian', () => {
  assert.equal(toHex(encodeBtsnoopHeader()), '6274736e6f6f7000' + '00000001' + '000003ea');
});

test('a record is original length, included length, flags, drops and microseconds since 0000-01-01, big-endian', () => {
  const rec = encodeBtsnoopRecord('sent', fromHex('01 03 0c 00'), T0);
  const us = BigInt(T0) * 1000n + BTSNOOP_EPOCH_OFFSET_US;
  assert.equal(BTSNOOP_EPOCH_OFFSET_US, 62168256000000000n, '719528 days');
  assert.equal(toHex(rec), '00000004' + '00000004' + '00000002' + '00000000' + us.toString(16).padStart(16, '0') + '01030c00');
  // Flags: bit 0 direction (1 = received), bit 1 command/event.
  assert.equal(toHex(encodeBtsnoopRecord('received', fromHex('04 0e 00'), T0).subarray(8, 12)), '00000003');
  assert.equal(toHex(encodeBtsnoopRecord('received', fromHex('02 40 20 00 00'), T0).subarray(8, 12)), '00000001');
  assert.equal(toHex(encodeBtsnoopRecord('sent', fromHex('02 40 00 00 00'), T0).subarray(8, 12)), '00000000');
});

test('round trip: what BtsnoopWriter writes, readBtsnoop reads back with direction, flags and microsecond timestamps', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'rt.btsnoop');
    const w = writeSample(path);
    assert.equal(w.records, SAMPLE.length);
    await w.close();
    await w.close(); // twice is fine
    const f = readBtsnoop(readFileSync(path));
    assert.equal(f.version, 1);
    assert.equal(f.datalink, 1002);
    assert.equal(f.records.length, SAMPLE.length);
    f.records.forEach((r, i) => {
      const [d, hex, ts] = SAMPLE[i] as [BtsnoopDirection, string, number];
      assert.equal(r.index, i);
      assert.equal(r.direction, d);
      assert.equal(toHex(r.packet), toHex(fromHex(hex)));
      assert.equal(r.originalLength, r.packet.length);
      assert.equal(r.truncated, false);
      assert.equal(r.timestampUs, BigInt(Math.round(ts * 1000)) + BTSNOOP_EPOCH_OFFSET_US);
      assert.ok(Math.abs(r.timestampMs - ts) < 1e-3);
    });
    assert.deepEqual(f.records.map((r) => r.flags), [2, 3, 3, 1, 0]);
    assert.equal(f.records[1]?.offset, 16 + 24 + 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('records are buffered and reach the file on the periodic flush (injected clock), so a crash loses little', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'flush.btsnoop');
    const clock = new VirtualClock(T0);
    const w = BtsnoopWriter.open(path, { clock, flushIntervalMs: 1000 });
    assert.equal(statSync(path).size, 16, 'header written at open');
    assert.equal(clock.pendingCount, 0, 'no timer while idle');
    w.write('sent', fromHex('01 03 0c 00'));
    assert.equal(statSync(path).size, 16, 'record still buffered');
    await clock.advance(999);
    assert.equal(statSync(path).size, 16);
    await clock.advance(1);
    assert.equal(statSync(path).size, 16 + 24 + 4, 'flushed after 1000 ms');
    assert.equal(clock.pendingCount, 0);
    const r = readBtsnoop(readFileSync(path));
    assert.equal(r.records[0]?.timestampMs, T0, 'timestamp from the clock when none is given');
    // A full buffer is written at once.
    const big = BtsnoopWriter.open(join(dir, 'big.btsnoop'), { clock, bufferBytes: 1024 });
    for (let i = 0; i < 10; i++) big.write('received', new Uint8Array(200).fill(2));
    assert.ok(statSync(join(dir, 'big.btsnoop')).size > 16 + 4 * 224);
    big.flush();
    assert.equal(statSync(join(dir, 'big.btsnoop')).size, 16 + 10 * 224);
    await big.close();
    await w.close();
    assert.equal(clock.pendingCount, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('opening a btsnoop file where it cannot be created throws a BtsnoopError naming the path', () => {
  assert.throws(
    () => BtsnoopWriter.open('/nonexistent-dir/x.btsnoop'),
    (e: unknown) => e instanceof BtsnoopError && e.layer === 'hci' && /cannot create btsnoop file \/nonexistent-dir\/x\.btsnoop/.test(e.message),
  );
});

test('a truncated record is an error naming the record and its byte offset; tolerateTruncatedTail keeps the rest', () => {
  const full = concatBytes(encodeBtsnoopHeader(), ...SAMPLE.map(([d, h, t]) => encodeBtsnoopRecord(d, fromHex(h), t)));
  const lastOffset = full.length - 24 - 12;
  // Cut inside the last record's packet bytes.
  const cut = full.subarray(0, full.length - 3);
  assert.throws(
    () => readBtsnoop(cut),
    (e: unknown) => e instanceof BtsnoopError && e.offset === lastOffset && new RegExp(`truncated btsnoop record 4 at offset ${lastOffset}: 12 packet byte\\(s\\) announced, 9 left`).test(e.message),
  );
  // Cut inside the record header.
  assert.throws(
    () => readBtsnoop(full.subarray(0, lastOffset + 10)),
    (e: unknown) => e instanceof BtsnoopError && e.offset === lastOffset && /its header needs 24 bytes, 10 left/.test(e.message),
  );
  const tolerant = readBtsnoop(cut, { tolerateTruncatedTail: true });
  assert.equal(tolerant.records.length, 4);
  assert.equal(tolerant.truncatedTail?.offset, lastOffset);
});

test('bad magic, short files, other versions and unsupported datalinks are errors with offsets and hints', () => {
  const isErr = (offset: number, re: RegExp) => (e: unknown) => e instanceof BtsnoopError && e.offset === offset && re.test(e.message);
  assert.throws(() => readBtsnoop(new TextEncoder().encode('hello world, not a capture')), isErr(0, /bad magic at offset 0 \(expected the bytes "btsnoop\\0"\)/));
  assert.throws(() => readBtsnoop(fromHex('504b0304 00000000 00000000 00000000')), isErr(0, /zip archive.*diagnose. reads it/));
  assert.throws(() => readBtsnoop(fromHex('d4c3b2a1 02000400 00000000 00000000')), isErr(0, /pcap/));
  assert.throws(() => readBtsnoop(fromHex('6274736e6f6f70')), isErr(7, /7 byte\(s\), the file header alone is 16/));
  const h = encodeBtsnoopHeader();
  h[11] = 2;
  assert.throws(() => readBtsnoop(h), isErr(8, /unsupported btsnoop version 2 at offset 8/));
  const h5 = encodeBtsnoopHeader();
  h5[15] = 0xec; // 1004
  assert.throws(() => readBtsnoop(h5), isErr(12, /datalink type 1004 \(HCI Serial H5\) at offset 12: supported are 1001 \(H1\), 1002 \(H4\) and 2001/));
  // included > original is corrupt
  const rec = encodeBtsnoopRecord('sent', fromHex('01 03 0c 00'), T0);
  rec[3] = 2;
  assert.throws(() => readBtsnoop(concatBytes(encodeBtsnoopHeader(), rec)), isErr(16, /included length 4 exceeds original length 2/));
});

test('records whose included length is below the original (Android filtered snoop logs) are marked truncated', () => {
  const rec = encodeBtsnoopRecord('received', fromHex('02 40 20 07 00 03 00'), T0);
  rec[3] = 12; // original 12, included 7
  const f = readBtsnoop(concatBytes(encodeBtsnoopHeader(), rec));
  assert.equal(f.records[0]?.truncated, true);
  assert.equal(f.records[0]?.originalLength, 12);
});

test('datalink 1001 (un-encapsulated H1): the H:4 type byte is rebuilt from the flags', () => {
  const header = encodeBtsnoopHeader(1001);
  const strip = (d: BtsnoopDirection, hex: string) => {
    const r = encodeBtsnoopRecord(d, fromHex(hex), T0);
    const body = r.subarray(24 + 1);
    const out = concatBytes(r.subarray(0, 24), body);
    out[3] = body.length;
    out[7] = body.length;
    return out;
  };
  const f = readBtsnoop(concatBytes(header, strip('sent', '01 03 0c 00'), strip('received', '04 0e 04 01 03 0c 00'), strip('received', '02 40 20 00 00')));
  assert.equal(f.datalink, 1001);
  assert.deepEqual(f.records.map((r) => toHex(r.packet)), ['01030c00', '040e0401030c00', '0240200000']);
});

test('datalink 2001 (btmon): HCI opcodes become H:4 packets with direction and controller index; other records are skipped', () => {
  const header = encodeBtsnoopHeader(2001);
  const monitor = (opcode: number, index: number, hex: string) => {
    const body = fromHex(hex);
    const r = new Uint8Array(24 + body.length);
    const dv = new DataView(r.buffer);
    dv.setUint32(0, body.length);
    dv.setUint32(4, body.length);
    dv.setUint32(8, (index << 16) | opcode);
    dv.setBigInt64(16, BigInt(T0) * 1000n + BTSNOOP_EPOCH_OFFSET_US);
    r.set(body, 24);
    return r;
  };
  const f = readBtsnoop(
    concatBytes(
      header,
      monitor(0x0000, 0, '00 00 01 02 03 04 05 06 68 63 69 30 00 00 00 00'), // New Index
      monitor(0x0002, 0, '03 0c 00'),
      monitor(0x0003, 0, '0e 04 01 03 0c 00'),
      monitor(0x0005, 1, '40 20 00 00'),
      monitor(0x000c, 0, '6e 6f 74 65'), // System Note
    ),
  );
  assert.equal(f.skipped, 2);
  assert.deepEqual(f.records.map((r) => [r.direction, toHex(r.packet), r.controllerIndex]), [
    ['sent', '01030c00', 0],
    ['received', '040e0401030c00', 0],
    ['received', '0240200000', 1],
  ]);
  assert.deepEqual(f.records.map((r) => r.index), [1, 2, 3]);
});

test('tshark decodes our file: Reset, its Command Complete, LE Meta, and ATT over ACL, with no malformed packet', async (t) => {
  if (!hasCommand('tshark')) {
    t.skip('tshark not installed: apt-get install tshark');
    return;
  }
  const dir = tempDir();
  try {
    const path = join(dir, 'ws.btsnoop');
    await writeSample(path).close();
    const v = await run('tshark', ['-r', path, '-V']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /Reset/);
    assert.match(v.stdout, /Command Complete/);
    assert.match(v.stdout, /LE Meta/);
    assert.match(v.stdout, /LE Connection Complete/);
    assert.match(v.stdout, /Read Request/);
    assert.doesNotMatch(v.stdout, /Malformed/i);
    const fields = await run('tshark', ['-r', path, '-T', 'fields', '-e', 'frame.number', '-e', 'hci_h4.type', '-e', 'hci_h4.direction', '-e', 'frame.time_epoch']);
    assert.equal(fields.code, 0, fields.stderr);
    const rows = fields.stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.equal(rows.length, SAMPLE.length, 'packet count');
    assert.deepEqual(rows.map((r) => r[1]), ['0x01', '0x04', '0x04', '0x02', '0x02']);
    assert.deepEqual(rows.map((r) => r[2]), ['0x00', '0x01', '0x01', '0x01', '0x00']);
    assert.equal(rows[0]?.[3], '1767225600.000000000');
    assert.equal(rows[2]?.[3], '1767225600.002250000');

    // And the other way: a file written by Wireshark's own btsnoop writer reads back the same.
    const theirs = join(dir, 'theirs.btsnoop');
    const conv = await run('tshark', ['-r', path, '-F', 'btsnoop', '-w', theirs]);
    assert.equal(conv.code, 0, conv.stderr);
    const f = readBtsnoop(readFileSync(theirs));
    assert.deepEqual(
      f.records.map((r) => [r.direction, toHex(r.packet), r.timestampMs]),
      SAMPLE.map(([d, h, ts]) => [d, toHex(fromHex(h)), Math.round(ts * 1000) / 1000]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file cut short by a crash mid-write is still readable with tolerateTruncatedTail', () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'cut.btsnoop');
    const all = concatBytes(encodeBtsnoopHeader(), ...SAMPLE.map(([d, h, t]) => encodeBtsnoopRecord(d, fromHex(h), t)));
    writeFileSync(path, all.subarray(0, all.length - 40));
    const f = readBtsnoop(readFileSync(path), { tolerateTruncatedTail: true });
    assert.equal(f.records.length, 3);
    assert.match(f.truncatedTail?.message ?? '', /record 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a btsnoop file is readable by its owner only (it carries LTKs), even when it existed before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'btsnoop-mode-'));
  try {
    const path = join(dir, 'trace.btsnoop');
    writeFileSync(path, 'old', { mode: 0o644 });
    const w = BtsnoopWriter.open(path);
    await w.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
