/**
 * Bond policy against a stranger in radio range: a full store refuses new peers (no eviction of the
 * owner's bonds unless asked for), a device-wide limit on new pairings that rotating addresses cannot
 * bypass, and re-pairing with the 'replace' policy (old bond out first, no downgrade). First through
 * whole pairings on an SmpSession, then the decisions of src/smp/bond-policy.ts one by one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import type { BondRecord, BondStore } from '../../src/bonds/types.js';
import { PairingBackoff } from '../../src/smp/backoff.js';
import { BondCommitPolicy, downgradeFrom, type NewBond } from '../../src/smp/bond-policy.js';
import { SmpSession } from '../../src/smp/pairing.js';
import { mergeSmpPolicy, type SmpPolicy } from '../../src/smp/types.js';
import type { Address } from '../../src/util/address.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { captureLogger } from '../hci/fixtures/rig.js';
import { CENTRAL_IDENTITY, FakeLower, PERIPHERAL_ADDR, PERIPHERAL_IDENTITY, ScriptedCentral, drain, inject, rpaFor } from './harness.js';

interface Peripheral {
  session: SmpSession;
  lower: FakeLower;
}

function peripheral(bonds: BondStore, peer: Address, clock: VirtualClock, backoff: PairingBackoff, policy: Partial<SmpPolicy> = {}, log = captureLogger([])): Peripheral {
  const lower = new FakeLower('peripheral', PERIPHERAL_ADDR, peer);
  const session = new SmpSession({ lower, bonds, clock, random: seededRandom(`p-${peer.address}`), backoff, policy, log });
  session.start();
  return { session, lower };
}

/** A static random identity address numbered `i` (top two bits set). */
function identity(i: number): Address {
  return { type: 'random', address: `C0:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`.toUpperCase() };
}

function ownerBond(peer: Address, extra: Partial<BondRecord> = {}): BondRecord {
  return {
    peer,
    ltk: fromHex('aa'.repeat(16)),
    ediv: 0,
    rand: 0n,
    keySize: 16,
    authenticated: false,
    secureConnections: true,
    cccd: {},
    gatt: { clientFeatures: 0, changeAware: true },
    createdAt: '2025-01-01T00:00:00.000Z',
    lastSeenAt: '2025-01-01T00:00:00.000Z',
    ...extra,
  };
}

/**
 * A whole Just Works pairing from `c` with key distribution of `id` (or none). Returns the first
 * PDU the peripheral answered the Pairing Request with (hex).
 */
async function pairJustWorks(p: Peripheral, c: ScriptedCentral, id: { irk: Uint8Array; address: Address } | undefined, req: Parameters<ScriptedCentral['request']>[0] = {}): Promise<string> {
  await inject(p.session, c.request(req));
  const first = p.lower.sent[0] ? toHex(p.lower.sent[0]) : '';
  if (!first.startsWith('02')) return first;
  c.takeResponse(p.lower.takePdus()[0]);
  await inject(p.session, c.publicKey());
  const [pk, conf] = p.lower.takePdus();
  c.takePublicKey(pk);
  c.takeConfirm(conf);
  await inject(p.session, c.random());
  c.takeRandom(p.lower.takePdus()[0]);
  await inject(p.session, { type: 'pairingDhKeyCheck', check: c.ea() });
  p.lower.takePdus();
  p.session.onLtkRequest(0n, 0);
  p.session.onEncryptionChange(0, true);
  await drain(p.session);
  p.lower.take();
  if (id) {
    await inject(p.session, { type: 'identityInformation', irk: id.irk });
    await inject(p.session, { type: 'identityAddressInformation', address: id.address });
  }
  return first;
}

test('17 strangers pairing Just Works with the default store: the owner keeps both bonds, the store fills, then each new stranger gets Pairing Failed 0x08 with a log line', async () => {
  const clock = new VirtualClock(Date.parse('2026-06-01T00:00:00Z'));
  const backoff = new PairingBackoff(clock);
  const bonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, bonds: [ownerBond(identity(0x100)), ownerBond(identity(0x101))] });
  assert.equal(bonds.maxBonds, 16);
  const answers: string[] = [];
  const lines: Record<string, unknown>[] = [];
  for (let i = 0; i < 17; i++) {
    const addr = identity(i);
    const p = peripheral(bonds, addr, clock, backoff, {}, captureLogger(lines));
    answers.push((await pairJustWorks(p, new ScriptedCentral(addr, PERIPHERAL_ADDR, `stranger-${i}`), { irk: new Uint8Array(16).fill(i + 1), address: addr })).slice(0, 2));
    await clock.advance(10_000); // well under the device-wide limit
  }
  assert.deepEqual(answers, [...Array(14).fill('02'), '05', '05', '05'], '14 free slots taken, then Pairing Failed');
  assert.ok(bonds.get(identity(0x100)) && bonds.get(identity(0x101)), "the owner's bonds are still there");
  assert.equal(bonds.list().length, 16);
  const refusal = lines.find((l) => typeof l.msg === 'string' && /bond store is full/.test(l.msg) && l.level === 40);
  assert.ok(refusal, 'a warn log line says the store is full');
  assert.equal(refusal?.maxBonds, 16);
});

