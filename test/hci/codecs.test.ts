import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Commands,
  decodeCommand,
  decodeReturn,
  encodeCommand,
  encodeReturn,
  isCommandSupported,
  type CommandName,
} from '../../src/hci/commands.js';
import { Events, decodeEvent, encodeEvent, type EventName } from '../../src/hci/events.js';
import { aclFormatError, aclHandleAndFlags, decodeAcl, encodeAcl, AclBoundary } from '../../src/hci/acl.js';
import { encodeWith, type Codec } from '../../src/hci/codec.js';
import { ByteReader, fromHex, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';

const rng = seededRandom('hci-codecs');

/** Bytes that decode with the codec and re-encode identically (random first, zeros for constrained fields). */
function sampleFor(codec: Codec<unknown>, extra = 0): Uint8Array {
  const n = (codec.length ?? codec.minLength) + extra;
  for (const candidate of [rng.bytes(n), new Uint8Array(n)]) {
    try {
      const v = codec.decode(new ByteReader(candidate));
      if (toHex(encodeWith(codec, v)) === toHex(candidate)) return candidate;
    } catch {
      /* try the next candidate */
    }
  }
  throw new Error('no round-trippable sample');
}

test('every command encodes its parameters and decodes back to the same bytes', () => {
  for (const name of Object.keys(Commands) as CommandName[]) {
    const def = Commands[name];
    const params = sampleFor(def.params as Codec<unknown>);
    const body = new Uint8Array(3 + params.length);
    body[0] = def.opcode & 0xff;
    body[1] = def.opcode >> 8;
    body[2] = params.length;
    body.set(params, 3);
    const d = decodeCommand(body);
    assert.ok(d.ok, `${name}: ${d.ok ? '' : d.detail}`);
    assert.equal(d.name, name);
    const again = encodeCommand(name, d.params as never);
    assert.equal(toHex(again), toHex(body), name);
  }
});

test('every Command Complete return layout round-trips after the status byte', () => {
  for (const name of Object.keys(Commands) as CommandName[]) {
    const def = Commands[name];
    if (def.reply !== 'complete') continue;
    const ret = sampleFor(def.returns as Codec<unknown>);
    const decoded = decodeReturn(name, ret);
    assert.equal(toHex(encodeReturn(name, 0, decoded as never)), '00' + toHex(ret), name);
  }
});

test('HCI Reset is 03 0c 00 and LE Set Advertising Enable carries one byte', () => {
  assert.equal(toHex(encodeCommand('Reset', {})), '030c00');
  assert.equal(toHex(encodeCommand('LeSetAdvertisingEnable', { enable: true })), '0a200101');
  assert.equal(
    toHex(encodeCommand('LeLongTermKeyRequestReply', { handle: 0x0040, ltk: fromHex('00112233445566778899aabbccddeeff') })),
    '1a2012' + '4000' + '00112233445566778899aabbccddeeff',
  );
});

test('commands with a wrong parameter length or unknown opcode are reported, not thrown', () => {
  const r1 = decodeCommand(fromHex('0a2002 0101'));
  assert.equal(r1.ok, false);
  assert.equal(r1.ok ? '' : r1.reason, 'bad-length');
  const r2 = decodeCommand(fromHex('99fc00'));
  assert.equal(r2.ok ? '' : r2.reason, 'unknown-opcode');
  const r3 = decodeCommand(fromHex('030c05 00'));
  assert.equal(r3.ok ? '' : r3.reason, 'truncated');
  assert.equal(decodeCommand(fromHex('03')).ok, false);
});

test('every event encodes and decodes back to the same bytes', () => {
  for (const name of Object.keys(Events) as EventName[]) {
    const def = Events[name];
    const payload = sampleFor(def.params as Codec<unknown>);
    const head = 'subevent' in def && def.subevent !== undefined ? [def.code, payload.length + 1, def.subevent] : [def.code, payload.length];
    const body = new Uint8Array([...head, ...payload]);
    const d = decodeEvent(body);
    assert.ok(d.ok && d.event, `${name}: ${d.ok ? "unknown" : d.error}`);
    assert.equal(d.event.name, name);
    assert.equal(toHex(encodeEvent(name, d.event.params as never)), toHex(body), name);
  }
});

test('Command Complete for Reset decodes from 0e 04 01 03 0c 00', () => {
  const d = decodeEvent(fromHex('0e0401030c00'));
  assert.ok(d.ok && d.event?.name === 'CommandComplete');
  assert.deepEqual(d.event.params.numHciCommandPackets, 1);
  assert.equal(d.event.params.opcode, 0x0c03);
  assert.equal(toHex(d.event.params.returnParameters), '00');
});

test('Number Of Completed Packets decodes interleaved handle/count pairs', () => {
  const d = decodeEvent(fromHex('1309 02 4000 0300 4100 0100'));
  assert.ok(d.ok && d.event?.name === 'NumberOfCompletedPackets');
  assert.deepEqual(d.event.params.handles, [
    { handle: 0x40, count: 3 },
    { handle: 0x41, count: 1 },
  ]);
});

test('LE Long Term Key Request decodes handle, rand and ediv', () => {
  const d = decodeEvent(fromHex('3e0d05 4000 0102030405060708 3412'));
  assert.ok(d.ok && d.event?.name === 'LeLongTermKeyRequest');
  assert.equal(d.event.params.handle, 0x40);
  assert.equal(d.event.params.rand, 0x0807060504030201n);
  assert.equal(d.event.params.ediv, 0x1234);
});

test('short, inconsistent and unknown events are reported without throwing', () => {
  assert.equal(decodeEvent(fromHex('05')).ok, false);
  assert.equal(decodeEvent(fromHex('050300')).ok, false, 'length field larger than packet');
  const short = decodeEvent(fromHex('05020000'));
  assert.equal(short.ok, false);
  assert.match(short.ok ? '' : short.error, /DisconnectionComplete needs 4/);
  const unknown = decodeEvent(fromHex('4401ff'));
  assert.ok(unknown.ok && unknown.event === undefined);
  const badReport = decodeEvent(fromHex('3e0c02 01 00 00 112233445566 20'));
  assert.equal(badReport.ok, false);
  // Longer than the layout: accepted, extra ignored.
  const longer = decodeEvent(fromHex('0505 00 4000 13 ff'));
  assert.ok(longer.ok && longer.event?.name === 'DisconnectionComplete');
});

test('ACL header packs handle and boundary flags', () => {
  const body = encodeAcl(0x0040, AclBoundary.FirstNonFlushable, fromHex('0100040002'));
  assert.equal(toHex(body), '400005000100040002');
  const d = decodeAcl(fromHex('4020 0200 aabb'));
  assert.ok(d.ok);
  assert.equal(d.packet.handle, 0x40);
  assert.equal(d.packet.boundary, AclBoundary.FirstFlushable);
  assert.equal(decodeAcl(fromHex('4020 0300 aabb')).ok, false);
});

test('the receive path checks an ACL header in place: the same verdicts as decodeAcl, fields read without decoding', () => {
  assert.equal(aclFormatError(fromHex('4020 0200 aabb')), undefined);
  assert.equal(aclHandleAndFlags(fromHex('4020 0200 aabb')), 0x2040);
  for (const hex of ['4020 03', '4020 0300 aabb', '4020 0100 aabb']) {
    const d = decodeAcl(fromHex(hex));
    assert.ok(!d.ok);
    assert.equal(aclFormatError(fromHex(hex)), d.error, hex);
  }
  assert.equal(aclFormatError(fromHex('4020 03')), 'ACL packet of 3 bytes, header needs 4');
  assert.equal(aclFormatError(fromHex('4020 0300 aabb')), 'ACL length field 3, 2 bytes present');
  // The same body behind an H:4 type byte, read at offset 1.
  assert.equal(aclFormatError(fromHex('02 4020 0200 aabb'), 1), undefined);
  assert.equal(aclHandleAndFlags(fromHex('02 4020 0200 aabb'), 1), 0x2040);
  assert.equal(aclFormatError(fromHex('02 4020 0300 aabb'), 1), 'ACL length field 3, 2 bytes present');
  assert.equal(aclFormatError(fromHex('02 4020 03'), 1), 'ACL packet of 3 bytes, header needs 4');
});

test('supported-commands bitmap lookup finds LE Read Buffer Size v2 at octet 41 bit 5', () => {
  const bitmap = new Uint8Array(64);
  assert.equal(isCommandSupported(bitmap, 'LeReadBufferSizeV2'), false);
  bitmap[41] = 1 << 5;
  assert.equal(isCommandSupported(bitmap, 'LeReadBufferSizeV2'), true);
});
