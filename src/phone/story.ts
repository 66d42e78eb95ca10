/**
 * The headline story, played by `wearable-host --sim` with no options: one wearable, an iPhone and
 * an Android phone on one virtual air.
 *
 *  1. Both phones pair with the wearable (each after the wearable refuses the encrypted health
 *     record with 0x05 Insufficient Authentication), and both bond.
 *  2. The wearable loses its bonds (the DK was reflashed: its static address, so its identity, stays).
 *  3. Both phones come back and start encryption with the key they stored; the wearable has none
 *     (LTK Request Negative Reply, Encryption Change 0x06 PIN or Key Missing). The Android phone
 *     keeps the link and pairs again when the read gets 0x05; the iPhone reports "Peer removed
 *     pairing information", disconnects and shows no prompt.
 *  4. What the diagnosis of the wearable's capture (from the reflash on) says, and the fix; then the
 *     fix is played: the user forgets the device on the iPhone, which pairs again.
 *
 * The phones' behaviour comes from the profile table (profiles.ts); nothing here is iOS- or
 * Android-specific beyond which profile each phone uses. The verdict checks each step happened
 * the way those profiles say; exit code 0 when they all did.
 */
import { firmwareProfile, type FirmwareName } from '../sim/firmware.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import { HciStatus, hciStatusName } from '../hci/status.js';
import { attErrorName } from '../att/pdu.js';
import { smpReasonName } from '../smp/pdu.js';
import { MemoryBondStore } from '../bonds/memory.js';
import { HealthUuid } from '../gatt/profile.js';
import { VirtualAir } from '../sim/air.js';
import { buildTimeline } from '../diagnose/timeline.js';
import { diagnose, type Finding } from '../diagnose/diagnose.js';
import type { CapturedPacket } from '../diagnose/capture.js';
import { formatAddress } from '../util/address.js';
import { VirtualClock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { seededRandom } from '../util/random.js';
import { eventsOf, type ScenarioEvent } from './events.js';
import { PhoneError, SimulatedPhone, type PhoneSession } from './phone.js';
import { phoneProfile, type PhoneName } from './profiles.js';
import { drive, simulatedWearable, wireWearableEvents, WEARABLE_NAME } from './runner.js';
import type { Check } from './scenarios.js';

/** The story's name for `--scenario`. */
export const STORY_NAME = 'two-phones-lost-bond';
export const STORY_TITLE = 'the headline story: an iPhone and an Android phone bonded to the wearable, the wearable loses its bonds (reflashed DK)';

export interface StoryOptions {
  seed?: string | number;
  /** Write the wearable's whole HCI traffic here. */
  btsnoopPath?: string;
  log?: Logger;
  out?: { write(text: string): unknown };
  /** Firmware the virtual controllers run (src/sim/firmware.ts). Default `ncs`. */
  firmware?: FirmwareName;
}

export interface StoryResult {
  readonly verdict: 'pass' | 'fail';
  readonly checks: readonly Check[];
  /** Diagnosis findings of the wearable's capture from the reflash on. */
  readonly findings: readonly Finding[];
  /** Events per phone. */
  readonly events: Readonly<Record<PhoneName, readonly ScenarioEvent[]>>;
  readonly packets: number;
  readonly error?: string;
}

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** Runs the story and prints it; resolves with the verdict. */
export async function runStory(o: StoryOptions = {}): Promise<StoryResult> {
  const seed = String(o.seed ?? 'wearable-host');
  const log = o.log ?? silentLogger();
  const out = o.out ?? { write: () => undefined };
  const print = (line = ''): void => void out.write(`${line}\n`);
  const clock = new VirtualClock();
  const t0 = clock.now();
  const time = (): string => `${((clock.now() - t0) / 1000).toFixed(1).padStart(6)} s`;

  const air = new VirtualAir({ clock, seed, log: log.child({ layer: 'sim' }), firmware: firmwareProfile(o.firmware) });
  const packets: CapturedPacket[] = [];
  const [wHost, wCtrl] = createMemoryTransportPair('wearable', 'wearable-nrf5340');
  air.createController({ name: 'wearable-nrf5340', seed: `${seed}/wearable` }).attach(wCtrl);
  const {
    trace,
    peripheral: wearable,
    wearableBonds,
    app,
  } = simulatedWearable({ transport: wHost, clock, seed, log, packets, ...(o.btsnoopPath ? { btsnoopPath: o.btsnoopPath } : {}) });
  const wearableEvents: ScenarioEvent[] = [];
  wireWearableEvents(wearable, (e) => wearableEvents.push({ ...e, at: clock.now() } as ScenarioEvent));

  const events: Record<PhoneName, ScenarioEvent[]> = { ios: [], android: [] };
  const phones = {} as Record<PhoneName, SimulatedPhone>;
  for (const name of ['ios', 'android'] as const) {
    const [pHost, pCtrl] = createMemoryTransportPair(name, `${name}-nrf5340`);
    air.createController({ name: `${name}-nrf5340`, seed: `${seed}/${name}` }).attach(pCtrl);
    const phone = new SimulatedPhone({
      profile: phoneProfile(name),
      transport: pHost,
      clock,
      random: seededRandom(`${seed}/${name}`),
      log: log.child({ device: name }),
      bonds: new MemoryBondStore(),
    });
    phone.on('event', (e) => {
      events[name].push(e);
      const line = storyLine(e, phone.profile.label);
      if (line) print(`${time()}  ${line}`);
    });
    phones[name] = phone;
  }
  const label = (n: PhoneName): string => phones[n].profile.label;

  /** Connect, discover, read the encrypted health record (the phone pairs or encrypts as it does), disconnect. */
  const visit = async (name: PhoneName): Promise<PhoneError | undefined> => {
    const phone = phones[name];
    let s: PhoneSession | undefined;
    let failed: PhoneError | undefined;
    try {
      s = await drive(clock, phone.connect({ name: WEARABLE_NAME }));
      await drive(clock, s.discover());
      const v = await drive(clock, s.read(HealthUuid.record));
      print(`${time()}  ${label(name)} read the health record (${v.length} bytes)`);
    } catch (err) {
      if (!(err instanceof PhoneError)) throw err;
      failed = err;
      await clock.advance(1000);
    }
    if (s?.open) await drive(clock, s.disconnect());
    await clock.advance(1000);
    return failed;
  };

  print(`One wearable ("${WEARABLE_NAME}"), an iPhone and an Android phone on a virtual air (seed ${JSON.stringify(seed)}).`);
  print('The question: "Android pairs again, but the iPhone shows no pairing prompt. Why?"');
  let error: string | undefined;
  let captureStart = 0;
  let iosRetry: PhoneError | undefined;
  let androidRetry: PhoneError | undefined;
  let iosAfterFix: PhoneError | undefined;
  const mark = { afterReflash: { ios: 0, android: 0 }, afterFix: 0 };
  try {
    await drive(clock, wearable.start(), 10_000);
    for (const p of Object.values(phones)) await drive(clock, p.start(), 10_000);
    void app.appendHealthRecord({ t: new Date(clock.now()).toISOString(), hr: 72, steps: 5230, spo2: 97 }).catch(() => undefined);

    print();
    print(`1. Both phones pair with the wearable (identity ${formatAddress(wearable.identity!.address)}).`);
    await visit('ios');
    await visit('android');
    print(`${time()}  wearable holds ${wearableBonds.list().length} bonds; each phone holds one`);

    print();
    print('2. The DK is reflashed: the wearable loses its bonds (its static address, so its identity, stays).');
    await wearableBonds.clear();
    captureStart = packets.length;
    await clock.advance(2000);

    print();
    print('3. Both phones come back with the keys they stored.');
    mark.afterReflash.ios = events.ios.length;
    iosRetry = await visit('ios');
    mark.afterReflash.android = events.android.length;
    androidRetry = await visit('android');
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    print(`the story stopped early: ${error}`);
  }

  // What `wearable-host diagnose` says of the wearable's capture from the reflash on (a reflashed
  // DK starts a fresh --btsnoop file).
  const report = diagnose(buildTimeline(packets.slice(captureStart), { serviceChangedHandle: app.db.serviceChangedHandle }));
  const findings = report.findings;
  print();
  print("4. What `wearable-host diagnose` says of the wearable's capture since the reflash:");
  if (findings.length === 0) print('   no problem found');
  for (const f of findings.slice(0, 2)) {
    print(`   ${f.severity.toUpperCase()}: ${f.title} [${f.rule}]`);
    for (const e of f.evidence.slice(0, 3)) print(`     #${e.number} +${(e.sinceStartMs / 1000).toFixed(3)} s ${e.what}`);
    for (const x of f.fixes.slice(0, 2)) print(`     fix (${x.where}): ${firstSentence(x.text)}`);
  }

  if (!error) {
    try {
      print();
      print('5. The fix on the iPhone: the user forgets the device, then opens the app again.');
      const id = wearable.identity!.address;
      await phones.ios.forget(id);
      mark.afterFix = events.ios.length;
      iosAfterFix = await visit('ios');
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      print(`the story stopped early: ${error}`);
    }
  }

  for (const p of Object.values(phones)) await drive(clock, p.stop(), 10_000).catch(() => undefined);
  await drive(clock, wearable.stop(), 10_000).catch(() => undefined);
  air.close();
  await trace?.close();

  const ios = (from: number, to?: number): ScenarioEvent[] => events.ios.slice(from, to);
  const iosBack = ios(mark.afterReflash.ios, mark.afterFix || undefined);
  const androidBack = events.android.slice(mark.afterReflash.android);
  const pairedAgain = (ev: readonly ScenarioEvent[]): boolean => eventsOf(ev, 'paired').some((e) => e.side === 'phone' && e.bonded && e.level === 2);
  const pairingRequested = (ev: readonly ScenarioEvent[]): boolean => eventsOf(ev, 'smp').some((e) => e.from === 'phone' && e.pdu === 'pairingRequest');
  const keyMissing = (ev: readonly ScenarioEvent[]): boolean =>
    eventsOf(ev, 'encryption').some((e) => e.side === 'phone' && e.status === HciStatus.PinOrKeyMissing);
  const checks: Check[] = [
    { what: 'both phones paired and bonded first (LE Secure Connections, level 2)', ok: pairedAgain(ios(0, mark.afterReflash.ios)) && pairedAgain(events.android.slice(0, mark.afterReflash.android)) },
    { what: 'after the reflash both phones tried their stored key and got 0x06 PIN or Key Missing', ok: keyMissing(iosBack) && keyMissing(androidBack) },
    {
      what: `${label('android')} paired again (after 0x05), with a prompt, and read the record`,
      ok: androidRetry === undefined && pairedAgain(androidBack) && eventsOf(androidBack, 'prompt').length === 1,
      ...(androidRetry ? { detail: androidRetry.message } : {}),
    },
    {
      what: `${label('ios')} gave up ("${phones.ios.profile.lostBondMessage}"): no Pairing Request, no prompt`,
      ok: iosRetry?.kind === 'peer-removed-pairing' && !pairingRequested(iosBack) && eventsOf(iosBack, 'prompt').length === 0,
    },
    { what: 'the diagnosis names the stale bond on the phone', ok: findings.some((f) => f.rule === 'phone-kept-stale-bond') },
    { what: `after Forget This Device the ${label('ios')} paired again`, ok: mark.afterFix > 0 && iosAfterFix === undefined && pairedAgain(ios(mark.afterFix)) },
  ];
  if (error) checks.push({ what: 'the story ran to its end', ok: false, detail: error });
  const verdict = checks.every((c) => c.ok) ? 'pass' : 'fail';

  print();
  print(`Why: the wearable forgot the keys; ${label('android')} pairs again by itself when the wearable asks for`);
  print(`authentication, ${label('ios')} does not (since iOS 13.4) until the user forgets the device. The wearable cannot`);
  print('fix it alone: keep the bond store across reflashes and updates (`--bonds FILE`, copied with the firmware),');
  print('and tell users to "Forget This Device" when the wearable was reset.');
  print();
  print(`verdict: ${verdict.toUpperCase()}`);
  for (const c of checks) print(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}${c.detail ? ` (${c.detail})` : ''}`);
  if (o.btsnoopPath) print(`btsnoop of the wearable's side: ${o.btsnoopPath} (${packets.length} HCI packets); \`wearable-host diagnose ${o.btsnoopPath}\``);
  print('More: `wearable-host --sim --scenario list` (one phone at a time, each ending with a verdict).');
  return { verdict, checks, findings, events, packets: packets.length, ...(error ? { error } : {}) };
}

function firstSentence(text: string): string {
  const m = /^(.*?\.)(\s|$)/.exec(text);
  const s = m ? (m[1] as string) : text;
  return s.length > 150 ? `${s.slice(0, 147)}...` : s;
}

/** The lines of the story worth a reader's attention (the full transcript is a scenario's). */
function storyLine(e: ScenarioEvent, phone: string): string | undefined {
  switch (e.kind) {
    case 'connected':
      return `${phone} connects`;
    case 'att-error':
      return `wearable -> ${phone}: ATT error ${hex2(e.code)} ${attErrorName(e.code)} on the ${e.op}`;
    case 'encrypt-with-bond':
      return `${phone} starts encryption with its stored key`;
    case 'encryption':
      return e.side === 'phone' && e.status !== 0 ? `${phone} encryption failed: ${hciStatusName(e.status)}` : undefined;
    case 'smp':
      if (e.pdu === 'pairingRequest' && e.from === 'phone') return `${phone} -> wearable: SMP Pairing Request`;
      if (e.pdu === 'pairingFailed') return `${e.from === 'phone' ? phone : 'wearable'}: SMP Pairing Failed ${hex2(e.reason ?? 0)} ${smpReasonName(e.reason ?? 0)}`;
      return undefined;
    case 'prompt':
      return `user at the "Pair with ${WEARABLE_NAME}?" prompt: ${e.answer === 'accept' ? 'taps Pair' : e.answer === 'cancel' ? 'taps Cancel' : 'does not answer'}`;
    case 'paired':
      return `${phone} paired: level ${e.level}, ${e.keySize}-byte key${e.bonded ? ', bonded' : ''}`;
    case 'phone-error':
      return `${phone} reports: ${firstSentence(e.message)}`;
    case 'disconnected':
      return `disconnected (${e.reasonName})`;
    case 'note':
      return e.text.startsWith('the user removed') ? e.text.replace(/^the user/, `the ${phone} user`) : undefined;
    default:
      return undefined;
  }
}
