/**
 * Test harness for SMP: a fake lower layer that records what SMP sends and asks of HCI, a small
 * in-memory BondStore, a scripted peer that computes its side of LE Secure Connections with our
 * crypto, and a fake air/controller joining two SmpSessions back to back.
 */
import type { BondRecord, BondStore, LocalIdentity } from '../../src/bonds/types.js';
import { ah, computeDhKey, f4, f5, f6, generateKeyPair, ioCapField, maskKey, type P256KeyPair } from '../../src/crypto/index.js';
import { addressForCrypto } from '../../src/smp/address-field.js';
import { irkResolvesAddress } from '../../src/privacy/rpa.js';
import { PairingBackoff } from '../../src/smp/backoff.js';
import { SmpSession } from '../../src/smp/pairing.js';
import { decodeSmp, encodeSmp, type PairingFeatures, type SmpPdu } from '../../src/smp/pdu.js';
import type { SmpEvents, SmpLower, SmpPolicy } from '../../src/smp/types.js';
import { addressFromWire, type Address } from '../../src/util/address.js';
import { bytesEqual, toHex } from '../../src/util/bytes.js';
import { VirtualClock } from '../../src/util/clock.js';
import type { Logger } from '../../src/util/log.js';
import { seededRandom, type RandomSource } from '../../src/util/random.js';

export const ZERO16 = new Uint8Array(16);

export function keyOf(a: Address): string {
  return `${a.type}/${a.address.toUpperCase()}`;
}

/** A BondStore in a Map, resolving RPAs with the stored IRKs. */
export class FakeBondStore implements BondStore {
  readonly description = 'test store';
  readonly bonds = new Map<string, BondRecord>();
  identity: LocalIdentity | undefined;
  puts = 0;
  removes = 0;
  failPut = false;

  constructor(identity?: LocalIdentity, bonds: BondRecord[] = []) {
    this.identity = identity;
    for (const b of bonds) this.bonds.set(keyOf(b.peer), b);
  }
  getLocalIdentity(): LocalIdentity | undefined {
    return this.identity;
  }
  async setLocalIdentity(id: LocalIdentity): Promise<void> {
    this.identity = id;
  }
  get(peer: Address): BondRecord | undefined {
    return this.bonds.get(keyOf(peer));
  }
  list(): readonly BondRecord[] {
    return [...this.bonds.values()];
  }
  resolve(address: Address): BondRecord | undefined {
    const direct = this.get(address);
    if (direct) return direct;
    for (const b of this.bonds.values()) if (b.peerIrk && irkResolvesAddress(b.peerIrk, address)) return b;
    return undefined;
  }
  async put(record: BondRecord): Promise<void> {
    if (this.failPut) throw new Error('disk full');
    this.puts++;
    this.bonds.set(keyOf(record.peer), record);
  }
  async update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): Promise<void> {
    const b = this.get(peer);
    if (b) this.bonds.set(keyOf(peer), { ...b, ...patch });
  }
  async remove(peer: Address): Promise<boolean> {
    this.removes++;
    return this.bonds.delete(keyOf(peer));
  }
  async clear(): Promise<void> {
    this.bonds.clear();
  }
  async close(): Promise<void> {}
}

/** Records every PDU SMP sends and every HCI request it makes. */
export class FakeLower implements SmpLower {
  readonly sent: Uint8Array[] = [];
  readonly calls: string[] = [];
  /** Read Encryption Key Size answer; undefined: the controller cannot report it (Zephyr's LL). */
  keySize: number | undefined = 16;
  /** Called for each PDU sent (the back-to-back air). */
  onSend: ((pdu: Uint8Array) => void) | undefined;
  onLtkReply: ((ltk: Uint8Array | undefined) => void) | undefined;
  onStartEncryption: ((ltk: Uint8Array, ediv: number, rand: bigint) => void) | undefined;

  constructor(
    readonly role: 'central' | 'peripheral',
    readonly localAddress: Address,
    readonly peerAddress: Address,
  ) {}

