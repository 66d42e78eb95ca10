/**
 * Two-controller hardware-in-the-loop bodies, written once and run twice: on two nRF5340-DKs over
 * real radio (two-dk.hil.test.ts, `npm run test:hil` with WEARABLE_HOST_PORT and
 * WEARABLE_HOST_PHONE_PORT set) and on two virtual controllers sharing one virtual air
 * (two-dk-sim.test.ts, in `npm test`), so the two-DK tests cannot rot unnoticed.
 *
 * One controller runs the wearable: our Peripheral (src/host.ts) with the wearable profile and an
 * in-memory bond store. The other runs the phone: SimulatedPhone (src/phone/phone.ts) with the
 * iOS or Android profile. The phone's steps are the scenario definitions of src/phone/scenarios.ts
 * and the verdict is src/phone/runner.ts's judgeScenario, fed with both sides' events and bond
 * counts, exactly as on the virtual air; each body then asserts the key facts itself (bond counts
 * on both sides, Encryption Change statuses, Pairing Failed reasons, LTKs kept or replaced).
 *
 * Time comes from a {@link StepDriver}: a VirtualClock the driver moves (simulation), or the real
 * clock with a generous timeout per step (hardware). No assertion depends on how long anything took.
 */
import assert from 'node:assert/strict';
import { Peripheral } from '../../src/host.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import type { BondRecord } from '../../src/bonds/types.js';
import { WearableProfile, SimulatedFeeder } from '../../src/gatt/profile.js';
import { HciStatus } from '../../src/hci/status.js';
import { SmpReason } from '../../src/smp/pdu.js';
import type { SmpPolicy } from '../../src/smp/types.js';
import { SimulatedPhone } from '../../src/phone/phone.js';
import { drive } from '../../src/phone/runner.js';
import { phoneProfile, type PhoneName, type PhoneProfile } from '../../src/phone/profiles.js';
import { SCENARIOS, connectionEvents, type JudgeState, type ScenarioEnv, type ScenarioName } from '../../src/phone/scenarios.js';
import { eventsOf, smpTrail, type ScenarioEvent } from '../../src/phone/events.js';
import { judgeScenario, printVerdict, wireWearableEvents, WEARABLE_NAME, type Verdict } from '../../src/phone/runner.js';
import { Transcript } from '../../src/phone/transcript.js';
import { formatAddress, type Address } from '../../src/util/address.js';
import { toHex } from '../../src/util/bytes.js';
import type { Clock, VirtualClock } from '../../src/util/clock.js';
import { silentLogger, type Logger } from '../../src/util/log.js';
import { osRandom, type RandomSource } from '../../src/util/random.js';
import type { ControllerOpener, OpenedController } from './bodies.js';

// ------------------------------------------------------------------ time

/** How a body waits: on a VirtualClock it moves time, on real hardware it bounds each step. */
export interface StepDriver {
  readonly clock: Clock;
  /** Awaits `p`; rejects when it has not settled within `maxMs` (default: the driver's step limit). */
  run<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  /** Lets `ms` pass (notifications arrive meanwhile). */
  sleep(ms: number): Promise<void>;
  /** `real time` / `virtual time`, for messages. */
  readonly kind: string;
}

/**
 * Real time: each step must settle within `stepTimeoutMs` (default 20 s, generous for a lossy radio
 * link); the scenario's own longer limits are honoured when they are longer.
 */
