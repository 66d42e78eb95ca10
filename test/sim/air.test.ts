import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdvertisingReportType } from '../../src/hci/events.js';
import { HciStatus } from '../../src/hci/status.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';
import {
  CONN_PARAM_REQ_BIT,
  ENHANCED_CONN_BIT,
  TEST_LE_MASK,
  advertise,
  bringUp,
  connect,
  makeWorld,
  runFor,
  scan,
  type RawHost,
  type World,
} from './helpers.js';

async function withWorld(n: number, fn: (w: World) => Promise<void>, opts: Parameters<typeof makeWorld>[1] = {}): Promise<void> {
  const w = makeWorld(n, opts);
  try {
    await fn(w);
  } finally {
    w.close();
  }
}

/** Two hosts brought up, the first advertising, the second connected to it as central. */
async function connectedPair(w: World, leMask = TEST_LE_MASK): Promise<{ per: RawHost; cen: RawHost; p: number; c: number; perAddr: string; cenAddr: string }> {
  const [per, cen] = w.hosts as [RawHost, RawHost];
  const perAddr = await bringUp(per, leMask);
  const cenAddr = await bringUp(cen, leMask);
  await advertise(per);
  const { c, p } = await connect(cen, per, perAddr);
  return { per, cen, p, c, perAddr, cenAddr };
}

/** Reassembles what `host` received on `handle` since `from` into L2CAP-sized units by PB flag. */
function reassemble(host: RawHost, handle: number, from: number): Uint8Array[] {
  const out: Uint8Array[][] = [];
  for (const a of host.aclPackets(from)) {
    if (a.handle !== handle) continue;
    if (a.boundary === 0b10) out.push([a.data]);
    else out[out.length - 1]!.push(a.data);
  }
  return out.map((parts) => concatBytes(...parts));
}

test('a scanner receives ADV_IND and, when scanning actively, SCAN_RSP with the advertiser address, data and a plausible RSSI', () =>
  withWorld(2, async ({ hosts }) => {
    const [adv, scn] = hosts as [RawHost, RawHost];
    const addr = await bringUp(adv);
    await bringUp(scn);
    await advertise(adv, { data: fromHex('0201060908776561726162'), scanRsp: fromHex('03ff5900') });
    const from = scn.mark();
    await scan(scn, { active: true });
    const ind = await scn.waitFor('LeAdvertisingReport', from, (e) => e.reports[0]!.eventType === AdvertisingReportType.AdvInd);
    const rsp = await scn.waitFor('LeAdvertisingReport', from, (e) => e.reports[0]!.eventType === AdvertisingReportType.ScanRsp);
    const r = ind.reports[0]!;
    assert.equal(r.address, addr);
    assert.equal(r.addressType, 1);
    assert.equal(toHex(r.data), '0201060908776561726162');
    assert.ok(r.rssi <= -38 && r.rssi >= -82, `rssi ${r.rssi}`);
    assert.equal(toHex(rsp.reports[0]!.data), '03ff5900');
    // Exact bytes of one report: LE Meta, subevent 2, one report, ADV_IND, random, address, data, RSSI.
    const raw = scn.rx.slice(from).find((x) => x.event?.name === 'LeAdvertisingReport')!.bytes;
    assert.equal(toHex(raw.subarray(0, 6)), '043e17020100');
    assert.equal(raw[6], 0x01);
  }));

test('passive scanning gets no SCAN_RSP; advertising events come every interval plus 0..10 ms advDelay', () =>
  withWorld(2, async ({ hosts, clock }) => {
    const [adv, scn] = hosts as [RawHost, RawHost];
    await bringUp(adv);
    await bringUp(scn);
    await advertise(adv, { interval: 0x00a0 }); // 100 ms
    const from = scn.mark();
    await scan(scn, { active: false });
    await clock.advance(10_000);
    const reports = scn.events('LeAdvertisingReport', from);
    assert.ok(reports.every((e) => e.reports[0]!.eventType === AdvertisingReportType.AdvInd));
    // 10 s of 100..110 ms events: between 90 and 101 of them.
    assert.ok(reports.length >= 90 && reports.length <= 101, `${reports.length} reports`);
  }));

