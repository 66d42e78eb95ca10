import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttBearer, type AttRequestHandler } from '../../src/att/bearer.js';
import { AttBearerError, type AttLower } from '../../src/att/types.js';
import type { AttCommand, AttRequest } from '../../src/att/pdu.js';
import { FIXED_CHANNEL_TX_HEADROOM, FixedCid, L2capConnection } from '../../src/l2cap/connection.js';
import { TxView } from '../../src/hci/acl-tx.js';
import { BtsnoopWriter, readBtsnoop } from '../../src/hci/btsnoop.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { FakeLower, PEER, exchange } from './helpers.js';
import { captureLogger, makeRig } from '../hci/fixtures/rig.js';

/** A handler that answers every request with Write Response, or waits when told to. */
class StubHandler implements AttRequestHandler {
  readonly log: string[] = [];
  gate: Promise<void> | undefined;
  handleRequest(req: AttRequest): Uint8Array | Promise<Uint8Array> {
    this.log.push(`req:${req.type}`);
    if (this.gate) {
      const g = this.gate;
      this.gate = undefined;
      return g.then(() => Uint8Array.of(0x13));
    }
    return Uint8Array.of(0x13);
  }
  handleCommand(cmd: AttCommand): void {
    this.log.push(`cmd:${cmd.type}`);
  }
}

function setup(mtu = 247) {
  const lower = new FakeLower();
  const clock = new VirtualClock();
  const bearer = new AttBearer({ lower, clock, mtu });
  const handler = new StubHandler();
  bearer.setHandler(handler);
  return { lower, clock, bearer, handler };
}

test('Exchange MTU: the response carries our Rx MTU, then ATT_MTU = min(client, server)', async () => {
  const { lower, bearer } = setup(247);
  const seen: number[] = [];
  bearer.on('mtuChanged', (m) => seen.push(m));
  assert.equal(bearer.mtu, 23);
  assert.equal(await exchange(bearer, lower, '02 0502'), '03f700');
  assert.equal(bearer.mtu, 247);
  assert.deepEqual(seen, [247]);
  // Sent once per connection (Vol 3 Part F 3.4.2.1): a repeat is answered but changes nothing.
  assert.equal(await exchange(bearer, lower, '02 b900'), '03f700');
  assert.equal(bearer.mtu, 247);
});

test('Exchange MTU with a client Rx MTU below 23 keeps the default ATT_MTU', async () => {
  const { lower, bearer } = setup(517);
  assert.equal(await exchange(bearer, lower, '02 1000'), '030502');
  assert.equal(bearer.mtu, 23);
});

test('Exchange MTU: a client offering 185 to a 517 server gets 185', async () => {
  const { lower, bearer } = setup(517);
  await exchange(bearer, lower, '02 b900');
  assert.equal(bearer.mtu, 185);
  assert.equal(bearer.maxNotificationValue, 182);
});

test('an unknown request gets Request Not Supported with handle 0x0000; an unknown command is ignored', async () => {
  const { lower, bearer } = setup();
  assert.equal(await exchange(bearer, lower, '3f 0100'), '013f000006');
  assert.equal(await exchange(bearer, lower, '7f 0100 aa'), '');
  assert.equal(await exchange(bearer, lower, 'ff 0100 aa'), '');
  assert.equal(bearer.stats.unknownOpcodes, 3);
});

test('a request of the wrong length gets Invalid PDU with handle 0x0000; a malformed command is ignored', async () => {
  const { lower, bearer, handler } = setup();
  assert.equal(await exchange(bearer, lower, '0a 01'), '010a000004');
  assert.equal(await exchange(bearer, lower, '0a 010000'), '010a000004');
  assert.equal(await exchange(bearer, lower, '08 0100 ffff 000000'), '0108000004');
  assert.equal(await exchange(bearer, lower, '18'), '0118000004');
  assert.equal(await exchange(bearer, lower, '52 01'), '');
  assert.equal(await exchange(bearer, lower, ''), '');
  assert.deepEqual(handler.log, []);
});

test('without a request handler every request gets Request Not Supported', async () => {
  const lower = new FakeLower();
  const bearer = new AttBearer({ lower, clock: new VirtualClock() });
  assert.equal(await exchange(bearer, lower, '0a 0300'), '010a000006');
  assert.equal(await exchange(bearer, lower, '02 1700'), '030502');
});

