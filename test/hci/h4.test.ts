import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H4Framer, H4Type, encodeH4, type H4FramerError, type H4Direction, type H4FramerOptions } from '../../src/hci/h4.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { seededRandom, randomInt } from '../../src/util/random.js';

function acl(handle: number, payload: Uint8Array, pb = 0b10): Uint8Array {
  const body = new Uint8Array(4 + payload.length);
  const hf = (handle & 0x0fff) | (pb << 12);
  body[0] = hf & 0xff;
  body[1] = hf >> 8;
  body[2] = payload.length & 0xff;
  body[3] = payload.length >> 8;
  body.set(payload, 4);
  return encodeH4(H4Type.Acl, body);
}

function filled(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** What a controller sends a host: events and ACL of several sizes. */
const HOST_SIDE_PACKETS: Uint8Array[] = [
  fromHex('04 0e 04 01 03 0c 00'), // Command Complete, HCI Reset, success
  fromHex('04 0f 04 00 01 01 20'), // Command Status
  encodeH4(H4Type.Event, concatBytes(fromHex('3e 13 01 00 40 00 00 01'), filled(6, 1), fromHex('18 00 00 00 48 00 00'))), // LE Connection Complete
  fromHex('04 13 05 01 40 00 01 00'), // Number Of Completed Packets
  encodeH4(H4Type.Event, concatBytes(fromHex('ff ff'), filled(255, 2))), // longest event (255 parameter bytes)
  encodeH4(H4Type.Event, fromHex('05 00')), // zero-length event
  acl(0x0040, new Uint8Array(0)), // 0-length ACL
  acl(0x0040, fromHex('03 00 04 00 0a 03 00')), // ATT Read Request
  acl(0x0040, filled(27, 3)),
  acl(0x0041, filled(251, 4)),
  acl(0x0eff, filled(1021, 5)), // max length, max handle
  encodeH4(H4Type.Iso, concatBytes(fromHex('60 00 05 00'), filled(5, 6))),
];

/** What a host sends a controller: commands and ACL. */
const CONTROLLER_SIDE_PACKETS: Uint8Array[] = [
  fromHex('01 03 0c 00'), // HCI Reset
  fromHex('01 01 fc 00'), // Zephyr Read Version Info
  encodeH4(H4Type.Command, concatBytes(fromHex('08 20 20'), filled(32, 7))), // LE Set Advertising Data
  encodeH4(H4Type.Command, concatBytes(fromHex('ff ff ff'), filled(255, 8))), // longest command
  acl(0x0040, new Uint8Array(0), 0),
  acl(0x0040, filled(251, 9), 0),
];

interface Run {
  packets: string[];
  errors: H4FramerError[];
}

function run(direction: H4Direction, chunks: Uint8Array[], extra: Partial<H4FramerOptions> = {}): Run & { framer: H4Framer } {
  const packets: string[] = [];
  const errors: H4FramerError[] = [];
  const framer = new H4Framer({ direction, onPacket: (p) => packets.push(toHex(p)), onError: (e) => errors.push(e), ...extra });
  for (const c of chunks) framer.push(c);
  return { packets, errors, framer };
}

function splitAt(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(stream.subarray(prev, c));
    prev = c;
  }
  out.push(stream.subarray(prev));
  return out;
}

function comparable(errors: H4FramerError[]): string[] {
  return errors.map((e) => `${e.kind}@${e.offset}`);
}

