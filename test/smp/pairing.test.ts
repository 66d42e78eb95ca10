/**
 * The SMP state machine, one behaviour per test: a scripted phone (computing its side with our
 * crypto) injects PDUs into the peripheral session and the test asserts the exact bytes SMP sends
 * and what it asks of HCI. Timeouts and back-off run on a VirtualClock. The last tests pair two
 * SmpSessions back to back through a fake controller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { PairingBackoff } from '../../src/smp/backoff.js';
import { selectAssociation } from '../../src/smp/association.js';
import { DEBUG_PRIVATE_KEY, f4, f5, f6, g2, ioCapField, keyPairFromPrivateKey, passkeyAsR } from '../../src/crypto/index.js';
import { addressForCrypto } from '../../src/smp/address-field.js';
import { SmpError } from '../../src/smp/errors.js';
import { ALLOWED, SmpSession } from '../../src/smp/pairing.js';
import { SmpReason, decodeSmp, encodeSmp, type SmpPdu } from '../../src/smp/pdu.js';
import type { BondRecord } from '../../src/bonds/types.js';
import type { SmpPolicy } from '../../src/smp/types.js';
import type { Address } from '../../src/util/address.js';
import { bytesEqual, fromHex, toHex } from '../../src/util/bytes.js';
import { VirtualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { seededRandom } from '../../src/util/random.js';
import {
  CENTRAL_ADDR,
  CENTRAL_IDENTITY,
  FakeBondStore,
  PERIPHERAL_ADDR,
  PERIPHERAL_IDENTITY,
  ScriptedCentral,
  ZERO16,
  drain,
  eventsNamed,
  features,
  inject,
  linkBackToBack,
  linkTicks,
  makeSide,
  rpaFor,
  type Side,
} from './harness.js';

const PERIPHERAL_ID_HEX = {
  irk: '08' + toHex(PERIPHERAL_IDENTITY.irk),
  addr: '09' + '01' + 'aa99887766d5',
};

/** Runs a Just Works pairing from the Pairing Request up to (not including) the DHKey check. */
async function upToDhKeyCheck(p: Side, c: ScriptedCentral, req: Partial<ReturnType<typeof features>> = {}): Promise<void> {
  await inject(p.session, c.request(req));
  c.takeResponse(p.lower.takePdus()[0]);
  await inject(p.session, c.publicKey());
  const [pk, conf] = p.lower.takePdus();
  c.takePublicKey(pk);
  c.takeConfirm(conf);
  await inject(p.session, c.random());
  c.takeRandom(p.lower.takePdus()[0]);
}

/** A full Just Works pairing with key distribution; returns the LTK the central derived. */
async function pairJustWorks(p: Side, c: ScriptedCentral, identity: { irk: Uint8Array; address: Address } | undefined = CENTRAL_IDENTITY): Promise<Uint8Array> {
  await upToDhKeyCheck(p, c);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  p.lower.takePdus();
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  p.lower.take();
  if (identity) {
    await inject(p.session, { type: 'identityInformation', irk: identity.irk });
    await inject(p.session, { type: 'identityAddressInformation', address: identity.address });
  }
  return c.keysF5().ltk;
}

function bond(peer: Address, ltk: Uint8Array, extra: Partial<BondRecord> = {}): BondRecord {
  return {
    peer,
    ltk,
    ediv: 0,
    rand: 0n,
    keySize: 16,
    authenticated: false,
    secureConnections: true,
    cccd: { 42: 1 },
    gatt: { clientFeatures: 0, changeAware: true },
    createdAt: '2025-01-01T00:00:00Z',
    lastSeenAt: '2025-01-01T00:00:00Z',
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// Success

test('Just Works as peripheral: exact bytes from Pairing Request to key distribution, LTK given only after the DHKey check, bond saved', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x04, authReq: 0x0d, initiatorKeyDist: 0x03, responderKeyDist: 0x03 }));
  // NoInputNoOutput, bond+SC (no MITM: no IO), 16, EncKey cleared (SC), IdKey both ways.
  assert.deepEqual(p.lower.take(), ['02030009100202']);
  c.takeResponse({ type: 'pairingResponse', ioCapability: 3, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 2, responderKeyDist: 2 });
  assert.equal(p.session.phase, 'waitPublicKey');
  assert.equal(p.session.model, 'justWorks');

  await inject(p.session, c.publicKey());
  const [pk, conf] = p.lower.takePdus();
  assert.equal(pk?.type, 'pairingPublicKey');
  c.takePublicKey(pk);
  c.takeConfirm(conf);
  await inject(p.session, c.random());
  const sent = p.lower.takePdus();
  assert.equal(sent.length, 1);
  c.takeRandom(sent[0]);
  assert.ok(c.confirmMatches(), 'Cb = f4(PKbx, PKax, Nb, 0)');
  assert.deepEqual(p.lower.calls, [], 'nothing handed to the controller yet');

  // An LTK request now (before the check) would be refused; here the check comes first.
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.deepEqual(p.lower.take(), ['0d' + toHex(c.eb())], 'Eb = f6(MacKey, Nb, Na, 0, IOcapB, B, A)');
  assert.equal(p.session.phase, 'waitEncryption');
  assert.deepEqual(p.lower.calls, []);

  const ltk = c.keysF5().ltk;
  p.session.onLtkRequest(0n, 0);
  await drain(p.session);
  assert.deepEqual(p.lower.calls, [`ltkReply ${toHex(ltk)}`]);

  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  assert.deepEqual(p.lower.calls.slice(1), ['readKeySize']);
  // The responder distributes first: IRK, then identity address (static random D5:66:77:88:99:AA).
  assert.deepEqual(p.lower.take(), [PERIPHERAL_ID_HEX.irk, PERIPHERAL_ID_HEX.addr]);
  assert.equal(p.session.encrypted, true);
  assert.equal(p.session.level, 2);
  assert.equal(eventsNamed(p.events, 'securityChanged').at(-1)?.[0].level, 2);
  assert.equal(p.session.phase, 'waitKeys');

  await inject(p.session, { type: 'identityInformation', irk: CENTRAL_IDENTITY.irk });
  assert.equal(eventsNamed(p.events, 'paired').length, 0, 'not paired before the identity address');
  await inject(p.session, { type: 'identityAddressInformation', address: CENTRAL_IDENTITY.address });
  assert.deepEqual(p.lower.take(), [], 'nothing more sent');

  const [paired] = eventsNamed(p.events, 'paired');
  assert.ok(paired);
  assert.equal(paired[0].level, 2);
  assert.equal(paired[0].bonded, true);
  assert.equal(paired[0].keySize, 16);
  assert.equal(paired[0].model, 'justWorks');
  assert.deepEqual(paired[0].peerIdentity, CENTRAL_IDENTITY.address);
  assert.equal(toHex(paired[0].ltk), toHex(ltk));

  const stored = p.bonds.get(CENTRAL_IDENTITY.address);
  assert.ok(stored);
  assert.equal(toHex(stored.ltk), toHex(ltk));
  assert.equal(toHex(stored.peerIrk ?? new Uint8Array()), toHex(CENTRAL_IDENTITY.irk));
  assert.equal(stored.ediv, 0);
  assert.equal(stored.rand, 0n);
  assert.equal(stored.authenticated, false);
  assert.equal(stored.secureConnections, true);
  assert.equal(eventsNamed(p.events, 'bondSaved').length, 1);
  assert.deepEqual(eventsNamed(p.events, 'identityResolved').at(-1)?.[0].identity, CENTRAL_IDENTITY.address);
  assert.equal(p.session.phase, 'idle');
  assert.equal(p.session.hasLtk(), true);
  const [started] = eventsNamed(p.events, 'pairingStarted');
  assert.equal(started?.[0].role, 'responder');
  assert.equal(eventsNamed(p.events, 'pairingRequestReceived')[0]?.[0].request.authReq, 0x0d);
});

test('no bond when the central does not set the bonding flag: keys not distributed, link still encrypted (L2)', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ authReq: 0x08, initiatorKeyDist: 0x03, responderKeyDist: 0x03 }));
  // Our AuthReq still says bonding (we are bondable); both distributions are 0.
  assert.deepEqual(p.lower.take(), ['02030009100000']);
  // The same flow on a fresh side, to completion.
  const p3 = makeSide();
  const c3 = new ScriptedCentral();
  await upToDhKeyCheck(p3, c3, { authReq: 0x08 });
  await inject(p3.session, { type: 'pairingDhKeyCheck', check: c3.ea() });
  p3.lower.take();
  p3.session.onLtkRequest(0n, 0);
  p3.session.onEncryptionChange(0, true);
  await drain(p3.session);
  assert.deepEqual(p3.lower.take(), [], 'no key distribution');
  const [paired] = eventsNamed(p3.events, 'paired');
  assert.equal(paired?.[0].bonded, false);
  assert.equal(paired?.[0].level, 2);
  assert.equal(p3.bonds.puts, 0);
  assert.equal(p3.session.hasLtk(), true, 'this connection has a key');
});

test('a device without a local identity distributes nothing and still takes the peer IdKey', async () => {
  const p = makeSide({ identity: null });
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  assert.deepEqual(p.lower.take(), ['02030009100200']);
});

// ---------------------------------------------------------------------------------------------
// Feature exchange failures

test('Pairing Request without the SC bit gets Pairing Failed 0x03 (LESC only)', async () => {
  const p = makeSide();
  await inject(p.session, fromHex('01040005100303'));
  assert.deepEqual(p.lower.take(), ['0503']);
  const [f] = eventsNamed(p.events, 'pairingFailed');
  assert.equal(f?.[0].reason, SmpReason.AuthenticationRequirements);
  assert.equal(f?.[0].by, 'local');
  assert.match(f?.[0].message ?? '', /LE Secure Connections only/);
  assert.equal(p.session.phase, 'idle');
  assert.equal(p.backoff.failures(CENTRAL_ADDR), 0, 'a refusal before the procedure started is not a failed attempt');
});