test('filter duplicates reports each advertiser and type once until scanning is enabled again', () =>
  withWorld(3, async ({ hosts, clock }) => {
    const [a, b, scn] = hosts as [RawHost, RawHost, RawHost];
    await bringUp(a);
    await bringUp(b);
    await bringUp(scn);
    await advertise(a);
    await advertise(b, { type: 3 }); // ADV_NONCONN_IND
    const from = scn.mark();
    await scan(scn, { active: true, dup: true });
    await clock.advance(3000);
    const types = scn.events('LeAdvertisingReport', from).map((e) => `${e.reports[0]!.address}/${e.reports[0]!.eventType}`);
    assert.equal(types.length, 3, types.join(' ')); // A: ADV_IND + SCAN_RSP, B: ADV_NONCONN_IND
    assert.equal(new Set(types).size, 3);
    await scn.cmd('LeSetScanEnable', { enable: false, filterDuplicates: false });
    const again = scn.mark();
    await scn.cmd('LeSetScanEnable', { enable: true, filterDuplicates: true });
    await clock.advance(1000);
    assert.equal(scn.events('LeAdvertisingReport', again).length, 3);
  }));

test('LE events stay masked until the host sets Event Mask bit 61 (default mask 0x00001FFFFFFFFFFF)', () =>
  withWorld(2, async ({ hosts, clock }) => {
    const [adv, scn] = hosts as [RawHost, RawHost];
    await bringUp(adv);
    await scn.cmd('Reset', {});
    await scn.cmd('LeSetRandomAddress', { address: 'C1:22:33:44:55:66' });
    await advertise(adv);
    const from = scn.mark();
    await scan(scn);
    await clock.advance(1000);
    assert.equal(scn.events('LeAdvertisingReport', from).length, 0);
    await scn.cmd('SetEventMask', { mask: 0x2000000000000000n | 0x00001fffffffffffn });
    await clock.advance(1000);
    assert.ok(scn.events('LeAdvertisingReport', from).length > 0);
  }));

test('LE Create Connection to an advertiser connects both sides with roles, addresses and parameters; advertising stops', () =>
  withWorld(3, async ({ hosts, clock }) => {
    const [per, cen, obs] = hosts as [RawHost, RawHost, RawHost];
    const perAddr = await bringUp(per);
    const cenAddr = await bringUp(cen);
    await bringUp(obs);
    await advertise(per);
    await scan(obs);
    const fromC = cen.mark();
    const fromP = per.mark();
    await connect(cen, per, perAddr, { interval: 40, latency: 2, timeout: 500 });
    const cc = cen.events('LeConnectionComplete', fromC)[0]!;
    const pc = per.events('LeConnectionComplete', fromP)[0]!;
    assert.deepEqual(
      { ...cc },
      { status: 0, handle: cc.handle, role: 0, peerAddressType: 1, peerAddress: perAddr, connInterval: 40, connLatency: 2, supervisionTimeout: 500, centralClockAccuracy: 0 },
    );
    assert.deepEqual(
      { ...pc },
      { status: 0, handle: pc.handle, role: 1, peerAddressType: 1, peerAddress: cenAddr, connInterval: 40, connLatency: 2, supervisionTimeout: 500, centralClockAccuracy: 5 },
    );
    // The peripheral stopped advertising: the observer hears nothing more from it.
    const fromO = obs.mark();
    await clock.advance(2000);
    assert.equal(obs.events('LeAdvertisingReport', fromO).filter((e) => e.reports[0]!.address === perAddr).length, 0);
    // And a second LE Create Connection may be issued again (the first one completed).
    const again = await cen.cmd('LeCreateConnectionCancel', {});
    assert.equal(again.status, HciStatus.CommandDisallowed);
  }));

test('with LE Enhanced Connection Complete unmasked, only the enhanced event is sent', () =>
  withWorld(2, async (w) => {
    const [per, cen] = w.hosts as [RawHost, RawHost];
    const perAddr = await bringUp(per, TEST_LE_MASK | ENHANCED_CONN_BIT);
    await bringUp(cen, TEST_LE_MASK | ENHANCED_CONN_BIT);
    await advertise(per);
    const from = cen.mark();
    await cen.cmd('LeCreateConnection', {
      scanInterval: 0x60, scanWindow: 0x30, initiatorFilterPolicy: 0, peerAddressType: 1, peerAddress: perAddr, ownAddressType: 1,
      connIntervalMin: 24, connIntervalMax: 24, maxLatency: 0, supervisionTimeout: 400, minCeLength: 0, maxCeLength: 0,
    });
    const e = await cen.waitFor('LeEnhancedConnectionComplete', from);
    assert.equal(e.status, 0);
    assert.equal(e.peerAddress, perAddr);
    assert.equal(e.localResolvablePrivateAddress, '00:00:00:00:00:00');
    assert.equal(cen.events('LeConnectionComplete', from).length, 0);
  }));