test('a second request while one is being answered is dropped without a response (Vol 3 Part F 3.3.2)', async () => {
  const { lower, bearer, handler } = setup();
  let open!: () => void;
  handler.gate = new Promise<void>((r) => (open = r));
  bearer.onPdu(fromHex('12 0300 01'));
  bearer.onPdu(fromHex('0a 0300'));
  bearer.onPdu(fromHex('3f 00')); // even an unknown one
  await settle();
  assert.deepEqual(lower.take(), []);
  assert.equal(bearer.stats.droppedRequests, 2);
  open();
  await settle();
  assert.deepEqual(lower.take(), ['13']);
  assert.deepEqual(handler.log, ['req:writeRequest']);
  // After the response the client may send again.
  assert.equal(await exchange(bearer, lower, '0a 0300'), '13');
});

test('a command that arrives while a request is being answered is carried out after it, in order', async () => {
  const { lower, bearer, handler } = setup();
  let open!: () => void;
  handler.gate = new Promise<void>((r) => (open = r));
  bearer.onPdu(fromHex('12 0300 01'));
  bearer.onPdu(fromHex('52 0300 aa'));
  await settle();
  assert.deepEqual(handler.log, ['req:writeRequest']);
  open();
  await settle();
  assert.deepEqual(handler.log, ['req:writeRequest', 'cmd:writeCommand']);
  assert.deepEqual(lower.take(), ['13']);
});

test('one indication in flight: the next is sent only after the confirmation', async () => {
  const { lower, bearer } = setup();
  const done: number[] = [];
  const p1 = bearer.indicate(0x0c, fromHex('0100ffff')).then(() => done.push(1));
  const p2 = bearer.indicate(0x10, fromHex('aa')).then(() => done.push(2));
  await settle();
  assert.deepEqual(lower.take(), ['1d0c000100ffff']);
  assert.equal(bearer.indicationQueueDepth, 2);
  bearer.onPdu(fromHex('1e'));
  await p1;
  assert.deepEqual(lower.take(), ['1d1000aa']);
  bearer.onPdu(fromHex('1e'));
  await p2;
  assert.deepEqual(done, [1, 2]);
  assert.equal(bearer.indicationQueueDepth, 0);
  // A confirmation with nothing outstanding is dropped.
  bearer.onPdu(fromHex('1e'));
  assert.deepEqual(lower.take(), []);
});

test('an indication not confirmed in 30 s fails and kills the bearer until reconnection', async () => {
  const { lower, bearer, clock, handler } = setup();
  const events: string[] = [];
  bearer.on('timeout', (t) => events.push(`timeout:${t}`));
  bearer.on('closed', (r) => events.push(`closed:${r}`));
  const p1 = bearer.indicate(0x0c, fromHex('01'));
  const p2 = bearer.indicate(0x0c, fromHex('02'));
  const r1 = p1.then(
    () => 'confirmed',
    (e: unknown) => (e instanceof AttBearerError ? e.reason : 'other'),
  );
  const r2 = p2.then(
    () => 'confirmed',
    (e: unknown) => (e instanceof AttBearerError ? e.reason : 'other'),
  );
  await clock.advance(29_999);
  assert.deepEqual(events, []);
  await clock.advance(1);
  assert.equal(await r1, 'timeout');
  assert.equal(await r2, 'timeout');
  assert.deepEqual(events, ['timeout:indication', 'closed:timeout']);
  assert.equal(bearer.closed, 'timeout');
  lower.take();
  // Nothing more is sent or processed on this bearer.
  assert.equal(await exchange(bearer, lower, '0a 0300'), '');
  assert.deepEqual(handler.log, []);
  await assert.rejects(bearer.notify(3, fromHex('01')), (e: unknown) => e instanceof AttBearerError && e.reason === 'timeout');
  await assert.rejects(bearer.indicate(3, fromHex('01')), /transaction timeout/);
  assert.equal(clock.pendingCount, 0);
});

