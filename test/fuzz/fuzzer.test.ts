/**
 * The bounded, seeded slice of the fuzzer that runs in `npm test` (a few seconds); the million-PDU
 * run is `npm run fuzz -- --count 1000000`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FUZZ_TABLES, runFuzz } from '../../fuzz/fuzzer.js';

test('fuzz slice: 3,000 mutated ATT, SMP, signaling, L2CAP, pairing-sequence and HCI PDUs from a hostile peer and controller: no crash, no hang, the wearable answers a new connection after every batch, no key accepted that no correct pairing produced', async () => {
  const r = await runFuzz({ count: 3000, seed: 'npm-test', batch: 60 });
  assert.deepEqual(r.crashes, []);
  assert.deepEqual(r.hangs, []);
  assert.deepEqual(r.keyViolations, []);
  assert.ok(r.pdus >= 3000);
  for (const t of FUZZ_TABLES) assert.ok(r.byTable[t] > 0, `table ${t} was exercised`);
  // The key check is not vacuous: correct pairings happened and the wearable handed their keys to its controller.
  assert.ok(r.honestPairings > 0, 'the attacker completed correct pairings');
  assert.ok(r.ltkReplies > 0, 'the wearable answered LTK requests (each checked against the correct keys)');
  assert.ok(r.heapEndMiB - r.heapStartMiB < 32, `heap grew by ${(r.heapEndMiB - r.heapStartMiB).toFixed(1)} MiB`);
});
