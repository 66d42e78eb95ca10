/**
 * End to end on the virtual air (tier 5): our peripheral (src/host.ts) against a minimal central
 * built from our own layers (driver, L2CAP, SMP initiator) speaking raw ATT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Peripheral, type PeripheralOptions } from '../src/host.js';
import { Hci } from '../src/hci/driver.js';
import type { HciConnection } from '../src/hci/connection.js';
import { createMemoryTransportPair } from '../src/hci/memory-transport.js';
import { L2capConnection, FixedCid } from '../src/l2cap/connection.js';
import { SecurityManager } from '../src/smp/security-manager.js';
import { buildSmpLower } from '../src/stack/link.js';
import { buildGattDatabase } from '../src/gatt/database.js';
import { MemoryBondStore } from '../src/bonds/memory.js';
import { generateIrk } from '../src/privacy/rpa.js';
import { VirtualAir } from '../src/sim/air.js';
import { FIRMWARE_NAMES, type FirmwareName } from '../src/sim/firmware.js';
import { VirtualClock } from '../src/util/clock.js';
import { seededRandom } from '../src/util/random.js';
import { createLogger, silentLogger, type Logger } from '../src/util/log.js';
import { captureLogger } from './hci/fixtures/rig.js';
import { toHex } from '../src/util/bytes.js';
import { addressTypeToByte } from '../src/util/address.js';
import { fromHex } from '../src/util/bytes.js';
import { createFaultProxy, type FaultProxy } from './hci/fixtures/fault-proxy.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug', pretty: false }) : silentLogger();

/** Runs the virtual clock until `p` settles (bring-up and commands wait on controller timing). */
function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 10_000): Promise<T> {
  return clock.drive(p, maxMs);
}

async function world(
  privacy = false,
  resolvingList = false,
  firmware: FirmwareName = 'ncs',
  periphPublicAddress?: string,
  periph: { hci?: PeripheralOptions['hci']; proxy?: FaultProxy; log?: Logger } = {},
) {
  const clock = new VirtualClock();
  // Both controllers run the same firmware; --resolving-list needs LL privacy built in (CONFIG_BT_CTLR_PRIVACY=y).
  const air = new VirtualAir({ clock, seed: 'host-e2e', log, firmware });
  const [hostA, ctrlA] = createMemoryTransportPair('periph-host', 'periph-ctrl');
  const [hostB, ctrlB] = createMemoryTransportPair('central-host', 'central-ctrl');
  const periphController = air.createController({
    name: 'periph',
    seed: 'p',
    ...(resolvingList ? { llPrivacy: true } : {}),
    ...(periphPublicAddress ? { publicAddress: periphPublicAddress } : {}),
  });
  const proxy = periph.proxy;
  periphController.attach(proxy ? proxy.controller : ctrlA);
  air.createController({ name: 'central', seed: 'c' }).attach(ctrlB);
  const db = buildGattDatabase({
    gap: { deviceName: 'Noira Band' },
    services: [
      {
        uuid: 0x180d,
        characteristics: [
          { uuid: 0x2a38, id: 'open', properties: ['read'], value: Uint8Array.of(1) },
          { uuid: 0x2a39, id: 'secret', properties: ['read'], permissions: { read: 'encrypted' }, value: Uint8Array.of(0xca, 0xfe) },
        ],
      },
    ],
  });
  const periphBonds = new MemoryBondStore();
  const peripheral = new Peripheral({ transport: proxy ? proxy.host : hostA, clock, random: seededRandom('periph'), log: periph.log ?? log, bonds: periphBonds, db, connectionParameters: false, ...(privacy ? { privacy: { rpaTimeoutS: 900 } } : {}), ...(resolvingList ? { resolvingList: true } : {}), ...(periph.hci ? { hci: periph.hci } : {}) });
  const centralBonds = new MemoryBondStore();
  const hci = new Hci(hostB, { clock, log });
  return { clock, air, peripheral, hci, db, periphBonds, centralBonds, periphController };
}

