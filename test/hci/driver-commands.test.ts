import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import { HciError } from '../../src/hci/hci-error.js';
import { HciStatus } from '../../src/hci/status.js';
import { TransportError } from '../../src/hci/transport-errors.js';
import { makeRig } from './fixtures/rig.js';

test('with Num_HCI_Command_Packets = 1 the second command is not sent before the first completes', async () => {
  const rig = makeRig();
  await rig.hci.init();
  const base = rig.ctrl.commands.length;
  rig.ctrl.hold();
  const a = rig.hci.command('LeRand', {});
  const b = rig.hci.command('ReadBdAddr', {});
  await settle();
  assert.deepEqual(rig.ctrl.commandNames.slice(base), ['LeRand'], 'only the first command is on the wire');
  assert.equal(rig.hci.aclStats().commandCredits, 0);
  rig.ctrl.release();
  assert.deepEqual(toHex((await a).random), '0102030405060708');
  await settle();
  assert.deepEqual(rig.ctrl.commandNames.slice(base), ['LeRand', 'ReadBdAddr']);
  rig.ctrl.release();
  assert.equal((await b).address, '00:00:00:00:00:00');
  assert.equal(rig.ctrl.maxOutstanding, 1, 'the controller never had two commands outstanding');
  await rig.stop();
});

test('with Num_HCI_Command_Packets = 3 up to three commands are outstanding and the fourth waits, in FIFO order', async () => {
  const rig = makeRig({ numHciCommandPackets: 3 });
  await rig.hci.init();
  const base = rig.ctrl.commands.length;
  rig.ctrl.hold();
  const order: number[] = [];
  const ps = [0, 1, 2, 3].map((i) => rig.hci.command('LeRand', {}).then(() => order.push(i)));
  await settle();
  assert.equal(rig.ctrl.commands.length - base, 3);
  rig.ctrl.release();
  await settle();
  assert.equal(rig.ctrl.commands.length - base, 4);
  rig.ctrl.release();
  await Promise.all(ps);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(rig.ctrl.maxOutstanding, 3);
  await rig.stop();
});

test('a Command Complete with opcode 0x0000 only updates the credits', async () => {
  const rig = makeRig();
  await rig.hci.init();
  // The controller answers LeRand but says it can take no more commands for now.
  rig.ctrl.on('LeRand', () => ({ ret: { random: new Uint8Array(8) }, numHciCommandPackets: 0 }));
  const base = rig.ctrl.commands.length;
  await rig.hci.command('LeRand', {});
  const next = rig.hci.command('ReadBdAddr', {});
  await settle();
  assert.equal(rig.ctrl.commands.length, base + 1, 'no credit: ReadBdAddr waits');
  await rig.ctrl.sendEvent('CommandComplete', { numHciCommandPackets: 1, opcode: 0x0000, returnParameters: new Uint8Array(0) });
  await next;
  assert.deepEqual(rig.ctrl.commandNames.slice(base), ['LeRand', 'ReadBdAddr']);
  await rig.stop();
});

test('Command Status commands resolve on Command Status; a non-zero status rejects with HciError(status, opcode)', async () => {
  const rig = makeRig();
  await rig.hci.init();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  assert.deepEqual(await rig.hci.command('LeSetPhy', { handle: 0x0040, allPhys: 0, txPhys: 2, rxPhys: 2, phyOptions: 0 }), {});
  assert.equal(toHex(rig.ctrl.commands.at(-1)?.raw ?? new Uint8Array()), '01322007400000020200' + '00');
  rig.ctrl.on('ReadRemoteVersionInformation', () => ({ status: HciStatus.UnknownConnectionIdentifier }));
  await assert.rejects(rig.hci.command('ReadRemoteVersionInformation', { handle: 0x0099 }), (e: unknown) => {
    assert.ok(e instanceof HciError);
    assert.equal(e.status, 0x02);
    assert.equal(e.opcode, 0x041d);
    assert.equal(e.kind, 'status');
    assert.match(e.message, /0x041d ReadRemoteVersionInformation failed on memory:host: controller answered 0x02 UnknownConnectionIdentifier/);
    return true;
  });
  await rig.stop();
});