test('the refusal is Pairing Failed 0x08 Unspecified Reason before any Pairing Response, and a bonded peer can still re-pair (replace)', async () => {
  const clock = new VirtualClock();
  const backoff = new PairingBackoff(clock);
  const owner = CENTRAL_IDENTITY.address;
  const bonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, maxBonds: 1, bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk })] });
  const stranger = peripheral(bonds, identity(7), clock, backoff);
  await inject(stranger.session, new ScriptedCentral(identity(7)).request());
  assert.deepEqual(stranger.lower.take(), ['0508']);
  // The owner on an RPA that resolves to its bond: room for it (its own bond is replaced).
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  const again = peripheral(bonds, rpa, clock, backoff, { rePairing: 'replace' });
  assert.equal((await pairJustWorks(again, new ScriptedCentral(rpa), CENTRAL_IDENTITY)).slice(0, 2), '02');
  assert.notEqual(toHex(bonds.get(owner)?.ltk ?? new Uint8Array()), 'aa'.repeat(16), 'the owner re-paired');
  assert.equal(bonds.list().length, 1);
});

test("eviction is explicit: with whenFull 'evict-oldest' a stranger's pairing evicts the least recently seen bond", async () => {
  const clock = new VirtualClock(Date.parse('2026-06-01T00:00:00Z'));
  const bonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, maxBonds: 1, whenFull: 'evict-oldest', bonds: [ownerBond(identity(0x100))] });
  const p = peripheral(bonds, identity(1), clock, new PairingBackoff(clock));
  assert.equal((await pairJustWorks(p, new ScriptedCentral(identity(1)), { irk: new Uint8Array(16).fill(9), address: identity(1) })).slice(0, 2), '02');
  assert.deepEqual(bonds.list().map((b) => b.peer.address), [identity(1).address]);
});

test('device-wide limit on new pairings: 10 back to back from 10 addresses, the 11th address gets 0x09 Repeated Attempts, one more after 6 s', async () => {
  const clock = new VirtualClock();
  const backoff = new PairingBackoff(clock);
  const bonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY });
  const answers: string[] = [];
  for (let i = 0; i < 11; i++) {
    const p = peripheral(bonds, identity(i), clock, backoff);
    await inject(p.session, new ScriptedCentral(identity(i)).request());
    answers.push(p.lower.take()[0]?.slice(0, 4) ?? '');
  }
  assert.deepEqual(answers, [...Array(10).fill('0203'), '0509'], 'each of the first ten gets a Pairing Response, the eleventh 0x09');
  assert.ok(backoff.newPairingWaitMs() > 0);
  await clock.advance(6_000);
  const late = peripheral(bonds, identity(20), clock, backoff);
  await inject(late.session, new ScriptedCentral(identity(20)).request());
  assert.equal(late.lower.take()[0]?.slice(0, 4), '0203');
});

test("re-pairing with 'replace' in a full store: the same device's old bond is removed before the new one is stored, no other bond is evicted", async () => {
  const clock = new VirtualClock(Date.parse('2026-06-01T00:00:00Z'));
  const owner = CENTRAL_IDENTITY.address;
  const others = [identity(1), identity(2)];
  const bonds = new MemoryBondStore({
    localIdentity: PERIPHERAL_IDENTITY,
    maxBonds: 3,
    whenFull: 'evict-oldest',
    bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk, lastSeenAt: '2026-05-01T00:00:00.000Z' }), ...others.map((a) => ownerBond(a))],
  });
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  const p = peripheral(bonds, rpa, clock, new PairingBackoff(clock), { rePairing: 'replace' });
  // The phone re-pairs without distributing its identity: the new bond is keyed by the address it used.
  assert.equal((await pairJustWorks(p, new ScriptedCentral(rpa), undefined, { initiatorKeyDist: 0 })).slice(0, 2), '02');
  for (const a of others) assert.ok(bonds.get(a), `the unrelated bond ${a.address} is kept`);
  assert.equal(bonds.get(owner), undefined, 'the old bond of the same device is gone');
  assert.ok(bonds.get(rpa), 'the new bond is stored');
  assert.equal(bonds.list().length, 3);
});

