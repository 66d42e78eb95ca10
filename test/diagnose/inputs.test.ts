import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBtsnooz } from '../../src/diagnose/formats/btsnooz.js';
import { runDiagnose, EXIT_UNREADABLE, type DiagnoseIo } from '../../src/cli/diagnose-command.js';
import { diagnose, type Report } from '../../src/diagnose/diagnose.js';
import { buildTimeline } from '../../src/diagnose/timeline.js';
import { deflateSync } from 'node:zlib';
import { toHex } from '../../src/util/bytes.js';
import { Scenario, cleanPairingThenReconnection, ANDROID } from './builders.js';
import { buildTarGz, buildZip, bugreportText, encodeBtsnooz } from './archives.js';

function io(): DiagnoseIo & { out: string; err: string } {
  const r = { out: '', err: '', stdout: { write: (s: string) => (r.out += s) }, stderr: { write: (s: string) => (r.err += s) } };
  return r;
}

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wh-inputs-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** The phone (central) holds a bond the accessory lost: encryption fails with PIN or Key Missing. */
function phoneStaleBond(): Scenario {
  const s = new Scenario('phone');
  s.connect();
  s.wait(250);
  s.startEncryption();
  s.encryptionChange(0x06);
  s.disconnect(0x13);
  return s;
}

const enc = (t: string): Uint8Array => new TextEncoder().encode(t);

interface ArchiveJson {
  input: string;
  reports: Report[];
}

test('btsnooz v1 and v2: packets, directions and times come back; ACL cut to 14 bytes is marked cut short', () => {
  const s = cleanPairingThenReconnection('phone', ANDROID);
  const want = s.packets();
  for (const version of [1, 2] as const) {
    const c = decodeBtsnooz(encodeBtsnooz(want, version), 'r.txt');
    assert.equal(c.packets.length, want.length);
    assert.match(c.description, new RegExp(`btsnooz v${version} summary .*the last ${want.length} HCI packet`));
    for (let i = 0; i < want.length; i++) {
      const g = c.packets[i];
      const w = want[i];
      assert.ok(g && w);
      assert.equal(g.direction, w.direction, `packet ${i}`);
      assert.ok(Math.abs(g.time - w.time) < 0.002, `time of packet ${i}: ${g.time} vs ${w.time}`);
      if (w.h4[0] === 0x02 && w.h4.length > 15) {
        assert.equal(toHex(g.h4), toHex(w.h4.subarray(0, 15)));
        // Version 1 has no packet length: it cannot tell a cut packet.
        assert.equal(g.truncated === true, version === 2, `packet ${i}`);
      } else assert.equal(toHex(g.h4), toHex(w.h4), `packet ${i}`);
    }
    if (version === 2) assert.match(c.warnings.join('\n'), /cut short in the summary \(it keeps 14 bytes of ACL data\)/);
  }
});

test('btsnooz: not base64, an unknown version and a broken zlib stream are errors naming the section', () => {
  assert.throws(() => decodeBtsnooz('not base64!!', 'r.txt'), /r\.txt: BTSNOOP_LOG_SUMMARY is not base64/);
  const good = Buffer.from(encodeBtsnooz(phoneStaleBond().packets()), 'base64');
  const v3 = Buffer.from(good);
  v3[0] = 3;
  assert.throws(() => decodeBtsnooz(v3.toString('base64'), 'r.txt'), /unsupported btsnooz version 3 at offset 0/);
  const broken = Buffer.concat([good.subarray(0, 9), Buffer.from('not zlib at all')]);
  assert.throws(() => decodeBtsnooz(broken.toString('base64'), 'r.txt'), /r\.txt: BTSNOOP_LOG_SUMMARY: the records after the 9-byte preamble are not a zlib stream/);
});

