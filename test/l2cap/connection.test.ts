import { test } from 'node:test';
import assert from 'node:assert/strict';
import { L2capConnection, FixedCid, FIXED_CHANNEL_TX_HEADROOM, allocFixedChannelPdu } from '../../src/l2cap/connection.js';
import { ACL_TX_HEADROOM, TxView } from '../../src/hci/acl-tx.js';
import { decodeSignaling, encodeSignaling, type SignalingPdu } from '../../src/l2cap/signaling-pdu.js';
import { checkAppleConnectionParameters, DEFAULT_PERIPHERAL_PARAMETERS } from '../../src/l2cap/conn-params.js';
import { VirtualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

function setup(role: 'central' | 'peripheral' = 'peripheral', onParameterUpdateRequest?: (p: unknown) => Promise<boolean>) {
  const sent: string[] = [];
  const clock = new VirtualClock();
  const l2 = new L2capConnection({
    handle: 0x40,
    role,
    clock,
    log: silentLogger(),
    lower: { send: async (f) => void sent.push(toHex(f)) },
    ...(onParameterUpdateRequest ? { onParameterUpdateRequest } : {}),
  });
  return { l2, sent, clock };
}

const frame = (cid: number, payload: string) => {
  const p = fromHex(payload);
  return new Uint8Array([p.length & 0xff, p.length >> 8, cid & 0xff, cid >> 8, ...p]);
};

test('frames are demultiplexed to the ATT and SMP fixed channels by CID', () => {
  const { l2 } = setup();
  const got: string[] = [];
  l2.setHandler(FixedCid.Att, (p) => got.push(`att:${toHex(p)}`));
  l2.setHandler(FixedCid.Smp, (p) => got.push(`smp:${toHex(p)}`));
  l2.onFrame(frame(4, '0a0300'));
  l2.onFrame(frame(6, '0b0d'));
  assert.deepEqual(got, ['att:0a0300', 'smp:0b0d']);
});

test('frames for unknown CIDs, with a wrong length or over the channel MTU are dropped and reported', () => {
  const { l2, sent } = setup();
  const dropped: string[] = [];
  l2.on('frameDropped', (d) => dropped.push(`${d.cid}:${d.reason}`));
  l2.setHandler(FixedCid.Att, () => assert.fail('must not be delivered'));
  l2.setHandler(FixedCid.Smp, () => assert.fail('must not be delivered'));
  l2.onFrame(frame(0x0040, '01'));
  l2.onFrame(fromHex('0500 0400 01'));
  l2.onFrame(frame(6, '00'.repeat(66)));
  l2.onFrame(new Uint8Array(2));
  assert.equal(dropped.length, 4);
  assert.match(dropped[0] as string, /^64:no channel/);
  assert.match(dropped[2] as string, /SMP MTU 65/);
  assert.deepEqual(sent, [], 'nothing is sent back for dropped frames');
});

test('sendFixed builds a basic-mode header in front of the payload', async () => {
  const { l2, sent } = setup();
  await l2.sendFixed(FixedCid.Att, fromHex('1b0300aa'));
  assert.deepEqual(sent, ['040004001b0300aa']);
});

/** An L2CAP connection whose lower layer keeps the frames it is given (by reference) and their bytes at that moment. */
function framesSetup() {
  const frames: { frame: Uint8Array; at: string }[] = [];
  const l2 = new L2capConnection({
    handle: 0x40,
    role: 'peripheral',
    clock: new VirtualClock(),
    log: silentLogger(),
    lower: { send: async (f) => void frames.push({ frame: f, at: toHex(f) }) },
  });
  return { l2, frames };
}

/** Whether two views overlap in memory (views carved out of one shared slab may share `buffer` without sharing bytes). */
function sharesMemory(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}

test('sendFixed writes the header in front of a PDU from allocFixedChannelPdu: no copy, room left for ACL and H:4', async () => {
  const { l2, frames } = framesSetup();
  assert.equal(FIXED_CHANNEL_TX_HEADROOM, 9);
  const pdu = allocFixedChannelPdu(4);
  pdu.set(fromHex('1b0300aa'));
  await l2.sendFixed(FixedCid.Att, pdu);
  const f = frames[0]?.frame as Uint8Array;
  assert.equal(f.buffer, pdu.buffer, 'the frame is the PDU\'s own buffer');
  assert.equal(pdu.byteOffset - f.byteOffset, 4, 'the L2CAP header right in front of the PDU');
  assert.equal(toHex(f), '040004001b0300aa');
  assert.ok(f instanceof TxView);
  assert.equal(f.room, ACL_TX_HEADROOM, 'room for the type byte and ACL header is still in front');
});

test('sendFixed copies any other payload once, into a frame with room for ACL and H:4, and never writes the caller\'s buffer', async () => {
  const { l2, frames } = framesSetup();
  const backing = fromHex('ffffffff 0b0d');
  const payload = backing.subarray(4);
  await l2.sendFixed(FixedCid.Smp, payload);
  const f = frames[0]?.frame as Uint8Array;
  assert.ok(f instanceof TxView);
  assert.equal(f.room, ACL_TX_HEADROOM);
  assert.equal(toHex(f), '020006000b0d');
  assert.equal(toHex(backing), 'ffffffff0b0d', 'the bytes in front of the caller\'s view are untouched');
});

test('a PDU sent twice: the second frame is a copy and the first frame, already handed on, does not change', async () => {
  const { l2, frames } = framesSetup();
  const pdu = allocFixedChannelPdu(3);
  pdu.set(fromHex('0a0300'));
  await l2.sendFixed(FixedCid.Att, pdu);
  await l2.sendFixed(FixedCid.Smp, pdu);
  const [first, second] = frames as [{ frame: Uint8Array; at: string }, { frame: Uint8Array; at: string }];
  assert.equal(first.frame.buffer, pdu.buffer);
  assert.ok(!sharesMemory(second.frame, pdu), 'the second frame is a copy');
  assert.equal(second.at, '030006000a0300');
  assert.equal(toHex(first.frame), first.at);
  assert.equal(first.at, '030004000a0300');
});

test('an unknown signaling command is answered with Command Reject "not understood"', () => {
  const { l2, sent } = setup();
  l2.onFrame(frame(5, '3003 0000'));
  assert.deepEqual(sent, ['060005000103020000 00'.replace(/ /g, '')]);
});

test('a signaling PDU over the LE signaling MTU is rejected with MTU exceeded and the MTU', () => {
  const { l2, sent } = setup();
  l2.onFrame(frame(5, '1207 1400' + '00'.repeat(20)));
  // Command Reject, id 7, len 4, reason 0x0001, MTUsig 23
  assert.deepEqual(sent, ['0800050001070400010017 00'.replace(/ /g, '')]);
});

test('LE credit-based connection requests are refused with SPSM not supported', () => {
  const { l2, sent } = setup();
  l2.onFrame(frame(5, encodeHex({ type: 'leCreditBasedConnectionRequest', identifier: 9, spsm: 0x80, sourceCid: 0x40, mtu: 100, mps: 100, initialCredits: 5 })));
  const rsp = decodeSignaling(fromHex((sent[0] as string).slice(8)));
  assert.ok(rsp.ok);
  assert.deepEqual(rsp.pdu, { type: 'leCreditBasedConnectionResponse', identifier: 9, destinationCid: 0, mtu: 0, mps: 0, initialCredits: 0, result: 0x0002 });
  sent.length = 0;
  l2.onFrame(frame(5, encodeHex({ type: 'creditBasedConnectionRequest', identifier: 10, spsm: 0x80, mtu: 100, mps: 100, initialCredits: 5, sourceCids: [0x40, 0x41] })));
  const rsp2 = decodeSignaling(fromHex((sent[0] as string).slice(8)));
  assert.ok(rsp2.ok && rsp2.pdu.type === 'creditBasedConnectionResponse');
  assert.equal(rsp2.pdu.result, 0x0002);
  assert.deepEqual(rsp2.pdu.destinationCids, [0, 0]);
});

test('a disconnection request for a channel that does not exist gets Invalid CID in request', () => {
  const { l2, sent } = setup();
  l2.onFrame(frame(5, encodeHex({ type: 'disconnectionRequest', identifier: 3, destinationCid: 0x41, sourceCid: 0x42 })));
  assert.deepEqual(sent, ['0a000500' + '0103' + '0600' + '0200' + '41004200']);
});

test('the peripheral requests Apple-compliant parameters and logs the central\'s answer', async () => {
  const { l2, sent, clock } = setup('peripheral');
  assert.deepEqual(checkAppleConnectionParameters(DEFAULT_PERIPHERAL_PARAMETERS), []);
  const outcome = l2.requestParameterUpdate(DEFAULT_PERIPHERAL_PARAMETERS);
  // code 0x12, id 1, len 8, min 12, max 24, latency 4, timeout 500
  assert.deepEqual(sent, ['0c000500' + '12010800' + '0c00' + '1800' + '0400' + 'f401']);
  l2.onFrame(frame(5, '13010200 0000'));
  assert.equal(await outcome, 'accepted');
  const second = l2.requestParameterUpdate(DEFAULT_PERIPHERAL_PARAMETERS);
  l2.onFrame(frame(5, '13020200 0100'));
  assert.equal(await second, 'rejected');
  const third = l2.requestParameterUpdate(DEFAULT_PERIPHERAL_PARAMETERS);
  await clock.advance(30_000);
  assert.equal(await third, 'timeout');
});

test('as central, a valid parameter request is accepted and an invalid one refused', async () => {
  const applied: unknown[] = [];
  const { l2, sent, clock } = setup('central', async (p) => {
    applied.push(p);
    return true;
  });
  l2.onFrame(frame(5, encodeHex({ type: 'connectionParameterUpdateRequest', identifier: 4, intervalMin: 12, intervalMax: 24, latency: 0, timeout: 400 })));
  await clock.advance(0);
  assert.deepEqual(sent, ['060005001304020000 00'.replace(/ /g, '')]);
  assert.equal(applied.length, 1);
  sent.length = 0;
  l2.onFrame(frame(5, encodeHex({ type: 'connectionParameterUpdateRequest', identifier: 5, intervalMin: 24, intervalMax: 12, latency: 0, timeout: 400 })));
  await clock.advance(0);
  assert.deepEqual(sent, ['060005001305020001 00'.replace(/ /g, '')]);
});

test('Apple rules flag each broken constraint', () => {
  const v = checkAppleConnectionParameters({ intervalMin: 6, intervalMax: 6, latency: 40, timeout: 100 });
  const rules = v.map((x) => x.rule).sort();
  assert.deepEqual(rules, ['interval-min-15ms', 'interval-min-multiple-15ms', 'latency-30', 'timeout-2-6s'].sort());
  assert.deepEqual(
    checkAppleConnectionParameters({ intervalMin: 24, intervalMax: 1600, latency: 0, timeout: 600 }).map((x) => x.rule).sort(),
    ['timeout-3x'],
  );
});

function encodeHex(p: SignalingPdu): string {
  return toHex(encodeSignaling(p));
}