/** Connects the central to the peripheral and builds its L2CAP + SMP; ATT stays raw. */
async function connect(w: Awaited<ReturnType<typeof world>>, security: SecurityManager) {
  const target = w.peripheral.privateAddress ?? w.peripheral.identity!.address;
  const connected = w.hci.wait('connected');
  await drive(w.clock, w.hci.command('LeCreateConnection', {
    scanInterval: 0x60, scanWindow: 0x30, initiatorFilterPolicy: 0,
    peerAddressType: addressTypeToByte(target.type), peerAddress: target.address,
    ownAddressType: 1, connIntervalMin: 24, connIntervalMax: 24, maxLatency: 0, supervisionTimeout: 400,
    minCeLength: 0, maxCeLength: 0,
  }));
  assert.ok(await w.clock.runUntil(() => w.hci.connections.length > 0, 5000), 'connection established');
  const [c] = (await connected) as [HciConnection];
  const l2 = new L2capConnection({ handle: c.handle, role: 'central', clock: w.clock, log, lower: { send: (f) => w.hci.sendAcl(c.handle, f) } });
  const att: Uint8Array[] = [];
  l2.setHandler(FixedCid.Att, (p) => void att.push(p.slice()));
  const smp = security.createSession(buildSmpLower(w.hci, c, l2, w.hci.info!.identityAddress));
  l2.setHandler(FixedCid.Smp, (p) => smp.onPdu(p));
  w.hci.on('acl', (h, f) => h === c.handle && l2.onFrame(f));
  w.hci.on('encryptionChanged', (cc, ch) => cc.handle === c.handle && smp.onEncryptionChange(ch.status, ch.enabled));
  smp.start();
  const request = async (pdu: Uint8Array): Promise<string> => {
    const before = att.length;
    await drive(w.clock, l2.sendFixed(FixedCid.Att, pdu));
    assert.ok(await w.clock.runUntil(() => att.length > before, 5000), 'ATT response');
    return toHex(att[att.length - 1]!);
  };
  return { c, l2, smp, request };
}

for (const firmware of FIRMWARE_NAMES) {
test(`${firmware} firmware: a central pairs (LESC Just Works), reads the encrypted value, and re-encrypts with the bond after reconnecting`, async () => {
  const w = await world(false, false, firmware);
  // Opcodes the wearable sends: Read Encryption Key Size (0x1408) only where the controller lists it.
  const opcodes: number[] = [];
  w.peripheral.hci.on('packet', (dir, b) => {
    if (dir === 'sent' && b[0] === 0x01) opcodes.push((b[1] as number) | ((b[2] as number) << 8));
  });
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  assert.ok(w.peripheral.advertising);
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const secretHandle = w.db.handle('secret');
  const read = Uint8Array.of(0x0a, secretHandle & 0xff, secretHandle >> 8);

  const first = await connect(w, security);
  // Unencrypted, no bond: 0x05 Insufficient Authentication (the client should pair).
  assert.equal(await first.request(read), '010a' + toHex(Uint8Array.of(secretHandle & 0xff, secretHandle >> 8)) + '05');
  const paired = first.smp.pair();
  assert.ok(await w.clock.runUntil(() => first.smp.encrypted, 10_000), 'encrypted after pairing');
  const info = await drive(w.clock, paired);
  assert.equal(info.level, 2);
  assert.equal(info.keySize, 16);
  assert.equal(info.bonded, true);
  assert.equal(await first.request(read), '0bcafe');
  assert.equal(w.periphBonds.list().length, 1);
  assert.equal(w.centralBonds.list().length, 1);
  // The wearable's key size: read back on the SoftDevice Controller, taken from the pairing on Zephyr's LL.
  assert.equal(w.periphBonds.list()[0]!.keySize, 16);
  assert.equal(opcodes.includes(0x1408), firmware === 'ncs', `Read Encryption Key Size sent: ${opcodes.includes(0x1408)}`);

  // Disconnect and come back: the stored key encrypts the link, no new pairing.
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 5000), 'advertising again');
  const second = await connect(w, security);
  let pairings = 0;
  w.peripheral.on('paired', () => pairings++);
  // Before encrypting, a bonded peer gets 0x0F Insufficient Encryption (the client should encrypt).
  assert.equal(await second.request(read), '010a' + toHex(Uint8Array.of(secretHandle & 0xff, secretHandle >> 8)) + '0f');
  assert.equal(second.smp.encryptWithBond(), true);
  assert.ok(await w.clock.runUntil(() => second.smp.encrypted, 5000), 're-encrypted with the bond');
  assert.equal(await second.request(read), '0bcafe');
  assert.equal(pairings, 0);
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
});

