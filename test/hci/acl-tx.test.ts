/**
 * The ACL scheduler on its own (src/hci/acl-tx.ts): packets written back to front in a TxView
 * without copies, and the rules that keep that safe. Fragmentation, credits and round-robin through
 * the driver are in driver-acl.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACL_TX_HEADROOM, AclScheduler, TxView, allocTx, claimHeadroom } from '../../src/hci/acl-tx.js';
import { settle } from '../../src/util/clock.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

/** A scheduler whose transport keeps every packet it is given (by reference, not copied). */
function scheduler(packetLength: number, credits: number) {
  const written: Uint8Array[] = [];
  const s = new AclScheduler({
    write: (pkt) => {
      written.push(pkt);
      return Promise.resolve();
    },
    writeError: (_handle, cause) => (cause instanceof Error ? cause : new Error(String(cause))),
  });
  s.configure(packetLength, credits);
  s.addLink(0x0040);
  const gone = (): Error => new Error('gone');
  return { s, written, send: (frame: Uint8Array) => s.send(0x0040, frame, gone) };
}

/** An L2CAP frame (basic header for CID 0x0004, then `payload`) in a TxView with room for the ACL header. */
function roomyFrame(payload: string): Uint8Array {
  const p = fromHex(payload);
  const f = allocTx(ACL_TX_HEADROOM, 4 + p.length);
  f.set([p.length & 0xff, p.length >> 8, 0x04, 0x00], 0);
  f.set(p, 4);
  return f;
}

test('claimHeadroom widens only the whole content so far of a TxView, into room not yet used', () => {
  const pdu = allocTx(9, 3);
  assert.ok(pdu instanceof TxView);
  assert.equal(pdu.room, 9);
  assert.equal(pdu.length, 3);
  const l2 = claimHeadroom(pdu, 4);
  assert.ok(l2);
  assert.equal(l2.buffer, pdu.buffer, 'the same memory: nothing copied');
  assert.deepEqual([l2.byteOffset - pdu.byteOffset, l2.length], [-4, 7]);
  assert.equal(claimHeadroom(pdu, 4), undefined, 'the room in front of the PDU is taken: a second claim fails');
  assert.equal(claimHeadroom(l2, 6), undefined, 'only 5 bytes of room are left');
  const h4 = claimHeadroom(l2, 5);
  assert.deepEqual([(h4?.byteOffset ?? 0) - pdu.byteOffset, h4?.length], [-9, 12]);
  assert.equal(claimHeadroom(l2, 5), undefined);
  assert.equal(claimHeadroom(h4 as Uint8Array, 1), undefined, 'no room left at all');
});

test('claimHeadroom refuses views that are not a TxView packet so far: plain arrays, parts of a packet', () => {
  assert.equal(claimHeadroom(new Uint8Array(16).subarray(9), 4), undefined, 'a plain buffer is never written in front of its view');
  const pdu = allocTx(9, 8);
  assert.equal(claimHeadroom(pdu.subarray(2), 2), undefined, 'a view starting inside the PDU');
  assert.equal(claimHeadroom(pdu.subarray(0, 4), 4), undefined, 'a view ending before the end of the PDU');
  assert.equal(pdu.room, 9, 'refused claims leave the room as it was');
});

test('arrays made from a TxView (subarray, slice) are plain Uint8Arrays without room', () => {
  const pdu = allocTx(9, 8);
  pdu.set([1, 2, 3, 4, 5, 6, 7, 8]);
  for (const derived of [pdu.subarray(3), pdu.slice(3), pdu.subarray(0)]) {
    assert.equal(Object.getPrototypeOf(derived), Uint8Array.prototype);
    assert.equal(claimHeadroom(derived, 1), undefined);
  }
  assert.deepStrictEqual(pdu.slice(3), Uint8Array.of(4, 5, 6, 7, 8));
  assert.deepStrictEqual(pdu.subarray(6), Uint8Array.of(7, 8));
  assert.equal(pdu.room, 9, 'making them took nothing from the PDU\'s room');
});