test('notify resolves when the PDU is handed to the controller; queue depth and drain are visible', async () => {
  const { lower, bearer } = setup();
  lower.hold = true;
  const depths: number[] = [];
  let drained = 0;
  bearer.on('notifyQueueDepth', (d) => depths.push(d));
  bearer.on('drain', () => drained++);
  const done: number[] = [];
  const ps = [1, 2, 3].map((i) => bearer.notify(0x10, Uint8Array.of(i)).then(() => done.push(i)));
  assert.equal(bearer.notifyQueueDepth, 3);
  await settle();
  assert.deepEqual(done, []);
  lower.release(1);
  await settle();
  assert.deepEqual(done, [1]);
  assert.equal(bearer.notifyQueueDepth, 2);
  lower.release();
  await Promise.all(ps);
  assert.deepEqual(done, [1, 2, 3]);
  assert.deepEqual(depths, [1, 2, 3, 2, 1, 0]);
  assert.equal(drained, 1);
  assert.deepEqual(lower.take(), ['1b100001', '1b100002', '1b100003']);
});

test('notify rejects with queue-full past the limit instead of growing without bound', async () => {
  const lower = new FakeLower();
  lower.hold = true;
  const bearer = new AttBearer({ lower, clock: new VirtualClock(), notifyQueueLimit: 2 });
  const a = bearer.notify(1, Uint8Array.of(1));
  const b = bearer.notify(1, Uint8Array.of(2));
  await assert.rejects(bearer.notify(1, Uint8Array.of(3)), (e: unknown) => e instanceof AttBearerError && e.reason === 'queue-full');
  lower.release();
  await Promise.all([a, b]);
});

test('notifications and indications are cut to ATT_MTU-3 bytes', async () => {
  const { lower, bearer } = setup();
  await bearer.notify(0x10, new Uint8Array(30).fill(7));
  const [pdu] = lower.take();
  assert.equal(pdu?.length, 2 * 23);
  bearer.indicate(0x10, new Uint8Array(30).fill(7)).catch(() => undefined);
  await settle();
  assert.equal(lower.take()[0]?.length, 2 * 23);
  bearer.onDisconnected();
});

test('disconnection rejects the indication in flight and the queued ones', async () => {
  const { bearer, clock } = setup();
  const p = bearer.indicate(1, Uint8Array.of(1));
  const q = bearer.indicate(1, Uint8Array.of(2));
  bearer.onDisconnected();
  await assert.rejects(p, (e: unknown) => e instanceof AttBearerError && e.reason === 'disconnected');
  await assert.rejects(q, (e: unknown) => e instanceof AttBearerError && e.reason === 'disconnected');
  assert.equal(clock.pendingCount, 0);
});

test("the peer's indication is confirmed at once and reported; its notification is reported", async () => {
  const { lower, bearer } = setup();
  const got: string[] = [];
  bearer.on('peerIndication', (h, v) => got.push(`ind ${h} ${toHex(v)}`));
  bearer.on('peerNotification', (h, v) => got.push(`ntf ${h} ${toHex(v)}`));
  assert.equal(await exchange(bearer, lower, '1d 0500 aabb'), '1e');
  assert.equal(await exchange(bearer, lower, '1b 0600 cc'), '');
  assert.equal(await exchange(bearer, lower, '23 0700 0100 01 0800 0100 02'), '');
  assert.deepEqual(got, ['ind 5 aabb', 'ntf 6 cc', 'ntf 7 01', 'ntf 8 02']);
});

test('as a client: requests go one at a time, responses resolve them, an unanswered one times out', async () => {
  const { lower, bearer, clock } = setup(247);
  const r1 = bearer.request({ type: 'exchangeMtuRequest', clientRxMtu: 247 });
  const r2 = bearer.request({ type: 'readRequest', handle: 3 });
  await settle();
  assert.deepEqual(lower.take(), ['02f700']);
  bearer.onPdu(fromHex('03 b900'));
  assert.deepEqual(await r1, { type: 'exchangeMtuResponse', serverRxMtu: 185 });
  assert.equal(bearer.mtu, 185);
  await settle();
  assert.deepEqual(lower.take(), ['0a0300']);
  bearer.onPdu(fromHex('0b 0102'));
  const rsp = await r2;
  assert.equal(rsp.type, 'readResponse');
  // An unexpected response is dropped.
  bearer.onPdu(fromHex('13'));
  const r3 = assert.rejects(bearer.request({ type: 'readRequest', handle: 4 }), (e: unknown) => e instanceof AttBearerError && e.reason === 'timeout');
  bearer.onPdu(fromHex('01 0c 0400 0a')); // an error for another request opcode: not ours
  await clock.advance(30_000);
  await r3;
});

