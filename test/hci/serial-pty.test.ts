/**
 * SerialTransport against a real tty: a pty pair made by socat. Ptys ignore termios flow
 * control, so RTS/CTS on and off both open and carry data here; on the DK it matters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialTransport } from '../../src/hci/serial-transport.js';
import { TransportError } from '../../src/hci/transport-errors.js';
import { H4Framer, H4Type, encodeH4 } from '../../src/hci/h4.js';
import { concatBytes, toHex } from '../../src/util/bytes.js';
import { VirtualClock } from '../../src/util/clock.js';

function hasSocat(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v socat'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface PtyPair {
  a: string;
  b: string;
  proc: ChildProcess;
  /** Kills socat (if still running) and waits for it to exit. */
  stop(): Promise<void>;
}

async function startSocat(dir: string): Promise<PtyPair> {
  const a = join(dir, 'host');
  const b = join(dir, 'controller');
  const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
  };
  for (let i = 0; i < 250 && !(existsSync(a) && existsSync(b) && /starting data transfer loop/.test(log)); i++) await sleep(20);
  if (!existsSync(a) || !existsSync(b)) {
    await stop();
    throw new Error(`socat did not create the pty pair: ${log}`);
  }
  return { a, b, proc, stop };
}

async function readUntil(chunks: Uint8Array[], n: number): Promise<Uint8Array> {
  for (let i = 0; i < 500 && concatBytes(...chunks).length < n; i++) await sleep(10);
  return concatBytes(...chunks);
}