test('a non-zero status in Command Complete rejects with the status and opcode named in the message', async () => {
  const rig = makeRig();
  await rig.hci.init();
  rig.ctrl.on('LeSetAdvertisingParameters', () => ({ status: HciStatus.CommandDisallowed }));
  const params = { intervalMin: 0xf4, intervalMax: 0xf4, advertisingType: 0, ownAddressType: 1, peerAddressType: 0, peerAddress: '00:00:00:00:00:00', channelMap: 7, filterPolicy: 0 };
  await assert.rejects(rig.hci.command('LeSetAdvertisingParameters', params), (e: unknown) => {
    assert.ok(e instanceof HciError);
    assert.equal(e.status, 0x0c);
    assert.equal(e.statusName, '0x0c CommandDisallowed');
    assert.equal(e.opcode, 0x2006);
    assert.match(e.message, /0x2006 LeSetAdvertisingParameters/);
    assert.match(e.message, /0x0c CommandDisallowed/);
    return true;
  });
  // The queue moves on.
  await rig.hci.command('LeRand', {});
  await rig.stop();
});

test('a command without an answer times out after its timeout (VirtualClock), and the next command still goes out (re-initialisation on timeout turned off)', async () => {
  // With the default resetOnCommandTimeout the timeout re-initialises the controller (test/host-recovery.test.ts).
  const rig = makeRig({}, { resetOnCommandTimeout: false });
  await rig.hci.init();
  rig.ctrl.on('LeRand', () => 'silent');
  const box: { err?: unknown } = {};
  const t0 = rig.clock.now();
  const p = rig.hci.command('LeRand', {}).catch((e: unknown) => (box.err = e));
  const q = rig.hci.command('ReadBdAddr', {});
  await rig.clock.advance(1999);
  assert.equal(typeof box.err, 'undefined', 'not yet');
  await rig.clock.advance(1);
  await p;
  const err = box.err;
  assert.ok(err instanceof HciError);
  assert.equal(err.kind, 'timeout');
  assert.equal(err.opcode, 0x2018);
  assert.equal(rig.clock.now() - t0, 2000);
  assert.match(err.message, /0x2018 LeRand got no answer from the controller on memory:host within 2000 ms/);
  assert.match(err.message, /hci_uart/);
  assert.equal((await q).address, '00:00:00:00:00:00');
  // A per-command timeout overrides the default.
  let err2: unknown;
  const r = rig.hci.command('LeRand', {}, { timeoutMs: 50 }).catch((e: unknown) => (err2 = e));
  await rig.clock.advance(50);
  await r;
  assert.ok(err2 instanceof HciError && err2.kind === 'timeout');
  await rig.stop();
});

test('an answer for an opcode that was not sent is dropped; the pending command still completes', async () => {
  const rig = makeRig({}, { captureLog: true });
  await rig.hci.init();
  rig.ctrl.hold();
  const p = rig.hci.command('LeRand', {});
  await settle();
  await rig.ctrl.sendEvent('CommandComplete', { numHciCommandPackets: 1, opcode: 0x0c03, returnParameters: Uint8Array.of(0) });
  await rig.ctrl.sendEvent('CommandStatus', { status: 0, numHciCommandPackets: 1, opcode: 0x0406 });
  await settle();
  rig.ctrl.release();
  assert.equal(toHex((await p).random), '0102030405060708');
  assert.ok(rig.logLines.some((l) => String(l['msg']).includes('Command Complete for 0x0c03 Reset, which is not waiting')));
  assert.ok(rig.logLines.some((l) => String(l['msg']).includes('Command Status for 0x0406 Disconnect, which is not waiting')));
  await rig.stop();
});

