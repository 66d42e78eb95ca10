import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/util/clock.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';
import { HciError } from '../../src/hci/hci-error.js';
import { HOST_EVENT_MASK, HOST_LE_EVENT_MASK } from '../../src/hci/driver.js';
import type { HciConnection } from '../../src/hci/connection.js';
import { DK_STATIC_ADDRESS, nrf5340SupportedCommands } from './fixtures/scripted-controller.js';
import { makeRig } from './fixtures/rig.js';

/** The bring-up an nRF5340 hci_uart controller gets, packet by packet (H:4 type byte first). */
const EXPECTED_BRING_UP = [
  '01 030c 00', // Reset
  '01 0110 00', // Read Local Version Information
  '01 0210 00', // Read Local Supported Commands
  '01 0310 00', // Read Local Supported Features
  '01 0320 00', // LE Read Local Supported Features
  '01 6020 00', // LE Read Buffer Size v2
  '01 010c 08 9088000200800020', // Set Event Mask: bits 4 7 11 15 25 47 61
  '01 0120 08 7f0a000000000000', // LE Set Event Mask: subevents 1-7, 0x0a, 0x0c
  '01 01fc 00', // Zephyr Read Version Info
  '01 02fc 00', // Zephyr Read Supported Commands
  '01 09fc 00', // Zephyr Read Static Addresses
  '01 0520 06 b409175c2af3', // LE Set Random Address F3:2A:5C:17:09:B4
  '01 2420 04 fb00 4808', // LE Write Suggested Default Data Length 251 / 2120
].map((h) => h.replace(/ /g, ''));

function sentCommands(rig: ReturnType<typeof makeRig>): string[] {
  return rig.ctrl.commands.map((c) => toHex(c.raw));
}

test('bring-up sends exactly the expected command sequence to an nRF5340 hci_uart controller and decodes what it answers', async () => {
  const rig = makeRig();
  const info = await rig.hci.init();
  assert.deepEqual(sentCommands(rig), EXPECTED_BRING_UP);
  assert.equal(rig.hci.state, 'ready');
  assert.equal(HOST_EVENT_MASK, 0x2000_8000_0200_8890n);
  assert.equal(HOST_LE_EVENT_MASK, 0xa7fn);
  assert.deepEqual(info.identityAddress, { type: 'random', address: DK_STATIC_ADDRESS });
  assert.equal(info.identitySource, 'zephyr-static');
  assert.equal(rig.ctrl.randomAddress, DK_STATIC_ADDRESS);
  assert.equal(info.version.companyId, 0x0059);
  assert.equal(info.version.companyName, 'Nordic Semiconductor ASA');
  assert.equal(info.version.hciVersionName, '5.4');
  assert.equal(info.vendor?.hwPlatformName, 'Nordic');
  assert.equal(info.vendor?.hwVariantName, 'nRF53x');
  assert.deepEqual(info.buffers, { aclPacketLength: 251, aclPacketCount: 3, source: 'LeReadBufferSizeV2', isoPacketLength: 0, isoPacketCount: 0 });
  assert.equal(info.features.encryption, true);
  assert.equal(info.features.dataLengthExtension, true);
  assert.equal(info.features.privacy, true);
  assert.equal(info.features.le2mPhy, true);
  assert.equal(info.features.extendedAdvertising, true);
  assert.deepEqual(info.suggestedDataLength, { maxTxOctets: 251, maxTxTime: 2120 });
  assert.equal(rig.hci.aclStats().freeCredits, 3);
  // Every packet both ways went through the trace hook: 13 commands and 13 answers.
  assert.equal(rig.trace.filter((t) => t.dir === 'sent').length, 13);
  assert.equal(rig.trace.filter((t) => t.dir === 'received').length, 13);
  assert.equal(toHex(rig.trace[1]?.bytes ?? new Uint8Array()), '040e0401030c00', 'Command Complete for Reset, as the DK sends it');
  await rig.stop();
});

