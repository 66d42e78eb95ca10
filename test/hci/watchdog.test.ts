/**
 * The idle watchdog against the scripted controller: what it sends, when it gives up on the
 * data-length read-back, and that the driver on its own sends nothing while idle. The end-to-end
 * hang and silent-reboot recoveries are in test/host.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeRig } from './fixtures/rig.js';

function sentNames(rig: ReturnType<typeof makeRig>, from: number): string[] {
  return rig.ctrl.commandNames.slice(from);
}

test('without idleCheckMs the driver sends nothing while idle', async () => {
  const rig = makeRig();
  await rig.hci.init();
  const n = rig.ctrl.commands.length;
  await rig.clock.advance(60_000);
  assert.deepEqual(sentNames(rig, n), []);
  assert.equal(rig.clock.pendingCount, 0, 'no timer armed');
  await rig.stop();
});

test('a controller that refuses LE Read Suggested Default Data Length: the idle check says so once and then sends Read Local Version Information (a hang is still noticed)', async () => {
  const rig = makeRig({}, { idleCheckMs: 1000, captureLog: true });
  await rig.hci.init();
  const n = rig.ctrl.commands.length;
  await rig.clock.advance(3500);
  assert.deepEqual(sentNames(rig, n), ['LeReadSuggestedDefaultDataLength', 'ReadLocalVersionInformation', 'ReadLocalVersionInformation']);
  assert.equal(rig.logLines.filter((l) => String(l['msg']).includes('refused the idle check')).length, 1);
  assert.equal(rig.hci.state, 'ready', 'a refusal is an answer: no reset');
  await rig.stop();
  assert.equal(rig.clock.pendingCount, 0, 'close() stops the watchdog');
});

test('a controller that reads back its power-up data length right after bring-up wrote another is not reset in a loop: the read-back is given up', async () => {
  const rig = makeRig({}, { idleCheckMs: 1000, captureLog: true });
  rig.ctrl.on('LeReadSuggestedDefaultDataLength', () => ({ ret: { maxTxOctets: 27, maxTxTime: 328 } }));
  await rig.hci.init();
  const n = rig.ctrl.commands.length;
  await rig.clock.advance(5500);
  assert.equal(sentNames(rig, n).filter((c) => c === 'Reset').length, 0, 'no reset');
  assert.deepEqual(sentNames(rig, n).slice(0, 2), ['LeReadSuggestedDefaultDataLength', 'ReadLocalVersionInformation']);
  assert.ok(rig.logLines.some((l) => String(l['msg']).includes('reads back its power-up data length')));
  await rig.stop();
});

test('a read-back that changes after the first idle check re-initialises the controller from HCI Reset', async () => {
  const rig = makeRig({}, { idleCheckMs: 1000, captureLog: true });
  let value = { maxTxOctets: 251, maxTxTime: 2120 };
  rig.ctrl.on('LeReadSuggestedDefaultDataLength', () => ({ ret: value }));
  await rig.hci.init();
  await rig.clock.advance(1500);
  const n = rig.ctrl.commands.length;
  value = { maxTxOctets: 27, maxTxTime: 328 };
  let reinitialised = false;
  rig.hci.on('reinitialised', () => (reinitialised = true));
  assert.ok(await rig.clock.runUntil(() => reinitialised, 5000));
  assert.deepEqual(sentNames(rig, n).slice(0, 2), ['LeReadSuggestedDefaultDataLength', 'Reset']);
  assert.ok(rig.logLines.some((l) => String(l['msg']).includes('forgot the data length bring-up set')));
  await rig.stop();
});