test('ACL flows both ways in LL PDUs of 27 octets, with Number Of Completed Packets returning credits', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const rng = seededRandom('acl');
    const sdu1 = rng.bytes(251);
    const sdu2 = rng.bytes(100);
    const fromP = per.mark();
    const fromC = cen.mark();
    cen.sendAcl(c, sdu1);
    per.sendAcl(p, sdu2);
    await runFor(w.clock, () => cen.completed(c, fromC) === 1 && per.completed(p, fromP) === 1, 5000);
    assert.equal(cen.completed(c, fromC), 1);
    assert.equal(per.completed(p, fromP), 1);
    const got = per.aclPackets(fromP).filter((a) => a.handle === p);
    assert.equal(got.length, Math.ceil(251 / 27), 'one ACL packet per 27-octet LL PDU');
    assert.ok(got.every((a) => a.data.length <= 27));
    assert.equal(got[0]!.boundary, 0b10);
    assert.ok(got.slice(1).every((a) => a.boundary === 0b01));
    assert.equal(toHex(reassemble(per, p, fromP)[0]!), toHex(sdu1));
    assert.equal(toHex(reassemble(cen, c, fromC)[0]!), toHex(sdu2));
  }));

test('a host that ignores its credits gets Data Buffer Overflow; the queued packets still arrive', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const from = cen.mark();
    const fromP = per.mark();
    assert.ok(p >= 0);
    for (let i = 0; i < 4; i++) cen.sendAcl(c, Uint8Array.of(i, i, i));
    await runFor(w.clock, () => cen.completed(c, from) === 3, 5000);
    assert.deepEqual(cen.events('DataBufferOverflow', from), [{ linkType: 0x01 }]);
    assert.equal(cen.completed(c, from), 3);
    assert.deepEqual(per.aclPackets(fromP).map((a) => toHex(a.data)), ['000000', '010101', '020202']);
    assert.equal(w.ctrls[1]!.stats.bufferOverflows, 1);
  }, { controller: { aclBuffers: 3 } }));

test('LE Set Data Length raises the LL PDU size to 251 with Data Length Change on both sides', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    const r = await cen.cmd('LeSetDataLength', { handle: c, txOctets: 251, txTime: 2120 });
    assert.equal(r.status, 0);
    assert.deepEqual(r.ret, { handle: c });
    const dc = await cen.waitFor('LeDataLengthChange', fromC);
    const dp = await per.waitFor('LeDataLengthChange', fromP);
    assert.deepEqual({ ...dc }, { handle: c, maxTxOctets: 251, maxTxTime: 2120, maxRxOctets: 27, maxRxTime: 328 });
    assert.deepEqual({ ...dp }, { handle: p, maxTxOctets: 27, maxTxTime: 328, maxRxOctets: 251, maxRxTime: 2120 });
    const sdu = seededRandom('dle').bytes(251);
    const from = per.mark();
    cen.sendAcl(c, sdu);
    await runFor(w.clock, () => per.aclPackets(from).length > 0, 5000);
    const got = per.aclPackets(from);
    assert.equal(got.length, 1);
    assert.equal(toHex(got[0]!.data), toHex(sdu));
  }));

test('a suggested default data length above 27 makes the controller update the data length by itself after connecting', () =>
  withWorld(2, async (w) => {
    const [per, cen] = w.hosts as [RawHost, RawHost];
    const perAddr = await bringUp(per);
    await bringUp(cen);
    await cen.cmd('LeWriteSuggestedDefaultDataLength', { maxTxOctets: 251, maxTxTime: 2120 });
    await per.cmd('LeWriteSuggestedDefaultDataLength', { maxTxOctets: 251, maxTxTime: 2120 });
    await advertise(per);
    const from = per.mark();
    const { p } = await connect(cen, per, perAddr);
    const d = await per.waitFor('LeDataLengthChange', from);
    assert.deepEqual({ ...d }, { handle: p, maxTxOctets: 251, maxTxTime: 2120, maxRxOctets: 251, maxRxTime: 2120 });
  }));