test('ControllerInfo renders as text and as JSON with the identity, buffers and LE features', async () => {
  const rig = makeRig();
  const info = await rig.hci.init();
  const text = info.toText();
  assert.match(text, /Controller\s+Nordic Semiconductor ASA \(0x0059\)/);
  assert.match(text, /Vendor platform\s+Nordic nRF53x \(0x0002\/0x0003\)/);
  assert.match(text, /Identity address\s+F3:2A:5C:17:09:B4 \(random\) from the controller \(Zephyr Read Static Addresses\)/);
  assert.match(text, /ACL buffers\s+3 x 251 bytes \(LeReadBufferSizeV2\)/);
  assert.match(text, /Data length extension\s+yes/);
  const json = JSON.parse(JSON.stringify(info)) as Record<string, unknown>;
  assert.equal(json['leFeatures'], 'ff59000000000000');
  assert.equal((json['identityAddress'] as { address: string }).address, DK_STATIC_ADDRESS);
  assert.equal((json['features'] as Record<string, boolean>)['privacy'], true);
  assert.equal(typeof json['supportedCommands'], 'string');
  await rig.stop();
});

test('a controller that never answers gets three Resets and a clear error naming the port and what to check', async () => {
  const rig = makeRig({ silent: true }, { resetTimeoutMs: 1000, resetAttempts: 3 });
  const start = rig.clock.now();
  let error: unknown;
  const p = rig.hci.init().catch((e: unknown) => (error = e));
  await rig.clock.runUntil(() => error !== undefined, 10_000);
  await p;
  assert.ok(error instanceof HciError, String(error));
  assert.equal(error.kind, 'timeout');
  assert.equal(error.opcode, 0x0c03);
  assert.equal(error.layer, 'hci');
  for (const needle of ['memory:host', 'did not answer HCI Reset', '3 attempts', 'hci_uart', 'network core', '/dev/ttyACM', '1000000', 'RTS/CTS', 'wearable-host doctor']) {
    assert.ok(error.message.includes(needle), `message mentions ${needle}: ${error.message}`);
  }
  assert.deepEqual(rig.ctrl.commandNames, ['Reset', 'Reset', 'Reset']);
  assert.equal(rig.clock.now() - start, 3000, 'three attempts of 1000 ms each');
  // Before each retry, zero bytes flush a controller stuck mid-packet; hci_uart discards them as bad type bytes.
  assert.equal(rig.ctrl.skippedBytes, 2 * 260);
  assert.equal(rig.hci.state, 'failed');
  await rig.stop();
});

test('a controller that answers the first Reset late is brought up on the retry; the stale answer is dropped', async () => {
  const rig = makeRig({ firstResetDelayMs: 1500 }, { resetTimeoutMs: 1000 });
  let info: unknown;
  const p = rig.hci.init().then((i) => (info = i));
  await rig.clock.runUntil(() => info !== undefined, 10_000);
  await p;
  assert.equal(rig.hci.state, 'ready');
  assert.deepEqual(rig.ctrl.commandNames.slice(0, 3), ['Reset', 'Reset', 'ReadLocalVersionInformation']);
  await rig.clock.advance(1000); // the late answer to the first Reset arrives now: dropped, nothing breaks
  assert.equal(rig.ctrl.commands.length, EXPECTED_BRING_UP.length + 1);
  assert.deepEqual(sentCommands(rig).slice(1), EXPECTED_BRING_UP);
  await rig.stop();
});

test('a controller that ignores the first Reset (still booting) answers the second', async () => {
  const rig = makeRig({ ignoreResets: 1 }, { resetTimeoutMs: 500 });
  let done = false;
  const p = rig.hci.init().then(() => (done = true));
  await rig.clock.runUntil(() => done, 10_000);
  await p;
  assert.deepEqual(rig.ctrl.commandNames.slice(0, 2), ['Reset', 'Reset']);
  assert.equal(rig.hci.state, 'ready');
  await rig.stop();
});

test('without LE Read Buffer Size v2 in the Supported Commands bitmap, bring-up uses LE Read Buffer Size v1', async () => {
  const rig = makeRig({ supportedCommands: nrf5340SupportedCommands({ without: ['LeReadBufferSizeV2'] }), leBuffers: { length: 27, count: 4 } });
  const info = await rig.hci.init();
  const raw = sentCommands(rig);
  assert.ok(raw.includes('01022000'), 'LE Read Buffer Size v1 sent');
  assert.ok(!raw.includes('01602000'), 'v2 not sent');
  assert.deepEqual(info.buffers, { aclPacketLength: 27, aclPacketCount: 4, source: 'LeReadBufferSize' });
  assert.equal(rig.hci.aclStats().packetLength, 27);
  await rig.stop();
});