test('a request longer than ATT_MTU is an Invalid PDU; a command longer than ATT_MTU is ignored', async () => {
  const { lower, bearer, handler } = setup(517);
  assert.equal(await exchange(bearer, lower, `12 0300 ${'00'.repeat(21)}`), '0112000004');
  assert.equal(await exchange(bearer, lower, `52 0300 ${'00'.repeat(21)}`), '');
  assert.equal(await exchange(bearer, lower, `12 0300 ${'00'.repeat(20)}`), '13');
  assert.deepEqual(handler.log, ['req:writeRequest']);
  await exchange(bearer, lower, '02 0502');
  assert.equal(await exchange(bearer, lower, `12 0300 ${'00'.repeat(21)}`), '13');
});

test('notifications and indications carry at most 512 bytes of value, even when ATT_MTU-3 allows more (Vol 3 Part F 3.2.9)', async () => {
  const { lower, bearer } = setup(517);
  await exchange(bearer, lower, '02 0502');
  assert.equal(bearer.mtu, 517);
  assert.equal(bearer.maxNotificationValue, 512, 'min(ATT_MTU-3 = 514, 512)');
  const value = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
  await bearer.notify(0x0010, value);
  const [ntf] = lower.take();
  assert.equal(ntf?.length, 2 * (3 + 512));
  assert.equal(ntf, '1b1000' + toHex(value.subarray(0, 512)));
  bearer.indicate(0x0011, value).catch(() => undefined);
  await settle();
  const [ind] = lower.take();
  assert.equal(ind, '1d1100' + toHex(value.subarray(0, 512)));
  // At ATT_MTU 247 the MTU is the tighter bound.
  const small = setup(247);
  await exchange(small.bearer, small.lower, '02 f700');
  assert.equal(small.bearer.maxNotificationValue, 244);
  await small.bearer.notify(0x0010, value);
  assert.equal(small.lower.take()[0]?.length, 2 * 247);
  bearer.onDisconnected();
  small.bearer.onDisconnected();
});

test('a notification is built once, with room in front for the L2CAP, ACL and H:4 headers; the caller may reuse its value at once', async () => {
  const given: Uint8Array[] = [];
  const lower: AttLower = {
    peer: PEER,
    send: (pdu) => {
      given.push(pdu);
      return Promise.resolve();
    },
  };
  const bearer = new AttBearer({ lower, clock: new VirtualClock() });
  const value = fromHex('0102');
  const sent = bearer.notify(0x0010, value);
  value.fill(0xee);
  await sent;
  const pdu = given[0] as Uint8Array;
  assert.equal(toHex(pdu), '1b10000102', 'the value as it was when notify() was called');
  assert.ok(pdu instanceof TxView);
  assert.equal(pdu.room, FIXED_CHANNEL_TX_HEADROOM, 'room for the headers in front, and nothing else');
});

test('commands are carried out in arrival order: one arriving while an asynchronous handler runs waits for it', async () => {
  const lower = new FakeLower();
  const bearer = new AttBearer({ lower, clock: new VirtualClock() });
  const log: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  bearer.setHandler({
    handleRequest: () => Uint8Array.of(0x13),
    handleCommand: (cmd) => {
      if (cmd.type !== 'writeCommand') return undefined;
      log.push(`start ${toHex(cmd.value)}`);
      if (cmd.value[0] !== 0x01) return undefined;
      return gate.then(() => void log.push('end 01'));
    },
  });
  bearer.onPdu(fromHex('52 0300 02'));
  assert.deepEqual(log, ['start 02'], 'a synchronous command with nothing ahead of it runs at once');
  bearer.onPdu(fromHex('52 0300 01'));
  bearer.onPdu(fromHex('52 0300 03'));
  bearer.onPdu(fromHex('52 0300 04'));
  await settle();
  assert.deepEqual(log, ['start 02', 'start 01']);
  open();
  await settle();
  assert.deepEqual(log, ['start 02', 'start 01', 'end 01', 'start 03', 'start 04']);
  assert.equal(bearer.stats.commands, 4);
  assert.deepEqual(lower.take(), []);
});