test(`${firmware} firmware: with --privacy the peripheral is reached on rotating private addresses and a bonded central re-encrypts after a rotation`, async () => {
  const w = await world(true, false, firmware);
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  const identity = w.peripheral.identity!.address;
  const firstRpa = w.peripheral.privateAddress!;
  assert.notEqual(firstRpa.address, identity.address, 'advertising uses a private address, not the static identity');
  assert.equal(parseInt(firstRpa.address.slice(0, 2), 16) >> 6, 0b01, 'a resolvable private address');
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });

  const first = await connect(w, security);
  assert.equal(first.c.peer.address, firstRpa.address, 'the central connected to the RPA');
  const paired = first.smp.pair();
  const info = await drive(w.clock, paired);
  assert.equal(info.level, 2);
  const bond = w.centralBonds.list()[0]!;
  assert.equal(bond.peer.address, identity.address, 'the central learned our identity address in key distribution');
  assert.ok(bond.peerIrk, 'and our IRK');
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0, 5000));

  await w.clock.advance(901_000);
  const secondRpa = w.peripheral.privateAddress!;
  assert.notEqual(secondRpa.address, firstRpa.address, 'the address rotated after 900 s');
  assert.ok(await w.clock.runUntil(() => w.peripheral.advertising, 5000), 'advertising resumed after the rotation');
  const second = await connect(w, security);
  assert.equal(second.c.peer.address, secondRpa.address);
  let pairings = 0;
  w.peripheral.on('paired', () => pairings++);
  assert.equal(second.smp.encryptWithBond(), true, 'the central resolves the new RPA to its bond with our IRK');
  assert.ok(await w.clock.runUntil(() => second.smp.encrypted, 5000), 're-encrypted without pairing');
  assert.equal(pairings, 0);
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
});

}

test('with --privacy and a controller whose identity is public: the RPA goes on air (own address type random), the phone pairs over it and learns the public identity', async () => {
  const w = await world(true, false, 'ncs', '00:1B:DC:0A:0B:0C');
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  const identity = w.peripheral.identity!.address;
  assert.deepEqual(identity, { type: 'public', address: '00:1B:DC:0A:0B:0C' }, 'the identity is the public address');
  const rpa = w.peripheral.privateAddress!;
  assert.ok(await w.clock.runUntil(() => w.periphController.advertisingEnabled, 5000));
  assert.equal(w.periphController.advertising.ownAddressType, 0x01, 'Own_Address_Type random: the RPA, not the public address');
  assert.deepEqual(w.periphController.ownAddress(w.periphController.advertising.ownAddressType), { type: 1, address: rpa.address }, 'on air: the RPA');
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const first = await connect(w, security);
  assert.deepEqual({ type: first.c.peer.type, address: first.c.peer.address }, { type: 'random', address: rpa.address }, 'the central connected to the RPA');
  const info = await drive(w.clock, first.smp.pair());
  assert.equal(info.level, 2, 'paired: f5/f6 on both sides used the RPA that was on air');
  assert.deepEqual(w.centralBonds.list()[0]?.peer, identity, 'the central learned our public identity in key distribution');
  assert.equal(w.periphBonds.list().length, 1);
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
});

