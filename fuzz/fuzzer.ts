/**
 * The wearable's own fuzzer: a hostile central on the virtual air, and a hostile controller, against
 * our Peripheral (src/host.ts) with its live diagnosis on, everything on a VirtualClock so a seed
 * replays a run exactly.
 *
 * Each batch picks one table and sends PDUs built from valid ones, then mutated (bit flips, random
 * bytes, truncation, extension, opcode swaps, length fields that lie):
 * - `att`: ATT PDUs of every opcode (Core 5.4 Vol 3 Part F 3.4) on CID 0x0004;
 * - `smp`: SMP PDUs of every code (Vol 3 Part H 3.5-3.6) on CID 0x0006;
 * - `signaling`: LE signaling commands (Vol 3 Part A 4) on CID 0x0005;
 * - `l2cap`: frames whose basic header lies, or to unknown CIDs (Vol 3 Part A 3.1);
 * - `smp-sequence`: a correct LESC Just Works pairing computed step by step, with one step mutated,
 *   dropped, repeated or preceded by another PDU, then LE Start Encryption with the key the
 *   attacker derived;
 * - `hci`: HCI events injected between the controller and the host (Vol 4 Part E 7.7), mutated from
 *   valid ones; the batch ends with a Hardware Error so the host re-initialises the controller.
 * After every batch the attacker leaves and an honest central connects on a new connection and
 * must get a Read Response to a Read Request; and every LTK the wearable handed to its controller
 * (LE Long Term Key Request Reply in its HCI trace) and every bond it stored must hold a key that a
 * correct pairing produced (one of the keys the attacker derived from a pairing whose public key,
 * nonce and DHKey check it sent unaltered).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Peripheral } from '../src/host.js';
import { Hci } from '../src/hci/driver.js';
import type { HciConnection } from '../src/hci/connection.js';
import { createMemoryTransportPair } from '../src/hci/memory-transport.js';
import type { Transport, TransportEvents } from '../src/hci/transport.js';
import { TypedEmitter } from '../src/util/emitter.js';
import { buildGattDatabase, type GattDatabase } from '../src/gatt/database.js';
import { MemoryBondStore } from '../src/bonds/memory.js';
import { LiveDiagnoser } from '../src/diagnose/live.js';
import { VirtualAir } from '../src/sim/air.js';
import { computeDhKey, f5, f6, generateKeyPair, ioCapField } from '../src/crypto/index.js';
import { addressForCrypto } from '../src/smp/address-field.js';
import { addressTypeToByte, type Address } from '../src/util/address.js';
import { toHex } from '../src/util/bytes.js';
import { VirtualClock } from '../src/util/clock.js';
import { createLogger, silentLogger } from '../src/util/log.js';
import { seededRandom, type RandomSource } from '../src/util/random.js';

export const FUZZ_TABLES = ['att', 'smp', 'signaling', 'l2cap', 'smp-sequence', 'hci'] as const;
export type FuzzTable = (typeof FUZZ_TABLES)[number];

export interface FuzzOptions {
  /** PDUs to send in all. */
  readonly count: number;
  readonly seed: string;
  /** PDUs per batch (default 200). */
  readonly batch?: number;
  /** Progress lines. */
  readonly progress?: (line: string) => void;
  /** Report progress every this many batches (default 50). */
  readonly progressEvery?: number;
  /** Tables to draw from (default all). */
  readonly tables?: readonly FuzzTable[];
}

export interface FuzzReport {
  readonly seed: string;
  readonly pdus: number;
  readonly batches: number;
  readonly byTable: Record<FuzzTable, number>;
  /** Exceptions that escaped the stack (uncaught, unhandled rejections, a wearable that threw). */
  readonly crashes: string[];
  /** Batches whose health check found no answer within its virtual-time budget. */
  readonly hangs: string[];
  /** LTKs handed to the controller, or bonds stored, that no correct pairing produced. */
  readonly keyViolations: string[];
  /** Correct pairings the attacker completed, and LTK replies the wearable sent to it. */
  readonly honestPairings: number;
  readonly ltkReplies: number;
  readonly heapStartMiB: number;
  readonly heapEndMiB: number;
  readonly heapMaxMiB: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly virtualMs: number;
  /** What the wearable's live diagnosis retains at the end (bounded whatever was sent). */
  readonly diagnosis: ReturnType<LiveDiagnoser['retained']>;
}