test('debug logging of our PDUs follows the logger level: at once after refreshLogLevel(), by itself within 64 PDUs', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = captureLogger(lines, 'info');
  const lower = new FakeLower();
  const bearer = new AttBearer({ lower, clock: new VirtualClock(), log });
  const atts = (): Record<string, unknown>[] => lines.filter((l) => l.msg === 'ATT');
  await bearer.notify(0x0010, Uint8Array.of(1));
  await settle();
  assert.equal(atts().length, 0);
  log.level = 'debug';
  for (let i = 0; i < 64; i++) await bearer.notify(0x0010, Uint8Array.of(2));
  await settle();
  assert.ok(atts().length >= 1, 'logged within 64 notifications of the change');
  const first = atts()[0] as { dir: string; pdu: unknown };
  assert.equal(first.dir, 'tx');
  assert.equal(first.pdu, 'ATT_HANDLE_VALUE_NTF handle=0x0010 value=02');
  log.level = 'info';
  bearer.refreshLogLevel();
  lines.length = 0;
  await bearer.notify(0x0010, Uint8Array.of(3));
  bearer.onPdu(fromHex('52 0300 01'));
  await settle();
  assert.equal(atts().length, 0, 'off at once after refreshLogLevel()');
  log.level = 'debug';
  bearer.refreshLogLevel();
  bearer.onPdu(fromHex('52 0300 01'));
  await settle();
  assert.deepEqual(atts().map((l) => l.dir), ['rx']);
});

test('through L2CAP and the HCI driver a notification is one whole H:4 packet on the transport, in the packet event and in btsnoop, never changed after hand-over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-att-notify-'));
  const file = join(dir, 'trace.btsnoop');
  const rig = makeRig({ leBuffers: { length: 251, count: 2 }, autoCompletePackets: true });
  const writer = BtsnoopWriter.open(file, { clock: rig.clock });
  try {
    rig.hci.on('packet', (d, pkt) => writer.write(d, pkt, 0));
    await rig.hci.init();
    await rig.ctrl.connect({ handle: 0x0040 });
    await settle();
    const seen: { pkt: Uint8Array; at: string }[] = [];
    rig.hci.on('packet', (d, pkt) => {
      if (d === 'sent' && pkt[0] === 0x02) seen.push({ pkt, at: toHex(pkt) });
    });
    const l2 = new L2capConnection({ handle: 0x0040, role: 'peripheral', clock: rig.clock, log: silentLogger(), lower: { send: (f) => rig.hci.sendAcl(0x0040, f) } });
    // The PDUs the bearer hands to L2CAP, to compare with the packets the transport gets.
    const pdus: Uint8Array[] = [];
    const sendAtt = (pdu: Uint8Array): Promise<void> => {
      pdus.push(pdu);
      return l2.sendFixed(FixedCid.Att, pdu);
    };
    const lower: AttLower = { peer: PEER, send: sendAtt };
    const bearer = new AttBearer({ lower, clock: rig.clock });
    // 20 bytes (ATT_MTU 23): the same array refilled between calls; 5 notifications for 2 controller buffers.
    const value = new Uint8Array(20);
    const sends: Promise<void>[] = [];
    for (let i = 1; i <= 5; i++) {
      value.fill(i);
      sends.push(bearer.notify(0x0012, value));
    }
    await Promise.all(sends);
    await settle();
    writer.close();
    const expected = [1, 2, 3, 4, 5].map((i) => '02' + '4000' + '1b00' + '1700' + '0400' + '1b1200' + toHex(new Uint8Array(20).fill(i)));
    assert.deepEqual(seen.map((s) => s.at), expected, 'what the packet event saw when each packet was written');
    assert.deepEqual(seen.map((s) => toHex(s.pkt)), expected, 'and no packet changed afterwards');
    assert.ok(
      seen.every((s, i) => {
        const pdu = pdus[i] as Uint8Array;
        return s.pkt.buffer === pdu.buffer && s.pkt.byteOffset === pdu.byteOffset - FIXED_CHANNEL_TX_HEADROOM && s.pkt.length === FIXED_CHANNEL_TX_HEADROOM + pdu.length;
      }),
      'each packet is the buffer the bearer allocated, headers written in front (no copies below ATT)',
    );
    assert.deepEqual(rig.ctrl.aclPackets.map((p) => toHex(p.raw)), expected, 'what the controller received');
    const trace = readBtsnoop(new Uint8Array(readFileSync(file)));
    assert.deepEqual(
      trace.records.filter((r) => r.direction === 'sent' && r.packet[0] === 0x02).map((r) => toHex(r.packet)),
      expected,
      'what the btsnoop file holds',
    );
    assert.equal(rig.ctrl.aclOverflows, 0);
  } finally {
    writer.close();
    await rig.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