test('with --resolving-list the bonded phone\'s IRK is loaded into the controller after pairing, with advertising resumed', async () => {
  const w = await world(false, true);
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  assert.equal(w.periphController.resolvingList.size, 0, 'no bonds yet: an empty list');
  // A phone distributes its IRK with its identity: give the test central one.
  await w.centralBonds.setLocalIdentity({ address: w.hci.info!.identityAddress, irk: generateIrk(seededRandom('central-irk')) });
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const first = await connect(w, security);
  await drive(w.clock, first.smp.pair());
  assert.ok(await w.clock.runUntil(() => w.periphBonds.list().length === 1, 5000), 'the wearable stored the bond');
  const centralIdentity = w.periphBonds.list()[0]!.peer;
  assert.ok(await w.clock.runUntil(() => w.periphController.resolvingList.size === 1, 5000), 'the bonded peer was added');
  const [key, entry] = [...w.periphController.resolvingList.entries()][0]!;
  assert.match(key, new RegExp(centralIdentity.address, 'i'));
  assert.equal(toHex(entry.peerIrk), toHex(w.periphBonds.list()[0]!.peerIrk!));
  assert.equal(toHex(entry.localIrk), toHex(w.peripheral.identity!.irk));
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 5000), 'advertising again after the update');
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
});

/** Stops the wearable, the central's driver and the air. */
async function closeWorld(w: Awaited<ReturnType<typeof world>>): Promise<void> {
  await drive(w.clock, w.peripheral.stop());
  w.hci.close();
  w.air.close();
}

/** ATT Read Request for the characteristic value with database id `id`. */
function readRequest(w: Awaited<ReturnType<typeof world>>, id: string): Uint8Array {
  const h = w.db.handle(id);
  return Uint8Array.of(0x0a, h & 0xff, h >> 8);
}

/** Opcodes of the commands the wearable sends, with their parameters, from its packet stream. */
function sentCommands(p: Peripheral): { opcode: number; params: Uint8Array }[] {
  const out: { opcode: number; params: Uint8Array }[] = [];
  p.hci.on('packet', (dir, b) => {
    if (dir === 'sent' && b[0] === 0x01) out.push({ opcode: (b[1] as number) | ((b[2] as number) << 8), params: b.slice(4) });
  });
  return out;
}

for (const firmware of FIRMWARE_NAMES) {
test(`${firmware} firmware: a controller that reboots silently while idle (state lost, port kept) is noticed by the idle check and re-initialised; the bonded central reconnects and the link is encrypted with the stored LTK`, async () => {
  const w = await world(false, false, firmware, undefined, { hci: { idleCheckMs: 5000 } });
  const sent = sentCommands(w.peripheral);
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const first = await connect(w, security);
  await drive(w.clock, first.smp.pair());
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 5000), 'advertising again');
  // Idle: the checks read back the data length bring-up wrote (LE Read Suggested Default Data Length, 0x2023).
  await w.clock.advance(12_000);
  assert.ok(sent.filter((c) => c.opcode === 0x2023).length >= 2, 'idle checks sent');
  const resets = sent.filter((c) => c.opcode === 0x0c03).length;

  w.periphController.rebootSilently();
  assert.equal(w.periphController.advertisingEnabled, false, 'the rebooted controller has forgotten advertising');
  assert.ok(await w.clock.runUntil(() => w.periphController.advertisingEnabled && w.peripheral.advertising, 15_000), 'advertising again after the next idle check');
  assert.equal(sent.filter((c) => c.opcode === 0x0c03).length, resets + 1, 'one HCI Reset re-initialised the controller');
  assert.equal(w.periphController.randomAddress, w.peripheral.identity!.address.address, 'the static identity address is set again');
  assert.equal(w.periphBonds.list().length, 1, 'the bond is kept');

  const second = await connect(w, security);
  let pairings = 0;
  w.peripheral.on('paired', () => pairings++);
  assert.equal(second.smp.encryptWithBond(), true);
  assert.ok(await w.clock.runUntil(() => second.smp.encrypted, 5000), 're-encrypted with the bond');
  // LE Long Term Key Request Reply (0x201A): handle, then the stored LTK.
  const reply = sent.filter((c) => c.opcode === 0x201a).at(-1)!;
  assert.equal(toHex(reply.params.subarray(2)), toHex(w.periphBonds.list()[0]!.ltk));
  assert.equal(pairings, 0);
  assert.equal(await second.request(readRequest(w, 'secret')), '0bcafe');
  await closeWorld(w);
});
}

