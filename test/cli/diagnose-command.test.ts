import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { EXIT_UNREADABLE, registerDiagnoseCommand, runDiagnose, type DiagnoseIo } from '../../src/cli/diagnose-command.js';
import type { Report } from '../../src/diagnose/diagnose.js';
import { Scenario, cleanPairingThenReconnection } from '../diagnose/builders.js';

function io(): DiagnoseIo & { out: string; err: string } {
  const r = {
    out: '',
    err: '',
    stdout: { write: (s: string) => (r.out += s) },
    stderr: { write: (s: string) => (r.err += s) },
  };
  return r;
}

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wh-diagnose-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function staleBondCapture(): Scenario {
  const s = new Scenario('accessory');
  s.connect();
  s.startEncryption();
  s.ltkReply(false);
  s.disconnect(0x13);
  return s;
}

test('diagnose FILE prints the connection, the finding with evidence, cause and fix, and exits 0 even with findings', () =>
  withDir(async (dir) => {
    const file = join(dir, 'capture.btsnoop');
    writeFileSync(file, staleBondCapture().btsnoop());
    const o = io();
    assert.equal(await runDiagnose(file, {}, o), 0);
    assert.equal(o.err, '');
    assert.match(o.out, /capture\.btsnoop: btsnoop version 1, datalink 1002 \(H4\); 5 HCI packet\(s\)/);
    assert.match(o.out, /taken on the accessory/);
    assert.match(o.out, /Connection 1 \(handle 0x0040\) at #1 \+0\.000 s: phone /);
    assert.match(o.out, /PROBLEM: The phone holds a bond the accessory lost \[phone-kept-stale-bond\]/);
    assert.match(o.out, /#2 \+0\.001 s LE Long Term Key Request \(EDIV 0x0000, Rand 0: an LE Secure Connections key\)/);
    assert.match(o.out, /On the phone: iPhone: Settings > Bluetooth > \(i\)/);
    assert.match(o.out, /1 finding\(s\) \(1 problem\(s\), 0 warning\(s\)\) on 1 of 1 connection\(s\)\./);
  }));

test('diagnose FILE --json prints a report tools can read, for a PacketLogger file taken on the phone', () =>
  withDir(async (dir) => {
    const file = join(dir, 'iphone.pklg');
    writeFileSync(file, cleanPairingThenReconnection('phone').pklg('little'));
    const o = io();
    assert.equal(await runDiagnose(file, { json: true }, o), 0);
    const r = JSON.parse(o.out) as Report;
    assert.equal(r.source?.format, 'pklg');
    assert.equal(r.perspective, 'phone');
    assert.deepEqual(r.findings, []);
    assert.deepEqual(r.connections.map((c) => [c.id, c.capturedOn, c.security.outcome]), [
      [1, 'phone', 'paired'],
      [2, 'phone', 'encrypted'],
    ]);
  }));

test('diagnose of a truncated capture warns and exits 0 (non-zero with --strict); an unknown or damaged file exits non-zero with the byte offset or line', () =>
  withDir(async (dir) => {
    const bytes = staleBondCapture().btsnoop();
    const cut = join(dir, 'cut.btsnoop');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1));
    let o = io();
    assert.equal(await runDiagnose(cut, { strict: true }, o), EXIT_UNREADABLE);
    assert.equal(o.out, '');
    assert.match(o.err, /^wearable-host diagnose: .*cut\.btsnoop: truncated btsnoop record 4 at offset \d+/);
    o = io();
    assert.equal(await runDiagnose(cut, {}, o), 0);
    assert.match(o.out, /Warning: truncated btsnoop record 4 at offset \d+/);
    assert.match(o.out, /PROBLEM: The phone holds a bond the accessory lost/);

    const junk = join(dir, 'notes.txt');
    writeFileSync(junk, 'hello');
    o = io();
    assert.equal(await runDiagnose(junk, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /unrecognised capture format at offset 0/);

    const log = join(dir, 'host.log');
    writeFileSync(log, '{"msg":"hci","dir":"rx","h4":"040e0401030c00","time":1}\n{oops\n{"msg":"x"}\n');
    o = io();
    assert.equal(await runDiagnose(log, {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /line 2: not JSON/);

    o = io();
    assert.equal(await runDiagnose(join(dir, 'missing.btsnoop'), {}, o), EXIT_UNREADABLE);
    assert.match(o.err, /cannot read capture .*missing\.btsnoop: no such file/);
  }));

test('registerDiagnoseCommand adds `diagnose FILE [--json] [--format]` to a commander program', () =>
  withDir(async (dir) => {
    const file = join(dir, 'host.log');
    writeFileSync(file, staleBondCapture().jsonLog());
    const o = io();
    const program = new Command().name('wearable-host').exitOverride();
    registerDiagnoseCommand(program, o);
    await program.parseAsync(['diagnose', file, '--json', '--format', 'json'], { from: 'user' });
    const r = JSON.parse(o.out) as Report;
    assert.deepEqual(r.findings.map((f) => [f.rule, f.evidence.map((e) => e.line)]), [['phone-kept-stale-bond', [3, 4, 6]]]);
    const bad = new Command().name('wearable-host').exitOverride().configureOutput({ writeErr: () => undefined });
    registerDiagnoseCommand(bad, io());
    await assert.rejects(bad.parseAsync(['diagnose', file, '--format', 'pcap'], { from: 'user' }), /Allowed choices are btsnoop, pklg, json/);
  }));