test('opening a serial path that does not exist is not-found and says where to look', async () => {
  const path = '/dev/serial/by-id/usb-wearable-host-test-missing-if00';
  await assert.rejects(SerialTransport.open(path), (e: unknown) => {
    assert.ok(e instanceof TransportError);
    assert.equal(e.kind, 'not-found');
    assert.equal(e.port, path);
    assert.match(e.message, /serial port \/dev\/serial\/by-id\/usb-wearable-host-test-missing-if00 not found/);
    assert.match(e.message, /ls \/dev\/serial\/by-id\//);
    return true;
  });
});

for (const rtscts of [true, false]) {
  test(`pty pair, RTS/CTS ${rtscts ? 'on' : 'off'}: 10 ACL packets (2560 bytes) arrive whole and in order, written in chunks of at most 64 bytes`, async (t) => {
    if (!hasSocat()) {
      t.skip('socat not installed: apt-get install socat');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'wh-pty-'));
    let pair: PtyPair | undefined;
    const open: SerialTransport[] = [];
    try {
      pair = await startSocat(dir);
      const host = await SerialTransport.open(pair.a, { rtscts });
      open.push(host);
      const ctrl = await SerialTransport.open(pair.b, { rtscts: false });
      open.push(ctrl);
      assert.equal(host.description, `${pair.a} @ 1000000 baud`);
      assert.equal(host.isOpen, true);

      const received: string[] = [];
      const framer = new H4Framer({ direction: 'controller', onPacket: (p) => received.push(toHex(p)) });
      ctrl.on('data', (d) => framer.push(d));
      const packets: Uint8Array[] = [];
      for (let i = 0; i < 10; i++) {
        const body = new Uint8Array(4 + 251);
        body[0] = 0x40;
        body[2] = 251;
        for (let j = 0; j < 251; j++) body[4 + j] = (i * 17 + j) & 0xff;
        packets.push(encodeH4(H4Type.Acl, body));
      }
      // Started back to back without awaiting: order must still hold.
      await Promise.all(packets.map((p) => host.write(p)));
      for (let i = 0; i < 500 && received.length < 10; i++) await sleep(10);
      assert.deepEqual(received, packets.map((p) => toHex(p)));
      assert.equal(host.stats.bytesWritten, 2560);
      assert.equal(host.stats.largestChunk, 64);
      assert.equal(host.stats.chunksWritten, 40, 'each 256-byte packet went out as four 64-byte writes');

      // And the other way, with a smaller chunk size on the controller side.
      const back: Uint8Array[] = [];
      host.on('data', (d) => back.push(d));
      const reply = new Uint8Array(200).map((_, i) => (255 - i) & 0xff);
      await ctrl.write(reply);
      assert.equal(toHex(await readUntil(back, 200)), toHex(reply));
      assert.equal(ctrl.stats.chunksWritten, 4);
      await host.flushInput();
    } finally {
      for (const s of open) await s.close();
      await pair?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('pty pair: a second exclusive open of the same port is busy and names the likely holders', async (t) => {
  if (!hasSocat()) {
    t.skip('socat not installed: apt-get install socat');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wh-pty-'));
  let pair: PtyPair | undefined;
  let first: SerialTransport | undefined;
  try {
    pair = await startSocat(dir);
    first = await SerialTransport.open(pair.a);
    const path = pair.a;
    await assert.rejects(SerialTransport.open(path), (e: unknown) => {
      assert.ok(e instanceof TransportError);
      assert.equal(e.kind, 'busy');
      assert.match(e.message, new RegExp(`serial port ${path.replace(/[/.-]/g, (c) => '\\' + c)} is in use by another process`));
      assert.match(e.message, /ModemManager/);
      return true;
    });
  } finally {
    await first?.close();
    await pair?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pty pair: when the other end vanishes (socat killed, like a USB unplug) the transport closes with a lost error naming the port', async (t) => {
  if (!hasSocat()) {
    t.skip('socat not installed: apt-get install socat');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wh-pty-'));
  let pair: PtyPair | undefined;
  let host: SerialTransport | undefined;
  try {
    pair = await startSocat(dir);
    // The pty either fails reads (EBADF/EIO) or reads end-of-file, which serialport retries
    // forever; the presence check catches the second case.
    host = await SerialTransport.open(pair.a, { rtscts: false, presenceCheckMs: 100 });
    const closed = host.wait('close');
    await pair.stop();
    const [err] = await closed;
    assert.ok(err instanceof TransportError, `expected a TransportError, got ${String(err)}`);
    assert.equal(err.kind, 'lost');
    assert.equal(err.port, pair.a);
    assert.match(err.message, new RegExp(`serial port ${pair.a.replace(/[/.-]/g, (c) => '\\' + c)} went away`));
    assert.match(err.message, /USB unplugged/);
    assert.equal(host.isOpen, false);
    await assert.rejects(host.write(new Uint8Array([1, 3, 0x0c, 0])), (e: unknown) => e instanceof TransportError && e.kind === 'closed');
    await host.close(); // closing a lost port is harmless
  } finally {
    await host?.close();
    await pair?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const change of ['removed', 'replaced'] as const) {
  test(`pty pair: when the port's device node is ${change} (unplug${change === 'replaced' ? ' and replug' : ''}), the presence check closes the transport as lost`, async (t) => {
    if (!hasSocat()) {
      t.skip('socat not installed: apt-get install socat');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'wh-pty-'));
    let pair: PtyPair | undefined;
    let host: SerialTransport | undefined;
    try {
      pair = await startSocat(dir);
      // Our own link to the pty, which we can make vanish while the pty itself lives on.
      const link = join(dir, 'by-id-link');
      symlinkSync(realpathSync(pair.a), link);
      const clock = new VirtualClock();
      host = await SerialTransport.open(link, { rtscts: false, clock, presenceCheckMs: 1000 });
      const closes: (Error | undefined)[] = [];
      host.on('close', (e) => closes.push(e));
      await clock.advance(1000);
      for (let i = 0; i < 50 && closes.length === 0; i++) await sleep(5);
      assert.deepEqual(closes, [], 'still open while the node is there');
      assert.equal(clock.pendingCount, 1, 'next check scheduled');
      unlinkSync(link);
      if (change === 'replaced') symlinkSync(realpathSync(pair.b), link);
      const closed = host.wait('close');
      await clock.advance(1000);
      const [err] = await closed;
      assert.ok(err instanceof TransportError);
      assert.equal(err.kind, 'lost');
      assert.equal(err.port, link);
      assert.match(err.message, change === 'removed' ? /the device node disappeared/ : /the device node now belongs to another device/);
      assert.equal(host.isOpen, false);
      assert.equal(clock.pendingCount, 0, 'no check after close');
    } finally {
      await host?.close();
      await pair?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