test('key size: a peer offering less than the minimum gets 0x06; out-of-range sizes (< 7, > 16) get 0x06 too, as Zephyr and Linux send; a lower minimum accepts and masks the LTK', async () => {
  const p = makeSide();
  await inject(p.session, fromHex('0104000d0f0303'));
  assert.deepEqual(p.lower.take(), ['0506']);
  await inject(p.session, fromHex('0104000d110303'));
  assert.deepEqual(p.lower.take(), ['0506'], 'Maximum Encryption Key Size 17: 0x06 Encryption Key Size');
  await inject(p.session, fromHex('0104000d060303'));
  assert.deepEqual(p.lower.take(), ['0506'], 'Maximum Encryption Key Size 6: 0x06 Encryption Key Size');
  await inject(p.session, fromHex('0104000d000303'));
  assert.deepEqual(p.lower.take(), ['0506'], 'Maximum Encryption Key Size 0: 0x06 Encryption Key Size');

  const q = makeSide({ policy: { minKeySize: 10 } });
  const c = new ScriptedCentral();
  await upToDhKeyCheck(q, c, { maxKeySize: 10 });
  await inject(q.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.equal(q.lower.take().length, 1);
  q.session.onLtkRequest(0n, 0);
  await drain(q.session);
  const masked = c.keysF5(10).ltk;
  assert.equal(toHex(masked.subarray(10)), '000000000000');
  assert.deepEqual(q.lower.calls, [`ltkReply ${toHex(masked)}`]);
});

test('a controller that cannot report the key size (no Read Encryption Key Size): the negotiated 10-byte key stands, no disconnect', async () => {
  const q = makeSide({ policy: { minKeySize: 10 } });
  const c = new ScriptedCentral();
  await upToDhKeyCheck(q, c, { maxKeySize: 10 });
  await inject(q.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  q.lower.take();
  q.lower.keySize = undefined;
  q.session.onLtkRequest(0n, 0);
  q.session.onEncryptionChange(0, true);
  await drain(q.session);
  assert.deepEqual(q.lower.calls.slice(1), ['readKeySize'], 'no disconnect');
  assert.equal(q.session.encrypted, true);
  assert.equal(eventsNamed(q.events, 'securityChanged').at(-1)?.[0].keySize, 10);
});

test('a short key read back after Encryption Change disconnects with 0x05 Authentication Failure', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await upToDhKeyCheck(p, c);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  p.lower.take();
  p.lower.keySize = 7;
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  assert.deepEqual(p.lower.calls.slice(1), ['readKeySize', 'disconnect 0x05']);
  assert.deepEqual(p.lower.take(), ['0506'], 'Pairing Failed 0x06 Encryption Key Size before the disconnect');
  assert.equal(p.session.encrypted, false);
  assert.equal(eventsNamed(p.events, 'paired').length, 0);
});

test('pairing window closed: Pairing Request gets 0x05 Pairing Not Supported', async () => {
  let open = false;
  const p = makeSide({ policy: { isPairingAllowed: () => open } });
  await inject(p.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(p.lower.take(), ['0505']);
  open = true;
  await inject(p.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.equal(p.lower.take()[0]?.slice(0, 2), '02');
});

test('requireMitm refuses a Just Works pairing with 0x03; OOB flagged by the peer gets 0x02', async () => {
  const p = makeSide({ policy: { requireMitm: true } });
  await inject(p.session, encodeSmp({ type: 'pairingRequest', ...features({ ioCapability: 0x03 }) }));
  assert.deepEqual(p.lower.take(), ['0503']);
  const q = makeSide();
  await inject(q.session, encodeSmp({ type: 'pairingRequest', ...features({ oobDataFlag: 1 }) }));
  assert.deepEqual(q.lower.take(), ['0502']);
});

// ---------------------------------------------------------------------------------------------
// Public key validation

test('an invalid peer public key (off the curve, or all zero) gets 0x0B DHKey Check Failed at once', async () => {
  for (const bad of [new Uint8Array(64), (() => {
    const k = new ScriptedCentral().keys.publicKey.slice();
    k[40] = (k[40] as number) ^ 1;
    return k;
  })()]) {
    const p = makeSide();
    const c = new ScriptedCentral();
    await inject(p.session, c.request());
    p.lower.take();
    await inject(p.session, { type: 'pairingPublicKey', publicKey: bad });
    assert.deepEqual(p.lower.take(), ['050b'], 'no public key of ours, no confirm');
    assert.equal(eventsNamed(p.events, 'pairingFailed')[0]?.[0].reason, 0x0b);
    assert.equal(p.session.phase, 'idle');
  }
});

test('the debug public key is refused with 0x03 unless allowDebugKeys', async () => {
  const debugKeys = keyPairFromPrivateKey(DEBUG_PRIVATE_KEY);
  const p = makeSide();
  const c = new ScriptedCentral(CENTRAL_ADDR, PERIPHERAL_ADDR, 'dbg', debugKeys);
  await inject(p.session, c.request());
  p.lower.take();
  await inject(p.session, c.publicKey());
  assert.deepEqual(p.lower.take(), ['0503']);

  const q = makeSide({ policy: { allowDebugKeys: true } });
  const d = new ScriptedCentral(CENTRAL_ADDR, PERIPHERAL_ADDR, 'dbg', debugKeys);
  await inject(q.session, d.request());
  q.lower.take();
  await inject(q.session, d.publicKey());
  assert.deepEqual(q.lower.takePdus().map((x) => x.type), ['pairingPublicKey', 'pairingConfirm']);
});

test('central: a Pairing Response with a Maximum Encryption Key Size outside 7..16 gets 0x06 Encryption Key Size', async () => {
  for (const size of [6, 17]) {
    const c = makeSide({ role: 'central' });
    const pairing = c.session.pair();
    pairing.catch(() => undefined);
    await drain(c.session);
    c.lower.take();
    await inject(c.session, { type: 'pairingResponse', ioCapability: 3, oobDataFlag: 0, authReq: 0x09, maxKeySize: size, initiatorKeyDist: 2, responderKeyDist: 2 });
    assert.deepEqual(c.lower.take(), ['0506'], `Maximum Encryption Key Size ${size}`);
    await assert.rejects(pairing, (e: unknown) => e instanceof SmpError && e.reason === 0x06);
  }
});

test('central: a responder reflecting our own public key gets 0x0B', async () => {
  const c = makeSide({ role: 'central' });
  const pairing = c.session.pair();
  pairing.catch(() => undefined);
  await drain(c.session);
  const [req] = c.lower.takePdus();
  assert.equal(req?.type, 'pairingRequest');
  await inject(c.session, { type: 'pairingResponse', ioCapability: 3, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 2, responderKeyDist: 2 });
  const [ourKey] = c.lower.takePdus();
  assert.equal(ourKey?.type, 'pairingPublicKey');
  await inject(c.session, ourKey as SmpPdu);
  assert.deepEqual(c.lower.take(), ['050b']);
  await assert.rejects(pairing, (e: unknown) => e instanceof SmpError && e.reason === 0x0b);
});

// ---------------------------------------------------------------------------------------------
// Authentication failures

test('a wrong DHKey check gets 0x0B and no key ever reaches the controller', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await upToDhKeyCheck(p, c);
  const wrong = c.ea();
  wrong[0] = (wrong[0] as number) ^ 0x01;
  await inject(p.session, { type: 'pairingDhKeyCheck', check: wrong });
  assert.deepEqual(p.lower.take(), ['050b']);
  p.session.onLtkRequest(0n, 0);
  await drain(p.session);
  assert.deepEqual(p.lower.calls, ['ltkNegativeReply']);
  assert.equal(eventsNamed(p.events, 'ltkRequestUnknown').length, 1);
  assert.equal(p.bonds.puts, 0);
});

test('SweynTooth: the central starting encryption before the DHKey check gets a negative reply and 0x08', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await upToDhKeyCheck(p, c);
  p.session.onLtkRequest(0n, 0);
  await drain(p.session);
  assert.deepEqual(p.lower.calls, ['ltkNegativeReply']);
  assert.deepEqual(p.lower.take(), ['0508']);
  assert.equal(p.session.phase, 'idle');
  // The DHKey check arriving afterwards belongs to no procedure.
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.deepEqual(p.lower.take(), ['0508']);
  assert.equal(p.lower.calls.filter((x) => x.startsWith('ltkReply')).length, 0);
});

test('SweynTooth: Public Key before Pairing Request, Confirm before public keys, DHKey Check skipping Random: each 0x08', async () => {
  const c = new ScriptedCentral();
  const p = makeSide();
  await inject(p.session, c.publicKey());
  assert.deepEqual(p.lower.take(), ['0508']);
  assert.equal(p.session.phase, 'idle');

  const q = makeSide();
  await inject(q.session, c.request());
  q.lower.take();
  await inject(q.session, { type: 'pairingConfirm', confirm: ZERO16 });
  assert.deepEqual(q.lower.take(), ['0508']);

  const r = makeSide();
  await inject(r.session, c.request());
  r.lower.take();
  await inject(r.session, c.publicKey());
  r.lower.take();
  await inject(r.session, { type: 'pairingDhKeyCheck', check: ZERO16 });
  assert.deepEqual(r.lower.take(), ['0508']);
  assert.deepEqual(r.lower.calls, []);
});

test('duplicate PDUs: a second Pairing Request, a second Public Key, a second Random each end the procedure with 0x08', async () => {
  const c = new ScriptedCentral();
  const p = makeSide();
  await inject(p.session, c.request());
  p.lower.take();
  await inject(p.session, c.request());
  assert.deepEqual(p.lower.take(), ['0508']);

  const q = makeSide();
  await inject(q.session, c.request());
  await inject(q.session, c.publicKey());
  q.lower.take();
  await inject(q.session, c.publicKey());
  assert.deepEqual(q.lower.take(), ['0508']);

  const r = makeSide();
  await upToDhKeyCheck(r, new ScriptedCentral());
  await inject(r.session, { type: 'pairingRandom', random: ZERO16 });
  assert.deepEqual(r.lower.take(), ['0508']);
});

test('malformed PDUs are answered, never thrown: truncated 0x0A, unknown code 0x07, wrong-role PDUs 0x07, a malformed Pairing Failed is not answered', async () => {
  const p = makeSide();
  await inject(p.session, fromHex('010400'));
  assert.deepEqual(p.lower.take(), ['050a']);
  await inject(p.session, fromHex('0c0102'));
  assert.deepEqual(p.lower.take(), ['050a']);
  await inject(p.session, new Uint8Array(0));
  assert.deepEqual(p.lower.take(), ['050a']);
  await inject(p.session, fromHex('2a00'));
  assert.deepEqual(p.lower.take(), ['0507']);
  await inject(p.session, fromHex('0b0d'));
  assert.deepEqual(p.lower.take(), ['0507'], 'Security Request to a peripheral');
  await inject(p.session, encodeSmp({ type: 'pairingResponse', ...features() }));
  assert.deepEqual(p.lower.take(), ['0507'], 'Pairing Response to a peripheral');
  // Mid-procedure: a truncated Random ends it with 0x0A.
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  await inject(p.session, c.publicKey());
  p.lower.take();
  await inject(p.session, fromHex('04' + '00'.repeat(15)));
  assert.deepEqual(p.lower.take(), ['050a']);
  assert.equal(p.session.phase, 'idle');
  // A malformed Pairing Failed during a procedure ends it silently.
  const q = makeSide();
  await inject(q.session, c.request());
  q.lower.take();
  await inject(q.session, fromHex('050b00'));
  assert.deepEqual(q.lower.take(), []);
  assert.equal(q.session.phase, 'idle');
  assert.equal(eventsNamed(q.events, 'pairingFailed').at(-1)?.[0].by, 'peer');
});

test('Pairing Failed from the peer ends the procedure without an answer and reports the reason', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  p.lower.take();
  await inject(p.session, { type: 'pairingFailed', reason: SmpReason.NumericComparisonFailed });
  assert.deepEqual(p.lower.take(), []);
  const [f] = eventsNamed(p.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'peer');
  assert.equal(f?.[0].reason, 0x0c);
  assert.equal(f?.[0].reasonName, 'Numeric Comparison Failed');
  assert.equal(p.session.phase, 'idle');
});