test("re-pairing with 'replace' refuses a downgrade with 0x03 and keeps the bond: authenticated to Just Works, a shorter key", async () => {
  const clock = new VirtualClock();
  const owner = CENTRAL_IDENTITY.address;
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  // Authenticated bond, Just Works re-pairing (both NoInputNoOutput).
  const authBonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk, authenticated: true })] });
  const a = peripheral(authBonds, rpa, clock, new PairingBackoff(clock), { rePairing: 'replace' });
  await inject(a.session, new ScriptedCentral(rpa).request({ ioCapability: 0x03 }));
  assert.deepEqual(a.lower.take(), ['0503']);
  assert.equal(toHex(authBonds.get(owner)?.ltk ?? new Uint8Array()), 'aa'.repeat(16));
  // 16-byte bond, the phone now offers 12 bytes (and this device accepts 7 and up).
  const keyBonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk })] });
  const k = peripheral(keyBonds, rpa, clock, new PairingBackoff(clock), { rePairing: 'replace', minKeySize: 7 });
  await inject(k.session, new ScriptedCentral(rpa).request({ maxKeySize: 12 }));
  assert.deepEqual(k.lower.take(), ['0503']);
  assert.equal(toHex(keyBonds.get(owner)?.ltk ?? new Uint8Array()), 'aa'.repeat(16));
  // Same strength: allowed.
  const same = peripheral(keyBonds, rpa, clock, new PairingBackoff(clock), { rePairing: 'replace', minKeySize: 7 });
  await inject(same.session, new ScriptedCentral(rpa).request());
  assert.equal(same.lower.take()[0]?.slice(0, 2), '02');
});

test("a peer recognised only by the identity it distributes cannot weaken that bond either ('replace'): 0x03 and the link is dropped", async () => {
  const clock = new VirtualClock();
  const owner = CENTRAL_IDENTITY.address;
  const bonds = new MemoryBondStore({ localIdentity: PERIPHERAL_IDENTITY, bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk, authenticated: true })] });
  const stranger = identity(3);
  const p = peripheral(bonds, stranger, clock, new PairingBackoff(clock), { rePairing: 'replace' });
  await pairJustWorks(p, new ScriptedCentral(stranger), CENTRAL_IDENTITY);
  assert.deepEqual(p.lower.take(), ['0503']);
  assert.equal(p.lower.calls.at(-1), 'disconnect 0x05');
  assert.equal(toHex(bonds.get(owner)?.ltk ?? new Uint8Array()), 'aa'.repeat(16));
});

// -------------------------------------------------------------------------------------------
// The bond-commit policy alone (src/smp/bond-policy.ts)

function policyOver(bonds: BondStore, rePairing: SmpPolicy['rePairing'], lines: Record<string, unknown>[] = []): BondCommitPolicy {
  return new BondCommitPolicy(bonds, mergeSmpPolicy({ rePairing }), captureLogger(lines));
}

function newBond(identity: Address, extra: Partial<NewBond> = {}): NewBond {
  return { identity, ltk: fromHex('bb'.repeat(16)), keySize: 16, authenticated: false, peerIrk: undefined, existingBond: undefined, ...extra };
}

test('downgradeFrom names what a re-pairing would lose (authenticated, Secure Connections, key size) and nothing for an equal or stronger one', () => {
  const old = ownerBond(identity(1), { authenticated: true, keySize: 16 });
  assert.match(downgradeFrom(old, false, true, 16) ?? '', /authenticated \(MITM-protected\).*Just Works/);
  assert.match(downgradeFrom(old, true, false, 16) ?? '', /LE Secure Connections.*legacy/);
  assert.match(downgradeFrom(old, true, true, 12) ?? '', /16-byte key.*12 bytes/);
  assert.equal(downgradeFrom(old, true, true, 16), undefined);
  assert.equal(downgradeFrom(ownerBond(identity(1), { keySize: 12 }), true, true, 16), undefined, 'stronger on every count');
});

