import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { TcpTransport, parseTcpUrl, serveTcp } from '../../src/hci/tcp-transport.js';
import { openTransport, parseTransportSpec } from '../../src/hci/open-transport.js';
import { PacedTransport } from '../../src/hci/paced-link.js';
import { TransportError } from '../../src/hci/transport-errors.js';
import { classifySerialOpenError, explainSerialOpenError, formatSerialPort, listSerialPorts } from '../../src/hci/serial-transport.js';
import { H4Framer } from '../../src/hci/h4.js';
import type { Transport } from '../../src/hci/transport.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

function collect(t: Transport): { chunks: Uint8Array[]; bytes(): string } {
  const chunks: Uint8Array[] = [];
  t.on('data', (d) => chunks.push(d));
  return { chunks, bytes: () => toHex(concatBytes(...chunks)) };
}

function isTransportError(kind: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TransportError, `expected TransportError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    assert.equal(err.layer, 'transport');
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

// ---------------------------------------------------------------- memory

test('memory pair: writes arrive at the other end asynchronously, in order, and write() resolves after delivery', async () => {
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const got = collect(b);
  const p1 = a.write(fromHex('01 03 0c 00'));
  const p2 = a.write(fromHex('01 01 fc 00'));
  assert.equal(got.chunks.length, 0, 'nothing is delivered synchronously');
  await p1;
  await p2;
  assert.equal(got.bytes(), '01030c0001' + '01fc00');
  assert.equal(a.description, 'memory:host');
  assert.equal(a.bytesWritten, 8);
  assert.equal(b.bytesReceived, 8);
  await a.close();
});

test('memory pair: written bytes are copied, so the writer may reuse its buffer', async () => {
  const [a, b] = createMemoryTransportPair('a', 'b');
  const got = collect(b);
  const buf = fromHex('0405');
  const p = a.write(buf);
  buf[0] = 0xff;
  await p;
  assert.equal(got.bytes(), '0405');
  await a.close();
});

test('memory pair: a request/response exchange completes within one event-loop turn (microtask delivery)', async () => {
  const [host, ctrl] = createMemoryTransportPair('host', 'controller');
  ctrl.on('data', (d) => {
    if (toHex(d) === '01030c00') void ctrl.write(fromHex('04 0e 04 01 03 0c 00'));
  });
  const got = collect(host);
  void host.write(fromHex('01 03 0c 00'));
  await settle();
  assert.equal(got.bytes(), '040e0401030c00');
  await host.close();
});

test('memory pair: closing one end delivers what was already written, then closes the peer with a lost "peer closed" error', async () => {
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const got = collect(b);
  const closes: (Error | undefined)[] = [];
  a.on('close', (e) => closes.push(e));
  const bClosed = b.wait('close');
  void a.write(fromHex('aa bb'));
  await a.close();
  assert.deepEqual(closes, [undefined]);
  assert.equal(a.isOpen, false);
  const [err] = await bClosed;
  assert.equal(got.bytes(), 'aabb', 'bytes written before close still arrive');
  assert.ok(isTransportError('lost', /peer closed \(memory:host closed its end\)/)(err));
  assert.equal(b.isOpen, false);
  await assert.rejects(a.write(fromHex('00')), isTransportError('closed'));
  await assert.rejects(b.write(fromHex('00')), isTransportError('closed'));
});

test('memory pair: flushInput drops bytes not yet delivered and resolves their writers', async () => {
  const [a, b] = createMemoryTransportPair('a', 'b');
  const got = collect(b);
  const p = a.write(fromHex('00 04 0e'));
  assert.equal(b.pendingInput, 3);
  await b.flushInput();
  await p;
  await a.write(fromHex('04 05 00'));
  assert.equal(got.bytes(), '040500');
  await a.close();
});

test('memory pair: tap sees every chunk with its direction, and maxChunk splits deliveries', async () => {
  const seen: string[] = [];
  const [a, b] = createMemoryTransportPair('host', 'controller', {
    maxChunk: 2,
    tap: (from, to, bytes) => seen.push(`${from}->${to}:${toHex(bytes)}`),
  });
  const got = collect(b);
  await a.write(fromHex('01 03 0c 00 99'));
  await b.write(fromHex('04'));
  assert.deepEqual(got.chunks.map((c) => toHex(c)), ['0103', '0c00', '99']);
  assert.deepEqual(seen, ['host->controller:0103', 'host->controller:0c00', 'host->controller:99', 'controller->host:04']);
  await a.close();
});

test("memory pair with 'immediate' delivery keeps order across many writes", async () => {
  const [a, b] = createMemoryTransportPair('a', 'b', { delivery: 'immediate' });
  const got = collect(b);
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) writes.push(a.write(new Uint8Array([i & 0xff])));
  await Promise.all(writes);
  const all = concatBytes(...got.chunks);
  assert.equal(all.length, 300);
  for (let i = 0; i < 300; i++) assert.equal(all[i], i & 0xff);
  await a.close();
});

// ---------------------------------------------------------------- TCP

test('TCP: client and served connection carry bytes both ways; closing the client closes the server side as lost', async () => {
  const served: TcpTransport[] = [];
  const server = await serveTcp(0, '127.0.0.1', (t) => served.push(t));
  try {
    assert.match(server.url, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const client = await TcpTransport.connect(server.url);
    assert.equal(client.description, server.url);
    assert.equal(client.isOpen, true);
    const ctrl = served[0] ?? (await new Promise<TcpTransport>((r) => setImmediate(() => r(served[0] as TcpTransport))));
    // Frame what arrives, as the simulator does.
    const cmds: string[] = [];
    const framer = new H4Framer({ direction: 'controller', onPacket: (p) => cmds.push(toHex(p)) });
    ctrl.on('data', (d) => framer.push(d));
    const replies = collect(client);
    await client.write(fromHex('01 03 0c 00'));
    await client.write(fromHex('01 01 fc 00'));
    while (cmds.length < 2) await new Promise((r) => setImmediate(r));
    assert.deepEqual(cmds, ['01030c00', '0101fc00']);
    await ctrl.write(fromHex('04 0e 04 01 03 0c 00'));
    while (replies.chunks.length === 0) await new Promise((r) => setImmediate(r));
    assert.equal(replies.bytes(), '040e0401030c00');

    const serverSideClosed = ctrl.wait('close');
    await client.close();
    assert.equal(client.isOpen, false);
    const [err] = await serverSideClosed;
    assert.ok(isTransportError('lost', /closed by peer/)(err));
    await assert.rejects(client.write(fromHex('00')), isTransportError('closed'));
  } finally {
    await server.close();
  }
});

test('TCP: the server closing the connection gives the client a lost "closed by peer" error naming the URL', async () => {
  const server = await serveTcp(0, '127.0.0.1', (t) => void t.close());
  try {
    const client = await TcpTransport.connect(server.url);
    const [err] = await client.wait('close');
    assert.ok(isTransportError('lost', new RegExp(`connection to ${server.url.replace(/[.]/g, '\\.')} closed by peer`))(err));
  } finally {
    await server.close();
  }
});

test('TCP: connection refused is not-found and says nothing listens there', async () => {
  // Find a free port, then make sure nothing listens on it.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const addr = probe.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => probe.close(() => r()));
  await assert.rejects(TcpTransport.connect(`tcp://127.0.0.1:${port}`), isTransportError('not-found', /connection refused by tcp:\/\/127\.0\.0\.1:\d+: nothing listens there/));
});

