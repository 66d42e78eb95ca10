import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCapture, readCaptureStream, detectFormat, BtsnoopReader } from '../../src/diagnose/formats/index.js';
import { readPklg, encodePklg } from '../../src/diagnose/formats/pklg.js';
import { readPinoLog } from '../../src/diagnose/formats/pino.js';
import { CaptureFormatError, type Capture, type CapturedPacket } from '../../src/diagnose/capture.js';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { diagnose } from '../../src/diagnose/diagnose.js';
import { concatBytes, toHex } from '../../src/util/bytes.js';
import { Scenario, T0, cleanFirstPairing } from './builders.js';

/** A short failing capture: stale bond (LTK negative reply) on the accessory. */
function staleBond(side: 'accessory' | 'phone' = 'accessory'): Scenario {
  const s = new Scenario(side);
  s.connect();
  s.wait(250);
  s.startEncryption();
  s.ltkReply(false);
  s.encryptionChange(0x06);
  s.disconnect(0x13);
  return s;
}

function sameAsPackets(c: Capture, s: Scenario, numberShift = 0): void {
  const want = s.packets();
  assert.equal(c.packets.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const got = c.packets[i];
    const w = want[i];
    assert.ok(got && w);
    assert.equal(toHex(got.h4), toHex(w.h4), `packet ${i}`);
    assert.equal(got.direction, w.direction);
    assert.equal(got.number, w.number + numberShift);
    assert.ok(Math.abs(got.time - w.time) < 0.002, `time of packet ${i}: ${got.time} vs ${w.time}`);
  }
}

function throwsAt(fn: () => unknown, where: { offset?: number; line?: number }, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CaptureFormatError, String(err));
    if (where.offset !== undefined) assert.equal(err.offset, where.offset, err.message);
    if (where.line !== undefined) assert.equal(err.line, where.line, err.message);
    assert.match(err.message, message);
    return true;
  });
}

test('btsnoop: detected by magic, packets, directions and microsecond times as written, same diagnosis as the live packets', () => {
  const s = staleBond();
  const bytes = s.btsnoop();
  assert.equal(detectFormat(bytes, 'x.log'), 'btsnoop');
  const c = readCapture(bytes, { fileName: 'x.log' });
  assert.equal(c.format, 'btsnoop');
  assert.match(c.description, /datalink 1002 \(H4\)/);
  sameAsPackets(c, s);
  const fromFile = diagnose(buildTimeline(c.packets)).findings.map((f) => [f.rule, f.evidence.map((e) => e.number)]);
  const fromPackets = diagnose(buildTimeline(s.packets())).findings.map((f) => [f.rule, f.evidence.map((e) => e.number)]);
  assert.deepEqual(fromFile, fromPackets);
  assert.deepEqual(fromFile, [['phone-kept-stale-bond', [2, 3, 5, 6]]]);
});

test('btsnoop: a cut-short last record is dropped with a warning naming its offset, the packets before it are read; strict makes it an error', () => {
  const bytes = staleBond().btsnoop();
  // The last record is the Disconnection Complete event: 24 header bytes + 7 packet bytes (H:4 type, code, length, 4 parameters).
  const lastOffset = bytes.length - (24 + 7);
  for (const cutBy of [3, 7 + 20]) {
    const cut = bytes.subarray(0, bytes.length - cutBy);
    const c = readCapture(cut);
    assert.equal(c.packets.length, 5);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0] ?? '', new RegExp(`^truncated btsnoop record 5 at offset ${lastOffset}: .*ignored, the packets before it are diagnosed`));
    throwsAt(() => readCapture(cut, { strict: true }), { offset: lastOffset }, new RegExp(`truncated btsnoop record 5 at offset ${lastOffset}.*without --strict`));
  }
  // The same when the bytes arrive in small chunks, the record cut across two of them.
  const packets: number[] = [];
  const r = new BtsnoopReader({ name: 'x' }, (p) => packets.push(p.number));
  for (let i = 0; i < bytes.length - 3; i += 5) r.push(bytes.subarray(i, Math.min(i + 5, bytes.length - 3)));
  const sum = r.end();
  assert.deepEqual(packets, [1, 2, 3, 4, 5]);
  assert.match(sum.warnings[0] ?? '', /record 5/);
});

test('btsnoop: bad magic, unsupported datalink and a header-only stub give errors with offsets', () => {
  const good = staleBond().btsnoop();
  const badDatalink = good.slice();
  badDatalink[15] = 0xec; // 1004 (H5)
  throwsAt(() => readCapture(badDatalink), { offset: 12 }, /datalink type 1004 \(HCI Serial H5\) at offset 12/);
  throwsAt(() => readCapture(good.subarray(0, 12), { format: 'btsnoop' }), { offset: 12 }, /file header alone is 16/);
  const zip = concatBytes(Uint8Array.of(0x50, 0x4b, 0x03, 0x04), new Uint8Array(40));
  throwsAt(() => readCapture(zip, { format: 'btsnoop' }), { offset: 0 }, /zip archive/);
});

