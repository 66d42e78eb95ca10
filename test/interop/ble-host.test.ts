/**
 * Interop both ways with an independent stack, the npm package ble-host 1.0.3, on the virtual air:
 * - a ble-host central against our Peripheral (wearable profile): LESC pairing, encrypted read
 *   (long), heart rate notifications, reconnection with its stored key and the CCCD restored;
 * - our Central against a ble-host peripheral: discovery, long read before and after pairing,
 *   LESC pairing with identity distribution, notifications, a confirmed indication, a long write,
 *   and reconnection from a new RPA with the stored key.
 * Assertions are on what our side and the controllers saw; ble-host's own flags after
 * reconnection are known to be wrong in its npm tarball (docs/field-notes.md) and are not trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import bleHost from 'ble-host';
import { Peripheral } from '../../src/host.js';
import { Central } from '../../src/central/central.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { AdType, encodeAdStructures } from '../../src/hci/advertising.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { isResolvablePrivateAddress } from '../../src/util/address.js';
import { HealthUuid, WearableProfile } from '../../src/gatt/profile.js';
import { GattUuid } from '../../src/gatt/uuid.js';
import { AttError } from '../../src/att/types.js';
import { VirtualAir } from '../../src/sim/air.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { createLogger, silentLogger } from '../../src/util/log.js';
import { call, drive, inTempDir, startBleHost } from './helpers.js';
import { FIRMWARE_NAMES } from '../../src/sim/firmware.js';

const log = process.env['TEST_LOG'] ? createLogger({ level: 'debug', pretty: false }) : silentLogger();

/** ble-host writes UUIDs as upper-case 128-bit strings. */
function full(uuid: number | string): string {
  if (typeof uuid === 'string') return uuid.toUpperCase();
  return `0000${uuid.toString(16).padStart(4, '0')}-0000-1000-8000-00805F9B34FB`.toUpperCase();
}

function connect(clock: VirtualClock, manager: bleHost.Manager, address: string): Promise<bleHost.Connection> {
  return drive(clock, new Promise<bleHost.Connection>((resolve) => manager.connect('random', address, {}, resolve)));
}

