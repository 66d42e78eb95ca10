/**
 * RpaRotator against the real driver, the real Advertiser and the virtual controller on the virtual
 * air (wired here by hand, not by src/privacy/own-address.ts): a phone-like central built from our
 * layers scans, sees only our resolvable private address, pairs (f5/f6 over the RPA that was on
 * air), receives our identity in key distribution, and after a rotation finds and re-encrypts with
 * us at the new address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hci } from '../../src/hci/driver.js';
import type { HciConnection } from '../../src/hci/connection.js';
import { Advertiser } from '../../src/hci/advertiser.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { L2capConnection, FixedCid } from '../../src/l2cap/connection.js';
import { SecurityManager } from '../../src/smp/security-manager.js';
import type { SmpSession } from '../../src/smp/pairing.js';
import type { PairingFailure } from '../../src/smp/types.js';
import { buildSmpLower } from '../../src/stack/link.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { generateIrk } from '../../src/privacy/rpa.js';
import { irkResolvesAddress } from '../../src/privacy/rpa.js';
import { RpaRotator, type RpaRotatorLower } from '../../src/privacy/rpa-rotation.js';
import { OwnAddressType } from '../../src/privacy/own-address.js';
import { loadResolvingList, ResolvingListError, type ResolvingListCommand } from '../../src/privacy/resolving-list.js';
import { HciStatus } from '../../src/hci/status.js';
import { VirtualAir } from '../../src/sim/air.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { addressTypeToByte, randomAddressKind, type Address } from '../../src/util/address.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug', pretty: false }) : silentLogger();

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 10_000): Promise<T> {
  return clock.drive(p, maxMs);
}

interface Side {
  hci: Hci;
  bonds: MemoryBondStore;
  security: SecurityManager;
  sessions: Map<number, SmpSession>;
  failures: PairingFailure[];
}

function attachSmp(side: Side, c: HciConnection, clock: VirtualClock, localAddress: Address): SmpSession {
  const l2 = new L2capConnection({ handle: c.handle, role: c.role, clock, log, lower: { send: (f) => side.hci.sendAcl(c.handle, f) } });
  const smp = side.security.createSession(buildSmpLower(side.hci, c, l2, localAddress));
  l2.setHandler(FixedCid.Smp, (p) => smp.onPdu(p));
  l2.setHandler(FixedCid.Att, () => undefined);
  side.hci.on('acl', (h, f) => h === c.handle && l2.onFrame(f));
  side.hci.on('encryptionChanged', (cc, ch) => cc.handle === c.handle && smp.onEncryptionChange(ch.status, ch.enabled));
  side.hci.on('longTermKeyRequest', (cc, req) => cc.handle === c.handle && smp.onLtkRequest(req.rand, req.ediv));
  side.hci.on('disconnected', (cc) => {
    if (cc.handle !== c.handle) return;
    l2.close();
    smp.onDisconnected();
  });
  smp.on('pairingFailed', (f) => side.failures.push(f));
  side.sessions.set(c.handle, smp);
  smp.start();
  return smp;
}

/** `smpLocal`: what the peripheral tells SMP its address is (the RPA on air, or wrongly the identity). */
async function world(smpLocal: 'rpa-in-use' | 'identity' = 'rpa-in-use') {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: 'rpa-air', log });
  const [hostP, ctrlP] = createMemoryTransportPair('periph-host', 'periph-ctrl');
  const [hostC, ctrlC] = createMemoryTransportPair('central-host', 'central-ctrl');
  // LL privacy built in (CONFIG_BT_CTLR_PRIVACY=y): the resolving list is what is tested here.
  const periphController = air.createController({ name: 'periph', seed: 'p', llPrivacy: true });
  periphController.attach(ctrlP);
  air.createController({ name: 'central', seed: 'c' }).attach(ctrlC);
  const rng = seededRandom('rpa-air');

  const mk = (transport: typeof hostP, name: string): Side => {
    const bonds = new MemoryBondStore();
    return {
      hci: new Hci(transport, { clock, log: log.child({ side: name }) }),
      bonds,
      security: new SecurityManager({ bonds, clock, random: seededRandom(name), log }),
      sessions: new Map(),
      failures: [],
    };
  };
  const periph = mk(hostP, 'periph');
  const central = mk(hostC, 'central');

  const info = await drive(clock, periph.hci.init());
  await drive(clock, central.hci.init());
  const irk = generateIrk(rng);
  await periph.bonds.setLocalIdentity({ address: info.identityAddress, irk });
  await central.bonds.setLocalIdentity({ address: central.hci.info!.identityAddress, irk: generateIrk(rng) });

  const advertiser = new Advertiser(periph.hci, { name: 'Noira Band', maxConnections: 1, ownAddressType: () => OwnAddressType.Random, log });
  let advertisingWanted = false;
  const calls: string[] = [];
  const lower: RpaRotatorLower = {
    setRandomAddress: async (address) => {
      calls.push('set');
      await periph.hci.command('LeSetRandomAddress', { address });
    },
    pauseAdvertising: async () => {
      calls.push('pause');
      const resume = advertisingWanted;
      await advertiser.stop();
      return resume;
    },
    resumeAdvertising: async () => {
      calls.push('resume');
      await advertiser.start();
    },
  };
  const rotator = new RpaRotator({ lower, clock, random: rng, irk, log });
  const localForConnection = new Map<number, Address>();
  // The composition root's 'connected' handler: the local address is read synchronously here.
  periph.hci.on('connected', (c) => {
    const local = smpLocal === 'rpa-in-use' ? rotator.addressInUse() : info.identityAddress;
    localForConnection.set(c.handle, local);
    attachSmp(periph, c, clock, local);
  });
  periph.hci.on('reinitialised', () => void rotator.controllerReset().catch(() => undefined));

  await drive(clock, rotator.start());
  advertisingWanted = true;
  await drive(clock, advertiser.start());

  const reports: Address[] = [];
  central.hci.on('advertisingReport', (r) => reports.push(r.address));
  const scanOnce = async (): Promise<Address[]> => {
    reports.length = 0;
    await drive(clock, central.hci.command('LeSetScanParameters', { scanType: 0, interval: 0x10, window: 0x10, ownAddressType: 1, filterPolicy: 0 }));
    await drive(clock, central.hci.command('LeSetScanEnable', { enable: true, filterDuplicates: false }));
    await clock.runUntil(() => reports.length >= 3, 5000);
    await drive(clock, central.hci.command('LeSetScanEnable', { enable: false, filterDuplicates: false }));
    return [...reports];
  };
  const connect = async (target: Address) => {
    const connected = central.hci.wait('connected');
    await drive(clock, central.hci.command('LeCreateConnection', {
      scanInterval: 0x60, scanWindow: 0x30, initiatorFilterPolicy: 0,
      peerAddressType: addressTypeToByte(target.type), peerAddress: target.address,
      ownAddressType: 1, connIntervalMin: 24, connIntervalMax: 24, maxLatency: 0, supervisionTimeout: 400,
      minCeLength: 0, maxCeLength: 0,
    }));
    assert.ok(await clock.runUntil(() => central.hci.connections.length > 0 && periph.hci.connections.length > 0, 5000), 'connected');
    const [c] = (await connected) as [HciConnection];
    return { c, smp: attachSmp(central, c, clock, central.hci.info!.identityAddress) };
  };
  const close = async () => {
    rotator.stop();
    advertiser.dispose();
    periph.hci.close();
    central.hci.close();
    air.close();
  };
  return { clock, info, irk, periph, periphController, central, advertiser, rotator, lower, calls, localForConnection, scanOnce, connect, close };
}

