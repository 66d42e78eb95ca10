/**
 * Runs a scenario on the virtual air: our Peripheral (src/host.ts) serving the wearable profile
 * with an in-memory bond store, and a simulated phone (our Central + a profile), each on its own
 * virtual nRF5340 controller, on a seeded VirtualClock. Prints a transcript as the session goes,
 * writes a btsnoop of the wearable's side when asked, and ends with a verdict: did the session play
 * out the way that phone really behaves?
 *
 * The wearable's capture is also run through the diagnosis (src/diagnose), so the transcript shows
 * what `wearable-host diagnose` would say about the same session.
 */
import { Peripheral } from '../host.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import { BtsnoopWriter } from '../hci/btsnoop.js';
import type { PacketDirection } from '../hci/driver.js';
import type { Transport } from '../hci/transport.js';
import type { SmpPolicy } from '../smp/types.js';
import { MemoryBondStore } from '../bonds/memory.js';
import { WearableProfile, SimulatedFeeder } from '../gatt/profile.js';
import { VirtualAir } from '../sim/air.js';
import { firmwareProfile, type FirmwareName } from '../sim/firmware.js';
import { buildTimeline } from '../diagnose/timeline.js';
import { diagnose } from '../diagnose/diagnose.js';
import type { CapturedPacket } from '../diagnose/capture.js';
import { formatAddress } from '../util/address.js';
import { VirtualClock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { seededRandom } from '../util/random.js';
import type { ScenarioEvent } from './events.js';
import { SimulatedPhone, type PhoneUser } from './phone.js';
import { phoneProfile, type PhoneBehaviour, type PhoneName, type PhoneProfile } from './profiles.js';
import { SCENARIOS, type Check, type JudgeState, type ScenarioDef, type ScenarioEnv, type ScenarioName } from './scenarios.js';
import { Transcript } from './transcript.js';

export const WEARABLE_NAME = 'Noira Band';

export interface RunScenarioOptions {
  profile: PhoneName;
  scenario: ScenarioName;
  /** Seed of the virtual air, identities and keys (default 'wearable-host'). */
  seed?: string | number;
  /** Write the wearable's HCI traffic here (btsnoop, Wireshark/btmon/`wearable-host diagnose`). */
  btsnoopPath?: string;
  /** Firmware both virtual controllers run (src/sim/firmware.ts). Default `ncs`. */
  firmware?: FirmwareName;
  /** Logger for the layers (default silent). */
  log?: Logger;
  /** Where the transcript goes (default nowhere). */
  out?: { write(text: string): unknown };
  /** Changes to the profile's rules (on top of the scenario's own). */
  overrides?: Partial<PhoneBehaviour>;
  user?: Partial<PhoneUser>;
  /** Run the wearable's capture through the diagnosis and print the findings (default true). */
  diagnosis?: boolean;
}

export interface ScenarioFinding {
  readonly rule: string;
  readonly title: string;
  readonly severity: string;
}

export interface ScenarioResult {
  readonly scenario: ScenarioName;
  readonly profile: PhoneName;
  readonly verdict: 'pass' | 'fail';
  /** What this phone really does. */
  readonly expected: string;
  /** What happened, one line per check. */
  readonly observed: string;
  readonly checks: readonly Check[];
  readonly events: readonly ScenarioEvent[];
  /** Virtual ms from start to end. */
  readonly durationMs: number;
  /** An unexpected error that ended the scenario early. */
  readonly error?: string;
  readonly advice?: string;
  /** HCI packets the wearable saw (the btsnoop's content). */
  readonly packets: number;
  readonly findings: readonly ScenarioFinding[];
}

/** Runs the virtual clock until `p` settles (or `maxMs` of virtual time passed). */
export function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 120_000): Promise<T> {
  return clock.drive(p, maxMs, `the simulation made no progress for ${maxMs / 1000} s of virtual time`);
}

