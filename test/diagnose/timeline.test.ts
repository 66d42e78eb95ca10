import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTimeline, eventsOf, type TimelineEvent } from '../../src/diagnose/timeline.js';
import { diagnose, reportToJson } from '../../src/diagnose/diagnose.js';
import { encodeEvent } from '../../src/hci/events.js';
import { encodeAcl } from '../../src/hci/acl.js';
import { concatBytes, toHex } from '../../src/util/bytes.js';
import { ACCESSORY, PHONE_IDENTITY, PHONE_IRK, PHONE_RPA_1, SERVICE_CHANGED_HANDLE, Scenario, cleanFirstPairing } from './builders.js';

function kinds(events: readonly TimelineEvent[]): string[] {
  return events.map((e) => (e.kind === 'smp' || e.kind === 'att' ? `${e.kind}:${e.pdu.type}:${e.from}` : e.kind));
}

test('a first pairing decodes into connection, ATT, SMP (public keys reassembled from 27-byte ACL fragments), encryption, key size and disconnection', () => {
  const t = buildTimeline(cleanFirstPairing('accessory').packets());
  assert.equal(t.perspective, 'accessory');
  assert.equal(t.connections.length, 1);
  const c = t.connections[0];
  assert.ok(c);
  assert.equal(c.localRole, 'peripheral');
  assert.equal(c.roleSource, 'connection-complete');
  assert.equal(c.peer?.onAir.address, PHONE_RPA_1.address);
  assert.equal(c.peer?.isRpa, true);
  assert.deepEqual(c.peer?.identity, PHONE_IDENTITY);
  assert.equal(c.peer?.identitySource, 'pairing');
  assert.deepEqual(kinds(c.events), [
    'connection',
    'att:exchangeMtuRequest:phone',
    'att:exchangeMtuResponse:accessory',
    'att:readRequest:phone',
    'att:errorResponse:accessory',
    'smp:pairingRequest:phone',
    'smp:pairingResponse:accessory',
    'smp:pairingPublicKey:phone',
    'smp:pairingPublicKey:accessory',
    'smp:pairingConfirm:accessory',
    'smp:pairingRandom:phone',
    'smp:pairingRandom:accessory',
    'smp:pairingDhKeyCheck:phone',
    'smp:pairingDhKeyCheck:accessory',
    'ltkRequest',
    'ltkReply',
    'encryptionChange',
    'keySize',
    'smp:identityInformation:accessory',
    'smp:identityAddressInformation:accessory',
    'smp:identityInformation:phone',
    'smp:identityAddressInformation:phone',
    'att:readRequest:phone',
    'disconnection',
  ]);
  // The read response after pairing is counted, not kept.
  assert.equal(c.attCounted, 1);
  const pk = eventsOf(c, 'smp').find((e) => e.pdu.type === 'pairingPublicKey' && e.from === 'phone');
  assert.ok(pk && pk.pdu.type === 'pairingPublicKey');
  assert.equal(toHex(pk.pdu.publicKey), '01'.repeat(64));
  assert.deepEqual(kinds(t.events.filter((e) => !('connId' in e))), ['advertising', 'advertising']);
});

test('the same pairing captured on the phone: the capturing host is the central, PDUs are attributed the same way', () => {
  const t = buildTimeline(cleanFirstPairing('phone').packets());
  assert.equal(t.perspective, 'phone');
  const c = t.connections[0];
  assert.ok(c);
  assert.equal(c.localRole, 'central');
  assert.deepEqual(c.peer?.onAir, ACCESSORY);
  assert.equal(c.peer?.identitySource, 'address');
  const smp = eventsOf(c, 'smp').map((e) => `${e.pdu.type}:${e.from}:${e.origin}`);
  assert.equal(smp[0], 'pairingRequest:phone:local');
  assert.equal(smp[1], 'pairingResponse:accessory:remote');
  assert.deepEqual(kinds(c.events).filter((k) => k === 'startEncryption' || k === 'encryptionChange'), ['startEncryption', 'encryptionChange']);
});

test('key material never reaches the timeline or the report: LTK, IRK and CSRK are zeroed', () => {
  const s = cleanFirstPairing('accessory');
  s.smp('phone', { type: 'encryptionInformation', ltk: new Uint8Array(16).fill(0xab) });
  const t = buildTimeline(s.packets());
  for (const e of t.events) {
    if (e.kind === 'smp' && e.pdu.type === 'identityInformation') assert.equal(toHex(e.pdu.irk), '00'.repeat(16));
    if (e.kind === 'smp' && e.pdu.type === 'encryptionInformation') assert.equal(toHex(e.pdu.ltk), '00'.repeat(16));
  }
  const json = reportToJson(diagnose(t));
  assert.ok(!json.includes(toHex(PHONE_IRK)));
  assert.ok(!json.includes('ab'.repeat(16)));
  // The IRK is still used to resolve later addresses.
  assert.equal(toHex(t.irks[0]?.irk ?? new Uint8Array()), toHex(PHONE_IRK));
});

test('a capture that starts mid-connection: the role is inferred from the LTK request and earlier PDUs are attributed afterwards', () => {
  const s = new Scenario('accessory');
  s.att('phone', { type: 'readRequest', handle: 0x0010 });
  s.att('accessory', { type: 'errorResponse', requestOpcode: 0x0a, handle: 0x0010, errorCode: 0x0f });
  s.startEncryption();
  const t = buildTimeline(s.packets());
  const c = t.connections[0];
  assert.ok(c);
  assert.equal(c.localRole, 'peripheral');
  assert.equal(c.roleSource, 'inferred');
  assert.equal(c.peer, undefined);
  assert.deepEqual(kinds(c.events), ['att:readRequest:phone', 'att:errorResponse:accessory', 'ltkRequest']);
});