test('an LE buffer count of 0 makes bring-up fall back to Read Buffer Size (shared buffers)', async () => {
  const rig = makeRig({ leBuffers: { length: 0, count: 0 }, sharedBuffers: { length: 200, count: 5 } });
  const info = await rig.hci.init();
  const names = rig.ctrl.commandNames;
  assert.equal(names[names.indexOf('LeReadBufferSizeV2') + 1], 'ReadBufferSize');
  assert.deepEqual(
    { length: info.buffers.aclPacketLength, count: info.buffers.aclPacketCount, source: info.buffers.source },
    { length: 200, count: 5, source: 'ReadBufferSize' },
  );
  assert.equal(rig.hci.aclStats().totalCredits, 5);
  await rig.stop();
});

test('a controller without Zephyr vendor commands but with a public address: Unknown HCI Command is fine, the public address becomes the identity', async () => {
  const rig = makeRig({ zephyrVendor: false, publicAddress: '00:11:22:33:44:55' });
  const info = await rig.hci.init();
  const names = rig.ctrl.commandNames;
  assert.ok(names.includes('ZephyrReadVersionInfo'));
  assert.ok(!names.includes('ZephyrReadStaticAddresses'), 'no further vendor commands after Unknown HCI Command');
  assert.ok(names.includes('ReadBdAddr'));
  assert.ok(!names.includes('LeSetRandomAddress'), 'a public identity needs no random address');
  assert.deepEqual(info.identityAddress, { type: 'public', address: '00:11:22:33:44:55' });
  assert.equal(info.identitySource, 'public');
  assert.equal(info.vendor, undefined);
  await rig.stop();
});

test('a controller with neither static nor public address gets a generated static random address from the injected RandomSource', async () => {
  const rig = makeRig({ zephyrVendor: false }, { random: seededRandom('identity') });
  const info = await rig.hci.init();
  assert.equal(info.identitySource, 'generated');
  assert.equal(info.identityAddress.type, 'random');
  assert.equal(parseInt(info.identityAddress.address.slice(0, 2), 16) >> 6, 0b11, 'static random: two top bits set');
  assert.equal(rig.ctrl.randomAddress, info.identityAddress.address);
  await rig.stop();
});

test('a controller from another maker is not sent Zephyr vendor commands', async () => {
  const rig = makeRig({ companyId: 0x000f, publicAddress: '00:aa:bb:cc:dd:ee' });
  const info = await rig.hci.init();
  assert.ok(!rig.ctrl.commandNames.some((n) => n.startsWith('Zephyr')));
  assert.equal(info.version.companyName, 'Broadcom Corporation');
  await rig.stop();
});

test('a Hardware Error mid-run drops the connections with events and re-initialises the controller', async () => {
  const rig = makeRig();
  await rig.hci.init();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  assert.equal(rig.hci.connections.length, 1);
  const pendingSend = rig.hci.sendAcl(0x0040, new Uint8Array(2000)).catch((e: unknown) => e);
  const events: string[] = [];
  const disconnects: [HciConnection, number, string][] = [];
  rig.hci.on('hardwareError', (c) => events.push(`hardwareError ${c}`));
  rig.hci.on('disconnected', (c, r, n) => {
    disconnects.push([c, r, n]);
    events.push('disconnected');
  });
  const reinit = rig.hci.wait('reinitialised');
  rig.hci.on('reinitialised', () => events.push('reinitialised'));
  const before = rig.ctrl.commands.length;
  await rig.ctrl.hardwareError(0x42);
  await reinit;
  assert.deepEqual(events, ['hardwareError 66', 'disconnected', 'reinitialised']);
  assert.equal(disconnects[0]?.[0].handle, 0x0040);
  assert.equal(disconnects[0]?.[1], 0x03);
  assert.equal(disconnects[0]?.[2], '0x03 HardwareFailure');
  assert.equal(disconnects[0]?.[0].open, false);
  const err = await pendingSend;
  assert.ok(err instanceof HciError && err.kind === 'reset', String(err));
  // The whole bring-up ran again, starting with Reset.
  assert.deepEqual(sentCommands(rig).slice(before).filter((h) => !h.startsWith('02')), EXPECTED_BRING_UP);
  assert.equal(rig.hci.state, 'ready');
  assert.equal(rig.hci.connections.length, 0);
  assert.equal(rig.hci.aclStats().freeCredits, 3, 'credits are whole again');
  await rig.stop();
});