test("admitPairingRequest: 'reject' refuses a bonded peer with 0x03; 'replace' admits it even into a full store; a new bonding peer in a full refusing store gets 0x08 and a warn line", () => {
  const owner = identity(0x100);
  const bonds = new MemoryBondStore({ maxBonds: 1, bonds: [ownerBond(owner)] });
  const existing = bonds.get(owner);
  assert.equal(policyOver(bonds, 'reject').admitPairingRequest(owner, existing, true)?.reason, 0x03);
  assert.equal(policyOver(bonds, 'replace').admitPairingRequest(owner, existing, true), undefined);
  const lines: Record<string, unknown>[] = [];
  const full = policyOver(bonds, 'replace', lines).admitPairingRequest(identity(2), undefined, true);
  assert.equal(full?.reason, 0x08);
  assert.match(full?.detail ?? '', /full \(1 of 1 bonds\).*--evict-oldest-bond/);
  assert.equal(lines.find((l) => l.level === 40)?.maxBonds, 1);
  assert.equal(policyOver(bonds, 'replace').admitPairingRequest(identity(2), undefined, false), undefined, 'a pairing without bonding stores nothing');
  const evicting = new MemoryBondStore({ maxBonds: 1, whenFull: 'evict-oldest', bonds: [ownerBond(owner)] });
  assert.equal(policyOver(evicting, 'replace').admitPairingRequest(identity(2), undefined, true), undefined, 'eviction was asked for');
});

test('checkDowngrade: only against the bond the peer had, 0x03 naming the peer and what it would lose', () => {
  const bonds = new MemoryBondStore();
  const p = policyOver(bonds, 'replace');
  assert.equal(p.checkDowngrade(undefined, false, 7), undefined);
  const r = p.checkDowngrade(ownerBond(identity(5), { authenticated: true }), false, 16);
  assert.equal(r?.reason, 0x03);
  assert.match(r?.detail ?? '', /re-pairing .*C0:00:00:00:00:05.* would weaken its bond \(the bond is authenticated/);
});

test("checkCommit: an identity claimed only in key distribution ('reject': 0x03; 'replace': 0x03 when weaker), and a store that filled meanwhile (0x08); nothing without bonding", () => {
  const owner = identity(0x100);
  const bonds = new MemoryBondStore({ maxBonds: 2, bonds: [ownerBond(owner, { authenticated: true })] });
  assert.equal(policyOver(bonds, 'reject').checkCommit(newBond(owner), true)?.reason, 0x03);
  assert.match(policyOver(bonds, 'replace').checkCommit(newBond(owner), true)?.detail ?? '', /stronger bond .*authenticated/);
  assert.equal(policyOver(bonds, 'replace').checkCommit(newBond(owner, { authenticated: true }), true), undefined, 'as strong: replaced');
  assert.equal(policyOver(bonds, 'reject').checkCommit(newBond(owner, { existingBond: bonds.get(owner) }), true), undefined, 'recognised at the start: already admitted');
  assert.equal(policyOver(bonds, 'reject').checkCommit(newBond(owner), false), undefined, 'not bonding');
  assert.equal(policyOver(bonds, 'reject').checkCommit(newBond(identity(1)), true), undefined, 'room left');
  const full = new MemoryBondStore({ maxBonds: 1, bonds: [ownerBond(owner)] });
  const lines: Record<string, unknown>[] = [];
  assert.equal(policyOver(full, 'reject', lines).checkCommit(newBond(identity(1)), true)?.reason, 0x08);
  assert.ok(lines.some((l) => l.level === 40 && /bond store is full/.test(String(l.msg))));
});

test('commit: the same device\'s old bond (under another address) leaves just before the new one is stored; a store error puts it back and reports no bond', async () => {
  const owner = CENTRAL_IDENTITY.address;
  const rpa = rpaFor(CENTRAL_IDENTITY.irk);
  const bonds = new MemoryBondStore({ maxBonds: 1, bonds: [ownerBond(owner, { peerIrk: CENTRAL_IDENTITY.irk })] });
  const old = bonds.get(owner);
  const now = '2026-06-01T00:00:00.000Z';
  const record = await policyOver(bonds, 'replace').commit(newBond(rpa, { existingBond: old }), now);
  assert.deepEqual(record?.peer, rpa);
  assert.deepEqual(bonds.list().map((b) => b.peer), [rpa], 'replaced in a full store that refuses new peers');
  assert.equal(record?.createdAt, now);

  const failing = new RefusingStore({ maxBonds: 1, bonds: [ownerBond(owner)] });
  failing.refuse = rpa;
  const lines: Record<string, unknown>[] = [];
  assert.equal(await policyOver(failing, 'replace', lines).commit(newBond(rpa, { existingBond: failing.get(owner) }), now), undefined);
  assert.ok(failing.get(owner), 'the old bond is back');
  assert.equal(failing.get(rpa), undefined);
  assert.ok(lines.some((l) => l.level === 50 && /could not store the bond/.test(String(l.msg))));
});

/** A memory store whose put() fails for one peer (a full disk, as the store sees it). */
class RefusingStore extends MemoryBondStore {
  refuse: Address | undefined;
  override async put(record: BondRecord): Promise<void> {
    if (this.refuse && record.peer.type === this.refuse.type && record.peer.address === this.refuse.address) throw new Error('disk full');
    return super.put(record);
  }
}