test('every phase lists the PDUs allowed next; Pairing Failed is handled in all of them', () => {
  assert.deepEqual(ALLOWED.waitPublicKey, ['pairingPublicKey']);
  assert.deepEqual(ALLOWED.waitDhKeyCheck, ['pairingDhKeyCheck']);
  assert.deepEqual(ALLOWED.waitEncryption, []);
  assert.deepEqual(ALLOWED.timedOut, []);
});

// ---------------------------------------------------------------------------------------------
// Timeout

test('30 s SMP timeout: event emitted, later PDUs ignored, no new pairing on this link', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  p.lower.take();
  await p.clock.advance(29_999);
  assert.equal(eventsNamed(p.events, 'timeout').length, 0);
  await p.clock.advance(1);
  assert.equal(eventsNamed(p.events, 'timeout').length, 1);
  const [f] = eventsNamed(p.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'timeout');
  assert.equal(f?.[0].reason, undefined);
  assert.equal(p.session.phase, 'timedOut');
  assert.deepEqual(p.lower.take(), [], 'no Pairing Failed after a timeout');
  await inject(p.session, c.publicKey());
  await inject(p.session, c.request());
  await inject(p.session, fromHex('ff'));
  assert.deepEqual(p.lower.take(), [], 'nothing sent any more');
  assert.equal(p.clock.pendingCount, 0, 'no timer left');
});

test('the SMP timer restarts with every PDU we send and stops when pairing completes', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  await p.clock.advance(20_000);
  await inject(p.session, c.publicKey());
  await p.clock.advance(20_000);
  assert.equal(eventsNamed(p.events, 'timeout').length, 0, 'restarted by our Public Key and Confirm');
  const p2 = makeSide();
  await pairJustWorks(p2, new ScriptedCentral());
  assert.equal(eventsNamed(p2.events, 'paired').length, 1);
  assert.equal(p2.clock.pendingCount, 0);
  await p2.clock.advance(60_000);
  assert.equal(eventsNamed(p2.events, 'timeout').length, 0);
});

// ---------------------------------------------------------------------------------------------
// Repeated attempts

test('repeated attempts: after a failure a new Pairing Request gets 0x09 within a growing interval, shared across sessions', async () => {
  const clock = new VirtualClock();
  const backoff = new PairingBackoff(clock, { initialMs: 2_000, maxMs: 60_000 });
  const fail = async (s: Side): Promise<void> => {
    const c = new ScriptedCentral();
    await upToDhKeyCheck(s, c);
    await inject(s.session, { type: 'pairingDhKeyCheck', check: ZERO16 });
    assert.deepEqual(s.lower.take(), ['050b']);
  };
  const p = makeSide({ clock, backoff });
  await fail(p);
  await inject(p.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(p.lower.take(), ['0509']);
  assert.match(eventsNamed(p.events, 'pairingFailed').at(-1)?.[0].message ?? '', /Repeated Attempts/);
  // Another connection from the same peer shares the table.
  const q = makeSide({ clock, backoff });
  await inject(q.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(q.lower.take(), ['0509']);
  await clock.advance(2_000);
  await fail(q);
  // Second failure: 4 s.
  await clock.advance(3_000);
  await inject(q.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(q.lower.take(), ['0509']);
  await clock.advance(1_000);
  await inject(q.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.equal(q.lower.take()[0]?.slice(0, 2), '02', 'allowed after 4 s');
  // Another peer is not affected.
  const other = makeSide({ clock, backoff, peerAddress: { type: 'public', address: '00:11:22:33:44:55' } });
  await inject(other.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.equal(other.lower.take()[0]?.slice(0, 2), '02');
});

test('the back-off table grows exponentially up to its cap, forgets, clears on success and stays bounded', async () => {
  const clock = new VirtualClock();
  const b = new PairingBackoff(clock, { initialMs: 1_000, maxMs: 8_000, forgetAfterMs: 60_000, maxEntries: 3 });
  const a: Address = { type: 'public', address: '00:00:00:00:00:01' };
  assert.deepEqual([1, 2, 3, 4, 5].map(() => b.recordFailure(a)), [1_000, 2_000, 4_000, 8_000, 8_000]);
  assert.equal(b.remainingMs(a), 8_000);
  await clock.advance(8_000 + 60_000);
  assert.equal(b.failures(a), 0, 'forgotten');
  b.recordFailure(a);
  b.recordSuccess(a);
  assert.equal(b.remainingMs(a), 0);
  for (let i = 2; i < 10; i++) b.recordFailure({ type: 'random', address: `00:00:00:00:00:0${i}` });
  assert.equal(b.size, 3);
});

// ---------------------------------------------------------------------------------------------
// Re-pairing and bonds

test("re-pairing policy 'reject': a bonded peer asking to pair gets 0x03 and the bond is untouched", async () => {
  const oldLtk = fromHex('11'.repeat(16));
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_IDENTITY.address, oldLtk, { peerIrk: CENTRAL_IDENTITY.irk })]);
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  const p = makeSide({ bonds, peerAddress: rpa });
  assert.equal(eventsNamed(p.events, 'identityResolved')[0]?.[0].source, 'bond', 'start() resolved the RPA');
  assert.deepEqual(p.session.peerIdentity, CENTRAL_IDENTITY.address, 'RPA resolved through the bond');
  await inject(p.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  assert.deepEqual(p.lower.take(), ['0503']);
  assert.match(eventsNamed(p.events, 'pairingFailed')[0]?.[0].message ?? '', /already holds a bond/);
  assert.equal(toHex(bonds.get(CENTRAL_IDENTITY.address)?.ltk ?? new Uint8Array()), toHex(oldLtk));
});

test("re-pairing policy 'replace': the old bond is replaced only after the new pairing completed", async () => {
  const oldLtk = fromHex('22'.repeat(16));
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_IDENTITY.address, oldLtk, { peerIrk: CENTRAL_IDENTITY.irk })]);
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  const p = makeSide({ bonds, peerAddress: rpa, policy: { rePairing: 'replace' } });
  const c = new ScriptedCentral(rpa);
  await upToDhKeyCheck(p, c);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  await inject(p.session, { type: 'identityInformation', irk: CENTRAL_IDENTITY.irk });
  assert.equal(toHex(bonds.get(CENTRAL_IDENTITY.address)?.ltk ?? new Uint8Array()), toHex(oldLtk), 'old bond kept until the end');
  await inject(p.session, { type: 'identityAddressInformation', address: CENTRAL_IDENTITY.address });
  const stored = bonds.get(CENTRAL_IDENTITY.address);
  assert.equal(toHex(stored?.ltk ?? new Uint8Array()), toHex(c.keysF5().ltk), 'replaced by the new LTK');
  assert.deepEqual(stored?.cccd, {}, 'a new bond starts with no CCCDs');
  assert.equal(bonds.bonds.size, 1);
});

test("re-pairing policy 'replace': a failed or spoofed attempt never evicts the old bond", async () => {
  const oldLtk = fromHex('33'.repeat(16));
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_IDENTITY.address, oldLtk)]);
  const p = makeSide({ bonds, peerAddress: CENTRAL_IDENTITY.address, policy: { rePairing: 'replace' } });
  const c = new ScriptedCentral(CENTRAL_IDENTITY.address);
  await upToDhKeyCheck(p, c);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: ZERO16 });
  assert.deepEqual(p.lower.take(), ['050b']);
  assert.equal(toHex(bonds.get(CENTRAL_IDENTITY.address)?.ltk ?? new Uint8Array()), toHex(oldLtk));
  assert.equal(bonds.puts + bonds.removes, 0);
  // A timeout mid-pairing keeps it too.
  const q = makeSide({ bonds, peerAddress: CENTRAL_IDENTITY.address, policy: { rePairing: 'replace' } });
  await inject(q.session, encodeSmp({ type: 'pairingRequest', ...features() }));
  await q.clock.advance(30_000);
  assert.equal(toHex(bonds.get(CENTRAL_IDENTITY.address)?.ltk ?? new Uint8Array()), toHex(oldLtk));
});

test("policy 'reject': an unrecognised peer claiming a bonded identity in key distribution gets 0x03, the bond is kept and the link dropped", async () => {
  const oldLtk = fromHex('44'.repeat(16));
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_IDENTITY.address, oldLtk)]);
  const p = makeSide({ bonds });
  const c = new ScriptedCentral();
  await pairJustWorks(p, c);
  assert.deepEqual(p.lower.take(), ['0503']);
  assert.equal(p.lower.calls.at(-1), 'disconnect 0x05', 'the encrypted link of the refused pairing is dropped (0x05 Authentication Failure)');
  assert.equal(toHex(bonds.get(CENTRAL_IDENTITY.address)?.ltk ?? new Uint8Array()), toHex(oldLtk));
  assert.equal(eventsNamed(p.events, 'paired').length, 0);
});

test('an identity address that is not public or static random is not taken as identity', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await pairJustWorks(p, c, { irk: CENTRAL_IDENTITY.irk, address: { type: 'random', address: '41:22:33:44:55:66' } });
  const [paired] = eventsNamed(p.events, 'paired');
  assert.deepEqual(paired?.[0].peerIdentity, CENTRAL_ADDR);
  assert.equal(p.bonds.get(CENTRAL_ADDR)?.peerIrk, undefined);
});

test('a bond store write failure is reported and the pairing still completes unbonded', async () => {
  const p = makeSide();
  p.bonds.failPut = true;
  await pairJustWorks(p, new ScriptedCentral());
  const [paired] = eventsNamed(p.events, 'paired');
  assert.equal(paired?.[0].bonded, false);
  assert.equal(eventsNamed(p.events, 'bondSaved').length, 0);
});

// ---------------------------------------------------------------------------------------------
// Reconnection: LTK requests

test('a bonded peer reconnecting on an RPA is encrypted with its stored key (EDIV 0, Rand 0), level from the bond', async () => {
  const ltk = fromHex('55'.repeat(16));
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_IDENTITY.address, ltk, { peerIrk: CENTRAL_IDENTITY.irk, authenticated: true })]);
  const p = makeSide({ bonds, peerAddress: rpaFor(CENTRAL_IDENTITY.irk, 0x0abcde) });
  assert.equal(p.session.hasLtk(), true);
  assert.equal(p.session.level, 1);
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  assert.deepEqual(p.lower.calls, [`ltkReply ${toHex(ltk)}`, 'readKeySize']);
  assert.equal(p.session.level, 4);
  assert.equal(p.session.authenticated, true);
  assert.equal(eventsNamed(p.events, 'securityChanged').at(-1)?.[0].level, 4);
  assert.notEqual(bonds.get(CENTRAL_IDENTITY.address)?.lastSeenAt, '2025-01-01T00:00:00Z', 'last seen updated');
});

