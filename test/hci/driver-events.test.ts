import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/util/clock.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import type { HciConnection } from '../../src/hci/connection.js';
import type { AdvertisingReport, EncryptionChange } from '../../src/hci/driver.js';
import { makeRig } from './fixtures/rig.js';

async function ready(hciOpts: Parameters<typeof makeRig>[1] = {}): Promise<ReturnType<typeof makeRig>> {
  const rig = makeRig({}, hciOpts);
  await rig.hci.init();
  return rig;
}

function lastCommand(rig: ReturnType<typeof makeRig>, name: string): string | undefined {
  const c = [...rig.ctrl.commands].reverse().find((x) => x.name === name);
  return c ? toHex(c.raw) : undefined;
}

test('LE Enhanced Connection Complete becomes a connected HciConnection with role, peer, RPAs and parameters', async () => {
  const rig = await ready();
  const got = rig.hci.wait('connected');
  await rig.ctrl.sendEvent('LeEnhancedConnectionComplete', {
    status: 0,
    handle: 0x0041,
    role: 1,
    peerAddressType: 0x02, // public identity, resolved by the controller
    peerAddress: '00:11:22:33:44:55',
    localResolvablePrivateAddress: '00:00:00:00:00:00',
    peerResolvablePrivateAddress: '4D:11:22:33:44:55',
    connInterval: 24,
    connLatency: 0,
    supervisionTimeout: 72,
    centralClockAccuracy: 1,
  });
  const [c] = await got;
  assert.equal(c.handle, 0x0041);
  assert.equal(c.role, 'peripheral');
  assert.deepEqual(c.peer, { type: 'public', address: '00:11:22:33:44:55' });
  assert.equal(c.peerResolved, true);
  assert.equal(c.peerRpa, '4D:11:22:33:44:55');
  assert.equal(c.localRpa, undefined);
  assert.equal(c.intervalMs, 30);
  assert.equal(c.supervisionTimeoutMs, 720);
  assert.equal(c.open, true);
  assert.equal(rig.hci.connection(0x0041), c);
  await rig.stop();
});

test('legacy LE Connection Complete (central role) is accepted too; a failed attempt emits connectionFailed', async () => {
  const rig = await ready();
  const fails: unknown[] = [];
  rig.hci.on('connectionFailed', (f) => fails.push(f));
  const got = rig.hci.wait('connected');
  await rig.ctrl.sendEvent('LeConnectionComplete', {
    status: 0x02,
    handle: 0,
    role: 0,
    peerAddressType: 1,
    peerAddress: 'C1:00:00:00:00:01',
    connInterval: 0,
    connLatency: 0,
    supervisionTimeout: 0,
    centralClockAccuracy: 0,
  });
  await rig.ctrl.sendEvent('LeConnectionComplete', {
    status: 0,
    handle: 0x0002,
    role: 0,
    peerAddressType: 1,
    peerAddress: 'C1:00:00:00:00:01',
    connInterval: 40,
    connLatency: 4,
    supervisionTimeout: 500,
    centralClockAccuracy: 0,
  });
  const [c] = await got;
  assert.equal(c.role, 'central');
  assert.deepEqual(c.peer, { type: 'random', address: 'C1:00:00:00:00:01' });
  assert.equal(c.latency, 4);
  assert.deepEqual(fails, [{ status: 0x02, statusName: '0x02 UnknownConnectionIdentifier', role: 'central' }]);
  await rig.stop();
});

test('connection update, PHY update, encryption change v1 and v2 and key refresh update the connection and emit events', async () => {
  const rig = await ready();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const c = rig.hci.connection(0x0040) as HciConnection;
  const log: string[] = [];
  rig.hci.on('connectionUpdated', (x, s) => log.push(`update ${x.handle} ${s}`));
  rig.hci.on('phyUpdated', (x, s) => log.push(`phy ${x.handle} ${s}`));
  const enc: EncryptionChange[] = [];
  rig.hci.on('encryptionChanged', (_x, e) => enc.push(e));
  rig.hci.on('encryptionKeyRefreshed', (x, s) => log.push(`refresh ${x.handle} ${s}`));
  await rig.ctrl.sendEvent('LeConnectionUpdateComplete', { status: 0, handle: 0x0040, connInterval: 12, connLatency: 2, supervisionTimeout: 300 });
  await rig.ctrl.sendEvent('LePhyUpdateComplete', { status: 0, handle: 0x0040, txPhy: 2, rxPhy: 2 });
  await rig.ctrl.sendEvent('EncryptionChange', { status: 0, handle: 0x0040, enabled: 1 });
  await settle();
  assert.equal(c.encrypted, true);
  // Encryption Change v2 stays masked (bring-up never sends Set Event Mask Page 2): one arriving anyway is ignored.
  await rig.ctrl.sendEvent('EncryptionChangeV2', { status: 0, handle: 0x0040, enabled: 1, keySize: 16 });
  await rig.ctrl.sendEvent('EncryptionKeyRefreshComplete', { status: 0, handle: 0x0040 });
  await rig.ctrl.sendEvent('EncryptionChange', { status: 0x06, handle: 0x0040, enabled: 0 });
  await settle();
  assert.deepEqual(log, ['update 64 0', 'phy 64 0', 'refresh 64 0']);
  assert.equal(c.intervalMs, 15);
  assert.equal(c.latency, 2);
  assert.equal(c.supervisionTimeoutMs, 3000);
  assert.equal(c.txPhy, 2);
  assert.equal(c.rxPhy, 2);
  assert.deepEqual(enc, [
    { status: 0, enabled: true },
    { status: 0x06, enabled: false },
  ]);
  assert.equal(c.encrypted, true, 'a failed change leaves the link as it was');
  assert.ok(!rig.ctrl.commandNames.includes('SetEventMaskPage2'), 'page 2 of the event mask is never set');
  await rig.stop();
});