for (const [direction, packets] of [
  ['host', HOST_SIDE_PACKETS],
  ['controller', CONTROLLER_SIDE_PACKETS],
] as const) {
  const stream = concatBytes(...packets);
  const expected = packets.map((p) => toHex(p));

  test(`${direction}-side framer: the whole stream in one chunk yields every packet, byte for byte, with no error`, () => {
    const r = run(direction, [stream]);
    assert.deepEqual(r.packets, expected);
    assert.deepEqual(r.errors, []);
    assert.equal(r.framer.pendingBytes, 0);
    assert.equal(r.framer.stats.packets, packets.length);
  });

  test(`${direction}-side framer: a split at every single offset gives the same packets`, () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = run(direction, splitAt(stream, [cut]));
      assert.deepEqual(r.packets, expected, `split at ${cut}`);
      assert.equal(r.errors.length, 0, `split at ${cut}`);
    }
  });

  test(`${direction}-side framer: two cuts around every packet boundary and single-byte chunks give the same packets`, () => {
    for (let a = 0; a < stream.length; a += 7) {
      for (let b = a; b <= Math.min(stream.length, a + 12); b++) {
        assert.deepEqual(run(direction, splitAt(stream, [a, b])).packets, expected, `cuts ${a},${b}`);
      }
    }
    const bytes: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    const r = run(direction, bytes);
    assert.deepEqual(r.packets, expected);
    assert.deepEqual(r.errors, []);
  });
}

test('a packet lying inside one chunk is delivered as a view of that chunk (no copy); one spanning chunks is assembled', () => {
  const stream = concatBytes(fromHex('04 0e 04 01 03 0c 00'), acl(0x40, filled(10, 1)));
  const got: Uint8Array[] = [];
  const f = new H4Framer({ direction: 'host', onPacket: (p) => got.push(p) });
  f.push(stream.subarray(0, 12));
  f.push(stream.subarray(12));
  assert.equal(got.length, 2);
  assert.equal(got[0]?.buffer, stream.buffer, 'first packet shares the chunk buffer');
  assert.notEqual(got[1]?.buffer, stream.buffer, 'second packet was assembled');
  assert.equal(toHex(got[1] as Uint8Array), toHex(acl(0x40, filled(10, 1))));
});

test('a chunk that holds exactly one packet is delivered as that chunk, not a new view of it', () => {
  const chunk = acl(0x40, filled(20, 2));
  const got: Uint8Array[] = [];
  const f = new H4Framer({ direction: 'host', onPacket: (p) => got.push(p) });
  f.push(chunk);
  assert.equal(got[0], chunk);
  // A chunk holding that packet and the start of the next still gives a view of exactly the packet.
  const two = concatBytes(chunk, chunk.subarray(0, 3));
  f.push(two);
  assert.equal(got[1]?.buffer, two.buffer);
  assert.equal(toHex(got[1] as Uint8Array), toHex(chunk));
  assert.equal(f.pendingBytes, 3);
});

test('the stray 0x00 a controller emits after power-up is reported as bad-type and skipped; the Reset reply still arrives', () => {
  const r = run('host', [fromHex('00'), fromHex('04 0e 04 01 03 0c 00')]);
  assert.deepEqual(r.packets, ['040e0401030c00']);
  assert.equal(r.errors.length, 1);
  const e = r.errors[0] as H4FramerError;
  assert.equal(e.kind, 'bad-type');
  assert.equal(e.offset, 0);
  assert.ok(e.kind === 'bad-type' && e.byte === 0x00);
  assert.match(e.message, /0x00 at stream offset 0/);
});

test('garbage between packets is reported byte by byte with stream offsets and skipped', () => {
  const good1 = fromHex('04 0e 04 01 03 0c 00');
  const good2 = acl(0x40, fromHex('03 00 04 00 0a 03 00'));
  const stream = concatBytes(good1, fromHex('00 ff 99 07'), good2, fromHex('fe'), good1);
  const r = run('host', [stream]);
  assert.deepEqual(r.packets, [toHex(good1), toHex(good2), toHex(good1)]);
  assert.deepEqual(comparable(r.errors), ['bad-type@7', 'bad-type@8', 'bad-type@9', 'bad-type@10', `bad-type@${11 + good2.length}`]);
  assert.deepEqual(
    r.errors.map((e) => (e.kind === 'bad-type' ? e.byte : -1)),
    [0x00, 0xff, 0x99, 0x07, 0xfe],
  );
  assert.equal(r.framer.stats.discardedBytes, 5);
  // Same result for every split.
  for (let cut = 0; cut <= stream.length; cut++) {
    const s = run('host', splitAt(stream, [cut]));
    assert.deepEqual(s.packets, r.packets, `split at ${cut}`);
    assert.deepEqual(comparable(s.errors), comparable(r.errors), `split at ${cut}`);
  }
});

