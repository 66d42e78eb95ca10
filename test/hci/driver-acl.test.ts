import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/util/clock.js';
import { concatBytes, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';
import { HciError } from '../../src/hci/hci-error.js';
import { AclBoundary } from '../../src/hci/acl.js';
import { EARLY_ACL_GRACE_MS } from '../../src/hci/connections.js';
import { makeRig } from './fixtures/rig.js';

/** An L2CAP frame: length, channel 0x0004, payload of `n` bytes from a seeded source. */
function l2cap(n: number, seed = 'frame'): Uint8Array {
  const f = new Uint8Array(4 + n);
  f[0] = n & 0xff;
  f[1] = n >> 8;
  f[2] = 0x04;
  f.set(seededRandom(seed).bytes(n), 4);
  return f;
}

async function connected(ctrlOpts: Parameters<typeof makeRig>[0], handles: number[] = [0x0040]): Promise<ReturnType<typeof makeRig>> {
  const rig = makeRig(ctrlOpts);
  await rig.hci.init();
  for (const h of handles) await rig.ctrl.connect({ handle: h, peer: { type: 'random', address: `5A:00:00:00:00:${h.toString(16).padStart(2, '0').slice(-2)}` } });
  await settle();
  return rig;
}

test('ACL fragmentation at buffer size 27: first fragment boundary 0b00, then 0b01, header bytes as on the wire', async () => {
  const rig = await connected({ leBuffers: { length: 27, count: 8 } });
  const frame = l2cap(96); // 100 bytes: 27 + 27 + 27 + 19
  await rig.hci.sendAcl(0x0040, frame);
  await settle();
  const pk = rig.ctrl.aclPackets;
  assert.deepEqual(pk.map((p) => p.data.length), [27, 27, 27, 19]);
  assert.deepEqual(pk.map((p) => p.boundary), [AclBoundary.FirstNonFlushable, AclBoundary.Continuing, AclBoundary.Continuing, AclBoundary.Continuing]);
  assert.equal(toHex(pk[0]?.raw.subarray(0, 5) ?? new Uint8Array()), '0240001b00');
  assert.equal(toHex(pk[1]?.raw.subarray(0, 5) ?? new Uint8Array()), '0240101b00');
  assert.equal(toHex(pk[3]?.raw.subarray(0, 5) ?? new Uint8Array()), '0240101300');
  assert.equal(toHex(concatBytes(...pk.map((p) => p.data))), toHex(frame));
  await rig.stop();
});

test('ACL fragmentation at buffer size 251: a 604-byte frame goes as 251 + 251 + 102', async () => {
  const rig = await connected({ leBuffers: { length: 251, count: 3 } });
  const frame = l2cap(600);
  const p = rig.hci.sendAcl(0x0040, frame);
  await p;
  await settle();
  assert.deepEqual(rig.ctrl.aclPackets.map((x) => x.data.length), [251, 251, 102]);
  assert.equal(toHex(concatBytes(...rig.ctrl.aclPackets.map((x) => x.data))), toHex(frame));
  // A frame of exactly one buffer is one packet.
  const one = rig.hci.sendAcl(0x0040, l2cap(247));
  await settle();
  assert.equal(rig.ctrl.aclPackets.length, 3, 'no credit left: the 251-byte frame waits');
  await rig.ctrl.completePackets(0x0040, 1);
  await settle();
  assert.equal(rig.ctrl.aclPackets.at(-1)?.data.length, 251);
  assert.equal(rig.ctrl.aclPackets.at(-1)?.boundary, AclBoundary.FirstNonFlushable);
  await one;
  await rig.stop();
});

test('credits run out, sends wait, Number Of Completed Packets returns them; the send resolves after its last fragment', async () => {
  const rig = await connected({ leBuffers: { length: 27, count: 2 } });
  let resolved = false;
  const p = rig.hci.sendAcl(0x0040, l2cap(27 * 5 - 4)).then(() => (resolved = true)); // 5 fragments
  await settle();
  assert.equal(rig.ctrl.aclPackets.length, 2);
  let s = rig.hci.aclStats();
  assert.equal(s.freeCredits, 0);
  assert.deepEqual(s.links, [{ handle: 0x0040, queuedPackets: 3, queuedFrames: 1, inFlight: 2 }]);
  await rig.ctrl.completePackets(0x0040, 1);
  await settle();
  assert.equal(rig.ctrl.aclPackets.length, 3);
  assert.equal(resolved, false);
  await rig.ctrl.completePackets(0x0040, 2);
  await settle();
  assert.equal(rig.ctrl.aclPackets.length, 5);
  await p;
  assert.equal(resolved, true);
  s = rig.hci.aclStats();
  assert.equal(s.freeCredits, 0);
  assert.equal(s.links[0]?.queuedPackets, 0);
  assert.equal(rig.ctrl.aclOverflows, 0, 'never more packets than the controller has buffers');
  // A controller that reports more completions than it holds does not inflate the credits.
  await rig.ctrl.sendEvent('NumberOfCompletedPackets', { handles: [{ handle: 0x0040, count: 9 }] });
  await settle();
  assert.equal(rig.hci.aclStats().freeCredits, 2);
  await rig.stop();
});

test('credits held for a connection come back on its disconnection; its queued frames are rejected; other links go on', async () => {
  const rig = await connected({ leBuffers: { length: 27, count: 2 } }, [0x0040, 0x0041]);
  const a = rig.hci.sendAcl(0x0040, l2cap(27 * 4 - 4)).catch((e: unknown) => e);
  const b = rig.hci.sendAcl(0x0041, l2cap(27 * 2 - 4));
  await settle();
  assert.deepEqual(rig.ctrl.aclPackets.map((p) => p.handle), [0x0040, 0x0040]);
  assert.equal(rig.hci.aclStats().freeCredits, 0);
  const gone = rig.hci.wait('disconnected');
  await rig.ctrl.disconnect(0x0040, 0x13);
  const [conn, reason, name] = await gone;
  assert.equal(conn.handle, 0x0040);
  assert.equal(reason, 0x13);
  assert.equal(name, '0x13 RemoteUserTerminatedConnection');
  const err = await a;
  assert.ok(err instanceof HciError && err.kind === 'disconnected', String(err));
  await b;
  await settle();
  assert.deepEqual(rig.ctrl.aclPackets.map((p) => p.handle), [0x0040, 0x0040, 0x0041, 0x0041], 'both credits were free for 0x0041');
  await assert.rejects(rig.hci.sendAcl(0x0040, l2cap(4)), (e: unknown) => e instanceof HciError && e.kind === 'disconnected' && /0x0040 does not exist/.test(e.message));
  await rig.stop();
});

test('connections take turns fragment by fragment (round-robin)', async () => {
  const rig = await connected({ leBuffers: { length: 27, count: 1 }, autoCompletePackets: true }, [0x0040, 0x0041, 0x0042]);
  const c = rig.hci.sendAcl(0x0042, l2cap(10)); // takes the only credit
  const a = rig.hci.sendAcl(0x0040, l2cap(27 * 3 - 4));
  const b = rig.hci.sendAcl(0x0041, l2cap(27 * 3 - 4));
  await Promise.all([a, b, c]);
  await settle();
  assert.deepEqual(
    rig.ctrl.aclPackets.map((p) => p.handle.toString(16)),
    ['42', '40', '41', '40', '41', '40', '41'],
  );
  await rig.stop();
});

test('a long queue on one connection costs linear time (no quadratic queue)', async () => {
  const rig = await connected({ leBuffers: { length: 251, count: 8 }, autoCompletePackets: true });
  const frames = 3000;
  const ps: Promise<void>[] = [];
  for (let i = 0; i < frames; i++) ps.push(rig.hci.sendAcl(0x0040, l2cap(20, `f${i % 7}`)));
  assert.equal(rig.hci.aclStats().links[0]?.queuedFrames, frames - 8);
  await Promise.all(ps);
  await settle();
  assert.equal(rig.ctrl.aclPackets.length, frames);
  assert.equal(rig.ctrl.aclOverflows, 0);
  await rig.stop();
});

test('incoming fragments are reassembled into one L2CAP frame using the basic header length', async () => {
  const rig = await connected({});
  const frames: [number, string][] = [];
  rig.hci.on('acl', (h, f) => frames.push([h, toHex(f)]));
  const frame = l2cap(296);
  await rig.ctrl.sendL2cap(0x0040, frame, 27);
  const small = l2cap(3, 'small');
  await rig.ctrl.sendL2cap(0x0040, small, 27);
  // A start fragment shorter than the L2CAP header still works.
  const odd = l2cap(10, 'odd');
  await rig.ctrl.sendAcl(0x0040, AclBoundary.FirstFlushable, odd.subarray(0, 2));
  await rig.ctrl.sendAcl(0x0040, AclBoundary.Continuing, odd.subarray(2, 5));
  await rig.ctrl.sendAcl(0x0040, AclBoundary.Continuing, odd.subarray(5));
  await settle();
  assert.deepEqual(frames, [
    [0x0040, toHex(frame)],
    [0x0040, toHex(small)],
    [0x0040, toHex(odd)],
  ]);
  await rig.stop();
});

test('reassembly bounds: continuation without start, start while pending, overflow and an oversized frame are dropped and logged', async () => {
  const rig = makeRig({}, { captureLog: true, maxRxFrame: 1000 });
  await rig.hci.init();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const frames: string[] = [];
  rig.hci.on('acl', (_h, f) => frames.push(toHex(f)));
  const good = l2cap(40, 'good');
  // 1. continuation without a start
  await rig.ctrl.sendAcl(0x0040, AclBoundary.Continuing, Uint8Array.of(1, 2, 3));
  // 2. start while pending: the first partial frame is dropped, the second delivered
  await rig.ctrl.sendAcl(0x0040, AclBoundary.FirstFlushable, l2cap(100, 'partial').subarray(0, 27));
  await rig.ctrl.sendL2cap(0x0040, good, 27);
  // 3. overflow: fragments longer than the announced length
  const over = l2cap(30, 'over');
  await rig.ctrl.sendAcl(0x0040, AclBoundary.FirstFlushable, over.subarray(0, 27));
  await rig.ctrl.sendAcl(0x0040, AclBoundary.Continuing, new Uint8Array(20));
  // 4. a frame above the bound; its continuations are discarded quietly
  const big = l2cap(2000, 'big');
  await rig.ctrl.sendL2cap(0x0040, big, 251);
  // 5. a per-connection bound below the driver's
  rig.hci.setRxFrameLimit(0x0040, 30);
  await rig.ctrl.sendL2cap(0x0040, l2cap(40, 'x'), 27);
  rig.hci.setRxFrameLimit(0x0040, 1000);
  // Afterwards, a good frame still gets through.
  await rig.ctrl.sendL2cap(0x0040, good, 27);
  await settle();
  assert.deepEqual(frames, [toHex(good), toHex(good)]);
  const problems = rig.logLines.map((l) => l['problem']).filter((p) => p !== undefined);
  assert.deepEqual(problems, ['continuation-without-start', 'start-while-pending', 'overflow', 'frame-too-large', 'frame-too-large']);
  assert.equal(rig.hci.aclStats().rx.dropped, 5);
  await rig.stop();
});

test('ACL data for an unknown connection handle is dropped', async () => {
  const rig = await connected({});
  const frames: unknown[] = [];
  rig.hci.on('acl', (h) => frames.push(h));
  await rig.ctrl.sendL2cap(0x0123, l2cap(10));
  await settle();
  assert.deepEqual(frames, []);
  await rig.stop();
});

test('ACL data that overtakes the LE Connection Complete of its own link is held and delivered right after it; no reset', async () => {
  const rig = makeRig({}, { captureLog: true });
  await rig.hci.init();
  const seen: string[] = [];
  rig.hci.on('connected', (c) => seen.push(`connected ${c.handle}`));
  rig.hci.on('acl', (h, f) => seen.push(`acl ${h} ${toHex(f)}`));
  // A phone's first PDU comes before the event that announces its link (separate queues, USB endpoints).
  const first = l2cap(5, 'mtu');
  await rig.ctrl.sendL2cap(0x0041, first);
  await settle();
  assert.deepEqual(seen, [], 'held');
  await rig.clock.advance(EARLY_ACL_GRACE_MS / 2);
  await rig.ctrl.connect({ handle: 0x0041 });
  await settle();
  assert.deepEqual(seen, ['connected 65', `acl 65 ${toHex(first)}`], 'delivered in order, after the link exists');
  await rig.clock.advance(5 * EARLY_ACL_GRACE_MS);
  assert.equal(rig.ctrl.commands.filter((c) => c.name === 'Reset').length, 1, 'only the bring-up Reset');
  assert.deepEqual(rig.logLines.filter((l) => (l['level'] as number) >= 40).map((l) => l['msg']), []);
  await rig.stop();
});

test('ACL data for a handle that no LE Connection Complete announces within the grace period means the links differ: logged, and the controller is reset', async () => {
  const rig = makeRig({}, { captureLog: true });
  await rig.hci.init();
  const frames: number[] = [];
  rig.hci.on('acl', (h) => frames.push(h));
  await rig.ctrl.sendL2cap(0x0123, l2cap(10));
  await settle();
  await rig.clock.advance(EARLY_ACL_GRACE_MS - 1);
  assert.equal(rig.ctrl.commands.filter((c) => c.name === 'Reset').length, 1, 'not yet');
  await rig.clock.advance(200);
  assert.deepEqual(frames, []);
  assert.ok(rig.logLines.some((l) => /ACL data for unknown connection 0x0123 .*re-initialising/.test(String(l['msg']))));
  assert.equal(rig.ctrl.commands.filter((c) => c.name === 'Reset').length, 2, 'HCI Reset again');
  await rig.stop();
});

test('after connecting, the driver asks for 251-byte data length and records the Data Length Change', async () => {
  const rig = await connected({});
  const cmd = rig.ctrl.commands.find((c) => c.name === 'LeSetDataLength');
  assert.ok(cmd, 'LE Set Data Length was sent');
  assert.equal(toHex(cmd.raw), '0122200640' + '00fb004808');
  assert.deepEqual(rig.hci.connection(0x0040)?.dataLength, { maxTxOctets: 251, maxTxTime: 2120, maxRxOctets: 251, maxRxTime: 2120 });
  await rig.stop();
});