async function characteristic(clock: VirtualClock, conn: bleHost.Connection, service: string, char: string): Promise<bleHost.GattClientCharacteristic> {
  const services = await drive(clock, new Promise<bleHost.GattClientService[]>((resolve) => conn.gatt.discoverAllPrimaryServices(resolve)));
  const s = services.find((x) => x.uuid === service);
  assert.ok(s, `service ${service}`);
  const chars = await drive(clock, new Promise<bleHost.GattClientCharacteristic[]>((resolve) => s.discoverCharacteristics(resolve)));
  const c = chars.find((x) => x.uuid === char);
  assert.ok(c, `characteristic ${char}`);
  return c;
}

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: a ble-host central pairs with our wearable (LESC Just Works), reads the encrypted record, gets notifications, and re-encrypts with its stored key`, async () => {
    const tmp = inTempDir();
    const clock = new VirtualClock();
    const air = new VirtualAir({ clock, seed: 'interop-central', log, firmware });
    const [wh, wc] = createMemoryTransportPair('wearable', 'wearable-ctrl');
    air.createController({ name: 'wearable', seed: 'w' }).attach(wc);
    const app = new WearableProfile({ deviceName: 'Noira Band' });
    const bonds = new MemoryBondStore();
    const peripheral = new Peripheral({ transport: wh, clock, random: seededRandom('w'), log, bonds, db: app.db, name: 'Noira Band', connectionParameters: false });
    const paired: { level: number; bonded: boolean; keySize: number }[] = [];
    const encryption: number[] = [];
    const ltkUnknown: number[] = [];
    peripheral.on('paired', (_l, info) => paired.push({ level: info.level, bonded: info.bonded, keySize: info.keySize }));
    peripheral.on('connected', (l) => l.smp.on('ltkRequestUnknown', () => ltkUnknown.push(1)));
    peripheral.hci.on('encryptionChanged', (_c, ch) => encryption.push(ch.status));
    const record = { note: 'interop '.repeat(30) };
    try {
      await drive(clock, peripheral.start());
      void app.appendHealthRecord(record);
      const { manager, transport } = await startBleHost(air, clock, 'blehost-central', 'C2:11:22:33:44:55');
      const wearable = peripheral.identity!.address.address;

      const conn = await connect(clock, manager, wearable);
      const rec = await characteristic(clock, conn, full(HealthUuid.record.replace('0002', '0001')), full(HealthUuid.record));
      // Unpaired: our server answers 0x05, as iOS expects before pairing.
      const before = await drive(clock, call<Buffer | undefined>((cb) => rec.read(cb)));
      assert.equal(before.err, 0x05);
      const result = drive(
        clock,
        new Promise<bleHost.PairingResult>((resolve, reject) => {
          conn.smp.on('pairingComplete', resolve);
          conn.smp.on('pairingFailed', (reason) => reject(new Error(`ble-host pairing failed 0x${reason.toString(16)}`)));
        }),
      );
      conn.smp.sendPairingRequest({ ioCap: bleHost.IOCapabilities.NO_INPUT_NO_OUTPUT, bondingFlags: 1, mitm: false, sc: true });
      await result;
      assert.deepEqual(paired, [{ level: 2, bonded: true, keySize: 16 }], 'our side paired: LESC Just Works, level 2');
      assert.deepEqual(encryption, [0x00]);
      assert.deepEqual(bonds.list().map((b) => b.peer), [{ type: 'random', address: 'C2:11:22:33:44:55' }], "bond keyed by ble-host's identity");
      // The record is longer than ATT_MTU 23: ble-host reads it with Read Blob.
      const after = await drive(clock, call<Buffer | undefined>((cb) => rec.read(cb)));
      assert.equal(after.err, 0);
      assert.equal(after.value?.toString(), JSON.stringify(record));

      const hr = await characteristic(clock, conn, full(GattUuid.heartRate), full(GattUuid.heartRateMeasurement));
      const values: number[] = [];
      hr.on('change', (v) => values.push(v[1] as number));
      assert.equal((await drive(clock, call<undefined>((cb) => hr.writeCCCD(true, false, (e) => cb(e, undefined))))).err, 0);
      await drive(clock, app.setHeartRate(81));
      assert.ok(await clock.runUntil(() => values.length === 1, 2000));
      assert.deepEqual(values, [81]);

      const gone = drive(clock, new Promise<number>((resolve) => conn.on('disconnect', resolve)));
      conn.disconnect();
      await gone;
      assert.ok(await clock.runUntil(() => peripheral.advertising, 5000), 'advertising again');

      // Reconnection: ble-host encrypts with the LTK it stored; no pairing on our side.
      const conn2 = await connect(clock, manager, wearable);
      assert.equal(conn2.smp.hasLtk, true);
      const enc = drive(clock, new Promise<number>((resolve) => conn2.smp.on('encrypt', (status) => resolve(status))));
      assert.equal(conn2.smp.startEncryption(), true);
      assert.equal(await enc, 0);
      assert.deepEqual(encryption, [0x00, 0x00]);
      assert.equal(paired.length, 1, 'no second pairing');
      assert.equal(ltkUnknown.length, 0);
      assert.equal(peripheral.connections[0]?.smp.encrypted, true);
      // The CCCD came back with the bond: notifications without writing it again.
      const hr2 = await characteristic(clock, conn2, full(GattUuid.heartRate), full(GattUuid.heartRateMeasurement));
      const values2: number[] = [];
      hr2.on('change', (v) => values2.push(v[1] as number));
      await drive(clock, app.setHeartRate(90));
      assert.ok(await clock.runUntil(() => values2.length === 1, 2000), 'notification after reconnecting');
      assert.deepEqual(values2, [90]);

      const gone2 = drive(clock, new Promise<number>((resolve) => conn2.on('disconnect', resolve)));
      conn2.disconnect();
      await gone2;
      await transport.close();
    } finally {
      await drive(clock, peripheral.stop()).catch(() => undefined);
      air.close();
      tmp.restore();
    }
  });
}

const SERVICE = '8b3c0001-5b6e-4b7a-9c1d-0a1b2c3d4e5f';
const OPEN = '8b3c0002-5b6e-4b7a-9c1d-0a1b2c3d4e5f';
const SECRET = '8b3c0003-5b6e-4b7a-9c1d-0a1b2c3d4e5f';
const NOTIFY = '8b3c0004-5b6e-4b7a-9c1d-0a1b2c3d4e5f';
const INDICATE = '8b3c0005-5b6e-4b7a-9c1d-0a1b2c3d4e5f';
const WRITABLE = '8b3c0006-5b6e-4b7a-9c1d-0a1b2c3d4e5f';

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: our central pairs with a ble-host peripheral, reads long values, takes notifications and a confirmed indication, writes long, and reconnects from a new RPA with the stored key`, async () => {
    const tmp = inTempDir();
    const clock = new VirtualClock();
    const air = new VirtualAir({ clock, seed: 'interop-peripheral', log, firmware });
    // ble-host keeps bonds in memory across managers: another address per firmware, so each run pairs afresh.
    const blePeripheralAddress = firmware === 'ncs' ? 'C3:11:22:33:44:55' : 'C5:11:22:33:44:55';
    const { manager, transport } = await startBleHost(air, clock, 'blehost-periph', blePeripheralAddress);
    const secret = Buffer.from(Array.from({ length: 300 }, (_v, i) => (i * 13) & 0xff));
    const written: Buffer[] = [];
    let confirmed = 0;
    const notifyChar: bleHost.ServerCharacteristic = { uuid: NOTIFY, properties: ['notify'], descriptors: [{ uuid: 0x2902, writePerm: 'encrypted' }] };
    const indicateChar: bleHost.ServerCharacteristic = { uuid: INDICATE, properties: ['indicate'] };
    manager.gattDb.setDeviceName('BleHost Band');
    manager.gattDb.addServices([
      {
        uuid: SERVICE,
        characteristics: [
          { uuid: OPEN, properties: ['read'], value: 'hello from ble-host' },
          { uuid: SECRET, properties: ['read'], readPerm: 'encrypted', value: secret },
          notifyChar,
          indicateChar,
          {
            uuid: WRITABLE,
            properties: ['write'],
            writePerm: 'encrypted',
            maxLength: 512,
            onWrite: (_c, needsResponse, value, cb) => {
              written.push(Buffer.from(value));
              if (needsResponse) cb(0);
            },
          },
        ],
      },
    ]);
    const ad = encodeAdStructures([
      { type: AdType.Flags, data: Uint8Array.of(0x06) },
      { type: AdType.CompleteLocalName, data: new TextEncoder().encode('BleHost Band') },
    ]);
    manager.setAdvertisingData(Buffer.from(ad));
    let peer: bleHost.Connection | undefined;
    const bhPairings: number[] = [];
    const advertise = (): void =>
      manager.startAdvertising({}, (_status, conn) => {
        if (!conn) return;
        peer = conn;
        conn.smp.on('pairingComplete', () => bhPairings.push(1));
        conn.on('disconnect', () => advertise());
      });
    advertise();

    const [ch, cc] = createMemoryTransportPair('central', 'central-ctrl');
    air.createController({ name: 'central', seed: 'c' }).attach(cc);
    const bonds = new MemoryBondStore();
    const central = new Central({ transport: ch, clock, random: seededRandom('c'), log, bonds, privacy: 'rpa', policy: { ioCapability: 0x04 } });
    try {
      await drive(clock, central.start());
      const link = await drive(clock, central.connect({ name: 'BleHost Band' }, { timeoutMs: 5000 }));
      const remote = await drive(clock, link.gatt.discoverAll());
      const c = (u: string) => {
        const x = remote.characteristic(u);
        assert.ok(x, u);
        return x;
      };
      assert.equal(new TextDecoder().decode(await drive(clock, link.gatt.read(c(OPEN).valueHandle))), 'hello from ble-host');
      const denied = await drive(clock, link.gatt.read(c(SECRET).valueHandle).then(() => undefined, (e: unknown) => e));
      assert.ok(denied instanceof AttError && denied.code === 0x05, `ble-host answers an unpaired read with 0x05, got ${String(denied)}`);
      const info = await drive(clock, link.smp.pair());
      assert.equal(info.level, 2);
      assert.equal(info.bonded, true);
      assert.deepEqual(info.peerIdentity, { type: 'random', address: blePeripheralAddress });
      // We complete when our keys are sent; ble-host when they arrive.
      assert.ok(await clock.runUntil(() => bhPairings.length === 1, 2000), 'ble-host completed its side');
      assert.ok(bonds.list()[0]?.peerIrk, "ble-host's IRK stored with the bond");
      // ATT_MTU is still 23: a 300-byte value needs Read Blob.
      assert.deepEqual(Buffer.from(await drive(clock, link.gatt.read(c(SECRET).valueHandle))), secret);
      assert.equal(await drive(clock, link.gatt.exchangeMtu()), 517);

      const got: { kind: string; value: string }[] = [];
      link.gatt.on('notification', (h, v) => h === c(NOTIFY).valueHandle && got.push({ kind: 'n', value: Buffer.from(v).toString() }));
      link.gatt.on('indication', (h, v) => h === c(INDICATE).valueHandle && got.push({ kind: 'i', value: Buffer.from(v).toString() }));
      await drive(clock, link.gatt.subscribe(c(NOTIFY), 'notify'));
      await drive(clock, link.gatt.subscribe(c(INDICATE), 'indicate'));
      assert.ok(peer);
      assert.equal(notifyChar.notify?.(peer, 'n1'), true);
      assert.equal(indicateChar.indicate?.(peer, 'i1', () => confirmed++), true);
      assert.ok(await clock.runUntil(() => got.length === 2 && confirmed === 1, 3000), 'notification, indication and its confirmation');
      assert.deepEqual(got, [{ kind: 'n', value: 'n1' }, { kind: 'i', value: 'i1' }]);

      const long = Buffer.from(Array.from({ length: 400 }, (_v, i) => (i * 3) & 0xff));
      await drive(clock, link.gatt.writeLong(c(WRITABLE).valueHandle, long));
      assert.equal(written.length, 1, 'ble-host assembled the prepared writes into one value');
      assert.deepEqual(written[0], long);

      const firstAddress = link.localAddress;
      await drive(clock, link.disconnect());
      const again = await drive(clock, central.connect({ address: { type: 'random', address: blePeripheralAddress } }, { timeoutMs: 5000 }));
      assert.ok(isResolvablePrivateAddress(again.localAddress) && again.localAddress.address !== firstAddress.address, 'a new RPA');
      assert.equal(again.smp.encryptWithBond(), true);
      assert.ok(await clock.runUntil(() => again.smp.encrypted || !again.open, 5000));
      assert.equal(again.smp.encrypted, true, 'ble-host resolved our new RPA and found the LTK');
      assert.deepEqual(Buffer.from(await drive(clock, again.gatt.read(c(SECRET).valueHandle))), secret);
      assert.equal(bhPairings.length, 1, 'no second pairing');
      await drive(clock, again.disconnect());
    } finally {
      await drive(clock, central.stop()).catch(() => undefined);
      await transport.close();
      air.close();
      tmp.restore();
    }
  });
}

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: a simulated Android phone pairs with a ble-host peripheral: key distribution 0x0f/0x0f on the wire, ble-host's EncKey/LinkKey grants ignored as LE Secure Connections requires`, async () => {
    const tmp = inTempDir();
    const clock = new VirtualClock();
    const air = new VirtualAir({ clock, seed: 'interop-android', log, firmware });
    const { manager, transport } = await startBleHost(air, clock, 'blehost-p2', 'C4:11:22:33:44:55');
    manager.gattDb.setDeviceName('BleHost Band');
    manager.gattDb.addServices([{ uuid: SERVICE, characteristics: [{ uuid: SECRET, properties: ['read'], readPerm: 'encrypted', value: 'only when encrypted' }] }]);
    manager.setAdvertisingData(Buffer.from(encodeAdStructures([{ type: AdType.CompleteLocalName, data: new TextEncoder().encode('BleHost Band') }])));
    const requests: bleHost.PairingFeatures[] = [];
    manager.startAdvertising({}, (_s, conn) => conn?.smp.on('pairingRequest', (req, cb) => {
      requests.push(req);
      cb({ ioCap: bleHost.IOCapabilities.NO_INPUT_NO_OUTPUT, bondingFlags: 1, mitm: false, sc: true });
    }));
    const [ph, pc] = createMemoryTransportPair('phone', 'phone-ctrl');
    air.createController({ name: 'phone', seed: 'ph' }).attach(pc);
    const { SimulatedPhone } = await import('../../src/phone/phone.js');
    const { phoneProfile } = await import('../../src/phone/profiles.js');
    const { smpTrail } = await import('../../src/phone/events.js');
    const events: import('../../src/phone/events.js').ScenarioEvent[] = [];
    const phone = new SimulatedPhone({ profile: phoneProfile('android'), transport: ph, clock, random: seededRandom('ph'), log, bonds: new MemoryBondStore(), user: { thinkMs: 200 } });
    phone.on('event', (e) => events.push(e));
    try {
      await drive(clock, phone.start());
      const s = await drive(clock, phone.connect({ name: 'BleHost Band' }));
      await drive(clock, s.discover());
      const v = await drive(clock, s.read(SECRET));
      assert.equal(new TextDecoder().decode(v), 'only when encrypted');
      // ble-host parsed the wire request: all four key distribution bits offered on both sides.
      assert.equal(requests.length, 1);
      assert.deepEqual(requests[0]?.initKeyDistr, { encKey: true, idKey: true });
      const rsp = events.find((e) => e.kind === 'smp' && e.pdu === 'pairingResponse');
      assert.ok(rsp && rsp.kind === 'smp');
      // ble-host grants EncKey too (0x03/0x03): in LE Secure Connections the bit carries nothing (the
      // LTK is derived), so no Encryption Information follows and our SMP ignores it.
      assert.deepEqual([rsp.initiatorKeyDist, rsp.responderKeyDist], [0x03, 0x03]);
      assert.deepEqual(smpTrail(events).filter((t) => t.includes('identity')), [
        'wearable:identityInformation',
        'wearable:identityAddressInformation',
        'phone:identityInformation',
        'phone:identityAddressInformation',
      ]);
      assert.equal(s.link.security.level, 2);
      await drive(clock, s.disconnect());
    } finally {
      await drive(clock, phone.stop()).catch(() => undefined);
      await transport.close();
      air.close();
      tmp.restore();
    }
  });
}