test('a frame with room that fits one fragment goes to the transport as a view of its own buffer, headers written in front', async () => {
  const { written, send } = scheduler(27, 4);
  const frame = roomyFrame('1b 0300 0102030405');
  await send(frame);
  assert.equal(written.length, 1);
  const pkt = written[0] as Uint8Array;
  assert.equal(pkt.buffer, frame.buffer, 'no copy');
  assert.deepEqual([frame.byteOffset - pkt.byteOffset, pkt.length], [5, 5 + frame.length], 'the whole packet, type byte first, in front of the frame');
  // H:4 ACL (0x02), handle 0x0040 with Packet_Boundary_Flag 0b00, length 12, then the L2CAP frame.
  assert.equal(toHex(pkt), '02' + '4000' + '0c00' + '08000400' + '1b03000102030405');
});

test('a frame without room is copied; the caller\'s bytes are not written', async () => {
  const { written, send } = scheduler(27, 4);
  const frame = fromHex('0300 0400 0a0300');
  await send(frame);
  const pkt = written[0] as Uint8Array;
  assert.notEqual(pkt.buffer, frame.buffer);
  assert.equal(toHex(pkt), '0240000700' + '030004000a0300');
  assert.equal(toHex(frame), '030004000a0300');
});

test('a frame with room but longer than one fragment is copied fragment by fragment; its room stays unwritten', async () => {
  const { written, send } = scheduler(27, 4);
  const payload = toHex(Uint8Array.from({ length: 30 }, (_, i) => i + 1));
  const frame = roomyFrame(payload);
  await send(frame);
  assert.equal(written.length, 2);
  assert.ok(written.every((p) => p.buffer !== frame.buffer));
  assert.equal(toHex(written[0] as Uint8Array).slice(0, 10), '0240001b00', 'first fragment: boundary 0b00, 27 bytes');
  assert.equal(toHex(written[1] as Uint8Array).slice(0, 10), '0240100700', 'continuation: boundary 0b01, 7 bytes');
  assert.equal(toHex((written[0] as Uint8Array).subarray(5)) + toHex((written[1] as Uint8Array).subarray(5)), toHex(frame));
  assert.equal(toHex(new Uint8Array(frame.buffer, frame.byteOffset - ACL_TX_HEADROOM, ACL_TX_HEADROOM)), '0000000000', 'nothing written in front of the frame');
});

test('the same frame sent twice: the second is copied, and the packet already handed to the transport never changes', async () => {
  const written: { pkt: Uint8Array; at: string }[] = [];
  const s = new AclScheduler({
    write: (pkt) => {
      written.push({ pkt, at: toHex(pkt) });
      return Promise.resolve();
    },
    writeError: (_h, cause) => (cause instanceof Error ? cause : new Error(String(cause))),
  });
  s.configure(27, 1);
  s.addLink(0x0040);
  s.addLink(0x0041);
  const frame = roomyFrame('1b 0300 aa');
  const gone = (): Error => new Error('gone');
  const a = s.send(0x0040, frame, gone);
  const b = s.send(0x0041, frame, gone); // waits for the credit
  await a;
  s.completed(0x0040, 1);
  await b;
  await settle();
  assert.equal(written.length, 2);
  const [first, second] = written as [{ pkt: Uint8Array; at: string }, { pkt: Uint8Array; at: string }];
  assert.equal(first.pkt.buffer, frame.buffer);
  assert.notEqual(second.pkt.buffer, frame.buffer, 'the room was used: the second packet is a copy');
  assert.equal(second.at, '0241000800' + '04000400' + '1b0300aa');
  assert.equal(toHex(first.pkt), first.at, 'the first packet is as it was when written');
  assert.equal(first.at, '0240000800' + '04000400' + '1b0300aa');
});
