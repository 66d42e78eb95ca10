import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { settle } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import { Advertiser, advertisingIntervalUnits } from '../../src/hci/advertiser.js';
import { parseAdvertisement } from '../../src/hci/advertising.js';
import { makeRig, type Rig } from './fixtures/rig.js';

const log = pino({ level: 'silent' });
const NAME_HEX = toHex(new TextEncoder().encode('Noira Band'));
/** The rig's identity is a static random address, which the driver set with LE Set Random Address: Own_Address_Type random. */
const ownAddressType = (): number => 0x01;

/** Commands sent from index `from` on, as names. */
function since(rig: Rig, from: number): string[] {
  return rig.ctrl.commandNames.slice(from);
}

async function advertising(opts: Partial<ConstructorParameters<typeof Advertiser>[1]> = {}): Promise<{ rig: Rig; adv: Advertiser }> {
  const rig = makeRig();
  await rig.hci.init();
  const adv = new Advertiser(rig.hci, { log, ownAddressType, appearance: 0x00c0, serviceUuids16: [0x180d, 0x180f], ...opts });
  await adv.start();
  return { rig, adv };
}

test('start() configures legacy connectable undirected advertising with the default name and enables it (exact bytes)', async () => {
  const rig = makeRig();
  await rig.hci.init();
  const base = rig.ctrl.commands.length;
  const adv = new Advertiser(rig.hci, { log, ownAddressType, appearance: 0x00c0, serviceUuids16: [0x180d, 0x180f] });
  assert.equal(adv.name, 'Noira Band');
  await adv.start();
  const raw = rig.ctrl.commands.slice(base).map((c) => toHex(c.raw));
  const advData = '020106' + '05030d180f18' + '0319c000' + '0b09' + NAME_HEX;
  assert.deepEqual(raw, [
    // interval 152.5 ms = 244 x 0.625 ms; ADV_IND; own address random (the static identity); all channels
    '0106200f' + 'f400' + 'f400' + '00' + '01' + '00' + '000000000000' + '07' + '00',
    '01082020' + '19' + advData + '00'.repeat(31 - 25),
    '01092020' + '00' + '00'.repeat(31),
    '010a200101',
  ]);
  assert.equal(rig.ctrl.advertising, true);
  assert.equal(adv.advertising, true);
  const parsed = parseAdvertisement(rig.ctrl.advertisingData, rig.ctrl.scanResponseData);
  assert.equal(parsed.name, 'Noira Band');
  assert.deepEqual(parsed.serviceUuids16, [0x180d, 0x180f]);
  adv.dispose();
  await rig.stop();
});

test('advertising restarts after a disconnection (one connection allowed): only the enable is sent again', async () => {
  const { rig, adv } = await advertising();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  assert.equal(rig.ctrl.advertising, false, 'the controller stopped advertising when the phone connected');
  assert.equal(adv.advertising, false);
  const base = rig.ctrl.commands.length;
  const started = adv.wait('started');
  await rig.ctrl.disconnect(0x0040);
  await started;
  assert.deepEqual(since(rig, base), ['LeSetAdvertisingEnable']);
  assert.equal(toHex(rig.ctrl.commands.at(-1)?.raw ?? new Uint8Array()), '010a200101');
  assert.equal(rig.ctrl.advertising, true);
  adv.dispose();
  await rig.stop();
});

test('with maxConnections 2, advertising resumes after the first connection, not after the second, and again after a disconnection', async () => {
  const { rig, adv } = await advertising({ maxConnections: 2 });
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  assert.equal(rig.ctrl.advertising, true, 'room for a second phone: advertising again');
  await rig.ctrl.connect({ handle: 0x0041, peer: { type: 'random', address: '5A:11:22:33:44:66' } });
  await settle();
  assert.equal(rig.ctrl.advertising, false, 'limit reached');
  await rig.ctrl.disconnect(0x0041);
  await settle();
  assert.equal(rig.ctrl.advertising, true);
  adv.dispose();
  await rig.stop();
});

test('a connection in the central role does not touch advertising', async () => {
  const { rig, adv } = await advertising();
  const base = rig.ctrl.commands.length;
  await rig.ctrl.connect({ handle: 0x0042, role: 'central' });
  await rig.ctrl.disconnect(0x0042);
  await settle();
  assert.equal(rig.ctrl.advertising, true);
  assert.deepEqual(since(rig, base).filter((n) => n.startsWith('LeSetAdvertising')), []);
  adv.dispose();
  await rig.stop();
});

test('advertising is configured and enabled again after the controller was re-initialised (Hardware Error)', async () => {
  const { rig, adv } = await advertising();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const base = rig.ctrl.commands.length;
  const started = adv.wait('started');
  await rig.ctrl.hardwareError(0x01);
  await started;
  const after = since(rig, base);
  assert.equal(after[0], 'Reset');
  assert.deepEqual(after.slice(-4), ['LeSetAdvertisingParameters', 'LeSetAdvertisingData', 'LeSetScanResponseData', 'LeSetAdvertisingEnable']);
  assert.equal(after.filter((n) => n === 'LeSetAdvertisingEnable').length, 1, 'no restart from the dropped connection during re-initialisation');
  assert.equal(rig.ctrl.advertising, true);
  assert.equal(rig.ctrl.randomAddress, 'F3:2A:5C:17:09:B4', 'the identity address was set again before advertising');
  adv.dispose();
  await rig.stop();
});

test('stop() disables advertising and no restart follows a later disconnection', async () => {
  const { rig, adv } = await advertising({ maxConnections: 2 });
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  await adv.stop();
  assert.equal(rig.ctrl.advertising, false);
  assert.equal(toHex(rig.ctrl.commands.at(-1)?.raw ?? new Uint8Array()), '010a200100');
  const base = rig.ctrl.commands.length;
  await rig.ctrl.disconnect(0x0040);
  await settle();
  assert.deepEqual(since(rig, base), []);
  adv.dispose();
  await rig.stop();
});