test('the central updates connection parameters: both sides get LE Connection Update Complete after the instant', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    const t0 = w.clock.now();
    const r = await cen.cmd('LeConnectionUpdate', { handle: c, connIntervalMin: 12, connIntervalMax: 12, maxLatency: 4, supervisionTimeout: 300, minCeLength: 0, maxCeLength: 0 });
    assert.equal(r.status, 0);
    const uc = await cen.waitFor('LeConnectionUpdateComplete', fromC);
    const up = await per.waitFor('LeConnectionUpdateComplete', fromP);
    assert.deepEqual({ ...uc }, { status: 0, handle: c, connInterval: 12, connLatency: 4, supervisionTimeout: 300 });
    assert.deepEqual({ ...up }, { status: 0, handle: p, connInterval: 12, connLatency: 4, supervisionTimeout: 300 });
    // The instant lies at least 6 connection events (of 30 ms) after the request.
    assert.ok(w.clock.now() - t0 >= 6 * 30, `${w.clock.now() - t0} ms`);
    // A second update while one is pending is refused; parameters out of range too.
    const bad = await cen.cmd('LeConnectionUpdate', { handle: c, connIntervalMin: 12, connIntervalMax: 6, maxLatency: 0, supervisionTimeout: 300, minCeLength: 0, maxCeLength: 0 });
    assert.equal(bad.status, HciStatus.InvalidHciCommandParameters);
  }));

test('a peripheral-initiated update is rejected with 0x1A when the central host masks the request, and negotiated when it does not', async () => {
  await withWorld(2, async (w) => {
    const { per, p } = await connectedPair(w);
    const from = per.mark();
    const r = await per.cmd('LeConnectionUpdate', { handle: p, connIntervalMin: 12, connIntervalMax: 24, maxLatency: 0, supervisionTimeout: 400, minCeLength: 0, maxCeLength: 0 });
    assert.equal(r.status, 0);
    const u = await per.waitFor('LeConnectionUpdateComplete', from);
    assert.equal(u.status, HciStatus.UnsupportedRemoteFeature);
    assert.equal(u.connInterval, 24, 'parameters unchanged');
  });
  await withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w, TEST_LE_MASK | CONN_PARAM_REQ_BIT);
    const fromC = cen.mark();
    const fromP = per.mark();
    await per.cmd('LeConnectionUpdate', { handle: p, connIntervalMin: 12, connIntervalMax: 16, maxLatency: 1, supervisionTimeout: 400, minCeLength: 0, maxCeLength: 0 });
    const req = await cen.waitFor('LeRemoteConnectionParameterRequest', fromC);
    assert.deepEqual({ ...req }, { handle: c, intervalMin: 12, intervalMax: 16, maxLatency: 1, timeout: 400 });
    const rep = await cen.cmd('LeRemoteConnectionParameterRequestReply', { handle: c, intervalMin: 16, intervalMax: 16, maxLatency: 1, timeout: 400, minCeLength: 0, maxCeLength: 0 });
    assert.deepEqual(rep, { status: 0, ret: { handle: c } });
    const up = await per.waitFor('LeConnectionUpdateComplete', fromP);
    const uc = await cen.waitFor('LeConnectionUpdateComplete', fromC);
    assert.equal(up.connInterval, 16);
    assert.equal(uc.connInterval, 16);
    // A reply with no request pending is Command Disallowed.
    const stray = await cen.cmd('LeRemoteConnectionParameterRequestReply', { handle: c, intervalMin: 16, intervalMax: 16, maxLatency: 1, timeout: 400, minCeLength: 0, maxCeLength: 0 });
    assert.equal(stray.status, HciStatus.CommandDisallowed);
    // The central can refuse: the peripheral gets the reason.
    const from2 = per.mark();
    const fromC2 = cen.mark();
    await per.cmd('LeConnectionUpdate', { handle: p, connIntervalMin: 6, connIntervalMax: 6, maxLatency: 0, supervisionTimeout: 400, minCeLength: 0, maxCeLength: 0 });
    await cen.waitFor('LeRemoteConnectionParameterRequest', fromC2);
    await cen.cmd('LeRemoteConnectionParameterRequestNegativeReply', { handle: c, reason: HciStatus.UnacceptableConnectionParameters });
    const refused = await per.waitFor('LeConnectionUpdateComplete', from2);
    assert.equal(refused.status, HciStatus.UnacceptableConnectionParameters);
  });
});