test('an Enhanced Connection Complete resolved by the controller (and its v2 form) gives the identity from the resolving list', () => {
  const s = new Scenario('accessory');
  s.connect({ controllerResolved: { identity: PHONE_IDENTITY, rpa: PHONE_RPA_1 } });
  s.disconnect();
  // v2 (subevent 0x29): the v1 layout plus advertising handle and sync handle.
  const v1 = encodeEvent('LeEnhancedConnectionComplete', {
    status: 0, handle: 0x41, role: 1, peerAddressType: 0x02, peerAddress: PHONE_IDENTITY.address,
    localResolvablePrivateAddress: '00:00:00:00:00:00', peerResolvablePrivateAddress: PHONE_RPA_1.address,
    connInterval: 24, connLatency: 0, supervisionTimeout: 500, centralClockAccuracy: 0,
  });
  const v2 = concatBytes(v1, Uint8Array.of(0x00, 0xff, 0xff));
  v2[1] = (v2[1] as number) + 3;
  v2[2] = 0x29;
  s.raw('controller->host', concatBytes(Uint8Array.of(0x04), v2));
  const t = buildTimeline(s.packets());
  assert.equal(t.connections.length, 2);
  for (const c of t.connections) {
    assert.deepEqual(c.peer?.identity, PHONE_IDENTITY);
    assert.equal(c.peer?.identitySource, 'controller');
    assert.deepEqual(c.peer?.onAir, PHONE_RPA_1);
  }
  assert.equal(t.connections[1]?.handle, 0x41);
});

test('a resolver (the bond store) resolves an RPA at connection time', () => {
  const s = new Scenario('accessory');
  s.connect({ phone: PHONE_RPA_1 });
  const t = buildTimeline(s.packets(), { resolveAddress: (a) => (a.address === PHONE_RPA_1.address ? PHONE_IDENTITY : undefined) });
  assert.equal(t.connections[0]?.peer?.identitySource, 'resolver');
});

test('an L2CAP header split across ACL fragments is reassembled; a continuation without a start and a malformed event are decode errors, not exceptions', () => {
  const s = new Scenario('accessory');
  s.connect();
  s.smp('phone', { type: 'pairingRequest', ioCapability: 4, oobDataFlag: 0, authReq: 0x0d, maxKeySize: 16, initiatorKeyDist: 3, responderKeyDist: 3 }, 2);
  s.raw('controller->host', concatBytes(Uint8Array.of(0x02), encodeAcl(0x40, 0b01, Uint8Array.of(1, 2, 3))));
  s.raw('controller->host', Uint8Array.of(0x04, 0x05, 0x04, 0x00)); // Disconnection Complete, length 4, 1 byte present
  s.raw('controller->host', Uint8Array.of(0x02, 0x40)); // ACL header cut short
  s.raw('controller->host', concatBytes(Uint8Array.of(0x02), encodeAcl(0x40, 0b10, Uint8Array.of(1, 0, 6, 0, 0x05)))); // SMP PDU too short
  const t = buildTimeline(s.packets());
  const c = t.connections[0];
  assert.ok(c);
  assert.deepEqual(kinds(c.events).slice(0, 2), ['connection', 'smp:pairingRequest:phone']);
  const errors = t.events.filter((e) => e.kind === 'decodeError').map((e) => (e.kind === 'decodeError' ? e.message : ''));
  assert.equal(errors.length, 4);
  assert.match(errors[0] ?? '', /continuation on handle 0x40 without a start fragment/);
  assert.match(errors[1] ?? '', /HCI event 0x05: length field 4, 1 parameter bytes present/);
  assert.match(errors[2] ?? '', /ACL packet of 1 bytes/);
  assert.match(errors[3] ?? '', /SMP: Pairing Failed is 2 bytes, got 1/);
  const r = diagnose(t);
  assert.equal(r.decodeErrors.count, 4);
});

test('the Service Changed handle is learned from Find Information as well as from characteristic discovery', () => {
  const s = new Scenario('accessory');
  s.connect();
  s.att('phone', { type: 'findInformationRequest', startHandle: 1, endHandle: 0xffff });
  s.att('accessory', { type: 'findInformationResponse', format: 1, entries: [{ handle: 0x0007, uuid: Uint8Array.of(0x05, 0x2a) }] });
  s.serviceChanged(0x0007);
  s.serviceChanged(SERVICE_CHANGED_HANDLE); // not the learned handle: an ordinary indication
  const t = buildTimeline(s.packets());
  assert.equal(t.serviceChangedHandle, 0x0007);
  const c = t.connections[0];
  assert.ok(c);
  assert.deepEqual(kinds(c.events).slice(-2), ['serviceChanged', 'att:handleValueIndication:accessory']);
  const sc = eventsOf(c, 'serviceChanged')[0];
  assert.equal(sc?.guessed, false);
});

test('connection handles are reused: a new LE Connection Complete on the same handle starts a new connection record', () => {
  const s = cleanFirstPairing('accessory');
  s.connect();
  s.startEncryption();
  const t = buildTimeline(s.packets());
  assert.deepEqual(t.connections.map((c) => [c.id, c.handle, c.end === undefined]), [
    [1, 0x40, false],
    [2, 0x40, true],
  ]);
  assert.equal(eventsOf(t.connections[1] as NonNullable<(typeof t.connections)[number]>, 'ltkRequest').length, 1);
});