test('pklg: big- and little-endian files with a note record read back the same packets, numbered as frames', () => {
  const s = staleBond('phone');
  for (const endian of ['big', 'little'] as const) {
    const bytes = s.pklg(endian, true);
    assert.equal(detectFormat(bytes), 'pklg', endian);
    const c = readCapture(bytes);
    assert.equal(c.format, 'pklg');
    assert.match(c.description, new RegExp(`${endian}-endian`));
    assert.equal(c.skipped, 1);
    sameAsPackets(c, s, 1);
    const r = diagnose(buildTimeline(c.packets));
    assert.equal(r.perspective, 'phone');
    assert.deepEqual(r.findings.map((f) => f.rule), ['phone-kept-stale-bond']);
    // LE Enable Encryption is packet 2 of the scenario, frame 3 after the note.
    assert.equal(r.findings[0]?.evidence[0]?.number, 3);
  }
});

test('pklg: record layout is length, seconds, microseconds, type, payload (big-endian bytes checked)', () => {
  const bytes = encodePklg([{ direction: 'controller->host', h4: Uint8Array.of(0x04, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00), time: T0 + 0.5 }], 'big');
  const secs = Math.floor(T0 / 1000);
  const expected = concatBytes(
    Uint8Array.of(0, 0, 0, 15),
    Uint8Array.of(secs >>> 24, (secs >>> 16) & 0xff, (secs >>> 8) & 0xff, secs & 0xff),
    Uint8Array.of(0, 0, 0x01, 0xf4),
    Uint8Array.of(0x01, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00),
  );
  assert.equal(toHex(bytes), toHex(expected));
  const c = readPklg(bytes);
  assert.equal(c.packets[0]?.time, T0 + 0.5);
  assert.equal(toHex(c.packets[0]?.h4 ?? new Uint8Array()), '040e0401030c00');
});

test('pklg: a little-endian file whose timestamp words are microseconds then seconds is read with the right times', () => {
  const good = encodePklg([{ direction: 'host->controller', h4: Uint8Array.of(0x01, 0x03, 0x0c, 0x00), time: T0 + 12.345 }], 'little');
  const swapped = good.slice();
  swapped.set(good.subarray(8, 12), 4);
  swapped.set(good.subarray(4, 8), 8);
  const c = readPklg(swapped);
  assert.equal(c.packets[0]?.time, T0 + 12.345);
  assert.match(c.description, /swapped/);
});

test('pklg: a cut-short last record is a warning (an error when strict), a corrupt length an error with its offset', () => {
  const bytes = staleBond('phone').pklg('big');
  // The last (5th) record is the Disconnection Complete: 4 length + 8 time + 1 type + 6 event bytes.
  throwsAt(() => readPklg(bytes.subarray(0, bytes.length - 2), 'f', true), { offset: bytes.length - 19 }, /truncated PacketLogger record 5 at offset \d+: 15 bytes announced, 13 left.*without --strict/);
  const lenient = readPklg(bytes.subarray(0, bytes.length - 2), 'f');
  assert.equal(lenient.packets.length, 4);
  assert.match(lenient.warnings[0] ?? '', /^truncated PacketLogger record 5 at offset \d+: 15 bytes announced, 13 left: ignored/);
  const corrupt = bytes.slice();
  // Second record: after the first (4 + 9 + the 21-byte LE Connection Complete event body).
  const second = 4 + 9 + 21;
  corrupt.set([0, 0, 0, 3], second);
  throwsAt(() => readPklg(corrupt), { offset: second }, new RegExp(`corrupt PacketLogger record 2 at offset ${second}: length 3`));
  throwsAt(() => readPklg(Uint8Array.of(1, 2, 3)), { offset: 0 }, /not a PacketLogger file/);
});

test('json: the pino log contract, other lines skipped, packet numbers from n and line numbers kept', () => {
  const s = staleBond();
  const bytes = s.jsonLog(true);
  assert.equal(detectFormat(bytes), 'json');
  const c = readCapture(bytes);
  assert.equal(c.format, 'json');
  assert.equal(c.skipped, 1);
  sameAsPackets(c, s);
  assert.equal(c.packets[0]?.line, 2);
  const r = diagnose(buildTimeline(c.packets));
  assert.deepEqual(r.findings[0]?.evidence.map((e) => e.line), [3, 4, 6, 7]);
  const first = new TextDecoder().decode(bytes).split('\n')[1] ?? '';
  assert.deepEqual(Object.keys(JSON.parse(first) as object).sort(), ['dir', 'h4', 'level', 'msg', 'n', 'name', 'time']);
});