test('a controller that hangs while idle: the idle check gets no answer, re-initialisation fails while it hangs and is tried again, and once the DK is reset the wearable advertises its identity again', async () => {
  const w = await world(false, false, 'ncs', undefined, { hci: { idleCheckMs: 5000 } });
  const sent = sentCommands(w.peripheral);
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  const identity = w.peripheral.identity!.address;
  const failures: Error[] = [];
  w.peripheral.hci.on('reinitialisationFailed', (e) => failures.push(e));
  await w.clock.advance(6000);
  const resets = sent.filter((c) => c.opcode === 0x0c03).length;

  w.periphController.hang();
  assert.ok(await w.clock.runUntil(() => failures.length > 0, 20_000), 'the re-initialisation of the hung controller failed');
  assert.match(failures[0]!.message, /did not answer HCI Reset/);
  assert.equal(w.peripheral.hci.state, 'failed');
  assert.ok(sent.filter((c) => c.opcode === 0x0c03).length > resets, 'HCI Reset was tried');

  w.periphController.rebootSilently(); // the RESET button
  assert.ok(await w.clock.runUntil(() => w.periphController.advertisingEnabled && w.peripheral.advertising, 30_000), 'advertising again');
  assert.equal(w.peripheral.hci.state, 'ready');
  assert.equal(w.periphController.randomAddress, identity.address, 'with the same identity');
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const link = await connect(w, security);
  assert.equal(await link.request(readRequest(w, 'open')), '0b01');
  await closeWorld(w);
});

test('a controller that announces its reboot with a No Operation Command Complete (hci_uart with CONFIG_BT_WAIT_NOP) is checked at once, not a period later, and re-initialised', async () => {
  const w = await world(false, false, 'ncs', undefined, { hci: { idleCheckMs: 5000 } });
  const sent = sentCommands(w.peripheral);
  await drive(w.clock, w.peripheral.start());
  await w.clock.advance(6000); // the first idle check read back what bring-up wrote
  const checks = sent.filter((c) => c.opcode === 0x2023).length;
  const resets = sent.filter((c) => c.opcode === 0x0c03).length;
  w.periphController.rebootSilently({ announce: true });
  assert.ok(await w.clock.runUntil(() => w.periphController.advertisingEnabled, 1000), 'advertising again within a second');
  assert.equal(sent.filter((c) => c.opcode === 0x2023).length, checks + 1, 'one idle check, sent on the NOP');
  assert.equal(sent.filter((c) => c.opcode === 0x0c03).length, resets + 1, 'then one HCI Reset');
  await closeWorld(w);
});

/**
 * Framed garbage from the controller (well-formed H:4 that makes no sense): a wearable with a bonded
 * central, a fault proxy on the wearable's serial line; `fault` runs after the bond, then the central
 * must reconnect and encrypt with its key.
 */