export async function runScenario(o: RunScenarioOptions): Promise<ScenarioResult> {
  const def = SCENARIOS[o.scenario];
  const log = o.log ?? silentLogger();
  const out = o.out ?? { write: () => undefined };
  const seed = String(o.seed ?? 'wearable-host');
  const profile: PhoneProfile = phoneProfile(o.profile, { ...(def.profileOverrides?.(o.profile) ?? {}), ...(o.overrides ?? {}) });
  const clock = new VirtualClock();
  const t0 = clock.now();
  const events: ScenarioEvent[] = [];
  const packets: CapturedPacket[] = [];
  const print = (line: string): void => void out.write(`${line}\n`);
  const transcript = new Transcript(t0, profile.label, print);
  const record = (e: ScenarioEvent): void => {
    events.push(e);
    transcript.add(e);
  };

  print(`scenario ${def.name} with the ${profile.label} profile (seed ${JSON.stringify(seed)}): ${def.title}`);
  print(`expected: ${def.expected(profile)}`);
  if (profile.overridden.length) print(`profile rules changed for this run: ${profile.overridden.join(', ')}`);

  const firmware = firmwareProfile(o.firmware);
  print(`controllers: ${firmware.title}`);
  const air = new VirtualAir({ clock, seed, log: log.child({ layer: 'sim' }), firmware });
  const [wHost, wCtrl] = createMemoryTransportPair('wearable', 'wearable-nrf5340');
  const [pHost, pCtrl] = createMemoryTransportPair('phone', 'phone-nrf5340');
  air.createController({ name: 'wearable-nrf5340', seed: `${seed}/wearable` }).attach(wCtrl);
  air.createController({ name: 'phone-nrf5340', seed: `${seed}/phone` }).attach(pCtrl);

  const { trace, peripheral, wearableBonds, app } = simulatedWearable({
    transport: wHost,
    clock,
    seed,
    log,
    packets,
    ...(o.btsnoopPath ? { btsnoopPath: o.btsnoopPath } : {}),
    ...(def.wearablePolicy ? { policy: def.wearablePolicy } : {}),
  });
  let captureStart = 0;
  const feeder = new SimulatedFeeder(app, clock, { heartRateIntervalMs: 1000, random: seededRandom(`${seed}/feeder`) });
  const phoneBonds = new MemoryBondStore();
  const phone = new SimulatedPhone({
    profile,
    transport: pHost,
    clock,
    random: seededRandom(`${seed}/phone`),
    log: log.child({ device: 'phone' }),
    bonds: phoneBonds,
    user: { ...(def.user ? { answer: def.user } : {}), ...(o.user ?? {}) },
    ...(def.legacyOnly ? { legacyOnly: true } : {}),
  });
  phone.on('event', record);
  wireWearableEvents(peripheral, (e) => record({ ...e, at: clock.now() } as ScenarioEvent));

  const env: ScenarioEnv = {
    profile,
    phone,
    target: { name: WEARABLE_NAME },
    wearable: {
      get identity() {
        const id = peripheral.identity;
        if (!id) throw new Error('the wearable has not started');
        return id.address;
      },
      eraseBonds: async () => {
        // A reflashed DK restarts its host: the diagnosis looks at the capture from here, as a
        // fresh --btsnoop file would (the btsnoop written here keeps the whole session).
        captureStart = packets.length;
        await wearableBonds.clear();
      },
      bondCount: () => wearableBonds.list().length,
    },
    run: (p, maxMs = 120_000) => drive(clock, p, maxMs),
    sleep: (ms) => clock.advance(ms),
    note: (text) => record({ kind: 'note', text, at: clock.now() }),
  };

  let error: string | undefined;
  try {
    await drive(clock, peripheral.start(), 10_000);
    await drive(clock, phone.start(), 10_000);
    print(`${'0.000'.padStart(8)} s  wearable advertising as "${WEARABLE_NAME}" from ${formatAddress(peripheral.identity!.address)}; ${profile.label} phone identity ${formatAddress(phone.central.identity!.address)}`);
    // A record longer than one ATT_MTU, so the first read needs Read Blob.
    void app.appendHealthRecord({ t: new Date(clock.now()).toISOString(), hr: 72, steps: 5230, spo2: 97, note: 'resting; '.repeat(24) }).catch(() => undefined);
    feeder.start();
    await def.run(env);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    print(`scenario stopped early: ${error}`);
  }
  const durationMs = clock.now() - t0;
  const state: JudgeState = {
    phoneIdentity: phone.central.identity?.address,
    phoneBonds: phoneBonds.list().length,
    wearableBonds: wearableBonds.list().length,
  };
  feeder.stop();
  await drive(clock, phone.stop(), 10_000).catch(() => undefined);
  await drive(clock, peripheral.stop(), 10_000).catch(() => undefined);
  air.close();
  await trace?.close();

  const v = judgeScenario(def, profile, events, state, error);
  printVerdict(v, profile, print);
  let findings: ScenarioFinding[] = [];
  if (o.diagnosis !== false) {
    // No resolver from the bond store: as of the end of the run it knows IRKs the capture's early
    // connections did not; the timeline learns IRKs from the SMP key distribution it sees.
    const report = diagnose(buildTimeline(packets.slice(captureStart), { serviceChangedHandle: app.db.serviceChangedHandle }));
    findings = report.findings.map((f) => ({ rule: f.rule, title: f.title, severity: f.severity }));
    print(`diagnosis of the wearable's capture (what \`wearable-host diagnose\` says)${findings.length === 0 ? ': no problem found' : ':'}`);
    for (const f of findings) print(`  ${f.severity}: ${f.title} [${f.rule}]`);
  }
  if (o.btsnoopPath) print(`btsnoop of the wearable's side: ${o.btsnoopPath} (${packets.length} HCI packets)`);
  return {
    scenario: def.name,
    profile: o.profile,
    verdict: v.verdict,
    expected: def.expected(profile),
    observed: v.observed,
    checks: v.checks,
    events,
    durationMs,
    ...(error ? { error } : {}),
    ...(v.advice ? { advice: v.advice } : {}),
    packets: packets.length,
    findings,
  };
}

