/**
 * Malformed and random PDUs (SweynTooth-style) never throw out of the server, never hang it, and
 * every answer is a well-formed ATT PDU no longer than ATT_MTU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GattServer } from '../../src/gatt/server.js';
import { ATT_PDUS, decodeAttPdu } from '../../src/att/pdu.js';
import { WearableProfile } from '../../src/gatt/profile.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { seededRandom, randomInt } from '../../src/util/random.js';
import { fromHex } from '../../src/util/bytes.js';
import { FakeLower, LINKS } from './helpers.js';

test('5000 random PDUs: every response decodes, fits ATT_MTU, and the server still answers a plain read afterwards', async () => {
  const rng = seededRandom('att-fuzz');
  const profile = new WearableProfile();
  await profile.appendHealthRecord({ note: 'x'.repeat(100) });
  const lower = new FakeLower();
  lower.security.set(LINKS.L2);
  const clock = new VirtualClock();
  const server = new GattServer({ db: profile.db, lower, clock, prepareQueueLimit: 8 });
  const opcodes = ATT_PDUS.map((s) => s.opcode);
  let responses = 0;
  for (let i = 0; i < 5000; i++) {
    const len = randomInt(rng, 24);
    const pdu = rng.bytes(Math.max(1, len));
    pdu[0] = randomInt(rng, 4) === 0 ? (rng.bytes(1)[0] as number) : (opcodes[randomInt(rng, opcodes.length)] as number);
    // Bias handles toward the database so deep paths run.
    if (pdu.length >= 3 && randomInt(rng, 2) === 0) {
      pdu[1] = randomInt(rng, profile.db.lastHandle + 2);
      pdu[2] = 0;
    }
    server.onPdu(pdu);
    await settle();
    // Confirm any indication we might have caused, so the bearer never times out.
    for (const out of lower.take()) {
      const r = decodeAttPdu(fromHex(out));
      assert.ok(r.ok, `undecodable output ${out}`);
      assert.ok(out.length / 2 <= server.mtu, `output longer than ATT_MTU: ${out}`);
      responses++;
    }
  }
  assert.ok(responses > 1000, `only ${responses} responses`);
  assert.equal(server.bearer.closed, undefined);
  await clock.advance(1);
  // Still alive and answering in order.
  server.onPdu(fromHex(`0a${profile.db.handle('bas.level').toString(16).padStart(2, '0')}00`));
  await settle();
  assert.deepEqual(lower.take(), ['0b64']);
  server.onDisconnected();
});