test('json: a line that is not JSON and malformed hci fields give errors with the line number; a cut-short last line is a warning unless strict', () => {
  const enc = (t: string): Uint8Array => new TextEncoder().encode(t);
  const ok = '{"msg":"hci","dir":"rx","h4":"040e0401030c00","time":1}';
  throwsAt(() => readPinoLog(enc(`${ok}\n${ok}\nnot json\n${ok}\n`)), { line: 3 }, /line 3: not JSON/);
  throwsAt(() => readPinoLog(enc(`${ok}\n{"msg":"hci","dir":"rx","h4":"04`), 'f', true), { line: 2 }, /line 2: the last line is not complete JSON/);
  const cut = readPinoLog(enc(`${ok}\n{"msg":"hci","dir":"rx","h4":"04`));
  assert.equal(cut.packets.length, 1);
  assert.match(cut.warnings[0] ?? '', /line 2: the last line is not complete JSON: ignored/);
  assert.equal(readPinoLog(enc(`${ok}\n${ok}`)).packets.length, 2, 'a complete last line without a newline is read');
  throwsAt(() => readPinoLog(enc('{"msg":"hci","dir":"up","h4":"0401","time":1}\n')), { line: 1 }, /"dir": "tx" or "rx"/);
  throwsAt(() => readPinoLog(enc('{"msg":"hci","dir":"tx","h4":"0x1","time":1}\n')), { line: 1 }, /"h4" is not hex/);
  throwsAt(() => readPinoLog(enc('\n\n{"msg":"hci","dir":"tx","h4":"0103"}\n')), { line: 3 }, /"time"/);
  throwsAt(() => readPinoLog(enc('[1,2]\n')), { line: 1 }, /must be an object/);
});

test('an unknown file is an error at offset 0 that lists the supported formats', () => {
  throwsAt(() => readCapture(new TextEncoder().encode('hello world, not a capture at all')), { offset: 0 }, /unrecognised capture format at offset 0.*PacketLogger.*--format/);
  throwsAt(() => readCapture(new Uint8Array(0)), { offset: 0 }, /unrecognised/);
});

test('--format forces a reader: a JSON log read as btsnoop fails at offset 0', () => {
  const bytes = staleBond().jsonLog();
  throwsAt(() => readCapture(bytes, { format: 'btsnoop' }), { offset: 0 }, /not a btsnoop file: bad magic at offset 0/);
});

test('pklg (both byte orders) and btsnoop files we write are read by Wireshark (tshark) with the same frame numbers, times and SMP PDUs', (t) => {
  const which = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.skip('tshark not installed');
    return;
  }
  const s = cleanFirstPairing('phone');
  const dir = mkdtempSync(join(tmpdir(), 'wh-pklg-'));
  try {
    const files: [string, Uint8Array][] = [
      ['be.pklg', s.pklg('big', true)],
      ['le.pklg', s.pklg('little', true)],
      ['x.btsnoop', s.btsnoop()],
    ];
    for (const [name, bytes] of files) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      const r = spawnSync('tshark', ['-r', path, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'btsmp.opcode'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
      const ours = readCapture(bytes, { fileName: name });
      const smpFrames = buildTimeline(ours.packets).events.filter((e) => e.kind === 'smp').map((e) => [e.at.number, e.kind === 'smp' ? e.pdu.type : '']);
      const theirs = rows.filter((row) => (row[2] ?? '') !== '').map((row) => Number(row[0]));
      assert.deepEqual(smpFrames.map((x) => x[0]), theirs, name);
      for (const p of ours.packets) {
        const row = rows[p.number - 1];
        assert.ok(row, `${name}: frame ${p.number}`);
        assert.ok(Math.abs(Number(row[1]) * 1000 - p.time) < 0.01, `${name}: time of frame ${p.number}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every reader gives the same packets fed whole or a few bytes at a time (records cut across chunks)', async () => {
  const s = cleanFirstPairing('phone');
  for (const [format, bytes] of [
    ['btsnoop', s.btsnoop()],
    ['pklg', s.pklg('little', true)],
    ['json', s.jsonLog(true)],
  ] as const) {
    const whole = readCapture(bytes);
    for (const size of [1, 7, 4096]) {
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      }
      const got: CapturedPacket[] = [];
      const sum = await readCaptureStream(chunks(), {}, (p) => got.push(p));
      assert.equal(sum.format, format);
      assert.equal(sum.packets, whole.packets.length, `${format} in chunks of ${size}`);
      assert.deepEqual(got.map((p) => [p.number, p.direction, toHex(p.h4), p.time]), whole.packets.map((p) => [p.number, p.direction, toHex(p.h4), p.time]), `${format} in chunks of ${size}`);
      assert.deepEqual(sum.warnings, whole.warnings);
    }
  }
});