test('an LTK request for a key this device does not have gets a negative reply and ltkRequestUnknown', async () => {
  const p = makeSide();
  p.session.onLtkRequest(0n, 0);
  await drain(p.session);
  assert.deepEqual(p.lower.calls, ['ltkNegativeReply']);
  const [u] = eventsNamed(p.events, 'ltkRequestUnknown');
  assert.deepEqual(u?.[0], { peer: CENTRAL_ADDR, ediv: 0, rand: 0n });
  // A legacy EDIV/Rand never matches an SC bond.
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_ADDR, fromHex('66'.repeat(16)))]);
  const q = makeSide({ bonds });
  q.session.onLtkRequest(0x1122334455667788n, 0x1234);
  await drain(q.session);
  assert.deepEqual(q.lower.calls, ['ltkNegativeReply']);
});

test('encryption failure (MIC failure) is reported and leaves the link at level 1', async () => {
  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_ADDR, fromHex('77'.repeat(16)))]);
  const p = makeSide({ bonds });
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0x3d, false);
  await drain(p.session);
  assert.equal(eventsNamed(p.events, 'encryptionFailed')[0]?.[0].status, 0x3d);
  assert.equal(p.session.level, 1);
});

// ---------------------------------------------------------------------------------------------
// Security Request policy

test("Security Request 'on-connect' is sent after the delay, once; 'never' sends none", async () => {
  const p = makeSide({ policy: { securityRequest: 'on-connect', securityRequestDelayMs: 500 } });
  await p.clock.advance(499);
  await drain(p.session);
  assert.deepEqual(p.lower.take(), []);
  await p.clock.advance(1);
  await drain(p.session);
  assert.deepEqual(p.lower.take(), ['0b09'], 'bonding + SC, no MITM for NoInputNoOutput');
  assert.equal(eventsNamed(p.events, 'securityRequestSent')[0]?.[0].authReq, 0x09);
  assert.equal(p.session.requestSecurity(), false, 'only once per connection');
  const q = makeSide();
  await q.clock.advance(10_000);
  q.session.onAttSecurityRejection();
  await q.clock.advance(10_000);
  assert.deepEqual(q.lower.take(), []);
});

test("Security Request 'after-att-rejection' waits for ATT; skipped when the link is already encrypting", async () => {
  const p = makeSide({ policy: { securityRequest: 'after-att-rejection', securityRequestDelayMs: 100, ioCapability: 0x01, confirmNumericComparison: async () => true } });
  await p.clock.advance(5_000);
  assert.deepEqual(p.lower.take(), []);
  p.session.onAttSecurityRejection();
  await p.clock.advance(100);
  await drain(p.session);
  assert.deepEqual(p.lower.take(), ['0b0d'], 'bonding + MITM + SC for a DisplayYesNo device');

  const bonds = new FakeBondStore(PERIPHERAL_IDENTITY, [bond(CENTRAL_ADDR, fromHex('88'.repeat(16)))]);
  const q = makeSide({ bonds, policy: { securityRequest: 'after-att-rejection', securityRequestDelayMs: 100 } });
  q.session.onLtkRequest(0n, 0);
  await drain(q.session);
  q.session.onAttSecurityRejection();
  await q.clock.advance(100);
  await drain(q.session);
  assert.deepEqual(q.lower.take(), [], 'the central is already encrypting: no collision');

  const closed = makeSide({ policy: { securityRequest: 'on-connect', isPairingAllowed: () => false } });
  await closed.clock.advance(10);
  await drain(closed.session);
  assert.deepEqual(closed.lower.take(), [], 'no pairing allowed and no bond: a Security Request would only fail');
});

test('a Pairing Failed answering our Security Request is reported', async () => {
  const p = makeSide();
  assert.equal(p.session.requestSecurity(), true);
  p.lower.take();
  await inject(p.session, { type: 'pairingFailed', reason: SmpReason.PairingNotSupported });
  const [f] = eventsNamed(p.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'peer');
  assert.match(f?.[0].message ?? '', /refused our Security Request/);
  assert.deepEqual(p.lower.take(), []);
});

// ---------------------------------------------------------------------------------------------
// Numeric Comparison and Passkey Entry (scripted central)

test('Numeric Comparison: the user sees g2 mod 10^6; Eb waits for the user; L4 after the check', async () => {
  let resolveUser!: (ok: boolean) => void;
  const shown: number[] = [];
  const p = makeSide({
    policy: {
      ioCapability: 0x01,
      confirmNumericComparison: (v) => {
        shown.push(v);
        return new Promise<boolean>((r) => (resolveUser = r));
      },
    },
  });
  const c = new ScriptedCentral();
  await upToDhKeyCheck(p, c, { ioCapability: 0x04, authReq: 0x0d });
  assert.equal(p.session.model, 'numericComparison');
  assert.deepEqual(shown, [g2(c.pkaX(), c.pkbX(), c.na, c.nb as Uint8Array) % 1_000_000]);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.deepEqual(p.lower.take(), [], 'Eb held until our user confirms');
  resolveUser(true);
  await drain(p.session);
  assert.deepEqual(p.lower.take(), ['0d' + toHex(c.eb())]);
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  await inject(p.session, { type: 'identityInformation', irk: CENTRAL_IDENTITY.irk });
  await inject(p.session, { type: 'identityAddressInformation', address: CENTRAL_IDENTITY.address });
  const [paired] = eventsNamed(p.events, 'paired');
  assert.equal(paired?.[0].level, 4);
  assert.equal(paired?.[0].authenticated, true);
  assert.equal(p.bonds.get(CENTRAL_IDENTITY.address)?.authenticated, true);
});

test('Numeric Comparison rejected by our user gets 0x0C; a missing hook also 0x0C', async () => {
  const p = makeSide({ policy: { ioCapability: 0x01, confirmNumericComparison: async () => false } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x01, authReq: 0x0d }));
  await inject(p.session, c.publicKey());
  p.lower.take();
  await inject(p.session, c.random());
  assert.deepEqual(p.lower.takePdus().map((x) => (x.type === 'pairingFailed' ? `failed ${x.reason}` : x.type)), ['pairingRandom', 'failed 12']);
  assert.equal(eventsNamed(p.events, 'pairingFailed')[0]?.[0].by, 'local');
  const q = makeSide({ policy: { ioCapability: 0x01 } });
  await inject(q.session, c.request({ ioCapability: 0x01, authReq: 0x0d }));
  await inject(q.session, c.publicKey());
  q.lower.take();
  await inject(q.session, c.random());
  assert.deepEqual(q.lower.takePdus().map((x) => (x.type === 'pairingFailed' ? `failed ${x.reason}` : x.type)), ['pairingRandom', 'failed 12']);
});

/** 20 passkey rounds from the scripted central; returns false at the first failed check. */
async function passkeyRounds(p: Side, c: ScriptedCentral, passkey: number): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    const bit = 0x80 | ((passkey >> i) & 1);
    const nai = c.rng.bytes(16);
    await inject(p.session, { type: 'pairingConfirm', confirm: f4(c.pkaX(), c.pkbX(), nai, bit) });
    const [cbi] = p.lower.takePdus();
    if (cbi?.type !== 'pairingConfirm') return false;
    await inject(p.session, { type: 'pairingRandom', random: nai });
    const [nbi] = p.lower.takePdus();
    if (nbi?.type !== 'pairingRandom') return false;
    assert.ok(bytesEqual(f4(c.pkbX(), c.pkaX(), nbi.random, bit), cbi.confirm), `Cb${i + 1} matches Nb${i + 1}`);
    c.na = nai;
    c.nb = nbi.random;
  }
  return true;
}

test('Passkey Entry, peripheral displays: 20 rounds, Ea/Eb with r = passkey, L4', async () => {
  const shown: number[] = [];
  const p = makeSide({ policy: { ioCapability: 0x00, displayPasskey: (v) => void shown.push(v) } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x02, authReq: 0x0d }));
  c.takeResponse(p.lower.takePdus()[0]);
  await inject(p.session, c.publicKey());
  const sent = p.lower.takePdus();
  assert.deepEqual(sent.map((x) => x.type), ['pairingPublicKey'], 'no confirm before round 1');
  c.takePublicKey(sent[0]);
  assert.equal(shown.length, 1);
  const passkey = shown[0] as number;
  assert.ok(passkey >= 0 && passkey <= 999_999);
  assert.ok(await passkeyRounds(p, c, passkey));
  const r = passkeyAsR(passkey);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea(r) });
  assert.deepEqual(p.lower.take(), ['0d' + toHex(c.eb(r))]);
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  assert.deepEqual(p.lower.calls[0], `ltkReply ${toHex(c.keysF5().ltk)}`);
  assert.equal(p.session.level, 4);
});

test('Passkey Entry with a wrong passkey fails in round 1 with 0x04 Confirm Value Failed', async () => {
  let shown = -1;
  const p = makeSide({ policy: { ioCapability: 0x00, displayPasskey: (v) => void (shown = v) } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x02, authReq: 0x0d }));
  c.takeResponse(p.lower.takePdus()[0]);
  await inject(p.session, c.publicKey());
  c.takePublicKey(p.lower.takePdus()[0]);
  const wrong = shown ^ 1;
  const nai = c.rng.bytes(16);
  await inject(p.session, { type: 'pairingConfirm', confirm: f4(c.pkaX(), c.pkbX(), nai, 0x80 | (wrong & 1)) });
  p.lower.take();
  await inject(p.session, { type: 'pairingRandom', random: nai });
  assert.deepEqual(p.lower.take(), ['0504']);
});

test('Passkey Entry, peripheral inputs: a confirm arriving before the user typed is held; cancel gives 0x01', async () => {
  let answer!: (v: number | undefined) => void;
  const p = makeSide({ policy: { ioCapability: 0x02, requestPasskey: () => new Promise((r) => (answer = r)) } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x00, authReq: 0x0d }));
  c.takeResponse(p.lower.takePdus()[0]);
  await inject(p.session, c.publicKey());
  c.takePublicKey(p.lower.takePdus()[0]);
  const passkey = 654321;
  const nai = c.rng.bytes(16);
  await inject(p.session, { type: 'pairingConfirm', confirm: f4(c.pkaX(), c.pkbX(), nai, 0x80 | (passkey & 1)) });
  assert.deepEqual(p.lower.take(), [], 'held until the passkey is typed');
  answer(passkey);
  await drain(p.session);
  const [cb1] = p.lower.takePdus();
  assert.equal(cb1?.type, 'pairingConfirm');
  await inject(p.session, { type: 'pairingRandom', random: nai });
  assert.equal(p.lower.takePdus()[0]?.type, 'pairingRandom');

  const q = makeSide({ policy: { ioCapability: 0x02, requestPasskey: async () => undefined } });
  const d = new ScriptedCentral();
  await inject(q.session, d.request({ ioCapability: 0x00, authReq: 0x0d }));
  await inject(q.session, d.publicKey());
  await drain(q.session);
  assert.deepEqual(q.lower.take().slice(-1), ['0501']);
});