test('a Zephyr controller assert (vendor event from hci_uart) is decoded to file:line, logged and followed by re-initialisation', async () => {
  const rig = makeRig({}, { captureLog: true });
  await rig.hci.init();
  const fault = rig.hci.wait('controllerFault');
  const reinit = rig.hci.wait('reinitialised');
  // 04 FF len AA "lll_conn.c" 00 line=0x0000012c (hci_uart's bt_ctlr_assert_handle)
  const file = Buffer.from('lll_conn.c', 'ascii');
  const payload = Uint8Array.from([0xaa, ...file, 0x00, 0x2c, 0x01, 0x00, 0x00]);
  await rig.ctrl.sendRaw(Uint8Array.from([0x04, 0xff, payload.length, ...payload]));
  const [v] = await fault;
  assert.equal(v.kind, 'hci-uart-assert');
  assert.equal(v.file, 'lll_conn.c');
  assert.equal(v.line, 300);
  assert.equal(v.fatal, true);
  await reinit;
  const logged = rig.logLines.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).includes('lll_conn.c:300'));
  assert.ok(logged, 'the log line names file:line');
  assert.equal(logged['level'], 50, 'logged at error level');
  await rig.stop();
});

test('Zephyr fatal-error vendor events (stack frame, assert, trace) are decoded; other vendor events do not re-initialise', async () => {
  const { decodeZephyrVendorEvent } = await import('../../src/hci/vendor-events.js');
  const sf = decodeZephyrVendorEvent(fromHex('01 03000000 01 01000000 02000000 03000000 04000000 05000000 06000000 78563412 00000061'));
  assert.equal(sf.kind, 'stack-frame');
  assert.equal(sf.reason, 3);
  assert.equal(sf.pc, '0x12345678');
  const as = decodeZephyrVendorEvent(Uint8Array.from([0x02, ...Buffer.from('ull.c'), 0, 0x10, 0, 0, 0]));
  assert.equal(as.summary, 'controller assertion failed at ull.c:16');
  const tr = decodeZephyrVendorEvent(Uint8Array.from([0x03, 0xef, 0xbe, 0, 0, 0, 0, 0, 0, ...Buffer.from('x.c'), 0, 7, 0, 0, 0]));
  assert.equal(tr.pc, '0xbeef');
  assert.equal(tr.file, 'x.c');
  assert.equal(tr.line, 7);
  const other = decodeZephyrVendorEvent(fromHex('04 01 112233445566 c4'));
  assert.equal(other.fatal, false);
  assert.equal(decodeZephyrVendorEvent(new Uint8Array(0)).fatal, false);

  const rig = makeRig();
  await rig.hci.init();
  let reinits = 0;
  rig.hci.on('reinitialised', () => reinits++);
  const vendor = rig.hci.wait('vendorEvent');
  await rig.ctrl.sendRaw(fromHex('04 ff 08 04 01 112233445566'));
  await vendor;
  await settle();
  assert.equal(reinits, 0);
  assert.equal(rig.hci.state, 'ready');
  await rig.stop();
});

test('a controller that hangs after an assert: re-initialisation fails with reinitialisationFailed and the silent-controller advice', async () => {
  const rig = makeRig({}, { resetTimeoutMs: 500, resetAttempts: 2 });
  await rig.hci.init();
  rig.ctrl.on('Reset', () => 'silent');
  let failure: Error | undefined;
  rig.hci.on('reinitialisationFailed', (e) => (failure = e));
  await rig.ctrl.sendRaw(Uint8Array.from([0x04, 0xff, 0x09, 0xaa, ...Buffer.from('a.c'), 0, 1, 0, 0, 0]));
  await rig.clock.runUntil(() => failure !== undefined, 10_000);
  assert.ok(failure instanceof HciError);
  assert.match(failure.message, /did not answer HCI Reset/);
  assert.equal(rig.hci.state, 'failed');
  await rig.stop();
});

test('calling init() again re-initialises on purpose: connections end with 0x16, commands queued meanwhile run after it', async () => {
  const rig = makeRig();
  await rig.hci.init();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const gone = rig.hci.wait('disconnected');
  const again = rig.hci.init();
  const during = rig.hci.command('LeRand', {});
  const [, reason] = await gone;
  assert.equal(reason, 0x16);
  await again;
  await during;
  assert.equal(rig.ctrl.commandNames.at(-1), 'LeRand', 'the command waited for the bring-up to finish');
  await rig.stop();
});