/** The verdict of a scenario: its checks over the events, and the advice when it passed. */
export interface Verdict {
  readonly verdict: 'pass' | 'fail';
  readonly checks: readonly Check[];
  readonly observed: string;
  readonly advice: string | undefined;
}

export function judgeScenario(def: ScenarioDef, profile: PhoneProfile, events: readonly ScenarioEvent[], state: JudgeState, error: string | undefined): Verdict {
  const checks: Check[] = [...def.judge(profile, events, state)];
  if (error) checks.push({ what: 'the scenario ran to its end', ok: false, detail: error });
  const verdict = checks.every((c) => c.ok) ? 'pass' : 'fail';
  const observed = checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.what}${c.detail ? ` (${c.detail})` : ''}`).join('\n');
  return { verdict, checks, observed, advice: verdict === 'pass' ? def.advice?.(profile, events) : undefined };
}

export function printVerdict(v: Verdict, profile: PhoneProfile, print: (line: string) => void): void {
  print('');
  print(`verdict: ${v.verdict.toUpperCase()}: ${v.verdict === 'pass' ? `the session played out the way ${profile.label} behaves` : `the session did NOT play out the way ${profile.label} behaves`}`);
  for (const line of v.observed.split('\n')) print(`  ${line}`);
  if (v.advice) print(`advice: ${v.advice}`);
}

type WearableEvent = ScenarioEvent extends infer E ? (E extends ScenarioEvent ? Omit<E, 'at'> : never) : never;

/** The wearable's side of the story, from the Peripheral's and its SMP sessions' events. */
/** Records the wearable's side of a scenario (encryption, pairing, bonds, ATT errors) as scenario events. */
export function wireWearableEvents(p: Peripheral, record: (e: WearableEvent) => void): void {
  p.hci.on('encryptionChanged', (_c, ch) => record({ kind: 'encryption', side: 'wearable', status: ch.status, enabled: ch.enabled }));
  p.on('connected', (link) => {
    const smp = link.smp;
    // The session resolved the peer from the bond store before 'connected' was emitted.
    const id = smp.peerIdentity;
    if (id) record({ kind: 'identity-resolved', side: 'wearable', address: formatAddress(smp.peerAddress), identity: formatAddress(id), source: 'bond' });
    smp.on('paired', (info) => record({ kind: 'paired', side: 'wearable', level: info.level, bonded: info.bonded, keySize: info.keySize }));
    smp.on('pairingFailed', (f) => {
      if (f.by !== 'disconnected') record({ kind: 'pairing-failed', side: 'wearable', reason: f.reason, by: f.by });
    });
    smp.on('bondSaved', (b) => record({ kind: 'bond-saved', side: 'wearable', peer: formatAddress(b.peer) }));
    smp.on('ltkRequestUnknown', () => record({ kind: 'ltk-reply', positive: false }));
    smp.on('identityResolved', (r) =>
      record({ kind: 'identity-resolved', side: 'wearable', address: formatAddress(r.connectionAddress), identity: formatAddress(r.identity), source: r.source }),
    );
  });
}

/**
 * The wearable of a simulated session: our Peripheral with the wearable profile and an in-memory bond
 * store, every HCI packet it exchanges kept in `packets` (for the diagnosis) and, with `btsnoopPath`,
 * written to a btsnoop file. Shared by the one-phone scenarios and the two-phone story.
 */
export function simulatedWearable(o: {
  transport: Transport;
  clock: VirtualClock;
  seed: string;
  log: Logger;
  packets: CapturedPacket[];
  btsnoopPath?: string;
  policy?: Partial<SmpPolicy>;
}): { trace: BtsnoopWriter | undefined; peripheral: Peripheral; wearableBonds: MemoryBondStore; app: WearableProfile } {
  const { clock, packets } = o;
  const trace = o.btsnoopPath ? BtsnoopWriter.open(o.btsnoopPath, { clock }) : undefined;
  const onPacket = (dir: PacketDirection, h4: Uint8Array): void => {
    const time = clock.now();
    trace?.write(dir, h4, time);
    packets.push({ number: packets.length + 1, time, direction: dir === 'sent' ? 'host->controller' : 'controller->host', h4: h4.slice() });
  };
  const wearableBonds = new MemoryBondStore();
  const app = new WearableProfile({ deviceName: WEARABLE_NAME });
  const peripheral = new Peripheral({
    transport: o.transport,
    clock,
    random: seededRandom(`${o.seed}/wearable`),
    log: o.log.child({ device: 'wearable' }),
    bonds: wearableBonds,
    db: app.db,
    name: WEARABLE_NAME,
    appearance: 0x00c1,
    serviceUuids16: [0x180d, 0x180f],
    ...(o.policy ? { policy: o.policy } : {}),
    trace: onPacket,
  });
  return { trace, peripheral, wearableBonds, app };
}