test('association model table (Vol 3 Part H 2.3.5.1, SC)', () => {
  const m = (i: number, r: number, mitm = true): string => {
    const a = selectAssociation(features({ ioCapability: i, authReq: mitm ? 0x0d : 0x09 }), features({ ioCapability: r, authReq: 0x09 }));
    return a.model === 'passkeyEntry' ? `PK:${a.initiator}/${a.responder}` : a.model;
  };
  assert.equal(m(4, 3), 'justWorks');
  assert.equal(m(4, 1), 'numericComparison');
  assert.equal(m(1, 1), 'numericComparison');
  assert.equal(m(4, 0), 'PK:input/display');
  assert.equal(m(0, 2), 'PK:display/input');
  assert.equal(m(2, 2), 'PK:input/input');
  assert.equal(m(4, 2), 'PK:display/input');
  assert.equal(m(1, 0), 'justWorks');
  assert.equal(m(4, 4, false), 'justWorks', 'no MITM on either side: Just Works');
});

// ---------------------------------------------------------------------------------------------
// Logging

test('every PDU in and out is logged decoded at debug level, secret keys redacted', async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ level: 'debug', pretty: false, destination });
  const p = makeSide({ log });
  await pairJustWorks(p, new ScriptedCentral());
  const text = lines.join('');
  assert.match(text, /"dir":"rx","pdu":"Pairing Request io=KeyboardDisplay/);
  assert.match(text, /"dir":"tx","pdu":"Pairing Response io=NoInputNoOutput/);
  assert.match(text, /"dir":"tx","pdu":"Pairing DHKey Check /);
  assert.match(text, /"pdu":"Identity Information irk=<16 bytes redacted>"/);
  assert.doesNotMatch(text, new RegExp(toHex(CENTRAL_IDENTITY.irk)));
});

test("the 'paired with' log line keeps pino's level (info) and gives the security level its own field", async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter((l) => l.length > 0));
      cb();
    },
  });
  const p = makeSide({ log: createLogger({ level: 'debug', pretty: false, destination }) });
  await pairJustWorks(p, new ScriptedCentral());
  const paired = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((v) => typeof v['msg'] === 'string' && v['msg'].startsWith('paired with'));
  assert.ok(paired, 'the pairing is logged');
  assert.equal(paired['level'], 30);
  assert.equal(paired['securityLevel'], 2);
});

// ---------------------------------------------------------------------------------------------
// Two SmpSessions back to back

function pairOfSides(opts: { central?: Parameters<typeof makeSide>[0]; peripheral?: Parameters<typeof makeSide>[0] } = {}): { c: Side; p: Side; clock: VirtualClock } {
  const clock = new VirtualClock();
  const c = makeSide({ role: 'central', clock, random: seededRandom('b2b-c'), ...opts.central });
  const p = makeSide({ role: 'peripheral', clock, random: seededRandom('b2b-p'), ...opts.peripheral });
  linkBackToBack(c, p);
  return { c, p, clock };
}