test('diagnose bugreport.txt decodes its BTSNOOP_LOG_SUMMARY and names the failure from the phone side', () =>
  withDir(async (dir) => {
    const file = join(dir, 'bugreport-husky-2026-12-01.txt');
    writeFileSync(file, bugreportText(encodeBtsnooz(phoneStaleBond().packets())));
    const o = io();
    assert.equal(await runDiagnose(file, { json: true }, o), 0, o.err);
    const r = JSON.parse(o.out) as ArchiveJson;
    assert.equal(r.reports.length, 1);
    const rep = r.reports[0] as Report;
    assert.equal(rep.perspective, 'phone');
    assert.match(rep.source?.description ?? '', /BTSNOOP_LOG_SUMMARY.*btsnooz v2/);
    // The same findings, on the same packet numbers, as the packets themselves give.
    const direct = diagnose(buildTimeline(phoneStaleBond().packets())).findings.map((f) => [f.rule, f.evidence.map((e) => e.number)]);
    assert.ok(direct.length > 0, 'the stale bond is named');
    assert.deepEqual(rep.findings.map((f) => [f.rule, f.evidence.map((e) => e.number)]), direct);
  }));

test('diagnose bugreport.zip reads FS/data/misc/bluetooth/logs/btsnoop_hci.log and .last (newest first), stored or deflated, with data descriptors or zip64', () =>
  withDir(async (dir) => {
    const current = phoneStaleBond().btsnoop();
    const previous = cleanPairingThenReconnection('phone', ANDROID).btsnoop();
    const variants: [string, Uint8Array][] = [
      ['deflated', buildZip([{ name: 'bugreport-x.txt', data: enc('dumpstate\n') }, { name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log.last', data: previous }, { name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log', data: current }])],
      ['stored+descriptor', buildZip([{ name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log', data: current, method: 0, dataDescriptor: true }, { name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log.last', data: previous, dataDescriptor: true }])],
      ['zip64', buildZip([{ name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log.last', data: previous }, { name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log', data: current, dataDescriptor: true }], { zip64: true })],
    ];
    for (const [what, zip] of variants) {
      const file = join(dir, `bugreport-${what}.zip`);
      writeFileSync(file, zip);
      const o = io();
      assert.equal(await runDiagnose(file, { json: true }, o), 0, `${what}: ${o.err}`);
      const r = JSON.parse(o.out) as ArchiveJson;
      assert.deepEqual(r.reports.map((x) => x.source?.file), [`${file}!FS/data/misc/bluetooth/logs/btsnoop_hci.log`, `${file}!FS/data/misc/bluetooth/logs/btsnoop_hci.log.last`], what);
      assert.deepEqual(r.reports.map((x) => x.packets), [5, cleanPairingThenReconnection('phone', ANDROID).packets().length], what);
      assert.ok((r.reports[0]?.findings.length ?? 0) > 0, what);
      assert.deepEqual(r.reports[1]?.findings, [], `${what}: the clean session stays clean`);
    }
  }));