  send(pdu: Uint8Array): void {
    this.sent.push(pdu.slice());
    this.onSend?.(pdu.slice());
  }
  async ltkReply(ltk: Uint8Array): Promise<void> {
    this.calls.push(`ltkReply ${toHex(ltk)}`);
    this.onLtkReply?.(ltk);
  }
  async ltkNegativeReply(): Promise<void> {
    this.calls.push('ltkNegativeReply');
    this.onLtkReply?.(undefined);
  }
  async startEncryption(ltk: Uint8Array, ediv: number, rand: bigint): Promise<void> {
    this.calls.push(`startEncryption ${toHex(ltk)} ${ediv} ${rand}`);
    this.onStartEncryption?.(ltk, ediv, rand);
  }
  async readKeySize(): Promise<number | undefined> {
    this.calls.push('readKeySize');
    return this.keySize;
  }
  async disconnect(reason: number): Promise<void> {
    this.calls.push(`disconnect 0x${reason.toString(16).padStart(2, '0')}`);
  }
  /** Hex of everything sent since the last call, and forget it. */
  take(): string[] {
    const out = this.sent.map((b) => toHex(b));
    this.sent.length = 0;
    return out;
  }
  /** Decoded PDUs sent since the last call, and forget them. */
  takePdus(): SmpPdu[] {
    const out = this.sent.map((b) => {
      const r = decodeSmp(b);
      if (!r.ok) throw new Error(`SMP sent a malformed PDU: ${toHex(b)}`);
      return r.pdu;
    });
    this.sent.length = 0;
    return out;
  }
}

export const CENTRAL_ADDR: Address = { type: 'random', address: 'C4:11:22:33:44:55' };
export const PERIPHERAL_ADDR: Address = { type: 'random', address: 'D5:66:77:88:99:AA' };
export const PERIPHERAL_IDENTITY: LocalIdentity = {
  address: { type: 'random', address: 'D5:66:77:88:99:AA' },
  irk: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
};
export const CENTRAL_IDENTITY: LocalIdentity = {
  address: { type: 'public', address: '00:1B:DC:01:02:03' },
  irk: Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i),
};

/** A resolvable private address for `irk` with a fixed prand (deterministic). */
export function rpaFor(irk: Uint8Array, prandLow = 0x123456): Address {
  const prand = Uint8Array.of(prandLow & 0xff, (prandLow >> 8) & 0xff, ((prandLow >> 16) & 0x3f) | 0x40);
  const wire = new Uint8Array(6);
  wire.set(ah(irk, prand), 0);
  wire.set(prand, 3);
  return { type: 'random', address: addressFromWire(wire) };
}

type EventName = keyof SmpEvents;
const EVENT_NAMES: EventName[] = [
  'pairingRequestReceived',
  'pairingStarted',
  'paired',
  'pairingFailed',
  'securityChanged',
  'securityRequestSent',
  'securityRequestReceived',
  'ltkRequestUnknown',
  'encryptionFailed',
  'identityResolved',
  'bondSaved',
  'timeout',
];

export interface Recorded {
  readonly name: EventName;
  readonly args: unknown[];
}

export function recordEvents(session: SmpSession): Recorded[] {
  const out: Recorded[] = [];
  for (const name of EVENT_NAMES) session.on(name, (...args: unknown[]) => out.push({ name, args }));
  return out;
}

export function eventsNamed<K extends EventName>(rec: Recorded[], name: K): SmpEvents[K][] {
  return rec.filter((r) => r.name === name).map((r) => r.args as SmpEvents[K]);
}

export interface Side {
  readonly session: SmpSession;
  readonly lower: FakeLower;
  readonly bonds: FakeBondStore;
  readonly events: Recorded[];
}