test('LE Set PHY to 2M: Command Status, then LE PHY Update Complete on both sides; LE Read PHY agrees', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    assert.deepEqual((await cen.cmd('LeReadPhy', { handle: c })).ret, { handle: c, txPhy: 1, rxPhy: 1 });
    const fromC = cen.mark();
    const fromP = per.mark();
    const r = await cen.cmd('LeSetPhy', { handle: c, allPhys: 0, txPhys: 2, rxPhys: 2, phyOptions: 0 });
    assert.equal(r.status, 0);
    assert.deepEqual({ ...(await cen.waitFor('LePhyUpdateComplete', fromC)) }, { status: 0, handle: c, txPhy: 2, rxPhy: 2 });
    assert.deepEqual({ ...(await per.waitFor('LePhyUpdateComplete', fromP)) }, { status: 0, handle: p, txPhy: 2, rxPhy: 2 });
    assert.deepEqual((await per.cmd('LeReadPhy', { handle: p })).ret, { handle: p, txPhy: 2, rxPhy: 2 });
  }));

test('remote version and remote features arrive after a Command Status', () =>
  withWorld(2, async (w) => {
    const { cen, per, c, p } = await connectedPair(w);
    const from = cen.mark();
    assert.equal((await cen.cmd('ReadRemoteVersionInformation', { handle: c })).status, 0);
    const v = await cen.waitFor('ReadRemoteVersionInformationComplete', from);
    assert.deepEqual({ ...v }, { status: 0, handle: c, version: 0x0d, companyId: 0x0059, subversion: w.ctrls[0]!.lmpSubversion });
    const fromP = per.mark();
    assert.equal((await per.cmd('LeReadRemoteFeatures', { handle: p })).status, 0);
    const f = await per.waitFor('LeReadRemoteFeaturesComplete', fromP);
    assert.equal(toHex(f.features), '3f01000000000000');
    const rssi = await cen.cmd('ReadRssi', { handle: c });
    assert.equal(rssi.status, 0);
    assert.ok(rssi.ret!.rssi < -30 && rssi.ret!.rssi > -90);
  }));

const LTK = fromHex('00112233445566778899aabbccddeeff');

test('encryption with matching keys: LTK Request with EDIV/Rand to the peripheral, Encryption Change on both sides', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    const s = await cen.cmd('LeEnableEncryption', { handle: c, rand: 0x0102030405060708n, ediv: 0x1234, ltk: LTK });
    assert.equal(s.status, 0);
    const req = await per.waitFor('LeLongTermKeyRequest', fromP);
    assert.deepEqual({ ...req }, { handle: p, rand: 0x0102030405060708n, ediv: 0x1234 });
    // Bytes of the LTK request: LE Meta, subevent 5, handle, Rand LE, EDIV LE.
    const raw = per.rx.slice(fromP).find((x) => x.event?.name === 'LeLongTermKeyRequest')!.bytes;
    assert.equal(toHex(raw), '043e0d05' + toHex(Uint8Array.of(p & 0xff, p >> 8)) + '0807060504030201' + '3412');
    const rep = await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: LTK });
    assert.deepEqual(rep, { status: 0, ret: { handle: p } });
    assert.deepEqual({ ...(await cen.waitFor('EncryptionChange', fromC)) }, { status: 0, handle: c, enabled: 1 });
    assert.deepEqual({ ...(await per.waitFor('EncryptionChange', fromP)) }, { status: 0, handle: p, enabled: 1 });
    assert.deepEqual((await per.cmd('ReadEncryptionKeySize', { handle: p })).ret, { handle: p, keySize: 16 });
    // A reply now, with no request pending, is Command Disallowed (Zephyr LL behaviour).
    assert.equal((await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: LTK })).status, HciStatus.CommandDisallowed);
    // Re-encryption on an encrypted link: Encryption Key Refresh Complete on both sides.
    const fromC2 = cen.mark();
    const fromP2 = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP2);
    await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: LTK });
    assert.deepEqual({ ...(await cen.waitFor('EncryptionKeyRefreshComplete', fromC2)) }, { status: 0, handle: c });
    assert.deepEqual({ ...(await per.waitFor('EncryptionKeyRefreshComplete', fromP2)) }, { status: 0, handle: p });
    // The data path still works on the encrypted link.
    const fromD = per.mark();
    cen.sendAcl(c, fromHex('0500040001020304'));
    await runFor(w.clock, () => per.aclPackets(fromD).length > 0, 2000);
    assert.equal(toHex(per.aclPackets(fromD)[0]!.data), '0500040001020304');
  }));