const ATT_CID = 0x0004;
const SIGNALING_CID = 0x0005;
const SMP_CID = 0x0006;

/** A transport that lets the fuzzer deliver packets to the host as if the controller sent them. */
class InjectingTransport extends TypedEmitter<TransportEvents> implements Transport {
  constructor(private readonly inner: Transport) {
    super();
    inner.on('data', (d) => this.emit('data', d));
    inner.on('close', (e) => this.emit('close', e));
  }
  get description(): string {
    return `${this.inner.description} (fuzz)`;
  }
  get isOpen(): boolean {
    return this.inner.isOpen;
  }
  write(d: Uint8Array): Promise<void> {
    return this.inner.write(d);
  }
  flushInput(): Promise<void> {
    return this.inner.flushInput();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  inject(h4: Uint8Array): void {
    this.emit('data', h4);
  }
}

/** Seeded choices. */
class Dice {
  constructor(private readonly rng: RandomSource) {}
  int(n: number): number {
    const b = this.rng.bytes(4);
    return ((((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number)) >>> 0) % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Uint8Array {
    return this.rng.bytes(n);
  }
  chance(p: number): boolean {
    return this.int(1_000_000) < p * 1_000_000;
  }
}

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}
function u16(v: number): string {
  return toHex(Uint8Array.of(v & 0xff, (v >> 8) & 0xff));
}
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Valid PDUs of each table, as templates (handles in the wearable's range). */
function validAtt(d: Dice): Uint8Array {
  const h = u16(1 + d.int(20));
  const t = [
    '021700',
    `04${u16(1)}${u16(0xffff)}`,
    `06${u16(1)}${u16(0xffff)}0028${'0018'}`,
    `08${u16(1)}${u16(0xffff)}0328`,
    `0a${h}`,
    `0c${h}${u16(d.int(40))}`,
    `0e${h}${u16(2)}`,
    `10${u16(1)}${u16(0xffff)}0028`,
    `12${h}0100`,
    `16${h}0000aabb`,
    `1801`,
    `1800`,
    `20${h}${u16(3)}`,
    `52${h}01`,
    `d2${h}01${'00'.repeat(12)}`,
    `1e`,
    `0b00`,
    `1b${h}00`,
    '031700',
    `01${'0a'}${h}01`,
  ];
  return hex(d.pick(t));
}

function validSmp(d: Dice): Uint8Array {
  const r16 = toHex(d.bytes(16));
  const t = [
    '0103002d100303',
    '0104000d100303',
    '0203000d100202',
    `03${r16}`,
    `04${r16}`,
    `05${toHex(Uint8Array.of(1 + d.int(14)))}`,
    `06${r16}`,
    `07${'0000'}${'00'.repeat(8)}`,
    `08${r16}`,
    `0901${'c0112233445566'.slice(0, 12)}`,
    `0a${r16}`,
    '0b0d',
    `0c${toHex(d.bytes(64))}`,
    `0d${r16}`,
    `0e0${d.int(5)}`,
  ];
  return hex(d.pick(t));
}

function validSignaling(d: Dice): Uint8Array {
  const id = toHex(Uint8Array.of(1 + d.int(255)));
  const t = [
    `01${id}0200${'0000'}`,
    `06${id}0400${u16(0x40)}${u16(0x40)}`,
    `07${id}0400${u16(0x40)}${u16(0x40)}`,
    `12${id}0800${u16(24)}${u16(40)}${u16(0)}${u16(400)}`,
    `13${id}0200${u16(d.int(2))}`,
    `14${id}0a00${u16(0x0080)}${u16(0x0040)}${u16(247)}${u16(247)}${u16(10)}`,
    `15${id}0a00${u16(0x0040)}${u16(247)}${u16(247)}${u16(10)}${u16(0)}`,
    `16${id}0400${u16(0x0040)}${u16(5)}`,
    `17${id}0a00${u16(0x0080)}${u16(247)}${u16(247)}${u16(10)}${u16(0x0041)}`,
    `0a${id}0200${u16(2)}`,
  ];
  return hex(d.pick(t));
}

/** HCI events as a controller sends them (H:4 type byte first). */
function validEvent(d: Dice): Uint8Array {
  const t = [
    `0405040000400013`, // Disconnection Complete, handle 0x0040 (no such link)
    `04080400004001`, // Encryption Change
    `040e0401032000`, // Command Complete for a command never sent
    `040f0400010d20`, // Command Status
    `0413050141000100`, // Number Of Completed Packets for an unknown handle
    `041a0101`, // Data Buffer Overflow
    `04300300004000`.slice(0, 10), // Encryption Key Refresh Complete (short)
    `04570241 00`.replace(' ', ''), // Authenticated Payload Timeout Expired
    `043e1301004100010${d.int(2)}5a11223344551800000090010000`, // LE Connection Complete
    `043e0a03004100180000009001`, // LE Connection Update Complete
    `043e0d05410000000000000000000000`.slice(0, 30), // LE Long Term Key Request
    `043e0b0741001b0048081b004808`, // LE Data Length Change
    `043e0c0c00410002020`.slice(0, 18), // LE PHY Update Complete
    `04ff03010203`, // vendor
    `040c`, // truncated
  ];
  return hex(d.pick(t).replace(/[^0-9a-f]/g, '').replace(/^(([0-9a-f]{2})*)[0-9a-f]$/, '$1'));
}

/** One mutation of a valid PDU (keeps the first byte's meaning roughly half of the time). */
function mutate(d: Dice, pdu: Uint8Array, opcodes: readonly number[]): Uint8Array {
  const p = pdu.slice();
  switch (d.int(8)) {
    case 0: {
      if (p.length) p[d.int(p.length)] = (p[d.int(p.length)] as number) ^ (1 << d.int(8));
      return p;
    }
    case 1: {
      if (p.length) p[d.int(p.length)] = d.int(256);
      return p;
    }
    case 2:
      return p.subarray(0, d.int(p.length + 1));
    case 3:
      return cat(p, d.bytes(1 + d.int(40)));
    case 4: {
      if (p.length) p[0] = d.pick(opcodes);
      return p;
    }
    case 5:
      return d.bytes(d.int(70));
    case 6:
      return p; // the valid PDU, out of its place
    default: {
      for (let i = 0; i < 3 && p.length; i++) p[d.int(p.length)] = d.int(256);
      return p;
    }
  }
}

/**
 * An HCI event packet whose Parameter_Total_Length tells the truth: the fuzzer attacks the event
 * table, not the H:4 framing (a lying length on a byte stream swallows the packets after it; the
 * framer has its own tests).
 */
function framedEvent(body: Uint8Array): Uint8Array {
  const code = body[0] ?? 0xff;
  const params = body.subarray(2, 2 + 255);
  return cat(Uint8Array.of(0x04, code, params.length), params);
}

function l2capFrame(cid: number, payload: Uint8Array, lieLength?: number): Uint8Array {
  const len = lieLength ?? payload.length;
  return cat(Uint8Array.of(len & 0xff, (len >> 8) & 0xff, cid & 0xff, cid >> 8), payload);
}

function gcFn(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapMiB(): number {
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

const log = process.env.WEARABLE_HOST_FUZZ_LOG ? createLogger({ level: process.env.WEARABLE_HOST_FUZZ_LOG as 'warn' }) : silentLogger();

/** The wearable under test and the two centrals, on one virtual air. */
async function buildWorld(seed: string) {
  const clock = new VirtualClock(Date.parse('2026-01-01T00:00:00Z'));
  const air = new VirtualAir({ clock, seed: `fuzz-${seed}`, log });
  const [hostEnd, ctrlEnd] = createMemoryTransportPair('wearable-host', 'wearable-ctrl');
  air.createController({ name: 'wearable', seed: 'wearable' }).attach(ctrlEnd);
  const tap = new InjectingTransport(hostEnd);
  const db: GattDatabase = buildGattDatabase({
    gap: { deviceName: 'Noira Band' },
    services: [
      {
        uuid: 0x180d,
        characteristics: [
          { uuid: 0x2a38, id: 'open', properties: ['read', 'write'], value: Uint8Array.of(1) },
          { uuid: 0x2a39, id: 'secret', properties: ['read', 'notify'], permissions: { read: 'encrypted' }, value: Uint8Array.of(0xca, 0xfe) },
        ],
      },
    ],
  });
  const bonds = new MemoryBondStore();
  const diagnoser = new LiveDiagnoser({ clock, resolveAddress: (a) => bonds.resolve(a)?.peer, bondStore: () => bonds.capacity() });
  /** LE Long Term Key Request Reply commands the wearable sent: handle and key. Core 5.4 Vol 4 Part E 7.8.25. */
  const ltkReplies: { handle: number; ltk: string }[] = [];
  const peripheral = new Peripheral({
    transport: tap,
    clock,
    random: seededRandom(`fuzz-wearable-${seed}`),
    log,
    bonds,
    db,
    connectionParameters: false,
    trace: (dir, h4) => {
      diagnoser.trace(dir === 'sent' ? 'tx' : 'rx', h4);
      if (dir === 'sent' && h4[0] === 0x01 && h4[1] === 0x1a && h4[2] === 0x20 && h4.length >= 22) {
        ltkReplies.push({ handle: (h4[4] as number) | ((h4[5] as number) << 8), ltk: toHex(h4.subarray(6, 22)) });
      }
    },
  });
  const central = async (name: string): Promise<Hci> => {
    const [h, c] = createMemoryTransportPair(`${name}-host`, `${name}-ctrl`);
    air.createController({ name, seed: name }).attach(c);
    const hci = new Hci(h, { clock, log });
    await drive(clock, hci.init());
    return hci;
  };
  await drive(clock, peripheral.start());
  const attacker = await central('attacker');
  const checker = await central('checker');
  return { clock, air, tap, db, bonds, diagnoser, ltkReplies, peripheral, attacker, checker };
}

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 20_000): Promise<T> {
  return clock.drive(p, maxMs, `no answer within ${maxMs} ms of virtual time`);
}

/** Connects `hci` to `target`; undefined when no connection came within the budget. */
async function connect(clock: VirtualClock, hci: Hci, target: Address): Promise<HciConnection | undefined> {
  const connected = hci.wait('connected');
  connected.catch(() => undefined);
  await drive(clock, hci.command('LeCreateConnection', {
    scanInterval: 0x10,
    scanWindow: 0x10,
    initiatorFilterPolicy: 0,
    peerAddressType: addressTypeToByte(target.type),
    peerAddress: target.address,
    ownAddressType: 1,
    connIntervalMin: 6,
    connIntervalMax: 6,
    maxLatency: 0,
    supervisionTimeout: 400,
    minCeLength: 0,
    maxCeLength: 0,
  }));
  if (!(await clock.runUntil(() => hci.connections.length > 0, 5_000))) {
    await drive(clock, hci.command('LeCreateConnectionCancel', {})).catch(() => undefined);
    await clock.advance(50);
    return undefined;
  }
  return hci.connections[0];
}

async function disconnectAll(clock: VirtualClock, hci: Hci): Promise<void> {
  for (const c of [...hci.connections]) await drive(clock, hci.disconnect(c.handle, 0x13)).catch(() => undefined);
  await clock.runUntil(() => hci.connections.length === 0, 5_000);
}

/** Runs the fuzzer; never throws for what the wearable does (that is reported). */
export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const gc = gcFn();
  const batchSize = Math.max(1, o.batch ?? 200);
  const d = new Dice(seededRandom(`fuzz-dice-${o.seed}`));
  const crashes: string[] = [];
  const hangs: string[] = [];
  const keyViolations: string[] = [];
  const byTable = Object.fromEntries(FUZZ_TABLES.map((t) => [t, 0])) as Record<FuzzTable, number>;
  const onUncaught = (err: unknown): void => void crashes.push(`uncaught: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  gc();
  const heapStart = heapMiB();
  let heapMax = heapStart;
  const w = await buildWorld(o.seed);
  const honestLtks = new Set<string>();
  let honestPairings = 0;
  let checkedReplies = 0;
  let pdus = 0;
  let batches = 0;
  const target = w.peripheral.identity?.address;
  if (!target) throw new Error('fuzz: the wearable has no identity after start()');
  const readHandle = w.db.handle('open');
  /** The random address the attacker connects from (changed every batch). */
  let attackerAddress = '';
  let diagnosis: ReturnType<LiveDiagnoser['retained']> | undefined;

  /** Frames the attacker received on each CID since the last take. */
  const inbox: Uint8Array[] = [];
  w.attacker.on('acl', (_h, f) => {
    if (inbox.length < 64) inbox.push(f.slice());
  });
  const takeSmp = (): Uint8Array[] => {
    const out = inbox.filter((f) => f.length >= 5 && f[2] === SMP_CID && f[3] === 0).map((f) => f.subarray(4));
    inbox.length = 0;
    return out;
  };

  const send = async (conn: HciConnection, frame: Uint8Array): Promise<void> => {
    if (!w.attacker.connections.includes(conn)) return;
    // Not awaited: the send waits for controller buffers, which free up only as virtual time passes.
    void w.attacker.sendAcl(conn.handle, frame).catch(() => undefined);
  };

  /** A correct LESC Just Works pairing from the attacker, one step altered. */
  const smpSequence = async (conn: HciConnection): Promise<number> => {
    const rng = seededRandom(`fuzz-seq-${o.seed}-${batches}-${pdus}`);
    const keys = generateKeyPair(rng);
    const na = rng.bytes(16);
    const ownAddr: Address = { type: 'random', address: attackerAddress };
    const step = d.int(6); // which step is altered
    const how = d.pick(['mutate', 'drop', 'repeat', 'insert', 'none'] as const);
    let sent = 0;
    let honest = true;
    const emit = async (i: number, pdu: Uint8Array, crypto: boolean): Promise<boolean> => {
      if (i === step && how !== 'none') {
        if (how === 'drop') {
          if (crypto) honest = false;
          return false;
        }
        if (how === 'insert') {
          await send(conn, l2capFrame(SMP_CID, mutate(d, validSmp(d), SMP_OPCODES)));
          sent++;
        }
        if (how === 'mutate') {
          const m = mutate(d, pdu, SMP_OPCODES);
          if (crypto && toHex(m) !== toHex(pdu)) honest = false;
          await send(conn, l2capFrame(SMP_CID, m));
          sent++;
          await w.clock.advance(30);
          return true;
        }
        if (how === 'repeat') {
          await send(conn, l2capFrame(SMP_CID, pdu));
          sent++;
        }
      }
      await send(conn, l2capFrame(SMP_CID, pdu));
      sent++;
      await w.clock.advance(30);
      return true;
    };
    takeSmp();
    const preq = hex('0103002d100303');
    await emit(0, preq, false);
    const rsp = takeSmp().find((p) => p[0] === 0x02);
    if (!rsp || rsp.length !== 7) return sent;
    await emit(1, cat(Uint8Array.of(0x0c), keys.publicKey), true);
    const got = takeSmp();
    const pkb = got.find((p) => p[0] === 0x0c && p.length === 65)?.subarray(1);
    if (!pkb) return sent;
    await emit(2, cat(Uint8Array.of(0x04), na), true);
    const nb = takeSmp().find((p) => p[0] === 0x04 && p.length === 17)?.subarray(1);
    if (!nb) return sent;
    let dh: Uint8Array;
    try {
      dh = computeDhKey(keys.privateKey, pkb);
    } catch {
      return sent;
    }
    const A = addressForCrypto(ownAddr);
    const B = addressForCrypto(target);
    const { macKey, ltk } = f5(dh, na, nb, A, B);
    const iocap = ioCapField({ ioCapability: preq[1] as number, oobDataFlag: preq[2] as number, authReq: preq[3] as number });
    const ea = f6(macKey, na, nb, new Uint8Array(16), iocap, A, B);
    await emit(3, cat(Uint8Array.of(0x0d), ea), true);
    takeSmp();
    if (honest) {
      honestLtks.add(toHex(ltk));
      honestPairings++;
    }
    // Start encryption with the key this side derived, whatever the wearable said.
    await drive(w.clock, w.attacker.command('LeEnableEncryption', { handle: conn.handle, rand: 0n, ediv: 0, ltk })).catch(() => undefined);
    await w.clock.advance(100);
    await emit(4, cat(Uint8Array.of(0x08), rng.bytes(16)), false);
    await emit(5, hex(`0901${toHex(Uint8Array.from([0x66, 0x55, 0x44, 0x33, 0x22, 0xc1]))}`), false);
    await w.clock.advance(50);
    return sent;
  };

  const checkKeys = (where: string): void => {
    for (; checkedReplies < w.ltkReplies.length; checkedReplies++) {
      const r = w.ltkReplies[checkedReplies] as { handle: number; ltk: string };
      if (!honestLtks.has(r.ltk)) keyViolations.push(`${where}: LTK Request Reply on handle 0x${r.handle.toString(16)} with a key no correct pairing produced (${r.ltk})`);
    }
    for (const b of w.bonds.list()) {
      if (!honestLtks.has(toHex(b.ltk))) keyViolations.push(`${where}: bond of ${b.peer.address} holds a key no correct pairing produced`);
    }
  };

  /** An honest central on a new connection reads a characteristic. */
  const healthy = async (where: string): Promise<void> => {
    await disconnectAll(w.clock, w.attacker);
    if (!(await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 10_000))) {
      const h = w.peripheral.hci;
      hangs.push(`${where}: the wearable is not advertising again 10 s after the attacker left (ready ${h.ready}, host links ${w.peripheral.connections.length}, driver links ${h.connections.map((c) => `0x${c.handle.toString(16)}/${c.role}`).join(' ')})`);
      return;
    }
    const conn = await connect(w.clock, w.checker, target);
    if (!conn) {
      hangs.push(`${where}: an honest central could not connect`);
      return;
    }
    let answer: Uint8Array | undefined;
    const onAcl = (h: number, f: Uint8Array): void => {
      if (h === conn.handle && f[2] === ATT_CID) answer = f.subarray(4);
    };
    w.checker.on('acl', onAcl);
    void w.checker.sendAcl(conn.handle, l2capFrame(ATT_CID, Uint8Array.of(0x0a, readHandle & 0xff, readHandle >> 8))).catch(() => undefined);
    const ok = await w.clock.runUntil(() => answer !== undefined, 5_000);
    w.checker.off('acl', onAcl);
    if (!ok || answer?.[0] !== 0x0b) hangs.push(`${where}: Read Request on a new connection got ${answer ? toHex(answer) : 'no answer'}`);
    await disconnectAll(w.clock, w.checker);
    await w.clock.runUntil(() => w.peripheral.connections.length === 0 && w.peripheral.advertising, 10_000);
  };

  try {
    while (pdus < o.count) {
      batches++;
      const table = d.pick(o.tables ?? FUZZ_TABLES);
      const where = `batch ${batches} (${table}, seed ${o.seed})`;
      const n = Math.min(batchSize, o.count - pdus);
      try {
        // A fresh attacker address each batch: the per-address back-off does not protect, the device-wide limit does.
        const addr = d.bytes(6);
        addr[5] = ((addr[5] as number) | 0xc0) & 0xff;
        attackerAddress = (toHex(addr.slice().reverse()).match(/../g) ?? []).join(':').toUpperCase();
        await drive(w.clock, w.attacker.command('LeSetRandomAddress', { address: attackerAddress })).catch(() => undefined);
        if (table === 'hci') {
          for (let i = 0; i < n; i++) {
            const ev = validEvent(d);
            w.tap.inject(d.chance(0.8) ? framedEvent(mutate(d, ev.subarray(1), EVENT_CODES)) : framedEvent(ev.subarray(1)));
            if (i % 8 === 7) await w.clock.advance(5);
          }
          pdus += n;
          byTable.hci += n;
          // The controller says it failed: the host resets it and starts over.
          w.tap.inject(Uint8Array.of(0x04, 0x10, 0x01, 0x01));
          await w.clock.runUntil(() => w.peripheral.hci.ready && w.peripheral.advertising, 10_000);
        } else {
          const conn = await connect(w.clock, w.attacker, target);
          if (!conn) {
            hangs.push(`${where}: the attacker could not connect`);
          } else {
            let sent = 0;
            while (sent < n && w.attacker.connections.includes(conn)) {
              if (table === 'smp-sequence') {
                sent += await smpSequence(conn);
                await disconnectAll(w.clock, w.attacker);
                break;
              }
              let frame: Uint8Array;
              if (table === 'att') frame = l2capFrame(ATT_CID, d.chance(0.85) ? mutate(d, validAtt(d), ATT_OPCODES) : validAtt(d));
              else if (table === 'smp') frame = l2capFrame(SMP_CID, d.chance(0.85) ? mutate(d, validSmp(d), SMP_OPCODES) : validSmp(d));
              else if (table === 'signaling') frame = l2capFrame(SIGNALING_CID, d.chance(0.85) ? mutate(d, validSignaling(d), SIGNALING_CODES) : validSignaling(d));
              else {
                const payload = d.pick([validAtt, validSmp, validSignaling])(d);
                frame = l2capFrame(d.pick([ATT_CID, SMP_CID, SIGNALING_CID, 0x0000, 0x0001, 0x0003, 0x0040, 0xffff, d.int(0x10000)]), payload, d.chance(0.7) ? d.int(0x10000) : undefined);
              }
              await send(conn, frame);
              sent++;
              if (sent % 4 === 0) await w.clock.advance(10);
            }
            pdus += Math.max(sent, 1);
            byTable[table] += Math.max(sent, 1);
          }
        }
        await w.clock.advance(50);
        await healthy(where);
        checkKeys(where);
      } catch (err) {
        crashes.push(`${where}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        await disconnectAll(w.clock, w.attacker).catch(() => undefined);
      }
      // Time goes by between batches (back-off intervals, the device-wide pairing limit, timers).
      await w.clock.advance(10_000);
      if (batches % (o.progressEvery ?? 50) === 0) {
        gc();
        heapMax = Math.max(heapMax, heapMiB());
        o.progress?.(
          `${pdus.toLocaleString('en-US')} PDUs, ${batches} batches, ${crashes.length} crashes, ${hangs.length} hangs, ${keyViolations.length} key violations, heap ${heapMiB().toFixed(1)} MiB, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
      }
    }
    diagnosis = w.diagnoser.retained();
  } finally {
    w.diagnoser.stop();
    await w.peripheral.stop().catch(() => undefined);
    w.attacker.close();
    w.checker.close();
    w.air.close();
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
  gc();
  const heapEnd = heapMiB();
  const cpu = process.cpuUsage(c0);
  return {
    seed: o.seed,
    pdus,
    batches,
    byTable,
    crashes,
    hangs,
    keyViolations,
    honestPairings,
    ltkReplies: w.ltkReplies.length,
    heapStartMiB: heapStart,
    heapEndMiB: heapEnd,
    heapMaxMiB: Math.max(heapMax, heapEnd),
    wallMs: performance.now() - t0,
    cpuMs: (cpu.user + cpu.system) / 1000,
    virtualMs: w.clock.now() - Date.parse('2026-01-01T00:00:00Z'),
    diagnosis: diagnosis ?? w.diagnoser.retained(),
  };
}

const ATT_OPCODES = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x16, 0x17, 0x18, 0x19, 0x1b, 0x1d, 0x1e, 0x20, 0x21, 0x23, 0x52, 0xd2, 0x00, 0xff];
const SMP_OPCODES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff];
const SIGNALING_CODES = [0x00, 0x01, 0x06, 0x07, 0x0a, 0x0b, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0xff];
const EVENT_CODES = [0x05, 0x08, 0x0e, 0x0f, 0x13, 0x1a, 0x30, 0x3e, 0x57, 0xff, 0x00];