export function realTimeDriver(clock: Clock, stepTimeoutMs = 20_000): StepDriver {
  return {
    clock,
    kind: 'real time',
    run<T>(p: Promise<T>, maxMs?: number): Promise<T> {
      const limit = Math.max(stepTimeoutMs, maxMs ?? 0);
      return new Promise<T>((resolve, reject) => {
        const timer = clock.setTimeout(() => reject(new Error(`a step did not finish within ${limit / 1000} s of real time (is the radio link up? are both DKs within range?)`)), limit);
        p.then(
          (v) => {
            clock.clearTimeout(timer);
            resolve(v);
          },
          (err: unknown) => {
            clock.clearTimeout(timer);
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      });
    },
    sleep: (ms) => new Promise<void>((resolve) => void clock.setTimeout(resolve, ms)),
  };
}

/** Virtual time: runs the clock until `p` settles, or fails after `maxMs` of virtual time (default 120 s). */
export function virtualDriver(clock: VirtualClock, defaultMaxMs = 120_000): StepDriver {
  return {
    clock,
    kind: 'virtual time',
    run: <T>(p: Promise<T>, maxMs = defaultMaxMs): Promise<T> => drive(clock, p, maxMs),
    sleep: (ms) => clock.advance(ms),
  };
}

// ------------------------------------------------------------------ the rig

/** Two controllers: the wearable's and the phone's. Each opener opens a fresh transport to its controller. */
export interface TwoDkOpeners {
  readonly wearable: ControllerOpener;
  readonly phone: ControllerOpener;
}

export interface TwoDkOptions {
  readonly driver: StepDriver;
  /** Randomness per device (default the OS CSPRNG; the simulation passes seeded sources). */
  readonly random?: (who: 'wearable' | 'phone' | 'feeder') => RandomSource;
  readonly log?: Logger;
  /** Advertised name the phone looks for (default "Noira Band"; on hardware a unique one keeps a neighbour's wearable out). */
  readonly wearableName?: string;
  /** Heart rate notification period of the wearable (default 500 ms: several within the scenarios' 3.5 s waits). */
  readonly heartRateIntervalMs?: number;
  /** How long the user looks at the pairing prompt (default: the phone's, 1.5 s). */
  readonly thinkMs?: number;
  /** Transcript lines as the session goes (default: kept only for failure messages). */
  readonly out?: { write(text: string): unknown };
}

/** What one scenario run on two controllers produced. */
export interface TwoDkOutcome {
  readonly scenario: ScenarioName;
  readonly profile: PhoneProfile;
  readonly verdict: Verdict;
  readonly events: readonly ScenarioEvent[];
  /** An error that ended the scenario early. */
  readonly error: string | undefined;
  readonly wearableIdentity: Address;
  readonly phoneIdentity: Address | undefined;
  /** Bonds at the end. */
  readonly wearableBonds: readonly BondRecord[];
  readonly phoneBonds: readonly BondRecord[];
  /** The wearable's bonds as each phone connection came up (before anything happened on it). */
  readonly wearableBondsAtConnect: readonly (readonly BondRecord[])[];
  /** The whole transcript and the verdict, for failure messages. */
  readonly transcript: string;
  readonly descriptions: { readonly wearable: string; readonly phone: string };
}

export interface TwoDkRunSpec {
  readonly scenario: ScenarioName;
  readonly profile: PhoneName;
  /** On top of the scenario's own wearable policy (rePairing 'replace'). */
  readonly wearablePolicy?: Partial<SmpPolicy>;
}

function copyBonds(list: readonly BondRecord[]): BondRecord[] {
  return list.map((b) => ({ ...b, ltk: b.ltk.slice() }));
}

async function closeQuietly(o: OpenedController | undefined): Promise<void> {
  await o?.transport.close().catch(() => undefined);
}

/**
 * Runs one scenario with our wearable on one controller and the simulated phone on the other:
 * both sides' events, the phone's steps from the scenario definition, the judge's verdict with both
 * sides' bond counts. Always stops both devices and closes both transports.
 */
export async function runTwoDkScenario(open: TwoDkOpeners, opts: TwoDkOptions, spec: TwoDkRunSpec): Promise<TwoDkOutcome> {
  const def = SCENARIOS[spec.scenario];
  const { driver } = opts;
  const clock = driver.clock;
  const log = opts.log ?? silentLogger();
  const random = opts.random ?? (() => osRandom);
  const name = opts.wearableName ?? WEARABLE_NAME;
  const profile = phoneProfile(spec.profile, def.profileOverrides?.(spec.profile) ?? {});
  const policy: Partial<SmpPolicy> | undefined = def.wearablePolicy || spec.wearablePolicy ? { ...(def.wearablePolicy ?? {}), ...(spec.wearablePolicy ?? {}) } : undefined;

  const lines: string[] = [];
  const print = (line: string): void => {
    lines.push(line);
    opts.out?.write(`${line}\n`);
  };
  const t0 = clock.now();
  const events: ScenarioEvent[] = [];
  const transcript = new Transcript(t0, profile.label, print);
  const wearableBonds = new MemoryBondStore();
  const phoneBonds = new MemoryBondStore();
  const atConnect: BondRecord[][] = [];
  const record = (e: ScenarioEvent): void => {
    if (e.kind === 'connected') atConnect.push(copyBonds(wearableBonds.list()));
    events.push(e);
    transcript.add(e);
  };

  let wOpened: OpenedController | undefined;
  let pOpened: OpenedController | undefined;
  try {
    wOpened = await open.wearable();
    pOpened = await open.phone();
  } catch (err) {
    await closeQuietly(wOpened);
    throw err;
  }
  const descriptions = { wearable: wOpened.description, phone: pOpened.description };
  print(`scenario ${def.name} with the ${profile.label} profile on two controllers (${driver.kind}): wearable on ${descriptions.wearable}, phone on ${descriptions.phone}`);
  print(`expected: ${def.expected(profile)}`);

  const app = new WearableProfile({ deviceName: name });
  const peripheral = new Peripheral({
    transport: wOpened.transport,
    clock,
    random: random('wearable'),
    log: log.child({ device: 'wearable' }),
    bonds: wearableBonds,
    db: app.db,
    name,
    appearance: 0x00c1,
    serviceUuids16: [0x180d, 0x180f],
    ...(policy ? { policy } : {}),
  });
  const feeder = new SimulatedFeeder(app, clock, { heartRateIntervalMs: opts.heartRateIntervalMs ?? 500, random: random('feeder') });
  const phone = new SimulatedPhone({
    profile,
    transport: pOpened.transport,
    clock,
    random: random('phone'),
    log: log.child({ device: 'phone' }),
    bonds: phoneBonds,
    user: { ...(def.user ? { answer: def.user } : {}), ...(opts.thinkMs !== undefined ? { thinkMs: opts.thinkMs } : {}) },
    ...(def.legacyOnly ? { legacyOnly: true } : {}),
  });
  phone.on('event', record);
  wireWearableEvents(peripheral, (e) => record({ ...e, at: clock.now() } as ScenarioEvent));

  const env: ScenarioEnv = {
    profile,
    phone,
    target: { name },
    wearable: {
      get identity() {
        const id = peripheral.identity;
        if (!id) throw new Error('the wearable has not started');
        return id.address;
      },
      // A reflashed wearable: its bond store is emptied; its identity (the DK's static address) stays.
      eraseBonds: () => wearableBonds.clear(),
      bondCount: () => wearableBonds.list().length,
    },
    run: (p, maxMs) => driver.run(p, maxMs),
    sleep: (ms) => driver.sleep(ms),
    note: (text) => record({ kind: 'note', text, at: clock.now() }),
  };

  let error: string | undefined;
  let wearableIdentity: Address | undefined;
  try {
    await driver.run(peripheral.start());
    await driver.run(phone.start());
    wearableIdentity = peripheral.identity?.address;
    print(`wearable advertising as "${name}" from ${wearableIdentity ? formatAddress(wearableIdentity) : '?'}; ${profile.label} phone identity ${phone.central.identity ? formatAddress(phone.central.identity.address) : '?'}`);
    // A record longer than one ATT_MTU, so the first read needs Read Blob (as the runner does).
    void app.appendHealthRecord({ t: new Date(clock.now()).toISOString(), hr: 72, steps: 5230, spo2: 97, note: 'resting; '.repeat(24) }).catch(() => undefined);
    feeder.start();
    await def.run(env);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    print(`scenario stopped early: ${error}`);
  }
  const state: JudgeState = {
    phoneIdentity: phone.central.identity?.address,
    phoneBonds: phoneBonds.list().length,
    wearableBonds: wearableBonds.list().length,
  };
  const finalWearable = copyBonds(wearableBonds.list());
  const finalPhone = copyBonds(phoneBonds.list());
  feeder.stop();
  await driver.run(phone.stop(), 10_000).catch(() => undefined);
  await driver.run(peripheral.stop(), 10_000).catch(() => undefined);
  await closeQuietly(pOpened);
  await closeQuietly(wOpened);

  const verdict = judgeScenario(def, profile, events, state, error);
  printVerdict(verdict, profile, print);
  if (!wearableIdentity) throw new Error(`the wearable did not come up on ${descriptions.wearable}: ${error ?? 'no identity'}\n${lines.join('\n')}`);
  return {
    scenario: def.name,
    profile,
    verdict,
    events,
    error,
    wearableIdentity,
    phoneIdentity: state.phoneIdentity,
    wearableBonds: finalWearable,
    phoneBonds: finalPhone,
    wearableBondsAtConnect: atConnect,
    transcript: lines.join('\n'),
    descriptions,
  };
}

// ------------------------------------------------------------------ assertions shared by the bodies

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** `phone:0x00`, `wearable:0x06`: Encryption Change statuses in order. */
function encTrail(ev: readonly ScenarioEvent[]): string[] {
  return eventsOf(ev, 'encryption').map((e) => `${e.side}:${hex2(e.status)}`);
}

function sameAddr(a: Address | undefined, b: Address | undefined): boolean {
  return !!a && !!b && a.type === b.type && a.address === b.address;
}

/** Assertion context: the transcript goes into every failure message. */
class Facts {
  constructor(readonly o: TwoDkOutcome) {}

  private why(what: string): string {
    return `${what}\n--- transcript (${this.o.descriptions.wearable} / ${this.o.descriptions.phone}) ---\n${this.o.transcript}`;
  }

  conn(n: number): ScenarioEvent[] {
    const ev = connectionEvents(this.o.events, n);
    assert.ok(ev.length > 0, this.why(`connection ${n + 1} happened`));
    return ev;
  }

  ok(cond: boolean, what: string): void {
    assert.ok(cond, this.why(what));
  }

  equal<T>(actual: T, expected: T, what: string): void {
    assert.deepEqual(actual, expected, this.why(what));
  }

  verdict(want: 'pass' | 'fail' = 'pass'): void {
    assert.equal(this.o.error, undefined, this.why('the scenario ran to its end'));
    assert.equal(this.o.verdict.verdict, want, this.why(`verdict ${want}`));
  }

  /** Bond counts at the end, and that each bond names the other side's identity. */
  bonds(phone: number, wearable: number): void {
    this.equal(this.o.phoneBonds.length, phone, `${phone} bond(s) on the phone`);
    this.equal(this.o.wearableBonds.length, wearable, `${wearable} bond(s) on the wearable`);
    if (phone === 1) this.ok(sameAddr(this.o.phoneBonds[0]?.peer, this.o.wearableIdentity), "the phone's bond is for the wearable's identity address");
    if (wearable === 1) this.ok(sameAddr(this.o.wearableBonds[0]?.peer, this.o.phoneIdentity), "the wearable's bond is for the phone's identity address (resolved from its RPA)");
    for (const b of [...this.o.phoneBonds, ...this.o.wearableBonds]) {
      this.ok(b.secureConnections && b.keySize === 16 && b.ltk.length === 16, `bond for ${formatAddress(b.peer)} is LE Secure Connections with a 16-byte key`);
    }
  }

  /** Both sides paired with LESC Just Works (level 2, 16-byte key) and saved a bond in connection `ev`. */
  pairedBothSides(ev: readonly ScenarioEvent[], what: string): void {
    const paired = eventsOf(ev, 'paired');
    this.ok(paired.some((e) => e.side === 'phone' && e.level === 2 && e.keySize === 16 && e.bonded), `${what}: the phone paired (level 2, 16-byte key, bonded)`);
    this.ok(paired.some((e) => e.side === 'wearable' && e.level === 2 && e.keySize === 16 && e.bonded), `${what}: the wearable paired (level 2, 16-byte key, bonded)`);
    const saved = eventsOf(ev, 'bond-saved').map((e) => e.side).sort();
    this.equal(saved, ['phone', 'wearable'], `${what}: each side saved one bond`);
    const trail = smpTrail(ev);
    this.ok(trail[0] === 'phone:pairingRequest' && trail[1] === 'wearable:pairingResponse', `${what}: the phone sent the Pairing Request and the wearable answered (${trail.join(' ')})`);
    this.ok(!trail.some((t) => t.includes('pairingFailed')), `${what}: no Pairing Failed`);
  }

  /** The encrypted health record was refused with `code` first, then read. */
  readAfter(ev: readonly ScenarioEvent[], code: number, what: string): void {
    const errs = eventsOf(ev, 'att-error').filter((e) => e.op === 'read').map((e) => e.code);
    this.equal(errs, [code], `${what}: the protected read was refused with ${hex2(code)} once`);
    const read = eventsOf(ev, 'gatt').find((e) => e.op === 'read');
    this.ok(!!read && (read.length ?? 0) > 0, `${what}: the health record was read after securing the link (${read?.length ?? 0} bytes)`);
  }
}

// ------------------------------------------------------------------ the bodies

export interface TwoDkBody {
  /** Test name, stating the behaviour proven. */
  readonly name: string;
  run(open: TwoDkOpeners, opts: TwoDkOptions): Promise<void>;
}

function label(p: PhoneName): string {
  return p === 'ios' ? 'iOS' : 'Android';
}

/** First pairing, encrypted read, reconnection with the bond. */
function pairReadReconnect(profile: PhoneName): TwoDkBody {
  return {
    name: `${label(profile)} profile: LESC Just Works pairing after 0x05, encrypted health record read, reconnection encrypts with the bond (0x00 both sides) with no new pairing`,
    async run(open, opts) {
      const o = await runTwoDkScenario(open, opts, { scenario: 'reconnect', profile });
      const f = new Facts(o);
      f.verdict('pass');
      const first = f.conn(0);
      f.readAfter(first, 0x05, 'first connection');
      f.pairedBothSides(first, 'first connection');
      f.equal(encTrail(first).sort(), ['phone:0x00', 'wearable:0x00'], 'first connection: encrypted on both sides (Encryption Change 0x00)');
      f.ok(eventsOf(first, 'notification').length >= 3, 'first connection: heart rate notifications after subscribing');
      const second = f.conn(1);
      f.equal(encTrail(second).sort(), ['phone:0x00', 'wearable:0x00'], 'second connection: encrypted with the stored LTK on both sides');
      f.ok(eventsOf(second, 'encrypt-with-bond').some((e) => e.why === 'connect'), 'second connection: the phone encrypted with its bond on connecting');
      f.equal(smpTrail(second), [], 'second connection: no SMP at all (no new pairing)');
      f.equal(eventsOf(second, 'prompt').length, 0, 'second connection: no pairing prompt');
      f.equal(eventsOf(second, 'ltk-reply').length, 0, 'second connection: the wearable found the key (no LTK negative reply)');
      f.equal(eventsOf(second, 'att-error').map((e) => e.code), [], 'second connection: no ATT error');
      f.ok(eventsOf(second, 'notification').length >= 3, 'second connection: notifications without subscribing again (CCCD kept with the bond)');
      f.ok(eventsOf(second, 'gatt').some((e) => e.op === 'read' && (e.length ?? 0) > 0), 'second connection: the health record was read');
      f.bonds(1, 1);
      // The LTK both sides hold is the same key.
      f.equal(toHex(o.phoneBonds[0]?.ltk ?? new Uint8Array()), toHex(o.wearableBonds[0]?.ltk ?? new Uint8Array()), 'both sides hold the same LTK');
    },
  };
}

/** The wearable lost its bonds; the phone comes back with its old key. */
function peripheralLostBond(profile: PhoneName): TwoDkBody {
  const ios = profile === 'ios';
  return {
    name: ios
      ? 'peripheral lost the bond, iOS profile: LTK negative reply, encryption fails 0x06 PIN or Key Missing, the phone reports it and disconnects without re-pairing'
      : 'peripheral lost the bond, Android profile: encryption fails 0x06 PIN or Key Missing, the wearable answers 0x05 and the phone pairs again; one bond on each side',
    async run(open, opts) {
      const o = await runTwoDkScenario(open, opts, { scenario: 'peripheral-lost-bond', profile });
      const f = new Facts(o);
      f.verdict('pass');
      f.pairedBothSides(f.conn(0), 'first connection');
      f.equal(o.wearableBondsAtConnect[1]?.length, 0, 'the wearable had no bond when the phone came back (erased)');
      const second = f.conn(1);
      f.ok(eventsOf(second, 'encrypt-with-bond').some((e) => e.why === 'connect'), 'second connection: the phone tried its stored key');
      f.ok(eventsOf(second, 'ltk-reply').some((e) => !e.positive), 'second connection: the wearable answered the LTK Request with a negative reply');
      const phoneEnc = eventsOf(second, 'encryption').filter((e) => e.side === 'phone');
      f.equal(phoneEnc[0]?.status, HciStatus.PinOrKeyMissing, 'second connection: the first Encryption Change on the phone is 0x06 PIN or Key Missing');
      if (ios) {
        f.equal(smpTrail(second), [], 'second connection: no pairing attempted (iOS gives up)');
        f.equal(phoneEnc.map((e) => e.status), [HciStatus.PinOrKeyMissing], 'second connection: no successful encryption');
        f.ok(eventsOf(second, 'phone-error').some((e) => e.message.includes(o.profile.lostBondMessage)), `second connection: the phone reported "${o.profile.lostBondMessage}"`);
        f.ok(eventsOf(second, 'disconnected').length > 0, 'second connection: the phone disconnected');
        f.equal(o.phoneBonds.length, 1, 'the phone still holds its (now useless) bond');
        f.equal(o.wearableBonds.length, 0, 'the wearable has no bond');
      } else {
        f.readAfter(second, 0x05, 'second connection');
        f.pairedBothSides(second, 'second connection');
        f.equal(phoneEnc.map((e) => e.status), [HciStatus.PinOrKeyMissing, 0x00], 'second connection: the phone encrypted after pairing again (0x06 then 0x00)');
        f.bonds(1, 1);
        f.equal(toHex(o.phoneBonds[0]?.ltk ?? new Uint8Array()), toHex(o.wearableBonds[0]?.ltk ?? new Uint8Array()), 'both sides hold the same new LTK');
      }
    },
  };
}

/** The user forgot the wearable on the phone; the wearable keeps the bond. */
function phoneForgotDevice(profile: PhoneName, rePairing: 'reject' | 'replace'): TwoDkBody {
  const reject = rePairing === 'reject';
  return {
    name: reject
      ? `phone forgot the device, ${label(profile)} profile, default policy: the protected read gets 0x0F and the wearable refuses the new pairing with Pairing Failed 0x03, keeping its old bond`
      : `phone forgot the device, ${label(profile)} profile, rePairing 'replace': after 0x0F the new pairing succeeds and replaces the wearable's old bond (new LTK, same identity)`,
    async run(open, opts) {
      const o = await runTwoDkScenario(open, opts, { scenario: reject ? 'phone-forgot-device' : 'phone-forgot-device-replace', profile });
      const f = new Facts(o);
      f.equal(o.error, undefined, 'the scenario ran to its end');
      f.pairedBothSides(f.conn(0), 'first connection');
      const old = o.wearableBondsAtConnect[1];
      f.equal(old?.length, 1, 'the wearable still held the bond when the phone came back');
      const second = f.conn(1);
      f.equal(eventsOf(second, 'encrypt-with-bond').length, 0, 'second connection: the phone did not try to encrypt (it has no key)');
      f.equal(eventsOf(second, 'att-error').map((e) => e.code)[0], 0x0f, 'second connection: the protected read got 0x0F Insufficient Encryption (the wearable still has a key)');
      f.ok(smpTrail(second)[0] === 'phone:pairingRequest', 'second connection: the phone sent a Pairing Request');
      if (reject) {
        // The scenario's own judge expects the Zephyr-like default: refusal.
        f.verdict('pass');
        f.equal(smpTrail(second), ['phone:pairingRequest', `wearable:pairingFailed(${hex2(SmpReason.AuthenticationRequirements)})`], 'second connection: Pairing Failed 0x03 Authentication Requirements from the wearable');
        const failures = eventsOf(second, 'pairing-failed').map((e) => `${e.side}:${e.by}:${hex2(e.reason ?? 0)}`).sort();
        f.equal(failures, ['phone:peer:0x03', 'wearable:local:0x03'], 'second connection: the wearable ended the pairing with 0x03 and the phone saw it');
        f.equal(eventsOf(second, 'encryption').filter((e) => e.enabled).length, 0, 'second connection: never encrypted');
        f.equal(o.phoneBonds.length, 0, 'no bond on the phone');
        f.equal(o.wearableBonds.length, 1, 'the wearable kept one bond');
        f.equal(toHex(o.wearableBonds[0]?.ltk ?? new Uint8Array()), toHex(old?.[0]?.ltk ?? new Uint8Array()), "the wearable's bond is the old one (same LTK): a refused pairing evicts nothing");
      } else {
        // The scenario runs the wearable with rePairing 'replace' and judges acceptance.
        f.verdict('pass');
        f.pairedBothSides(second, 'second connection');
        f.readAfter(second, 0x0f, 'second connection');
        f.equal(encTrail(second).sort(), ['phone:0x00', 'wearable:0x00'], 'second connection: encrypted with the new key on both sides');
        f.bonds(1, 1);
        const newLtk = toHex(o.wearableBonds[0]?.ltk ?? new Uint8Array());
        f.ok(newLtk !== toHex(old?.[0]?.ltk ?? new Uint8Array()), "the wearable's bond was replaced (new LTK)");
        f.ok(sameAddr(o.wearableBonds[0]?.peer, old?.[0]?.peer), 'for the same phone identity');
        f.equal(toHex(o.phoneBonds[0]?.ltk ?? new Uint8Array()), newLtk, 'both sides hold the same new LTK');
      }
    },
  };
}

/** Every two-controller body, in the order they run. */
export const TWO_DK_BODIES: readonly TwoDkBody[] = [
  pairReadReconnect('ios'),
  pairReadReconnect('android'),
  peripheralLostBond('ios'),
  peripheralLostBond('android'),
  phoneForgotDevice('ios', 'reject'),
  phoneForgotDevice('android', 'reject'),
  phoneForgotDevice('ios', 'replace'),
  phoneForgotDevice('android', 'replace'),
];