/** Lets two linked sessions talk until nothing has moved for a few turns of the event loop. */
async function settleBoth(a: SmpSession, b: SmpSession): Promise<void> {
  let quiet = 0;
  let last = '';
  for (let i = 0; i < 2_000 && quiet < 5; i++) {
    await a.whenIdle();
    await b.whenIdle();
    await new Promise<void>((r) => setImmediate(r));
    const now = `${a.phase}/${b.phase}/${linkTicks.n}`;
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}


test('back to back, Just Works: both sides derive the same LTK, encrypt at L2, exchange identities and bond', async () => {
  const { c, p } = pairOfSides();
  const result = c.session.pair();
  await settleBoth(c.session, p.session);
  const info = await result;
  const [pp] = eventsNamed(p.events, 'paired');
  assert.ok(pp);
  assert.equal(toHex(info.ltk), toHex(pp[0].ltk));
  assert.equal(info.level, 2);
  assert.equal(pp[0].level, 2);
  assert.equal(c.session.level, 2);
  assert.equal(p.session.level, 2);
  assert.deepEqual(info.peerIdentity, PERIPHERAL_IDENTITY.address);
  assert.deepEqual(pp[0].peerIdentity, CENTRAL_IDENTITY.address);
  assert.equal(toHex(c.bonds.get(PERIPHERAL_IDENTITY.address)?.peerIrk ?? new Uint8Array()), toHex(PERIPHERAL_IDENTITY.irk));
  assert.equal(toHex(p.bonds.get(CENTRAL_IDENTITY.address)?.peerIrk ?? new Uint8Array()), toHex(CENTRAL_IDENTITY.irk));
  assert.deepEqual(c.lower.calls, [`startEncryption ${toHex(info.ltk)} 0 0`, 'readKeySize']);
  assert.deepEqual(p.lower.calls, [`ltkReply ${toHex(info.ltk)}`, 'readKeySize']);
});

test('back to back, Numeric Comparison: both users see the same six digits, L4', async () => {
  const seen: number[] = [];
  const hook = async (v: number): Promise<boolean> => {
    seen.push(v);
    return true;
  };
  const { c, p } = pairOfSides({
    central: { policy: { ioCapability: 0x04, confirmNumericComparison: hook } },
    peripheral: { policy: { ioCapability: 0x01, confirmNumericComparison: hook } },
  });
  const info = await (async () => {
    const r = c.session.pair();
    await settleBoth(c.session, p.session);
    return r;
  })();
  assert.equal(seen.length, 2);
  assert.equal(seen[0], seen[1]);
  assert.equal(info.model, 'numericComparison');
  assert.equal(info.level, 4);
  assert.equal(p.session.level, 4);
});

test('back to back, Passkey Entry: the peripheral displays, the central user types it, L4; a typo fails with 0x04 on both sides', async () => {
  let displayed = -1;
  const { c, p } = pairOfSides({
    central: { policy: { ioCapability: 0x02, requestPasskey: async () => displayed } },
    peripheral: { policy: { ioCapability: 0x00, displayPasskey: (v) => void (displayed = v) } },
  });
  const r = c.session.pair();
  await settleBoth(c.session, p.session);
  const info = await r;
  assert.equal(info.model, 'passkeyEntry');
  assert.equal(info.level, 4);
  assert.equal(eventsNamed(p.events, 'paired')[0]?.[0].level, 4);

  const bad = pairOfSides({
    central: { policy: { ioCapability: 0x02, requestPasskey: async () => (displayed + 1) % 1_000_000 } },
    peripheral: { policy: { ioCapability: 0x00, displayPasskey: (v) => void (displayed = v) } },
  });
  const r2 = bad.c.session.pair();
  r2.catch(() => undefined);
  await settleBoth(bad.c.session, bad.p.session);
  await assert.rejects(r2, (e: unknown) => e instanceof SmpError && e.reason === 0x04);
  const failures = [...eventsNamed(bad.c.events, 'pairingFailed'), ...eventsNamed(bad.p.events, 'pairingFailed')].map((f) => `${f[0].by}:${f[0].reason}`);
  assert.ok(failures.includes('peer:4') && failures.includes('local:4'), failures.join(','));
});

test('back to back, reconnection: the central encrypts with the stored bond, the peripheral finds it through the RPA', async () => {
  const first = pairOfSides();
  const r = first.c.session.pair();
  await settleBoth(first.c.session, first.p.session);
  const info = await r;
  // Reconnect: the central now uses an RPA from its IRK; same bond stores.
  const clock = new VirtualClock();
  const c = makeSide({ role: 'central', clock, bonds: first.c.bonds });
  const p = makeSide({ role: 'peripheral', clock, bonds: first.p.bonds, peerAddress: rpaFor(CENTRAL_IDENTITY.irk, 0x2a2a2a) });
  linkBackToBack(c, p);
  assert.deepEqual(p.session.peerIdentity, CENTRAL_IDENTITY.address);
  assert.equal(c.session.encryptWithBond(), true);
  await settleBoth(c.session, p.session);
  assert.deepEqual(p.lower.calls, [`ltkReply ${toHex(info.ltk)}`, 'readKeySize']);
  assert.equal(c.session.level, 2);
  assert.equal(p.session.level, 2);
  assert.equal(eventsNamed(p.events, 'paired').length, 0, 'no pairing on reconnection');
});

test('back to back, Security Request: the peripheral asks, the central pairs; with a bond it encrypts instead', async () => {
  const { c, p, clock: clk } = pairOfSides({ peripheral: { policy: { securityRequest: 'on-connect' } } });
  await clk.advance(0);
  await settleBoth(c.session, p.session);
  assert.equal(eventsNamed(c.events, 'securityRequestReceived').length, 1);
  assert.equal(eventsNamed(c.events, 'paired').length, 1);
  assert.equal(eventsNamed(p.events, 'paired').length, 1);
  // Reconnect with bonds: Security Request -> encryption with the bond, no pairing.
  const clock = new VirtualClock();
  const c2 = makeSide({ role: 'central', clock, bonds: c.bonds });
  const p2 = makeSide({ role: 'peripheral', clock, bonds: p.bonds, peerAddress: CENTRAL_IDENTITY.address, policy: { securityRequest: 'on-connect' } });
  linkBackToBack(c2, p2);
  await clock.advance(0);
  await settleBoth(c2.session, p2.session);
  assert.equal(eventsNamed(c2.events, 'paired').length, 0);
  assert.equal(c2.session.level, 2);
  assert.equal(p2.session.level, 2);
});

test('back to back: a peripheral that lost its bond refuses the key (ltkRequestUnknown), the central sees 0x06', async () => {
  const first = pairOfSides();
  const r = first.c.session.pair();
  await settleBoth(first.c.session, first.p.session);
  await r;
  const clock = new VirtualClock();
  const c = makeSide({ role: 'central', clock, bonds: first.c.bonds });
  const p = makeSide({ role: 'peripheral', clock });
  linkBackToBack(c, p);
  c.session.encryptWithBond();
  await settleBoth(c.session, p.session);
  assert.equal(eventsNamed(p.events, 'ltkRequestUnknown').length, 1);
  assert.equal(eventsNamed(c.events, 'encryptionFailed')[0]?.[0].status, 0x06);
  assert.equal(c.session.level, 1);
});

test('central: pair() on a peripheral session, or after disconnection, rejects with SmpError', async () => {
  const p = makeSide();
  await assert.rejects(p.session.pair(), SmpError);
  const c = makeSide({ role: 'central' });
  const r = c.session.pair();
  c.session.onDisconnected();
  await assert.rejects(r, SmpError);
  assert.equal(c.session.phase, 'closed');
  await assert.rejects(c.session.pair(), SmpError);
});

test('central: a Pairing Response without SC gets 0x03; one asking for keys not offered gets 0x0A', async () => {
  const c = makeSide({ role: 'central' });
  const r = c.session.pair();
  r.catch(() => undefined);
  await drain(c.session);
  assert.deepEqual(c.lower.take(), ['01030009100202'], 'NoInputNoOutput, bond+SC, 16, IdKey both ways');
  await inject(c.session, fromHex('02030001100202'));
  assert.deepEqual(c.lower.take(), ['0503']);
  await assert.rejects(r, (e: unknown) => e instanceof SmpError && e.reason === 0x03);

  const d = makeSide({ role: 'central', clock: new VirtualClock() });
  const r2 = d.session.pair();
  r2.catch(() => undefined);
  await drain(d.session);
  d.lower.take();
  await inject(d.session, fromHex('02030009100206'));
  assert.deepEqual(d.lower.take(), ['050a']);
});

// Self-check of the scripted central: its f5/f6 use A = central, B = peripheral.
test('harness sanity: the scripted central computes Ea with the initiator address first', () => {
  const c = new ScriptedCentral();
  c.peerKey = new ScriptedCentral(PERIPHERAL_ADDR, CENTRAL_ADDR, 'other').keys.publicKey;
  c.nb = ZERO16;
  const { macKey } = f5(c.dhKey(), c.na, ZERO16, addressForCrypto(CENTRAL_ADDR), addressForCrypto(PERIPHERAL_ADDR));
  assert.equal(toHex(c.ea()), toHex(f6(macKey, c.na, ZERO16, ZERO16, ioCapField(c.preq), addressForCrypto(CENTRAL_ADDR), addressForCrypto(PERIPHERAL_ADDR))));
});

// ---------------------------------------------------------------------------------------------
// Central role against a scripted responder

/** Drives a central session up to its DHKey check; returns what the scripted responder knows. */
async function centralUpToCheck(
  c: Side,
  opts: { cbOk?: boolean; pres?: Partial<ReturnType<typeof features>> } = {},
): Promise<{ ea: Uint8Array; expectEb: Uint8Array; ltk: Uint8Array; promise: Promise<unknown> } | undefined> {
  const promise = c.session.pair();
  promise.catch(() => undefined);
  await drain(c.session);
  const [req] = c.lower.takePdus();
  assert.equal(req?.type, 'pairingRequest');
  const pres = { ioCapability: 3, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 2, responderKeyDist: 2, ...opts.pres };
  await inject(c.session, { type: 'pairingResponse', ...pres });
  const [pka] = c.lower.takePdus();
  if (pka?.type !== 'pairingPublicKey') throw new Error('no public key');
  const rsp = new ScriptedCentral(PERIPHERAL_ADDR, CENTRAL_ADDR, 'scripted-responder');
  const nb = rsp.rng.bytes(16);
  const pkbX = rsp.keys.publicKey.subarray(0, 32);
  const pkaX = pka.publicKey.subarray(0, 32);
  await inject(c.session, { type: 'pairingPublicKey', publicKey: rsp.keys.publicKey });
  const cb = f4(pkbX, pkaX, nb, 0);
  if (opts.cbOk === false) cb[3] = (cb[3] as number) ^ 0x40;
  await inject(c.session, { type: 'pairingConfirm', confirm: cb });
  const [na] = c.lower.takePdus();
  if (na?.type !== 'pairingRandom') throw new Error('no random');
  await inject(c.session, { type: 'pairingRandom', random: nb });
  if (opts.cbOk === false) return undefined;
  const [ea] = c.lower.takePdus();
  if (ea?.type !== 'pairingDhKeyCheck') throw new Error(`no DHKey check: ${ea?.type}`);
  rsp.peerKey = pka.publicKey;
  const dh = rsp.dhKey();
  const A = addressForCrypto(CENTRAL_ADDR);
  const B = addressForCrypto(PERIPHERAL_ADDR);
  const { macKey, ltk } = f5(dh, na.random, nb, A, B);
  const iocapA = ioCapField(req as { ioCapability: number; oobDataFlag: number; authReq: number });
  assert.equal(toHex(ea.check), toHex(f6(macKey, na.random, nb, ZERO16, iocapA, A, B)), 'Ea from the central is right');
  return { ea: ea.check, expectEb: f6(macKey, nb, na.random, ZERO16, ioCapField(pres), B, A), ltk, promise };
}

test('central: a responder whose confirm does not match its nonce gets 0x04', async () => {
  const c = makeSide({ role: 'central' });
  await centralUpToCheck(c, { cbOk: false });
  assert.deepEqual(c.lower.take(), ['0504']);
  assert.deepEqual(c.lower.calls, []);
});

test('central: a wrong Eb gets 0x0B and encryption never starts; the right Eb starts it with the derived LTK', async () => {
  const c = makeSide({ role: 'central' });
  const s = await centralUpToCheck(c);
  assert.ok(s);
  await inject(c.session, { type: 'pairingDhKeyCheck', check: ZERO16 });
  assert.deepEqual(c.lower.take(), ['050b']);
  assert.deepEqual(c.lower.calls, []);

  const d = makeSide({ role: 'central', clock: new VirtualClock() });
  const t = await centralUpToCheck(d);
  assert.ok(t);
  await inject(d.session, { type: 'pairingDhKeyCheck', check: t.expectEb });
  assert.deepEqual(d.lower.calls, [`startEncryption ${toHex(t.ltk)} 0 0`]);
  d.session.onEncryptionChange(0, true);
  await drain(d.session);
  assert.deepEqual(d.lower.take(), [], 'the central waits for the responder keys before sending its own');
  await inject(d.session, { type: 'identityInformation', irk: PERIPHERAL_IDENTITY.irk });
  await inject(d.session, { type: 'identityAddressInformation', address: PERIPHERAL_IDENTITY.address });
  assert.deepEqual(d.lower.take(), ['08' + toHex(CENTRAL_IDENTITY.irk), '09' + '00' + '030201dc1b00']);
  const info = (await t.promise) as { level: number; bonded: boolean };
  assert.equal(info.level, 2);
  assert.equal(info.bonded, true);
});

test('central: a Security Request during back-off gets 0x09, with the pairing window closed 0x05', async () => {
  const clock = new VirtualClock();
  const backoff = new PairingBackoff(clock);
  backoff.recordFailure(PERIPHERAL_ADDR);
  const c = makeSide({ role: 'central', clock, backoff });
  await inject(c.session, { type: 'securityRequest', authReq: 0x09 });
  assert.deepEqual(c.lower.take(), ['0509']);
  const d = makeSide({ role: 'central', policy: { isPairingAllowed: () => false } });
  await inject(d.session, { type: 'securityRequest', authReq: 0x09 });
  assert.deepEqual(d.lower.take(), ['0505']);
  assert.equal(eventsNamed(d.events, 'securityRequestReceived').length, 1);
});

test('a link lost mid-pairing ends the procedure (reported as disconnected) without counting as a failed attempt', async () => {
  const p = makeSide();
  const c = new ScriptedCentral();
  await inject(p.session, c.request());
  p.lower.take();
  p.session.onDisconnected();
  await drain(p.session);
  const [f] = eventsNamed(p.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'disconnected');
  assert.equal(p.backoff.failures(CENTRAL_ADDR), 0);
  assert.equal(p.clock.pendingCount, 0, 'SMP timer stopped');
  await inject(p.session, c.publicKey());
  assert.deepEqual(p.lower.take(), [], 'nothing sent after the link is gone');
});

test('keypress notifications during passkey entry are accepted and ignored; outside it they end the procedure', async () => {
  const p = makeSide({ policy: { ioCapability: 0x02, requestPasskey: () => new Promise(() => undefined) } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x00, authReq: 0x1d }));
  await inject(p.session, c.publicKey());
  p.lower.take();
  await inject(p.session, { type: 'pairingKeypressNotification', notificationType: 1 });
  assert.deepEqual(p.lower.take(), []);
  assert.equal(p.session.phase, 'waitConfirm');
  const q = makeSide();
  await inject(q.session, c.request());
  q.lower.take();
  await inject(q.session, { type: 'pairingKeypressNotification', notificationType: 0 });
  assert.deepEqual(q.lower.take(), ['0508']);
});

test('fuzz: 2000 random and out-of-order PDUs, LTK requests and encryption events never throw, hang or leak a key', async () => {
  const rng = seededRandom('fuzz');
  const clock = new VirtualClock();
  const p = makeSide({ clock, policy: { ioCapability: 0x01, confirmNumericComparison: async () => true }, backoff: new PairingBackoff(clock, { initialMs: 1 }) });
  const phases = new Set<string>();
  const c = new ScriptedCentral();
  const valid: SmpPdu[] = [
    c.request(),
    c.request({ authReq: 0x01 }),
    c.publicKey(),
    { type: 'pairingPublicKey', publicKey: new Uint8Array(64) },
    { type: 'pairingConfirm', confirm: ZERO16 },
    c.random(),
    { type: 'pairingDhKeyCheck', check: ZERO16 },
    { type: 'identityInformation', irk: ZERO16 },
    { type: 'identityAddressInformation', address: CENTRAL_IDENTITY.address },
    { type: 'securityRequest', authReq: 0x0d },
    { type: 'pairingFailed', reason: 0x08 },
    { type: 'pairingKeypressNotification', notificationType: 2 },
  ];
  for (let i = 0; i < 2000; i++) {
    const b = rng.bytes(2);
    const pick = (b[0] as number) % 16;
    if (pick < valid.length) p.session.onPdu(encodeSmp(valid[pick] as SmpPdu));
    else if (pick === 12) p.session.onPdu(rng.bytes((b[1] as number) % 70));
    else if (pick === 13) p.session.onLtkRequest(0n, 0);
    else if (pick === 14) p.session.onEncryptionChange((b[1] as number) & 1 ? 0 : 0x3d, true);
    else p.session.onPdu(Uint8Array.of((b[1] as number) % 0x10));
    if (i % 10 === 0) {
      await p.session.whenIdle();
      phases.add(p.session.phase);
    }
    if (i % 50 === 0) await p.clock.advance(1_000);
  }
  assert.ok(phases.size >= 2, `explored ${[...phases].join(', ')}`);
  await drain(p.session);
  for (const pdu of p.lower.sent) assert.ok(decodeSmpOk(pdu), `SMP sent a malformed PDU ${toHex(pdu)}`);
  assert.equal(p.lower.calls.filter((x) => x.startsWith('ltkReply')).length, 0, 'no key handed out without a passed DHKey check');
  assert.equal(eventsNamed(p.events, 'paired').length, 0);
  assert.ok(['idle', 'timedOut', 'waitPublicKey', 'waitRandom', 'waitDhKeyCheck', 'waitConfirm'].includes(p.session.phase), p.session.phase);
});