async function bondedThroughProxy(hci?: PeripheralOptions['hci']) {
  const proxy = createFaultProxy({ fault: 'drop', at: Infinity, seed: 'framed' });
  const lines: Record<string, unknown>[] = [];
  const w = await world(false, false, 'ncs', undefined, { ...(hci ? { hci } : {}), proxy, log: captureLogger(lines, 'info') });
  /** Messages the wearable logged at warn or above. */
  const warnings = (): string[] => lines.filter((l) => (l['level'] as number) >= 40).map((l) => String(l['msg']));
  const sent = sentCommands(w.peripheral);
  await drive(w.clock, w.peripheral.start());
  await drive(w.clock, w.hci.init());
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const first = await connect(w, security);
  await drive(w.clock, first.smp.pair());
  const reconnects = async (): Promise<void> => {
    assert.ok(await w.clock.runUntil(() => w.peripheral.advertising && w.periphController.advertisingEnabled, 20_000), 'the wearable advertises again');
    const again = await connect(w, security);
    assert.equal(again.smp.encryptWithBond(), true);
    assert.ok(await w.clock.runUntil(() => again.smp.encrypted, 10_000), 'the central re-encrypted with its bond');
    assert.equal(await again.request(readRequest(w, 'secret')), '0bcafe');
    await closeWorld(w);
  };
  return { w, proxy, sent, first, reconnects, warnings };
}

test('a Disconnection Complete whose handle was garbled (unknown connection 0x0123): the wearable re-initialises the controller instead of keeping a dead link, and the bonded central reconnects', async () => {
  const { w, proxy, first, reconnects, warnings } = await bondedThroughProxy();
  // The central ends the link; the wearable's Disconnection Complete arrives with handle 0x0123.
  proxy.armNext('garble', (b) => {
    b[4] = 0x23;
    b[5] = 0x01;
    return b;
  });
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => proxy.applied, 1000));
  assert.equal(toHex(proxy.injected!.sent!.subarray(0, 4)), '04050400', 'a well-formed Disconnection Complete');
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0, 5000), 'the dead link is dropped');
  assert.ok(warnings().some((m) => /Disconnection Complete for unknown connection 0x0123 .*re-initialising/.test(m)), warnings().join('\n'));
  await reconnects();
});

test('an LE Long Term Key Request for an unknown connection gets a negative reply, the controller is re-initialised, and the bonded central reconnects', async () => {
  const { w, proxy, sent, first, reconnects, warnings } = await bondedThroughProxy();
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.advertising && w.peripheral.connections.length === 0, 5000));
  const resets = sent.filter((c) => c.opcode === 0x0c03).length;
  proxy.inject(fromHex('043e0d05' + '2301' + '0000000000000000' + '0000'));
  await w.clock.advance(10);
  const nack = sent.find((c) => c.opcode === 0x201b);
  assert.ok(nack, 'LE Long Term Key Request Negative Reply sent');
  assert.equal(toHex(nack.params), '2301', 'for handle 0x0123');
  assert.ok(await w.clock.runUntil(() => sent.filter((c) => c.opcode === 0x0c03).length > resets, 1000), 'then HCI Reset');
  assert.ok(warnings().some((m) => /LE Long Term Key Request for unknown connection 0x0123/.test(m)));
  await reconnects();
});

test('a lost LE Connection Complete: the link the wearable does not know is noticed at its first event (the central\'s encryption), reset, and the central reconnects and encrypts', async () => {
  const { w, proxy, first, reconnects, warnings } = await bondedThroughProxy();
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.advertising && w.peripheral.connections.length === 0, 5000));
  // The next packet from the controller is the LE Enhanced Connection Complete of the central's reconnection.
  proxy.armNext('drop');
  const security = new SecurityManager({ bonds: w.centralBonds, clock: w.clock, random: seededRandom('central'), log });
  const blind = await connect(w, security);
  assert.equal(proxy.injected!.original[1], 0x3e, 'the dropped packet was an LE Meta event');
  assert.equal(w.peripheral.connections.length, 0, 'the wearable does not know the link');
  blind.smp.encryptWithBond();
  assert.ok(await w.clock.runUntil(() => w.hci.connections.length === 0, 10_000), 'the unknown link is gone after the reset');
  assert.ok(warnings().some((m) => /for unknown connection 0x0000 .*re-initialising/.test(m)), warnings().join('\n'));
  await reconnects();
});