test('encryption refused by the peripheral host: the central gets Encryption Change 0x06 PIN or Key Missing, the link stays up', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP);
    assert.deepEqual(await per.cmd('LeLongTermKeyRequestNegativeReply', { handle: p }), { status: 0, ret: { handle: p } });
    assert.deepEqual({ ...(await cen.waitFor('EncryptionChange', fromC)) }, { status: HciStatus.PinOrKeyMissing, handle: c, enabled: 0 });
    await w.clock.advance(1000);
    assert.equal(per.events('EncryptionChange', fromP).length, 0);
    assert.equal(cen.events('DisconnectionComplete', fromC).length + per.events('DisconnectionComplete', fromP).length, 0);
    assert.equal((await cen.cmd('ReadEncryptionKeySize', { handle: c })).status, HciStatus.InsufficientSecurity);
  }));

test('encryption with different keys ends the link on both sides with 0x3D MIC failure', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP);
    await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: fromHex('ff'.repeat(16)) });
    assert.deepEqual({ ...(await cen.waitFor('DisconnectionComplete', fromC)) }, { status: 0, handle: c, reason: HciStatus.ConnectionTerminatedMicFailure });
    assert.deepEqual({ ...(await per.waitFor('DisconnectionComplete', fromP)) }, { status: 0, handle: p, reason: HciStatus.ConnectionTerminatedMicFailure });
    assert.equal(cen.events('EncryptionChange', fromC).length, 0);
    assert.equal(w.ctrls[0]!.connectionCount + w.ctrls[1]!.connectionCount, 0);
  }));

test('zephyr firmware, different keys: the peripheral (first to receive an encrypted PDU) reports 0x3D MIC failure, the central 0x08 a supervision timeout later', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP);
    await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: fromHex('ff'.repeat(16)) });
    const t0 = w.clock.now();
    assert.deepEqual({ ...(await per.waitFor('DisconnectionComplete', fromP)) }, { status: 0, handle: p, reason: HciStatus.ConnectionTerminatedMicFailure });
    const tMic = w.clock.now();
    assert.equal(cen.events('DisconnectionComplete', fromC).length, 0, 'no LL_TERMINATE_IND: the central hears nothing yet');
    assert.equal(w.ctrls[0]!.connectionCount, 0, 'the peripheral left the connection');
    assert.deepEqual({ ...(await cen.waitFor('DisconnectionComplete', fromC)) }, { status: 0, handle: c, reason: HciStatus.ConnectionTimeout });
    assert.ok(w.clock.now() - tMic >= 1000, `supervision timeout after the MIC failure (${w.clock.now() - t0} ms)`);
    assert.equal(per.events('DisconnectionComplete', fromP).length, 1, 'the peripheral host hears of it once');
    assert.equal(w.ctrls[0]!.connectionCount + w.ctrls[1]!.connectionCount, 0);
  }, { air: { firmware: 'zephyr' } }));

test('Read Encryption Key Size and Encryption Change v2 report the key size the pairing on the link negotiated, also when the key is used again', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    // Pairing Request (max key size 10) from the central, Pairing Response (12) from the peripheral, on CID 0x0006.
    cen.sendAcl(c, fromHex('0700 0600 01 04 00 0d 0a 03 03'));
    per.sendAcl(p, fromHex('0700 0600 02 03 00 09 0c 03 03'));
    await runFor(w.clock, () => per.aclPackets(0).length > 0 && cen.aclPackets(0).length > 0, 2000);
    // Encryption Change v2 on the peripheral side (Event Mask Page 2 bit 25).
    await per.cmd('SetEventMaskPage2', { mask: 1n << 25n });
    const fromC = cen.mark();
    const fromP = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP);
    await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: LTK });
    await cen.waitFor('EncryptionChange', fromC);
    assert.deepEqual({ ...(await per.waitFor('EncryptionChangeV2', fromP)) }, { status: 0, handle: p, enabled: 1, keySize: 10 });
    assert.deepEqual((await per.cmd('ReadEncryptionKeySize', { handle: p })).ret, { handle: p, keySize: 10 });
    assert.deepEqual((await cen.cmd('ReadEncryptionKeySize', { handle: c })).ret, { handle: c, keySize: 10 });
    // The same key again (a reconnection would do the same): still 10.
    const fromP2 = per.mark();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    await per.waitFor('LeLongTermKeyRequest', fromP2);
    await per.cmd('LeLongTermKeyRequestReply', { handle: p, ltk: LTK });
    await per.waitFor('EncryptionKeyRefreshComplete', fromP2);
    assert.deepEqual((await per.cmd('ReadEncryptionKeySize', { handle: p })).ret, { handle: p, keySize: 10 });
  }));