function decodeSmpOk(b: Uint8Array): boolean {
  return decodeSmp(b).ok;
}

test('every unexpected PDU at every step of a Just Works pairing ends it with one Pairing Failed and hands out no key', async () => {
  const c0 = new ScriptedCentral();
  const intruders: SmpPdu[] = [
    c0.request(),
    { type: 'pairingResponse', ...features() },
    c0.publicKey(),
    { type: 'pairingConfirm', confirm: ZERO16 },
    { type: 'pairingRandom', random: ZERO16 },
    { type: 'pairingDhKeyCheck', check: ZERO16 },
    { type: 'encryptionInformation', ltk: ZERO16 },
    { type: 'centralIdentification', ediv: 1, rand: 2n },
    { type: 'identityInformation', irk: ZERO16 },
    { type: 'identityAddressInformation', address: CENTRAL_IDENTITY.address },
    { type: 'signingInformation', csrk: ZERO16 },
    { type: 'securityRequest', authReq: 0x0d },
    { type: 'pairingKeypressNotification', notificationType: 0 },
  ];
  const expectedPhase = ['waitPublicKey', 'waitRandom', 'waitDhKeyCheck', 'waitEncryption', 'waitKeys'];
  let cases = 0;
  for (let step = 0; step < expectedPhase.length; step++) {
    for (const bad of intruders) {
      const p = makeSide();
      const c = new ScriptedCentral();
      await inject(p.session, c.request());
      c.takeResponse(p.lower.takePdus()[0]);
      if (step >= 1) {
        await inject(p.session, c.publicKey());
        const [pk, conf] = p.lower.takePdus();
        c.takePublicKey(pk);
        c.takeConfirm(conf);
      }
      if (step >= 2) {
        await inject(p.session, c.random());
        c.takeRandom(p.lower.takePdus()[0]);
      }
      if (step >= 3) {
        await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
        p.lower.take();
      }
      if (step >= 4) {
        p.session.onLtkRequest(0n, 0);
        p.session.onEncryptionChange(0, true);
        await drain(p.session);
        p.lower.take();
      }
      assert.equal(p.session.phase, expectedPhase[step]);
      const allowedHere = ALLOWED[p.session.phase].includes(bad.type);
      const firstKeyOk = step === 4 && bad.type === 'identityInformation';
      if (allowedHere && (step !== 4 || firstKeyOk)) continue;
      cases++;
      const callsBefore = p.lower.calls.length;
      await inject(p.session, bad);
      const sent = p.lower.takePdus();
      const label = `${bad.type} in ${expectedPhase[step]}`;
      if (bad.type === 'pairingKeypressNotification' && ALLOWED[expectedPhase[step] as 'waitConfirm'].includes(bad.type)) continue;
      assert.equal(sent.length, 1, label);
      assert.equal(sent[0]?.type, 'pairingFailed', label);
      const reason = sent[0]?.type === 'pairingFailed' ? sent[0].reason : -1;
      const expectReason = bad.type === 'pairingResponse' || bad.type === 'securityRequest' ? 0x07 : 0x08;
      assert.equal(reason, expectReason, label);
      assert.equal(p.session.phase, 'idle', label);
      if (step < 3) {
        p.session.onLtkRequest(0n, 0);
        await drain(p.session);
      }
      assert.equal(p.lower.calls.slice(callsBefore).filter((x) => x.startsWith('ltkReply')).length, 0, label);
      assert.equal(p.bonds.puts, 0, label);
    }
  }
  assert.ok(cases >= 50, `${cases} cases`);
});

// ---------------------------------------------------------------------------------------------
// AuthReq bits (CT2, Keypress) and key distribution as the phones send them; Security Request
// while encrypting; Just Works consent; abort()

/** Starts pair() on a central and returns the hex of the Pairing Request it sent. */
async function requestOf(policy: Partial<SmpPolicy>, extra: { identity?: null } = {}): Promise<string[]> {
  const c = makeSide({ role: 'central', policy, clock: new VirtualClock(), ...extra });
  c.session.pair().catch(() => undefined);
  await drain(c.session);
  return c.lower.take();
}

test("central Pairing Request as the phones send it: Android's policy gives 01 04 00 2d 10 0f 0f, iOS's 01 04 00 0d 10 03 03; Keypress adds 0x10", async () => {
  // KeyboardDisplay, no OOB, AuthReq bonding|MITM|SC|CT2 = 0x2d, 16, EncKey|IdKey|SignKey|LinkKey both ways.
  assert.deepEqual(await requestOf({ ioCapability: 0x04, ct2: true, initiatorKeyDistribution: 0x0f, responderKeyDistribution: 0x0f }), ['0104002d100f0f']);
  // KeyboardDisplay, AuthReq bonding|MITM|SC = 0x0d, 16, EncKey|IdKey both ways.
  assert.deepEqual(await requestOf({ ioCapability: 0x04, initiatorKeyDistribution: 0x03, responderKeyDistribution: 0x03 }), ['0104000d100303']);
  // Keypress (0x10) and CT2 (0x20) on top of bonding|MITM|SC; default key distribution IdKey/IdKey.
  assert.deepEqual(await requestOf({ ioCapability: 0x04, ct2: true, keypress: true }), ['0104003d100202']);
  // Defaults unchanged: NoInputNoOutput, bonding|SC.
  assert.deepEqual(await requestOf({}), ['01030009100202']);
  // A peripheral's Security Request carries the same AuthReq bits.
  const p = makeSide({ policy: { ct2: true } });
  assert.equal(p.session.requestSecurity(), true);
  assert.deepEqual(p.lower.take(), ['0b29']);
});

test('key distribution policy: values outside 0x00..0x0f are refused; no local identity drops IdKey from the request; a peripheral answers with the intersection it supports', async () => {
  assert.throws(() => makeSide({ role: 'central', policy: { initiatorKeyDistribution: 0x10 } }), RangeError);
  assert.throws(() => makeSide({ role: 'central', policy: { responderKeyDistribution: -1 } }), RangeError);
  // No identity to send: Initiator Key Distribution 0x0f becomes 0x0d; the responder's 0x0f stays.
  assert.deepEqual(await requestOf({ initiatorKeyDistribution: 0x0f, responderKeyDistribution: 0x0f }, { identity: null }), ['01030009100d0f']);
  // Peripheral: Android's 0x0f/0x0f gets IdKey/IdKey (EncKey meaningless in SC, SignKey and LinkKey unsupported).
  const p = makeSide();
  await inject(p.session, new ScriptedCentral().request({ authReq: 0x2d, initiatorKeyDist: 0x0f, responderKeyDist: 0x0f }));
  assert.deepEqual(p.lower.take(), ['02030009100202']);
  // A policy offering no responder keys narrows that further; the central's IdKey is still taken.
  const q = makeSide({ clock: new VirtualClock(), policy: { responderKeyDistribution: 0 } });
  await inject(q.session, new ScriptedCentral().request({ initiatorKeyDist: 0x03, responderKeyDist: 0x03 }));
  assert.deepEqual(q.lower.take(), ['02030009100200']);
});

test('a peripheral with ct2 answers AuthReq 0x29, and f6 takes the AuthReq octets on the wire: Ea over 0x2d passes, Ea over 0x0d gets 0x0B', async () => {
  const p = makeSide({ policy: { ct2: true } });
  const c = new ScriptedCentral();
  await inject(p.session, c.request({ ioCapability: 0x04, authReq: 0x2d, initiatorKeyDist: 0x0f, responderKeyDist: 0x0f }));
  // NoInputNoOutput, bonding|SC|CT2, 16, IdKey both ways.
  const [rsp] = p.lower.take();
  assert.equal(rsp, '02030029100202');
  c.takeResponse(decodePdu(rsp));
  await inject(p.session, c.publicKey());
  const [pk, conf] = p.lower.takePdus();
  c.takePublicKey(pk);
  c.takeConfirm(conf);
  await inject(p.session, c.random());
  c.takeRandom(p.lower.takePdus()[0]);
  assert.ok(c.confirmMatches());
  // Ea = f6(..., IOcapA = 04 00 2d, ...); Eb = f6(..., IOcapB = 03 00 29, ...).
  assert.equal(toHex(ioCapField(c.preq)), '04002d');
  assert.equal(toHex(ioCapField(c.pres as NonNullable<typeof c.pres>)), '030029');
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.deepEqual(p.lower.take(), ['0d' + toHex(c.eb())]);

  // The same pairing where the central fed f6 its AuthReq without the CT2 bit: the check fails.
  const q = makeSide({ clock: new VirtualClock(), policy: { ct2: true } });
  const c2 = new ScriptedCentral(CENTRAL_ADDR, PERIPHERAL_ADDR, 'ct2-mismatch');
  await upToDhKeyCheck(q, c2, { ioCapability: 0x04, authReq: 0x2d });
  c2.preq = { ...c2.preq, authReq: 0x0d };
  await inject(q.session, { type: 'pairingDhKeyCheck', check: c2.ea() });
  assert.deepEqual(q.lower.take(), ['050b']);
  assert.deepEqual(q.lower.calls, [], 'no key reaches the controller');
});

function decodePdu(hex: string | undefined): SmpPdu {
  const r = decodeSmp(fromHex(hex ?? ''));
  if (!r.ok) throw new Error(`not a PDU: ${hex}`);
  return r.pdu;
}

test('back to back with CT2 on one side only: the DHKey checks pass both ways, same LTK, L2', async () => {
  const android: Partial<SmpPolicy> = { ioCapability: 0x04, initiatorKeyDistribution: 0x0f, responderKeyDistribution: 0x0f };
  const cases: { central: Partial<SmpPolicy>; peripheral: Partial<SmpPolicy>; req: string; rsp: string }[] = [
    { central: { ...android, ct2: true }, peripheral: {}, req: '0104002d100f0f', rsp: '02030009100202' },
    { central: android, peripheral: { ct2: true }, req: '0104000d100f0f', rsp: '02030029100202' },
  ];
  for (const k of cases) {
    const { c, p } = pairOfSides({ central: { policy: k.central }, peripheral: { policy: k.peripheral } });
    const r = c.session.pair();
    await settleBoth(c.session, p.session);
    const info = await r;
    assert.equal(c.lower.take()[0], k.req);
    assert.equal(p.lower.take()[0], k.rsp);
    assert.deepEqual([...eventsNamed(c.events, 'pairingFailed'), ...eventsNamed(p.events, 'pairingFailed')], []);
    const pp = eventsNamed(p.events, 'paired')[0]?.[0];
    assert.equal(toHex(info.ltk), toHex(pp?.ltk ?? new Uint8Array()));
    assert.equal(info.level, 2);
    assert.equal(pp?.level, 2);
    assert.equal(info.bonded, true);
  }
});