test('a Disconnection Complete cut short (parameter length wrong for its code) is dropped, the controller is asked about the link (Read RSSI: 0x02), the link is dropped, and the central reconnects', async () => {
  const { w, proxy, sent, first, reconnects, warnings } = await bondedThroughProxy();
  proxy.armNext('garble', (b) => Uint8Array.of(0x04, 0x05, 0x03, b[3]!, b[4]!, b[5]!));
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0, 5000), 'the link is dropped');
  const rssi = sent.find((c) => c.opcode === 0x1405);
  assert.ok(rssi, 'Read RSSI sent');
  assert.equal(toHex(rssi.params), '0000', 'for the link the malformed event was about');
  assert.ok(warnings().some((m) => m.startsWith('malformed HCI event')));
  assert.ok(warnings().some((m) => /no longer knows .*Disconnection Complete was lost/.test(m)), warnings().join('\n'));
  await reconnects();
});

test('a lost Disconnection Complete is found by the idle check (Read RSSI on each link), and the central reconnects', async () => {
  const { w, proxy, first, reconnects, warnings } = await bondedThroughProxy({ idleCheckMs: 5000 });
  proxy.armNext('drop');
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => proxy.applied, 1000));
  assert.equal(proxy.injected!.original[1], 0x05, 'the dropped packet was the Disconnection Complete');
  assert.equal(w.peripheral.connections.length, 1, 'the wearable still believes in the link');
  assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0, 12_000), 'dropped by the idle check');
  assert.ok(warnings().some((m) => /checked after an idle check/.test(m)));
  await reconnects();
});

test('a Command Complete and a Command Status nobody waits for, and completed packets for an unknown handle, are logged and dropped without touching the command credits or the links; the central reconnects', async () => {
  const { w, proxy, sent, first, reconnects, warnings } = await bondedThroughProxy();
  const resets = sent.filter((c) => c.opcode === 0x0c03).length;
  proxy.inject(fromHex('040e04000a2000')); // Command Complete, LE Set Advertising Enable, 0 credits
  proxy.inject(fromHex('040f0400000d20')); // Command Status, LE Create Connection, 0 credits
  proxy.inject(fromHex('0413050123010500')); // Number Of Completed Packets, handle 0x0123, 5
  await w.clock.advance(10);
  assert.equal(w.peripheral.hci.aclStats().commandCredits, 1, 'the credit count is the last real answer\'s');
  assert.equal(w.peripheral.connections.length, 1, 'the link is kept');
  assert.equal(sent.filter((c) => c.opcode === 0x0c03).length, resets, 'no reset');
  assert.ok(warnings().some((m) => /Command Complete for 0x200a .*not waiting for an answer; dropped/.test(m)));
  assert.ok(warnings().some((m) => /Command Status for 0x200d .*not waiting for an answer; dropped/.test(m)));
  await drive(w.clock, w.hci.disconnect(first.c.handle));
  await reconnects();
});

test('random garbage on the serial line (seeded bursts of random bytes, some shaped like the start of an event) while a bonded central is connected: the wearable resynchronises or resets, and the central reconnects and encrypts every time', async () => {
  for (let seed = 0; seed < 10; seed++) {
    const { w, proxy, first, reconnects, warnings } = await bondedThroughProxy({ idleCheckMs: 5000 });
    const rnd = seededRandom(`garbage-${seed}`);
    const burst = rnd.bytes(1 + ((rnd.bytes(1)[0] as number) % 48));
    if (seed % 2 === 0) burst[0] = 0x04; // an H:4 event indicator: the framer takes what follows as an event
    proxy.inject(burst);
    await w.clock.advance(50);
    await drive(w.clock, w.hci.disconnect(first.c.handle));
    assert.ok(await w.clock.runUntil(() => w.peripheral.connections.length === 0, 15_000), `seed ${seed}: the link is gone on the wearable's side too`);
    assert.ok(warnings().some((m) => m.startsWith('H:4 from memory:wearable')), `seed ${seed}: the burst reached the framer (${toHex(burst)})`);
    await reconnects();
  }
});