test('a peripheral host that never answers the LTK request loses the link with 0x22 after 40 s', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const t0 = w.clock.now();
    await cen.cmd('LeEnableEncryption', { handle: c, rand: 0n, ediv: 0, ltk: LTK });
    const d = await cen.waitFor('DisconnectionComplete', fromC, () => true, 45_000);
    assert.ok(w.clock.now() - t0 >= 40_000);
    assert.equal(d.reason, HciStatus.LmpLlResponseTimeout);
    assert.equal(per.events('DisconnectionComplete').at(-1)!.handle, p);
  }));

test('LE Enable Encryption is central-only; the peripheral gets Command Disallowed', () =>
  withWorld(2, async (w) => {
    const { per, p } = await connectedPair(w);
    assert.equal((await per.cmd('LeEnableEncryption', { handle: p, rand: 0n, ediv: 0, ltk: LTK })).status, HciStatus.CommandDisallowed);
  }));

test('disconnection from either side: 0x16 locally, the reason sent to the peer; handles and credits are released', async () => {
  await withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    assert.equal((await cen.cmd('Disconnect', { handle: c, reason: 0x13 })).status, 0);
    assert.equal((await cen.cmd('Disconnect', { handle: c, reason: 0x13 })).status, HciStatus.CommandDisallowed, 'already disconnecting');
    assert.deepEqual({ ...(await cen.waitFor('DisconnectionComplete', fromC)) }, { status: 0, handle: c, reason: 0x16 });
    assert.deepEqual({ ...(await per.waitFor('DisconnectionComplete', fromP)) }, { status: 0, handle: p, reason: 0x13 });
    assert.equal((await cen.cmd('Disconnect', { handle: c, reason: 0x13 })).status, HciStatus.UnknownConnectionIdentifier);
  });
  await withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    const fromC = cen.mark();
    const fromP = per.mark();
    assert.equal((await per.cmd('Disconnect', { handle: p, reason: 0x99 })).status, HciStatus.InvalidHciCommandParameters);
    // Queued data of a link going down is flushed: no NOCP for it, credits come back with the disconnection.
    per.sendAcl(p, fromHex('01'));
    assert.equal((await per.cmd('Disconnect', { handle: p, reason: 0x15 })).status, 0);
    assert.deepEqual({ ...(await per.waitFor('DisconnectionComplete', fromP)) }, { status: 0, handle: p, reason: 0x16 });
    assert.deepEqual({ ...(await cen.waitFor('DisconnectionComplete', fromC)) }, { status: 0, handle: c, reason: 0x15 });
    // Both can connect again; the freed handle is reused.
    await advertise(per);
    const again = await connect(cen, per, (await per.cmd('ZephyrReadStaticAddresses', {})).ret!.addresses[0]!.address);
    assert.equal(again.c, c);
  });
});

test('a controller powered off or reset: its peer reports Connection Timeout (0x08) after the supervision timeout', async () => {
  await withWorld(2, async (w) => {
    const { cen, c } = await connectedPair(w);
    const from = cen.mark();
    const t0 = w.clock.now();
    w.ctrls[0]!.powerOff();
    const d = await cen.waitFor('DisconnectionComplete', from);
    assert.deepEqual({ ...d }, { status: 0, handle: c, reason: HciStatus.ConnectionTimeout });
    assert.ok(w.clock.now() - t0 >= 4000, 'after the 4 s supervision timeout');
  });
  await withWorld(2, async (w) => {
    const { per, cen, p } = await connectedPair(w);
    const from = per.mark();
    await cen.cmd('Reset', {});
    const d = await per.waitFor('DisconnectionComplete', from);
    assert.deepEqual({ ...d }, { status: 0, handle: p, reason: HciStatus.ConnectionTimeout });
    assert.equal(cen.events('DisconnectionComplete', from).length, 0, 'the reset controller reports nothing');
  });
});