test('a command arriving at the host side, or an event at the controller side, is a bad-type for that direction', () => {
  const h = run('host', [fromHex('01 03 0c 00')]);
  assert.equal(h.errors[0]?.kind, 'bad-type');
  assert.match(h.errors[0]?.message ?? '', /Command packets do not travel towards the host/);
  const c = run('controller', [fromHex('04 0e 04 01 03 0c 00 01 03 0c 00')]);
  // 04, 0e and 04 are skipped; the event's own last four bytes happen to read as HCI Reset.
  assert.deepEqual(c.packets, ['01030c00', '01030c00']);
  assert.deepEqual(comparable(c.errors), ['bad-type@0', 'bad-type@1', 'bad-type@2']);
});

test('an ACL length above the configured maximum is bad-length; the framer skips the type byte and rescans the header', () => {
  // 02 40 00 00 04 | ... : with maxAclLength 27, a 0x0400-byte ACL is impossible. Rescanning from
  // offset 1 finds 0x40 (bad), 0x00 (bad), 0x00 (bad), then 0x04 starts the real event.
  const stream = concatBytes(fromHex('02 40 00 00 04'), fromHex('0e 04 01 03 0c 00'));
  for (let cut = 0; cut <= stream.length; cut++) {
    const r = run('host', splitAt(stream, [cut]), { maxAclLength: 27 });
    assert.deepEqual(r.packets, ['040e0401030c00'], `split at ${cut}`);
    assert.deepEqual(comparable(r.errors), ['bad-length@0', 'bad-type@1', 'bad-type@2', 'bad-type@3'], `split at ${cut}`);
    const e = r.errors[0] as H4FramerError;
    assert.ok(e.kind === 'bad-length');
    assert.equal(e.length, 0x0400);
    assert.equal(e.max, 27);
    assert.equal(toHex(e.bytes), '0240000004');
  }
  const ok = run('host', [acl(0x40, filled(27, 1)), acl(0x40, filled(28, 1))], { maxAclLength: 27 });
  assert.equal(ok.packets.length, 1);
  assert.equal(ok.errors[0]?.kind, 'bad-length');
});

test('rescanning a rejected header can itself deliver a packet hidden inside it', () => {
  // 02 | 04 05 | 00 ff: an ACL (handle 0x0504) announcing 0xff00 bytes, above the 1021 maximum.
  const stream = fromHex('02 04 05 00 ff');
  const r = run('host', [stream, fromHex('04 0e 04 01 03 0c 00')]);
  // After skipping 0x02: 04 05 00 is a complete zero-length event (code 0x05), then ff is garbage.
  assert.deepEqual(r.packets, ['040500', '040e0401030c00']);
  assert.deepEqual(comparable(r.errors), ['bad-length@0', 'bad-type@4']);
  for (let cut = 0; cut <= stream.length + 7; cut++) {
    const all = concatBytes(stream, fromHex('04 0e 04 01 03 0c 00'));
    const s = run('host', splitAt(all, [cut]));
    assert.deepEqual(s.packets, r.packets, `split at ${cut}`);
    assert.deepEqual(comparable(s.errors), comparable(r.errors), `split at ${cut}`);
  }
});

test('an ACL header naming a connection handle above 0x0EFF is bad-header (Core 5.4 Vol 4 Part E 5.4.2)', () => {
  const r = run('host', [fromHex('02 00 0f 00 00'), fromHex('04 0e 04 01 03 0c 00')]);
  assert.equal(r.errors[0]?.kind, 'bad-header');
  assert.equal(r.errors[0]?.offset, 0);
  assert.deepEqual(r.packets, ['040e0401030c00']);
  const off = run('host', [fromHex('02 00 0f 00 00')], { checkHandles: false });
  assert.deepEqual(off.packets, ['02000f0000']);
});