test('TCP: an unknown host is not-found (RFC 6761 .invalid names never resolve)', async () => {
  await assert.rejects(TcpTransport.connect('tcp://no-such-host.invalid:9000'), isTransportError('not-found', /host not found for tcp:\/\/no-such-host\.invalid:9000/));
});

test('TCP: connecting gives up after connectTimeoutMs on the injected clock', async () => {
  const clock = new VirtualClock();
  let lookups = 0;
  const p = TcpTransport.connect('tcp://sim.test:9000', {
    clock,
    connectTimeoutMs: 2000,
    lookup: () => {
      lookups++; // never answers: the connection hangs until the timeout
    },
  });
  const outcome = p.then(
    () => 'connected',
    (e: unknown) => e,
  );
  await clock.advance(1999);
  assert.equal(clock.pendingCount, 1, 'still waiting at 1999 ms');
  await clock.advance(1);
  const err = await outcome;
  assert.ok(isTransportError('timeout', /no answer from tcp:\/\/sim\.test:9000 within 2000 ms/)(err));
  assert.equal(lookups, 1);
  assert.equal(clock.pendingCount, 0);
});

test('TCP: serveTcp on a taken port rejects with busy', async () => {
  const first = await serveTcp(0, '127.0.0.1', () => {});
  try {
    await assert.rejects(serveTcp(first.port, '127.0.0.1', () => {}), isTransportError('busy', /the port is in use/));
  } finally {
    await first.close();
  }
});