export interface SideOptions {
  role?: 'central' | 'peripheral';
  policy?: Partial<SmpPolicy>;
  bonds?: FakeBondStore;
  identity?: LocalIdentity | null;
  clock?: VirtualClock;
  backoff?: PairingBackoff;
  random?: RandomSource;
  localAddress?: Address;
  peerAddress?: Address;
  log?: Logger;
}

export function makeSide(opts: SideOptions = {}): Side & { clock: VirtualClock; backoff: PairingBackoff } {
  const role = opts.role ?? 'peripheral';
  const clock = opts.clock ?? new VirtualClock();
  const backoff = opts.backoff ?? new PairingBackoff(clock);
  const defaultIdentity = role === 'peripheral' ? PERIPHERAL_IDENTITY : CENTRAL_IDENTITY;
  const bonds = opts.bonds ?? new FakeBondStore(opts.identity === null ? undefined : (opts.identity ?? defaultIdentity));
  const local = opts.localAddress ?? (role === 'peripheral' ? PERIPHERAL_ADDR : CENTRAL_ADDR);
  const peer = opts.peerAddress ?? (role === 'peripheral' ? CENTRAL_ADDR : PERIPHERAL_ADDR);
  const lower = new FakeLower(role, local, peer);
  const session = new SmpSession({
    lower,
    bonds,
    clock,
    random: opts.random ?? seededRandom(`session-${role}`),
    backoff,
    ...(opts.policy ? { policy: opts.policy } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  const events = recordEvents(session);
  session.start();
  return { session, lower, bonds, events, clock, backoff };
}

/** Injects one PDU and waits until the session handled it. */
export async function inject(session: SmpSession, pdu: Uint8Array | SmpPdu): Promise<void> {
  session.onPdu(pdu instanceof Uint8Array ? pdu : encodeSmp(pdu));
  await session.whenIdle();
  // Let hook answers (queued from promise callbacks) run too.
  await new Promise<void>((r) => setImmediate(r));
  await session.whenIdle();
}

export async function drain(session: SmpSession): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await session.whenIdle();
    await new Promise<void>((r) => setImmediate(r));
  }
  await session.whenIdle();
}

export function features(f: Partial<PairingFeatures> = {}): PairingFeatures {
  return { ioCapability: 0x04, oobDataFlag: 0, authReq: 0x0d, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03, ...f };
}

/**
 * The central's side of LE Secure Connections, computed with our crypto: builds the PDUs a phone
 * would send and checks what the peripheral answers.
 */
export class ScriptedCentral {
  readonly keys: P256KeyPair;
  readonly rng: RandomSource;
  preq: PairingFeatures = features();
  pres: PairingFeatures | undefined;
  peerKey: Uint8Array | undefined;
  na: Uint8Array;
  cb: Uint8Array | undefined;
  nb: Uint8Array | undefined;
  passkey = 0;

  constructor(
    readonly address: Address = CENTRAL_ADDR,
    readonly peripheral: Address = PERIPHERAL_ADDR,
    seed = 'scripted-central',
    keys?: P256KeyPair,
  ) {
    this.rng = seededRandom(seed);
    this.keys = keys ?? generateKeyPair(this.rng);
    this.na = this.rng.bytes(16);
  }

  request(f: Partial<PairingFeatures> = {}): SmpPdu {
    this.preq = features(f);
    return { type: 'pairingRequest', ...this.preq };
  }
  takeResponse(p: SmpPdu | undefined): void {
    if (p?.type !== 'pairingResponse') throw new Error(`expected Pairing Response, got ${p?.type}`);
    const { type: _t, ...f } = p;
    this.pres = f;
  }
  publicKey(): SmpPdu {
    return { type: 'pairingPublicKey', publicKey: this.keys.publicKey };
  }
  takePublicKey(p: SmpPdu | undefined): void {
    if (p?.type !== 'pairingPublicKey') throw new Error(`expected Pairing Public Key, got ${p?.type}`);
    this.peerKey = p.publicKey;
  }
  takeConfirm(p: SmpPdu | undefined): void {
    if (p?.type !== 'pairingConfirm') throw new Error(`expected Pairing Confirm, got ${p?.type}`);
    this.cb = p.confirm;
  }
  random(): SmpPdu {
    return { type: 'pairingRandom', random: this.na };
  }
  takeRandom(p: SmpPdu | undefined): void {
    if (p?.type !== 'pairingRandom') throw new Error(`expected Pairing Random, got ${p?.type}`);
    this.nb = p.random;
  }
  pkaX(): Uint8Array {
    return this.keys.publicKey.subarray(0, 32);
  }
  pkbX(): Uint8Array {
    return (this.peerKey as Uint8Array).subarray(0, 32);
  }
  /** Cb = f4(PKbx, PKax, Nb, 0) holds. */
  confirmMatches(): boolean {
    return bytesEqual(f4(this.pkbX(), this.pkaX(), this.nb as Uint8Array, 0), this.cb as Uint8Array);
  }
  dhKey(): Uint8Array {
    return computeDhKey(this.keys.privateKey, this.peerKey as Uint8Array);
  }
  keysF5(keySize = 16): { macKey: Uint8Array; ltk: Uint8Array } {
    const { macKey, ltk } = f5(this.dhKey(), this.na, this.nb as Uint8Array, addressForCrypto(this.address), addressForCrypto(this.peripheral));
    return { macKey, ltk: maskKey(ltk, keySize) };
  }
  ea(r: Uint8Array = ZERO16): Uint8Array {
    const { macKey } = this.keysF5();
    return f6(macKey, this.na, this.nb as Uint8Array, r, ioCapField(this.preq), addressForCrypto(this.address), addressForCrypto(this.peripheral));
  }
  eb(r: Uint8Array = ZERO16): Uint8Array {
    const { macKey } = this.keysF5();
    return f6(macKey, this.nb as Uint8Array, this.na, r, ioCapField(this.pres as PairingFeatures), addressForCrypto(this.peripheral), addressForCrypto(this.address));
  }
}

/**
 * Joins a central and a peripheral session: PDUs cross on the next turn of the event loop, and a
 * fake controller runs LE encryption (the peripheral's host is asked for the LTK; the link
 * encrypts when both keys match, else both sides see status 0x3D MIC failure; a negative reply
 * gives the central 0x06 PIN or Key Missing).
 */
/** Counts PDUs crossing any back-to-back link (tests wait until it stops moving). */
export const linkTicks = { n: 0 };

export function linkBackToBack(central: Side, peripheral: Side): { log: string[] } {
  const log: string[] = [];
  central.lower.onSend = (pdu) => {
    linkTicks.n++;
    log.push(`C->P ${toHex(pdu.subarray(0, 1))}`);
    setImmediate(() => peripheral.session.onPdu(pdu));
  };
  peripheral.lower.onSend = (pdu) => {
    linkTicks.n++;
    log.push(`P->C ${toHex(pdu.subarray(0, 1))}`);
    setImmediate(() => central.session.onPdu(pdu));
  };
  let centralLtk: Uint8Array | undefined;
  let wasEncrypted = false;
  central.lower.onStartEncryption = (ltk, ediv, rand) => {
    centralLtk = ltk.slice();
    setImmediate(() => peripheral.session.onLtkRequest(rand, ediv));
  };
  peripheral.lower.onLtkReply = (ltk) => {
    setImmediate(() => {
      if (!ltk) {
        central.session.onEncryptionChange(0x06, false);
        return;
      }
      const ok = !!centralLtk && bytesEqual(ltk, centralLtk);
      const status = ok ? 0 : 0x3d;
      if (ok && wasEncrypted) {
        central.session.onKeyRefresh(0);
        peripheral.session.onKeyRefresh(0);
        return;
      }
      wasEncrypted = ok;
      central.session.onEncryptionChange(status, ok);
      peripheral.session.onEncryptionChange(status, ok);
    });
  };
  return { log };
}