test('a stray type byte that swallows the real reply stalls; abandonPartial reports it and recovers the hidden packet', () => {
  // A stray 0x04 before the Reset reply makes the framer read "event 0x04, 14 bytes".
  const r = run('host', [fromHex('04 04 0e 04 01 03 0c 00')]);
  assert.deepEqual(r.packets, []);
  assert.equal(r.framer.pendingBytes, 8);
  assert.equal(r.framer.abandonPartial(), true);
  assert.deepEqual(r.packets, ['040e0401030c00']);
  assert.equal(r.errors[0]?.kind, 'stalled');
  assert.equal(r.errors[0]?.offset, 0);
  assert.equal(r.framer.pendingBytes, 0);
  assert.equal(r.framer.abandonPartial(), false);
  // Later bytes keep their stream offsets.
  r.framer.push(fromHex('ee'));
  assert.equal(r.errors.at(-1)?.offset, 8);
});

test('a throwing onPacket does not lose the rest of the chunk; the first exception is rethrown after parsing', () => {
  const seen: string[] = [];
  const f = new H4Framer({
    direction: 'host',
    onPacket: (p) => {
      seen.push(toHex(p));
      if (seen.length === 1) throw new Error('listener bug');
    },
  });
  assert.throws(() => f.push(fromHex('04 05 00 04 0e 04 01 03 0c 00')), /listener bug/);
  assert.deepEqual(seen, ['040500', '040e0401030c00']);
  f.push(fromHex('04 05 00'));
  assert.equal(seen.length, 3);
});

test('reset() drops a partial packet silently', () => {
  const r = run('host', [fromHex('04 0e 04 01')]);
  r.framer.reset();
  r.framer.push(fromHex('04 0e 04 01 03 0c 00'));
  assert.deepEqual(r.packets, ['040e0401030c00']);
  assert.deepEqual(r.errors, []);
});

test('property: random splits of a long random stream with garbage give the same packets and errors as one chunk (seeded)', () => {
  const rng = seededRandom('h4-framer-property');
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 400; i++) {
    const k = randomInt(rng, 10);
    if (k < 4) {
      const n = randomInt(rng, 256);
      const ev = new Uint8Array(3 + n);
      ev[0] = H4Type.Event;
      ev[1] = 1 + randomInt(rng, 0xfe);
      ev[2] = n;
      ev.set(rng.bytes(n), 3);
      parts.push(ev);
    } else if (k < 9) {
      parts.push(acl(randomInt(rng, 0x0f00), rng.bytes(randomInt(rng, 1022))));
    } else {
      // garbage that cannot start a host-side packet
      const g = rng.bytes(1 + randomInt(rng, 3)).map((b) => ((b % 0xf9) + 6) & 0xff);
      parts.push(g);
    }
  }
  const stream = concatBytes(...parts);
  const whole = run('host', [stream]);
  assert.ok(whole.packets.length >= 300);
  assert.equal(whole.framer.pendingBytes, 0);
  for (let trial = 0; trial < 60; trial++) {
    const cuts: number[] = [];
    const nCuts = 1 + randomInt(rng, trial < 30 ? 20 : 2000);
    for (let i = 0; i < nCuts; i++) cuts.push(randomInt(rng, stream.length + 1));
    const r = run('host', splitAt(stream, cuts));
    assert.deepEqual(r.packets, whole.packets, `trial ${trial}`);
    assert.deepEqual(comparable(r.errors), comparable(whole.errors), `trial ${trial}`);
  }
});

test('encodeH4 prefixes the type byte', () => {
  assert.equal(toHex(encodeH4(H4Type.Command, fromHex('03 0c 00'))), '01030c00');
  assert.equal(H4Type.Iso, 0x05);
});