test('a failed restart is reported with an error event; start() before bring-up is refused', async () => {
  const { rig, adv } = await advertising();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  rig.ctrl.on('LeSetAdvertisingEnable', () => ({ status: 0x0c }));
  const err = adv.wait('error');
  await rig.ctrl.disconnect(0x0040);
  const [e] = await err;
  assert.match(e.message, /0x200a LeSetAdvertisingEnable failed .*0x0c CommandDisallowed/);
  adv.dispose();
  await rig.stop();

  const fresh = makeRig();
  const early = new Advertiser(fresh.hci, { log, ownAddressType });
  await assert.rejects(early.start(), /not initialised/);
  early.dispose();
  await fresh.stop();
});

test('advertising intervals convert to 0.625 ms units within 20 ms .. 10.24 s', () => {
  assert.equal(advertisingIntervalUnits(152.5), 244);
  assert.equal(advertisingIntervalUnits(20), 32);
  assert.equal(advertisingIntervalUnits(1), 0x20);
  assert.equal(advertisingIntervalUnits(20000), 0x4000);
});

// ---- Reconnect races: the advertiser's state follows the controller's events, not the order of awaits.

/** Advertising commands sent from index `from` on (the driver's own LE Set Data Length aside). */
function advCommands(rig: Rig, from: number): string[] {
  return since(rig, from).filter((n) => n.startsWith('LeSetAdvertising'));
}

/** The bytes `send` would write from the controller, captured instead of sent. */
async function captureWrites(rig: Rig, send: () => Promise<void>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const t = rig.ctrl.transport;
  const original = t.write.bind(t);
  t.write = async (b: Uint8Array) => {
    parts.push(b.slice());
  };
  try {
    await send();
  } finally {
    t.write = original;
  }
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** One read holding several events, as a controller's UART burst delivers them. */
function concat(...chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(chunks.flatMap((c) => [...c]));
}

/**
 * Connected on 0x0040, then the phone leaves: the advertiser re-enables and the Command Complete of
 * that LE Set Advertising Enable is held back, so the test can deliver it with other events in one read.
 */
async function reEnablePending(): Promise<{ rig: Rig; adv: Advertiser; commandComplete: Uint8Array }> {
  const { rig, adv } = await advertising();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  rig.ctrl.on('LeSetAdvertisingEnable', () => 'silent');
  const base = rig.ctrl.commands.length;
  await rig.ctrl.disconnect(0x0040);
  await settle();
  assert.deepEqual(advCommands(rig, base), ['LeSetAdvertisingEnable'], 'the advertiser re-enabled after the disconnection');
  const commandComplete = await captureWrites(rig, () =>
    rig.ctrl.sendEvent('CommandComplete', { numHciCommandPackets: 1, opcode: 0x200a, returnParameters: Uint8Array.of(0x00) }),
  );
  rig.ctrl.on('LeSetAdvertisingEnable', () => undefined);
  return { rig, adv, commandComplete };
}

test('reconnect race: Command Complete (advertising enable) and LE Connection Complete in one read; advertising resumes after the next disconnection', async () => {
  const { rig, adv, commandComplete } = await reEnablePending();
  const connection = await captureWrites(rig, () => rig.ctrl.connect({ handle: 0x0041 }));
  await rig.ctrl.sendRaw(concat(commandComplete, connection));
  await settle();
  assert.equal(adv.advertising, false, 'the connection ended advertising after the enable was confirmed');
  const base = rig.ctrl.commands.length;
  const started = adv.wait('started');
  await rig.ctrl.disconnect(0x0041);
  await started;
  assert.deepEqual(advCommands(rig, base), ['LeSetAdvertisingEnable']);
  assert.equal(toHex(rig.ctrl.commands.at(-1)?.raw ?? new Uint8Array()), '010a200101');
  assert.equal(rig.ctrl.advertising, true);
  adv.dispose();
  await rig.stop();
});

test('reconnect race: LE Connection Complete before the Command Complete of the enable, in one read; advertising resumes after the next disconnection', async () => {
  const { rig, adv, commandComplete } = await reEnablePending();
  const connection = await captureWrites(rig, () => rig.ctrl.connect({ handle: 0x0041 }));
  await rig.ctrl.sendRaw(concat(connection, commandComplete));
  await settle();
  assert.equal(adv.advertising, false, 'a connection arrived while the enable was in flight: the state is not trusted as advertising');
  const base = rig.ctrl.commands.length;
  const started = adv.wait('started');
  await rig.ctrl.disconnect(0x0041);
  await started;
  assert.deepEqual(advCommands(rig, base), ['LeSetAdvertisingEnable']);
  assert.equal(rig.ctrl.advertising, true);
  adv.dispose();
  await rig.stop();
});

test('reconnect race: a connection and its disconnection while the re-enable is in flight; advertising is enabled again at once', async () => {
  const { rig, adv, commandComplete } = await reEnablePending();
  const connection = await captureWrites(rig, () => rig.ctrl.connect({ handle: 0x0041 }));
  const disconnection = await captureWrites(rig, () => rig.ctrl.disconnect(0x0041));
  const base = rig.ctrl.commands.length;
  const started = adv.wait('started');
  await rig.ctrl.sendRaw(concat(connection, disconnection, commandComplete));
  await started;
  await settle();
  assert.deepEqual(advCommands(rig, base), ['LeSetAdvertisingEnable'], 'the enable consumed by the short connection is sent again');
  assert.equal(rig.ctrl.advertising, true);
  assert.equal(adv.advertising, true);
  adv.dispose();
  await rig.stop();
});