test('on the virtual air: the central sees only our RPA, pairs over it (f5/f6 with the RPA), learns our identity, and finds and re-encrypts with us after a rotation', async () => {
  const w = await world();
  const identity = w.info.identityAddress;
  assert.equal(randomAddressKind(identity.address), 'static');

  // 1. Scanning: every report carries the RPA, never the static identity address.
  const rpa1 = w.rotator.addressInUse();
  const seen1 = await w.scanOnce();
  assert.ok(seen1.length >= 3);
  for (const a of seen1) assert.deepEqual(a, rpa1);
  assert.equal(irkResolvesAddress(w.irk, rpa1), true);

  // 2. Connect to the RPA and pair: the peripheral's SMP used the RPA in use as its A/B address.
  const first = await w.connect(rpa1);
  assert.deepEqual(first.c.peer, rpa1);
  const periphHandle = w.periph.hci.connections[0]!.handle;
  assert.deepEqual(w.localForConnection.get(periphHandle), rpa1);
  const paired = first.smp.pair();
  assert.ok(await w.clock.runUntil(() => first.smp.encrypted, 10_000), 'encrypted after pairing');
  const info = await drive(w.clock, paired);
  assert.equal(info.level, 2);
  assert.deepEqual(w.central.failures, []);
  assert.deepEqual(w.periph.failures, []);
  // Key distribution gave the central our identity address and IRK.
  const bond = w.central.bonds.list()[0]!;
  assert.deepEqual(bond.peer, identity);
  assert.deepEqual(bond.peerIrk, w.irk);

  // 3. The period elapses while connected: the address changes with advertising off (no resume
  // needed: one connection allowed), and the connection is not disturbed.
  w.calls.length = 0;
  await w.clock.advance(900_000);
  const rpa2 = w.rotator.addressInUse();
  assert.notEqual(rpa2.address, rpa1.address);
  assert.deepEqual(w.calls, ['pause', 'set', 'resume']);
  assert.equal(w.advertiser.advertising, false, 'still connected: no advertising');
  assert.equal(first.smp.encrypted, true);

  // 4. Disconnect: advertising comes back with the new RPA, which the central's bond resolves.
  await drive(w.clock, w.central.hci.disconnect(first.c.handle));
  assert.ok(await w.clock.runUntil(() => w.advertiser.advertising, 5000), 'advertising again');
  const seen2 = await w.scanOnce();
  for (const a of seen2) assert.deepEqual(a, rpa2);
  assert.deepEqual(w.central.bonds.resolve(rpa2)?.peer, identity, 'the bonded central resolves the new RPA to our identity');

  // 5. Reconnect at the new address and encrypt with the stored key, no pairing.
  const second = await w.connect(rpa2);
  assert.deepEqual(w.localForConnection.get(w.periph.hci.connections[0]!.handle), rpa2);
  assert.equal(second.smp.encryptWithBond(), true);
  assert.ok(await w.clock.runUntil(() => second.smp.encrypted, 5000), 're-encrypted with the bond');
  assert.deepEqual(w.periph.failures, []);
  await w.close();
});