test('Command Status with an error for a command that completes with Command Complete rejects it', async () => {
  const rig = makeRig();
  await rig.hci.init();
  rig.ctrl.on('LeRand', () => 'silent');
  const p = rig.hci.command('LeRand', {});
  await settle();
  await rig.ctrl.sendEvent('CommandStatus', { status: HciStatus.UnknownHciCommand, numHciCommandPackets: 1, opcode: 0x2018 });
  await assert.rejects(p, (e: unknown) => e instanceof HciError && e.status === 0x01 && e.opcode === 0x2018);
  await rig.stop();
});

test('a Command Complete too short for the return parameters rejects with kind malformed', async () => {
  const rig = makeRig();
  await rig.hci.init();
  rig.ctrl.on('LeRand', () => 'silent');
  const p = rig.hci.command('LeRand', {});
  await settle();
  await rig.ctrl.sendEvent('CommandComplete', { numHciCommandPackets: 1, opcode: 0x2018, returnParameters: Uint8Array.of(0, 1, 2) });
  await assert.rejects(p, (e: unknown) => e instanceof HciError && e.kind === 'malformed' && /2 return byte\(s\) after the status, LeRand needs 8/.test(e.message));
  await rig.stop();
});

test('parameters that do not fit their field reject before anything is sent', async () => {
  const rig = makeRig();
  await rig.hci.init();
  const base = rig.ctrl.commands.length;
  await assert.rejects(rig.hci.command('LeSetAdvertisingData', { data: new Uint8Array(32) }), RangeError);
  await settle();
  assert.equal(rig.ctrl.commands.length, base);
  await rig.stop();
});

test('losing the transport rejects every pending command with an error naming the port, and emits transportLost', async () => {
  const rig = makeRig();
  await rig.hci.init();
  rig.ctrl.hold();
  const lost = rig.hci.wait('transportLost');
  const a = rig.hci.command('LeRand', {}).catch((e: unknown) => e);
  const b = rig.hci.command('ReadBdAddr', {}).catch((e: unknown) => e);
  await settle();
  await rig.controllerEnd.close(); // USB unplug, as the host sees it
  const [e] = await lost;
  assert.ok(e instanceof HciError);
  assert.equal(e.kind, 'transport');
  assert.match(e.message, /lost the connection to the controller on memory:host/);
  assert.ok(e.cause instanceof TransportError);
  for (const r of [await a, await b]) {
    assert.ok(r instanceof HciError, String(r));
    assert.equal(r.kind, 'transport');
    assert.match(r.message, /memory:host/);
  }
  assert.equal(rig.hci.state, 'closed');
  await assert.rejects(rig.hci.command('LeRand', {}), (x: unknown) => x instanceof HciError && x.kind === 'closed');
  await rig.stop();
});

test('commands issued before bring-up wait for it and then go out after it', async () => {
  const rig = makeRig();
  const early = rig.hci.command('LeRand', {});
  const info = rig.hci.init();
  await info;
  await early;
  assert.equal(rig.ctrl.commandNames.at(-1), 'LeRand');
  assert.equal(rig.ctrl.commandNames[0], 'Reset');
  await rig.stop();
});

test('close() detaches from the transport, rejects what is pending and leaves no timer behind', async () => {
  const rig = makeRig();
  await rig.hci.init();
  rig.ctrl.on('LeRand', () => 'silent');
  const p = rig.hci.command('LeRand', {}).catch((e: unknown) => e);
  await settle();
  assert.ok(rig.clock.pendingCount > 0, 'the command timeout is armed');
  rig.hci.close();
  const e = await p;
  assert.ok(e instanceof HciError && e.kind === 'closed', String(e));
  assert.equal(rig.clock.pendingCount, 0);
  assert.equal(rig.host.listenerCount('data'), 0);
  assert.equal(rig.host.isOpen, true, 'the transport belongs to its owner');
  await rig.stop();
});