test('three controllers: one peripheral serves two centrals; data on each link reaches only its peer', () =>
  withWorld(3, async ({ hosts, clock }) => {
    const [per, c1, c2] = hosts as [RawHost, RawHost, RawHost];
    const perAddr = await bringUp(per);
    await bringUp(c1);
    await bringUp(c2);
    await advertise(per);
    const l1 = await connect(c1, per, perAddr);
    await scan(c2);
    const from2 = c2.mark();
    await clock.advance(1000);
    assert.equal(c2.events('LeAdvertisingReport', from2).filter((e) => e.reports[0]!.address === perAddr).length, 0, 'advertising stopped with the first connection');
    await advertise(per);
    const l2 = await connect(c2, per, perAddr);
    assert.notEqual(l1.p, l2.p);
    assert.equal(per.events('LeConnectionComplete').length, 2);
    const fromP = per.mark();
    const f1 = c1.mark();
    const f2 = c2.mark();
    c1.sendAcl(l1.c, fromHex('aa'));
    c2.sendAcl(l2.c, fromHex('bb'));
    per.sendAcl(l1.p, fromHex('11'));
    per.sendAcl(l2.p, fromHex('22'));
    await runFor(clock, () => per.aclPackets(fromP).length === 2 && c1.aclPackets(f1).length === 1 && c2.aclPackets(f2).length === 1, 3000);
    const byHandle = new Map(per.aclPackets(fromP).map((a) => [a.handle, toHex(a.data)]));
    assert.equal(byHandle.get(l1.p), 'aa');
    assert.equal(byHandle.get(l2.p), 'bb');
    assert.equal(toHex(c1.aclPackets(f1)[0]!.data), '11');
    assert.equal(toHex(c2.aclPackets(f2)[0]!.data), '22');
  }));

/** A scripted session; returns every byte each host received. */
async function session(seed: string): Promise<string[]> {
  const w = makeWorld(2, { seed });
  try {
    const { per, cen, p, c } = await connectedPair(w);
    await scan(per, { active: true });
    await cen.cmd('LeSetDataLength', { handle: c, txOctets: 251, txTime: 2120 });
    cen.sendAcl(c, seededRandom('payload').bytes(200));
    per.sendAcl(p, seededRandom('payload2').bytes(60));
    await cen.cmd('LeRand', {});
    await w.clock.advance(3000);
    await cen.cmd('Disconnect', { handle: c, reason: 0x13 });
    await w.clock.advance(500);
    return w.hosts.map((h) => h.rx.map((r) => toHex(r.bytes)).join(' '));
  } finally {
    w.close();
  }
}

test('the same seed gives the same byte streams to every host; another seed does not', async () => {
  const a = await session('det-1');
  const b = await session('det-1');
  const c = await session('det-2');
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('throughput on the air follows the connection interval and data length (virtual time)', () =>
  withWorld(2, async (w) => {
    const { per, cen, p, c } = await connectedPair(w);
    await cen.cmd('LeSetDataLength', { handle: c, txOctets: 251, txTime: 2120 });
    await per.waitFor('LeDataLengthChange');
    const from = per.mark();
    const fromC = cen.mark();
    const total = 40;
    let sent = 0;
    const t0 = w.clock.now();
    // Keep the 3 credits busy, like a host honouring flow control.
    while (per.aclPackets(from).length < total && w.clock.now() - t0 < 60_000) {
      const done = cen.completed(c, fromC);
      while (sent < total && sent - done < 3) {
        cen.sendAcl(c, new Uint8Array(244));
        sent++;
      }
      await runFor(w.clock, () => cen.completed(c, fromC) > done || per.aclPackets(from).length === total, 1000);
    }
    const ms = w.clock.now() - t0;
    assert.equal(per.aclPackets(from).length, total);
    assert.ok(per.aclPackets(from).every((a) => a.handle === p && a.data.length === 244));
    // 30 ms interval, 3 packets in flight: about 3 packets per connection event.
    const perEvent = total / (ms / 30);
    assert.ok(perEvent > 1 && perEvent <= 3.5, `${perEvent.toFixed(2)} packets per event over ${ms} ms`);
  }));