test('central in LE Secure Connections: a Pairing Response with key distribution 0x0f/0x0f is not refused; EncKey/LinkKey carry nothing, IRK/address/CSRK are exchanged', async () => {
  const c = makeSide({ role: 'central', policy: { ioCapability: 0x04, ct2: true, initiatorKeyDistribution: 0x0f, responderKeyDistribution: 0x0f } });
  const s = await centralUpToCheck(c, { pres: { initiatorKeyDist: 0x0f, responderKeyDist: 0x0f } });
  assert.ok(s, 'the central went on to its DHKey check (Ea over IOcapA 04 00 2d verified by the helper)');
  await inject(c.session, { type: 'pairingDhKeyCheck', check: s.expectEb });
  assert.deepEqual(c.lower.calls, [`startEncryption ${toHex(s.ltk)} 0 0`]);
  c.session.onEncryptionChange(0, true);
  await drain(c.session);
  assert.deepEqual(c.lower.take(), []);
  // The responder distributes: no Encryption Information / Central Identification (EncKey), IRK,
  // identity address, then CSRK (SignKey); LinkKey has no PDU.
  await inject(c.session, { type: 'identityInformation', irk: PERIPHERAL_IDENTITY.irk });
  await inject(c.session, { type: 'identityAddressInformation', address: PERIPHERAL_IDENTITY.address });
  assert.deepEqual(c.lower.take(), [], 'still waiting for Signing Information');
  await inject(c.session, { type: 'signingInformation', csrk: fromHex('5a'.repeat(16)) });
  const sent = c.lower.take();
  assert.deepEqual(sent.slice(0, 2), ['08' + toHex(CENTRAL_IDENTITY.irk), '09' + '00' + '030201dc1b00']);
  assert.equal(sent.length, 3);
  assert.match(sent[2] ?? '', /^0a[0-9a-f]{32}$/, 'Signing Information with a 16-byte CSRK');
  const info = (await s.promise) as { level: number; bonded: boolean };
  assert.equal(info.level, 2);
  assert.equal(info.bonded, true);
  assert.equal(c.session.secureConnections, true);

  // Default request (IdKey/IdKey): EncKey and LinkKey granted on top are ignored, the pairing goes on.
  const d = makeSide({ role: 'central', clock: new VirtualClock() });
  d.session.pair().catch(() => undefined);
  await drain(d.session);
  assert.deepEqual(d.lower.take(), ['01030009100202']);
  await inject(d.session, fromHex('02030009100b0b'));
  assert.deepEqual(d.lower.takePdus().map((x) => x.type), ['pairingPublicKey']);
  // SignKey granted but never offered is a genuinely invalid field: 0x0A.
  const e = makeSide({ role: 'central', clock: new VirtualClock() });
  e.session.pair().catch(() => undefined);
  await drain(e.session);
  e.lower.take();
  await inject(e.session, fromHex('0203000910020e'));
  assert.deepEqual(e.lower.take(), ['050a']);
});

test('central: a Security Request while encryption with the bond is pending is ignored: one LE Enable Encryption, the bond key keeps its properties (SC, L2)', async () => {
  const ltk = fromHex('77'.repeat(16));
  const c = makeSide({ role: 'central', bonds: new FakeBondStore(CENTRAL_IDENTITY, [bond(PERIPHERAL_ADDR, ltk)]) });
  // Like the controller: a second LE Enable Encryption while one is pending is refused (Command Disallowed).
  let pending = false;
  c.lower.onStartEncryption = () => {
    if (pending) throw new Error('HCI Command Disallowed (0x0c)');
    pending = true;
  };
  const start = `startEncryption ${toHex(ltk)} 0 0`;
  assert.equal(c.session.encryptWithBond(), true);
  await drain(c.session);
  await inject(c.session, { type: 'securityRequest', authReq: 0x09 });
  assert.equal(eventsNamed(c.events, 'securityRequestReceived').length, 1);
  assert.deepEqual(c.lower.calls, [start]);
  assert.deepEqual(c.lower.take(), [], 'no Pairing Request, no Pairing Failed');
  // A second encryptWithBond() while pending does not issue a second command either.
  assert.equal(c.session.encryptWithBond(), true);
  await drain(c.session);
  assert.deepEqual(c.lower.calls, [start]);

  c.session.onEncryptionChange(0, true);
  await drain(c.session);
  assert.equal(c.session.encrypted, true);
  assert.equal(c.session.secureConnections, true, 'the bond key, not an unknown one');
  assert.equal(c.session.level, 2);
  assert.equal(c.session.keySize, 16);
  // Encrypted at the level asked for: a later Security Request is ignored as well.
  await inject(c.session, { type: 'securityRequest', authReq: 0x09 });
  assert.deepEqual(c.lower.calls, [start, 'readKeySize']);
  assert.deepEqual(c.lower.take(), []);
  assert.equal(eventsNamed(c.events, 'encryptionFailed').length, 0);
});

test('confirmJustWorks as peripheral: asked after the nonces, Eb held until consent; Cancel gives Pairing Failed 0x0C and no key', async () => {
  let answer!: (ok: boolean) => void;
  const asked: Address[] = [];
  const hook = (peer: Address): Promise<boolean> => {
    asked.push(peer);
    return new Promise<boolean>((r) => (answer = r));
  };
  const p = makeSide({ policy: { confirmJustWorks: hook } });
  const c = new ScriptedCentral();
  await upToDhKeyCheck(p, c);
  assert.deepEqual(asked, [CENTRAL_ADDR]);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  assert.deepEqual(p.lower.take(), [], 'Eb waits for the user');
  answer(true);
  await drain(p.session);
  assert.deepEqual(p.lower.take(), ['0d' + toHex(c.eb())]);
  assert.equal(p.session.phase, 'waitEncryption');

  const q = makeSide({ clock: new VirtualClock(), policy: { confirmJustWorks: hook } });
  const c2 = new ScriptedCentral(CENTRAL_ADDR, PERIPHERAL_ADDR, 'jw-cancel');
  await upToDhKeyCheck(q, c2);
  answer(false);
  await drain(q.session);
  assert.deepEqual(q.lower.take(), ['050c']);
  const [f] = eventsNamed(q.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'local');
  assert.equal(f?.[0].reason, 0x0c);
  assert.match(f?.[0].message ?? '', /declined the Just Works pairing/);
  q.session.onLtkRequest(0n, 0);
  await drain(q.session);
  assert.deepEqual(q.lower.calls, ['ltkNegativeReply']);
});

test('confirmJustWorks back to back: each side asked once and paired; a central user declining sends 0x0C before any DHKey check and pair() rejects', async () => {
  const asked: string[] = [];
  const { c, p } = pairOfSides({
    central: { policy: { confirmJustWorks: async () => (asked.push('central'), true) } },
    peripheral: { policy: { confirmJustWorks: async () => (asked.push('peripheral'), true) } },
  });
  const r = c.session.pair();
  await settleBoth(c.session, p.session);
  const info = await r;
  assert.deepEqual(asked.sort(), ['central', 'peripheral']);
  assert.equal(info.model, 'justWorks');
  assert.equal(info.level, 2);

  const bad = pairOfSides({ central: { policy: { confirmJustWorks: async () => false } } });
  const r2 = bad.c.session.pair();
  r2.catch(() => undefined);
  await settleBoth(bad.c.session, bad.p.session);
  await assert.rejects(r2, (e: unknown) => e instanceof SmpError && e.reason === 0x0c);
  const opcodes = bad.c.lower.take().map((h) => h.slice(0, 2));
  assert.deepEqual(opcodes, ['01', '0c', '04', '05'], 'request, public key, random, then Pairing Failed: no DHKey check');
  assert.deepEqual(eventsNamed(bad.p.events, 'pairingFailed').map((f) => `${f[0].by}:${f[0].reason}`), ['peer:12']);
  assert.deepEqual(bad.c.lower.calls, []);
});

test('abort(reason) ends a running pairing with that Pairing Failed reason through the one failure path; idle, it sends nothing', async () => {
  const c = makeSide({ role: 'central' });
  const r = c.session.pair();
  r.catch(() => undefined);
  await drain(c.session);
  c.lower.take();
  c.session.abort(SmpReason.UnspecifiedReason, 'the user tapped Cancel');
  await drain(c.session);
  assert.deepEqual(c.lower.take(), ['0508']);
  await assert.rejects(r, (e: unknown) => e instanceof SmpError && e.reason === 0x08);
  const [f] = eventsNamed(c.events, 'pairingFailed');
  assert.equal(f?.[0].by, 'local');
  assert.match(f?.[0].message ?? '', /Pairing Failed 0x08 \(Unspecified Reason\): the user tapped Cancel/);
  assert.equal(c.session.phase, 'idle');
  assert.ok(c.backoff.remainingMs(PERIPHERAL_ADDR) > 0, 'counts as a failed attempt');
  c.session.abort(SmpReason.UnspecifiedReason);
  await drain(c.session);
  assert.deepEqual(c.lower.take(), []);
  assert.equal(eventsNamed(c.events, 'pairingFailed').length, 1);
  assert.throws(() => c.session.abort(0), RangeError);
});

test('keypress: when both AuthReqs set it, the side typing the passkey sends Passkey Entry Started and Completed before its first confirm; otherwise none', async () => {
  let displayed = -1;
  const run = async (peripheralKeypress: boolean): Promise<{ sent: string[]; level: number }> => {
    const { c, p } = pairOfSides({
      central: { policy: { ioCapability: 0x02, keypress: true, requestPasskey: async () => displayed } },
      peripheral: { policy: { ioCapability: 0x00, keypress: peripheralKeypress, displayPasskey: (v) => void (displayed = v) } },
    });
    const r = c.session.pair();
    await settleBoth(c.session, p.session);
    const info = await r;
    assert.equal(eventsNamed(p.events, 'paired')[0]?.[0].level, 4);
    return { sent: c.lower.take().map((h) => (h.startsWith('0e') || h.startsWith('01') ? h : h.slice(0, 2))), level: info.level };
  };
  const both = await run(true);
  // KeyboardOnly, bonding|MITM|SC|Keypress = 0x1d; then the public key; Started (00), Completed (04), Cai.
  assert.deepEqual(both.sent.slice(0, 5), ['0102001d100202', '0c', '0e00', '0e04', '03']);
  assert.equal(both.sent.filter((h) => h.startsWith('0e')).length, 2);
  assert.equal(both.level, 4);
  const one = await run(false);
  assert.deepEqual(one.sent.slice(0, 3), ['0102001d100202', '0c', '03']);
  assert.equal(one.sent.filter((h) => h.startsWith('0e')).length, 0);
});