test('diagnose bugreport.zip without an HCI log falls back to the summary in the main text; without either it says how to get one', () =>
  withDir(async (dir) => {
    const summary = buildZip([
      { name: 'main_entry.txt', data: enc('bugreport-husky-2026.txt') },
      { name: 'bugreport-husky-2026.txt', data: enc(bugreportText(encodeBtsnooz(phoneStaleBond().packets()))) },
      { name: 'FS/data/misc/other.txt', data: enc('x') },
    ]);
    const file = join(dir, 'bugreport-summary.zip');
    writeFileSync(file, summary);
    let o = io();
    assert.equal(await runDiagnose(file, {}, o), 0, o.err);
    assert.match(o.out, /bugreport-summary\.zip!bugreport-husky-2026\.txt: Android bug report without a full HCI log: the BTSNOOP_LOG_SUMMARY/);
    assert.match(o.out, /PROBLEM/);

    const none = join(dir, 'bugreport-none.zip');
    writeFileSync(none, buildZip([{ name: 'bugreport-x.txt', data: enc('dumpstate, no bluetooth\n') }]));
    o = io();
    assert.equal(await runDiagnose(none, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /no HCI log in this bug report: on the phone enable Developer options > Enable Bluetooth HCI snoop log/);

    const damaged = join(dir, 'bugreport-damaged.zip');
    writeFileSync(damaged, summary.subarray(0, summary.length - 30));
    o = io();
    assert.equal(await runDiagnose(damaged, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /bugreport-damaged\.zip: not a readable zip archive/);
  }));

test('an Android log cut mid-record inside a bug report is read up to the cut with a warning; --strict fails', () =>
  withDir(async (dir) => {
    const log = phoneStaleBond().btsnoop();
    const file = join(dir, 'bugreport-cut.zip');
    writeFileSync(file, buildZip([{ name: 'FS/data/misc/bluetooth/logs/btsnoop_hci.log', data: log.subarray(0, log.length - 4) }]));
    let o = io();
    assert.equal(await runDiagnose(file, {}, o), 0, o.err);
    assert.match(o.out, /Warning: truncated btsnoop record 4 at offset \d+/);
    o = io();
    assert.equal(await runDiagnose(file, { strict: true }, o), EXIT_UNREADABLE);
    assert.match(o.err, /btsnoop_hci\.log: truncated btsnoop record 4/);
  }));

test('diagnose sysdiagnose.tar.gz finds every .pklg (pax and GNU long names), skips the rest, and says what to do when there is none', () =>
  withDir(async (dir) => {
    const root = 'sysdiagnose_2026.12.01_10-00-00+0100_iPhone-OS_iPhone_22C152';
    const deep = `${root}/logs/Bluetooth/${'x'.repeat(60)}/bluetoothd-hci-2026-12-01_09-00-00.pklg`;
    assert.ok(deep.length > 100);
    const tgz = buildTarGz([
      { name: `${root}/`, type: '5' },
      { name: `${root}/logs/system_logs.txt`, data: new Uint8Array(3000).fill(0x41) },
      { name: `${root}/logs/Bluetooth/bluetoothd-hci-latest.pklg`, data: phoneStaleBond().pklg('little') },
      { name: deep, data: cleanPairingThenReconnection('phone').pklg('little') },
      { name: `${root}/logs/Bluetooth/${'y'.repeat(100)}.pklg`, data: phoneStaleBond().pklg('big'), longName: 'gnu' },
    ]);
    const file = join(dir, 'sysdiagnose_2026.12.01.tar.gz');
    writeFileSync(file, tgz);
    let o = io();
    assert.equal(await runDiagnose(file, { json: true }, o), 0, o.err);
    const r = JSON.parse(o.out) as ArchiveJson;
    assert.deepEqual(r.reports.map((x) => x.source?.file), [
      `${file}!${root}/logs/Bluetooth/bluetoothd-hci-latest.pklg`,
      `${file}!${deep}`,
      `${file}!${root}/logs/Bluetooth/${'y'.repeat(100)}.pklg`,
    ]);
    assert.deepEqual(r.reports.map((x) => [x.source?.format, x.perspective, x.findings.length > 0]), [
      ['pklg', 'phone', true],
      ['pklg', 'phone', false],
      ['pklg', 'phone', true],
    ]);

    const empty = join(dir, 'sysdiagnose_empty.tar.gz');
    writeFileSync(empty, buildTarGz([{ name: `${root}/logs/system_logs.txt`, data: enc('x') }]));
    o = io();
    assert.equal(await runDiagnose(empty, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /no PacketLogger \(\.pklg\) file in this archive: install Apple's Bluetooth logging profile/);

    const cut = join(dir, 'sysdiagnose_cut.tar.gz');
    writeFileSync(cut, tgz.subarray(0, tgz.length - 200));
    o = io();
    assert.equal(await runDiagnose(cut, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /sysdiagnose_cut\.tar\.gz.*(unexpected end of file|cut short)/);
  }));

test('hostile inputs: a btsnooz section that inflates past any real summary is refused; control characters in entry names do not reach the terminal', () =>
  withDir(async (dir) => {
    const pre = Buffer.alloc(9);
    pre[0] = 2;
    const bomb = Buffer.concat([pre, deflateSync(Buffer.alloc(65 << 20))]).toString('base64');
    assert.throws(() => decodeBtsnooz(bomb, 'r.txt'), /inflate to more than 64 MiB.*not a btsnooz summary/);

    const file = join(dir, 'bugreport-esc.zip');
    writeFileSync(file, buildZip([{ name: 'FS/data/misc/bluetooth/logs\u001b[2J/btsnoop_hci.log', data: phoneStaleBond().btsnoop() }]));
    const o = io();
    assert.equal(await runDiagnose(file, {}, o), 0, o.err);
    assert.ok(!o.out.includes('\u001b'), 'no escape character in the report');
    assert.match(o.out, /logs\?\[2J\/btsnoop_hci\.log/);
  }));