test('TCP URLs: host:port and bracketed IPv6 parse; anything else is refused with the expected form', () => {
  assert.deepEqual(parseTcpUrl('tcp://127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseTcpUrl('tcp://[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseTcpUrl('tcp://sim.local:1'), { host: 'sim.local', port: 1 });
  for (const bad of ['tcp://host', 'tcp://host:0', 'tcp://host:70000', 'http://h:1', 'tcp://:9000']) {
    assert.throws(() => parseTcpUrl(bad), isTransportError('not-found', /expected tcp:\/\/host:port/), bad);
  }
});

// ---------------------------------------------------------------- openTransport

test('openTransport: tcp:// opens TCP, anything else is a serial path (optional serial: prefix)', async () => {
  assert.deepEqual(parseTransportSpec('tcp://127.0.0.1:9000'), { kind: 'tcp', url: 'tcp://127.0.0.1:9000' });
  assert.deepEqual(parseTransportSpec('/dev/ttyACM0'), { kind: 'serial', path: '/dev/ttyACM0' });
  assert.deepEqual(parseTransportSpec('serial:/dev/ttyACM0'), { kind: 'serial', path: '/dev/ttyACM0' });
  assert.deepEqual(parseTransportSpec('COM3'), { kind: 'serial', path: 'COM3' });
  assert.throws(() => parseTransportSpec(' '), isTransportError('not-found', /--port/));

  const server = await serveTcp(0, '127.0.0.1', () => {});
  try {
    const t = await openTransport(server.url);
    assert.ok(t instanceof TcpTransport);
    await t.close();
  } finally {
    await server.close();
  }
  await assert.rejects(openTransport('/dev/wearable-host-test-no-such-port'), isTransportError('not-found', /\/dev\/wearable-host-test-no-such-port not found/));
});

// ---------------------------------------------------------------- serial errors (no hardware)

test('serial open errors are classified from the binding messages (Linux strerror texts)', () => {
  assert.equal(classifySerialOpenError(new Error('Error: No such file or directory, cannot open /dev/ttyACM9')), 'not-found');
  assert.equal(classifySerialOpenError(new Error('Error: Permission denied, cannot open /dev/ttyACM0')), 'permission');
  assert.equal(classifySerialOpenError(new Error('Error Resource temporarily unavailable Cannot lock port')), 'busy');
  assert.equal(classifySerialOpenError(new Error('Error: Device or resource busy, cannot open /dev/ttyACM0')), 'busy');
  assert.equal(classifySerialOpenError(Object.assign(new Error('x'), { code: 'EACCES' })), 'permission');
  assert.equal(classifySerialOpenError(new Error('Error: Input/output error setting custom baud rate')), 'io');
});

test('serial permission error suggests joining the dialout group; busy names ModemManager and its udev rule', async () => {
  const perm = await explainSerialOpenError('/dev/ttyACM0', new Error('Error: Permission denied, cannot open /dev/ttyACM0'));
  assert.equal(perm.kind, 'permission');
  assert.equal(perm.port, '/dev/ttyACM0');
  assert.match(perm.message, /sudo usermod -aG \w+ \$USER/);
  const busy = await explainSerialOpenError('/dev/null', new Error('Error Resource temporarily unavailable Cannot lock port'));
  assert.equal(busy.kind, 'busy');
  assert.match(busy.message, /ModemManager/);
  assert.match(busy.message, /ATTRS\{idVendor\}=="1366", ENV\{ID_MM_DEVICE_IGNORE\}="1"/);
  // A free-text failure on a path that does not exist is still reported as not-found.
  const missing = await explainSerialOpenError('/dev/wearable-host-none', new Error('Error: something odd'));
  assert.equal(missing.kind, 'not-found');
  assert.match(missing.message, /ls \/dev\/serial\/by-id\//);
});

test('listing serial ports never throws, even without udevadm', async () => {
  const r = await listSerialPorts();
  assert.ok(Array.isArray(r.ports));
  for (const p of r.ports) assert.match(p.path, /^\/dev\//);
  assert.equal(formatSerialPort({ path: '/dev/ttyACM0', vendorId: '1366', byId: '/dev/serial/by-id/usb-SEGGER_J-Link_1-if00' }), '/dev/ttyACM0 (SEGGER J-Link, /dev/serial/by-id/usb-SEGGER_J-Link_1-if00)');
});

// ---------------------------------------------------------------- paced link

test('paced link: 1000 bytes at 1,000,000 baud 8N1 take exactly 10 ms of virtual time, in order', async () => {
  const clock = new VirtualClock();
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const paced = new PacedTransport(a, { clock, baudRate: 1_000_000, sliceBytes: 100 });
  const arrivals: [number, number][] = [];
  const bytes: Uint8Array[] = [];
  const t0 = clock.now();
  b.on('data', (d) => {
    arrivals.push([clock.now() - t0, d.length]);
    bytes.push(d);
  });
  const data = new Uint8Array(1000).map((_, i) => i & 0xff);
  let done = false;
  void paced.write(data).then(() => (done = true));
  await clock.advance(4.95);
  assert.equal(concatBytes(...bytes).length, 400, 'four 100-byte slices are out after 4.95 ms');
  assert.equal(done, false);
  await clock.advance(5.05);
  assert.equal(done, true);
  assert.deepEqual(toHex(concatBytes(...bytes)), toHex(data));
  assert.deepEqual(arrivals.map(([t]) => Math.round(t * 1000) / 1000), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(paced.wireTimeMs(256), 2.56);
  await paced.close();
  assert.equal(clock.pendingCount, 0);
});

test('paced link: writes queue back to back on the wire and incoming bytes are paced too', async () => {
  const clock = new VirtualClock();
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const paced = new PacedTransport(a, { clock, baudRate: 115_200, sliceBytes: 2000 });
  const t0 = clock.now();
  const outTimes: number[] = [];
  b.on('data', () => outTimes.push(clock.now() - t0));
  void paced.write(new Uint8Array(576)); // 50 ms at 115200 8N1
  void paced.write(new Uint8Array(576)); // starts when the first ends
  const inTimes: number[] = [];
  paced.on('data', () => inTimes.push(clock.now() - t0));
  await b.write(new Uint8Array(1152)); // 100 ms incoming, independent of the outgoing lane
  await clock.advance(200);
  assert.deepEqual(outTimes.map((t) => Math.round(t)), [50, 100]);
  assert.deepEqual(inTimes.map((t) => Math.round(t)), [100]);
  assert.equal(paced.stats.txBytes, 1152);
  assert.equal(paced.stats.rxBytes, 1152);
  await paced.close();
});

test('paced link: garble replaces bytes with different ones, drop loses them, map rewrites them (seeded)', async () => {
  const clock = new VirtualClock();
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const paced = new PacedTransport(a, { clock, tx: { garble: 1 }, rx: { drop: 1 }, random: seededRandom('paced') });
  const out = collect(b);
  const inn = collect(paced);
  const data = fromHex('01 03 0c 00 01 01 fc 00');
  void paced.write(data);
  await b.write(fromHex('04 0e 04 01 03 0c 00'));
  await clock.advance(1);
  const sent = concatBytes(...out.chunks);
  assert.equal(sent.length, data.length);
  for (let i = 0; i < data.length; i++) assert.notEqual(sent[i], data[i], `byte ${i} garbled`);
  assert.equal(inn.chunks.length, 0, 'every incoming byte dropped');
  assert.equal(paced.stats.garbled, 8);
  assert.equal(paced.stats.dropped, 7);
  await paced.close();

  const [c, d] = createMemoryTransportPair('x', 'y');
  const halved = new PacedTransport(c, { clock, tx: { map: (x) => x >> 1 } });
  const got = collect(d);
  void halved.write(fromHex('02 04 ff'));
  await clock.advance(1);
  assert.equal(got.bytes(), '01027f');
  await halved.close();
  assert.throws(() => new PacedTransport(c, { clock, tx: { drop: 0.5 } }), /RandomSource/);
});

test('paced link: closing rejects writes still on the wire, cancels its timers, and inner close propagates', async () => {
  const clock = new VirtualClock();
  const [a, b] = createMemoryTransportPair('host', 'controller');
  const paced = new PacedTransport(a, { clock });
  const w = paced.write(new Uint8Array(5000));
  const closes: (Error | undefined)[] = [];
  paced.on('close', (e) => closes.push(e));
  await paced.close();
  await assert.rejects(w, isTransportError('closed'));
  assert.equal(clock.pendingCount, 0);
  assert.deepEqual(closes, [undefined]);
  assert.equal(b.isOpen, false);

  const [c, d] = createMemoryTransportPair('host', 'controller');
  const p2 = new PacedTransport(c, { clock });
  const closed = p2.wait('close');
  await d.close();
  const [err] = await closed;
  assert.ok(isTransportError('lost')(err));
  assert.equal(p2.isOpen, false);
});