test('an LE Long Term Key Request goes to the listener; with no listener the driver answers with a negative reply', async () => {
  const rig = await ready();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  await rig.ctrl.sendEvent('LeLongTermKeyRequest', { handle: 0x0040, rand: 0n, ediv: 0 });
  await settle();
  assert.equal(lastCommand(rig, 'LeLongTermKeyRequestNegativeReply'), '011b20024000');
  const req = rig.hci.wait('longTermKeyRequest');
  await rig.ctrl.sendEvent('LeLongTermKeyRequest', { handle: 0x0040, rand: 0x1122334455667788n, ediv: 0xabcd });
  const [c, r] = await req;
  assert.equal(c.handle, 0x0040);
  assert.deepEqual(r, { rand: 0x1122334455667788n, ediv: 0xabcd });
  await rig.stop();
});

test('a Remote Connection Parameter Request is accepted by default and refused with 0x3B when the policy says no', async () => {
  const rig = await ready({ acceptConnectionParameters: (_c, req) => req.intervalMin >= 12 });
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const seen: boolean[] = [];
  rig.hci.on('connectionParameterRequest', (_c, _r, accepted) => seen.push(accepted));
  await rig.ctrl.sendEvent('LeRemoteConnectionParameterRequest', { handle: 0x0040, intervalMin: 12, intervalMax: 24, maxLatency: 0, timeout: 400 });
  await settle();
  assert.equal(lastCommand(rig, 'LeRemoteConnectionParameterRequestReply'), '0120200e4000' + '0c00' + '1800' + '0000' + '9001' + '0000' + '0000');
  await rig.ctrl.sendEvent('LeRemoteConnectionParameterRequest', { handle: 0x0040, intervalMin: 6, intervalMax: 6, maxLatency: 0, timeout: 100 });
  await settle();
  assert.equal(lastCommand(rig, 'LeRemoteConnectionParameterRequestNegativeReply'), '012120034000' + '3b');
  assert.deepEqual(seen, [true, false]);
  await rig.stop();
});

test('disconnect(handle) sends Disconnect with the reason; Disconnection Complete then ends the connection', async () => {
  const rig = await ready();
  await rig.ctrl.connect({ handle: 0x0040 });
  await settle();
  const c = rig.hci.connection(0x0040) as HciConnection;
  const gone = rig.hci.wait('disconnected');
  await rig.hci.disconnect(0x0040);
  assert.equal(lastCommand(rig, 'Disconnect'), '0106040340' + '0013');
  const [dc, reason, name] = await gone;
  assert.equal(dc, c);
  assert.equal(reason, 0x16);
  assert.equal(name, '0x16 ConnectionTerminatedByLocalHost');
  assert.equal(c.open, false);
  assert.equal(rig.hci.connections.length, 0);
  await assert.rejects(rig.hci.disconnect(0x0040), /no such connection/);
  await rig.stop();
});

test('advertising reports are emitted per report with the peer address and RSSI (central side)', async () => {
  const rig = await ready();
  const reports: AdvertisingReport[] = [];
  rig.hci.on('advertisingReport', (r) => reports.push(r));
  await rig.ctrl.sendEvent('LeAdvertisingReport', {
    reports: [
      { eventType: 0, addressType: 1, address: 'F3:2A:5C:17:09:B4', data: fromHex('020106'), rssi: -60 },
      { eventType: 4, addressType: 3, address: 'F3:2A:5C:17:09:B4', data: fromHex('0b094e6f6972612042616e64'), rssi: -61 },
    ],
  });
  await settle();
  assert.equal(reports.length, 2);
  assert.deepEqual(reports[0]?.address, { type: 'random', address: 'F3:2A:5C:17:09:B4' });
  assert.equal(reports[0]?.rssi, -60);
  assert.equal(toHex(reports[0]?.data ?? new Uint8Array()), '020106');
  assert.equal(reports[1]?.eventType, 4);
  assert.equal(reports[1]?.resolved, true);
  await rig.stop();
});

test('decoded commands and events are logged at debug level with bytes as hex', async () => {
  const rig = makeRig({}, { captureLog: true });
  await rig.hci.init();
  const cmd = rig.logLines.find((l) => l['command'] === 'LeSetRandomAddress');
  assert.ok(cmd);
  assert.equal(cmd['level'], 20);
  assert.deepEqual(cmd['params'], { address: 'F3:2A:5C:17:09:B4' });
  const ev = rig.logLines.find((l) => l['event'] === 'CommandComplete');
  assert.ok(ev);
  assert.equal(ev['level'], 20);
  assert.equal(typeof (ev['params'] as Record<string, unknown>)['returnParameters'], 'string');
  await rig.stop();
});