test('negative control: a peripheral that gives SMP its identity address instead of the RPA on air fails the DHKey check (0x0B)', async () => {
  const w = await world('identity');
  const rpa = w.rotator.addressInUse();
  const first = await w.connect(rpa);
  const paired = first.smp.pair().catch((e: unknown) => e);
  await w.clock.runUntil(() => w.central.failures.length > 0 || w.periph.failures.length > 0, 10_000);
  await drive(w.clock, paired);
  // f6 over the wrong address: the peripheral rejects the central's DHKey check.
  assert.equal(w.periph.failures[0]?.reason, 0x0b);
  assert.equal(first.smp.encrypted, false);
  await w.close();
});

test('loadResolvingList on the virtual controller: Command Disallowed while advertising; with advertising paused the peers are loaded with their IRK and ours, and advertising resumes', async () => {
  const w = await world();
  const peerIrk = generateIrk(seededRandom('phone irk'));
  const phone: Address = { type: 'public', address: '11:22:33:44:55:66' };
  const bonds = [{
    peer: phone, ltk: new Uint8Array(16), ediv: 0, rand: 0n, keySize: 16, authenticated: false, secureConnections: true,
    peerIrk, cccd: {}, gatt: { clientFeatures: 0, changeAware: true }, createdAt: '2026-01-01T00:00:00.000Z', lastSeenAt: '2026-01-01T00:00:00.000Z',
  }];
  // What the composition root passes: the driver's command(), nothing more.
  const command: ResolvingListCommand = (name, params) => w.periph.hci.command(name, params);
  assert.equal(w.advertiser.advertising, true);
  const refused = await drive(w.clock, loadResolvingList(command, bonds, { localIrk: w.irk }).then(() => undefined, (e: unknown) => e));
  assert.ok(refused instanceof ResolvingListError);
  assert.equal(refused.status, HciStatus.CommandDisallowed);
  assert.equal(refused.command, 'LeSetAddressResolutionEnable');

  const r = await drive(w.clock, loadResolvingList(command, bonds, { localIrk: w.irk, pause: w.lower }));
  assert.deepEqual(r.loaded, [phone]);
  const entry = w.periphController.resolvingList.get(`0/${phone.address}`);
  assert.deepEqual(entry?.peerIrk, peerIrk);
  assert.deepEqual(entry?.localIrk, w.irk);
  assert.equal(w.periphController.addressResolution, true);
  assert.ok(await w.clock.runUntil(() => w.advertiser.advertising, 5000), 'advertising resumed');
  await w.close();
});
