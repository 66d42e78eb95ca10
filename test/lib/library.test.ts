/**
 * The library surface (src/index.ts) on the virtual air in real time: a HIL-style test as a user
 * writes it, typed events, waits that name what they waited for, cancellation, one close().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualAir, Wearable, Phone, WaitError, PhoneError, HealthUuid, AttErrorCode, diagnose, decodeAttErrorSent } from '../../src/index.js';

test('a phone pairs with the wearable on the virtual air: paired (level 2, 16-byte key), bond saved, 0x05 sent first, both visible as typed events', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-lib-'));
  const air = new VirtualAir({ seed: 'lib-test' });
  try {
    const wearable = await Wearable.start({ controller: air, logLevel: 'silent', btsnoop: join(dir, 'w.btsnoop') });
    await wearable.advertising();
    const phone = await Phone.open({ controller: air, profile: 'android', user: { thinkMs: 50 } });
    const c = await phone.connect('Noira Band');
    assert.match(c.peer, /^[0-9A-F:]{17} \(random\)$/);
    const record = await phone.read(HealthUuid.record); // 0x05, the phone pairs, retries
    assert.ok(record.length > 0);
    const paired = await wearable.waitFor('paired', { timeoutMs: 5000 });
    assert.equal(paired.level, 2);
    assert.equal(paired.keySize, 16);
    assert.equal(paired.bonded, true);
    // Discovery ends with 0x0A Attribute Not Found; the first security error is 0x05.
    const attErr = await wearable.waitFor('attErrorSent', { timeoutMs: 1000, filter: (e) => e.code !== AttErrorCode.attributeNotFound });
    assert.equal(attErr.code, AttErrorCode.insufficientAuthentication);
    assert.equal(attErr.codeName, 'Insufficient Authentication');
    const saved = await wearable.waitFor('bondSaved', { timeoutMs: 1000 });
    assert.equal(saved.peer, paired.identity);
    assert.equal(wearable.bonds.list().length, 1);
    const enc = await wearable.waitFor('encryptionChanged', { timeoutMs: 1000, filter: (e) => e.enabled });
    assert.equal(enc.status, 0);
    await wearable.bonds.remove(saved.bond.peer);
    assert.equal((await wearable.waitFor('bondRemoved', { timeoutMs: 1000 })).peer, saved.peer);
    await phone.disconnect();
    const gone = await wearable.waitFor('disconnected', { timeoutMs: 5000 });
    assert.equal(gone.reason, 0x13);
    await air.close(); // closes the wearable and the phone too
    const report = await diagnose(join(dir, 'w.btsnoop'));
    assert.ok(report.packets > 50);
    assert.equal(report.connections.length, 1);
  } finally {
    await air.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('waitFor rejects with a WaitError naming the event on timeout, on abort and on close', async () => {
  const air = new VirtualAir({ seed: 'lib-wait' });
  try {
    const wearable = await Wearable.start({ controller: air, logLevel: 'silent' });
    await assert.rejects(wearable.waitFor('paired', { timeoutMs: 50 }), (e: unknown) => {
      assert.ok(e instanceof WaitError);
      assert.equal(e.kind, 'timeout');
      assert.equal(e.waitedFor, "the wearable's 'paired' event");
      assert.match(e.message, /waited 50 ms for the wearable's 'paired' event/);
      return true;
    });
    const ac = new AbortController();
    const p = wearable.waitFor('connected', { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, (e: unknown) => e instanceof WaitError && e.kind === 'aborted');
    const q = wearable.waitFor('connected');
    await wearable.close();
    await assert.rejects(q, (e: unknown) => e instanceof WaitError && e.kind === 'closed');
    const phone = await Phone.open({ controller: air });
    await assert.rejects(phone.connect('Nobody Here', { timeoutMs: 300 }), (e: unknown) => e instanceof WaitError && e.waitedFor === 'phone.connect("Nobody Here")');
    await assert.rejects(phone.pair(), (e: unknown) => e instanceof PhoneError && /not connected/.test(e.message));
  } finally {
    await air.close();
  }
});

test('the user cancels at the prompt: the phone rejects with PhoneError pairing-cancelled, the wearable reports pairingFailed', async () => {
  const air = new VirtualAir({ seed: 'lib-cancel' });
  try {
    const wearable = await Wearable.start({ controller: air, logLevel: 'silent' });
    const phone = await Phone.open({ controller: air, profile: 'ios', user: { answer: 'cancel', thinkMs: 20 } });
    await phone.connect('Noira Band');
    await assert.rejects(phone.pair(), (e: unknown) => e instanceof PhoneError && e.kind === 'pairing-cancelled');
    const f = await wearable.waitFor('pairingFailed', { timeoutMs: 5000 });
    assert.equal(f.by, 'peer');
    assert.equal(wearable.bonds.list().length, 0);
  } finally {
    await air.close();
  }
});

test('decodeAttErrorSent reads an ATT Error Response from a sent ACL packet, and nothing else', () => {
  // H:4 ACL, handle 0x0040 PB=00, length 9; L2CAP length 5, CID 0x0004; Error Response to Read (0x0a) of 0x0011, 0x05.
  const pkt = Uint8Array.of(0x02, 0x40, 0x00, 0x09, 0x00, 0x05, 0x00, 0x04, 0x00, 0x01, 0x0a, 0x11, 0x00, 0x05);
  assert.deepEqual(decodeAttErrorSent('sent', pkt), { handle: 0x40, requestOpcode: 0x0a, attributeHandle: 0x11, code: 5, codeName: 'Insufficient Authentication' });
  assert.equal(decodeAttErrorSent('received', pkt), undefined);
  const cont = pkt.slice();
  cont[2] = 0x10; // a continuation fragment
  assert.equal(decodeAttErrorSent('sent', cont), undefined);
  const smp = pkt.slice();
  smp[7] = 0x06;
  assert.equal(decodeAttErrorSent('sent', smp), undefined);
});

test('a node --test file that uses the library and calls close() exits by itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-exit-'));
  try {
    const index = new URL('../../src/index.js', import.meta.url).href;
    const file = join(dir, 'exit.test.mjs');
    writeFileSync(
      file,
      `import { test } from 'node:test';\nimport { VirtualAir, Wearable, Phone } from ${JSON.stringify(index)};\n` +
        `test('pair and close', async () => {\n  const air = new VirtualAir();\n  const w = await Wearable.start({ controller: air, logLevel: 'silent' });\n` +
        `  const p = await Phone.open({ controller: air, user: { thinkMs: 10 } });\n  await p.connect('Noira Band');\n  await p.pair();\n  await w.waitFor('paired');\n  await air.close();\n});\n`,
    );
    // A fresh runner: without NODE_TEST_CONTEXT the child reports on its own stdout.
    const env = { ...process.env };
    delete env['NODE_TEST_CONTEXT'];
    // The run takes about a second. The bound is below the helpers' default timeouts (30-40 s):
    // a deadline timer left running after its wait settled would keep the process alive past it
    // (seen: 40 s with pair()'s timer not cleared).
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { timeout: 20_000, encoding: 'utf8', env });
    assert.equal(r.signal, null, `killed after 20 s: the process did not exit by itself\n${r.stdout}`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /# pass 1\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
