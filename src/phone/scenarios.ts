/**
 * Named scenarios: what a phone does with the wearable, and how to tell whether the session played
 * out the way that phone really behaves. Each scenario has the phone's steps (run against the
 * simulated wearable on the virtual air, or a real one with `wearable-host phone --port`), what is
 * expected for each profile, and checks over the recorded events (events.ts) that give the verdict.
 */
import { AuthReq, SmpReason } from '../smp/pdu.js';
import type { SmpPolicy } from '../smp/types.js';
import { HciStatus } from '../hci/status.js';
import { GattUuid } from '../gatt/uuid.js';
import { HealthUuid } from '../gatt/profile.js';
import { formatAddress, randomAddressKind, type Address } from '../util/address.js';
import { eventsOf, type PromptAnswer, type ScenarioEvent } from './events.js';
import { PhoneError, type PhoneSession, type SimulatedPhone } from './phone.js';
import type { PhoneBehaviour, PhoneName, PhoneProfile } from './profiles.js';

export const SCENARIO_NAMES = [
  'first-pairing',
  'reconnect',
  'peripheral-lost-bond',
  'phone-forgot-device',
  'phone-forgot-device-replace',
  'security-request-ignored',
  'user-cancelled',
  'prompt-timeout',
  'legacy-only-central',
  'rpa-rotated',
] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(s: string): s is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(s);
}

/** What the simulated wearable lets a scenario do between connections. */
export interface WearableControl {
  readonly identity: Address;
  /** The DK was reflashed: its bond store is emptied (its identity stays: the static address is in the chip). */
  eraseBonds(): Promise<void>;
  bondCount(): number;
}

/** What a scenario's steps run with. */
export interface ScenarioEnv {
  readonly profile: PhoneProfile;
  readonly phone: SimulatedPhone;
  /** How the phone finds the wearable. */
  readonly target: { name: string };
  /** The simulated wearable; undefined on real hardware. */
  readonly wearable: WearableControl | undefined;
  /** Awaits `p`, moving virtual time when simulated. */
  run<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  /** Lets time pass (notifications arrive meanwhile). */
  sleep(ms: number): Promise<void>;
  note(text: string): void;
}

/** One check of a verdict. */
export interface Check {
  readonly what: string;
  readonly ok: boolean;
  readonly detail?: string;
}

/** State the judge may look at besides the events. */
export interface JudgeState {
  readonly phoneIdentity: Address | undefined;
  readonly phoneBonds: number;
  /** Undefined on real hardware. */
  readonly wearableBonds: number | undefined;
}

export interface ScenarioDef {
  readonly name: ScenarioName;
  readonly title: string;
  /** It changes the wearable between connections: only on the virtual air. */
  readonly needsWearable: boolean;
  /** The wearable's SMP policy for this scenario (virtual air). */
  readonly wearablePolicy?: Partial<SmpPolicy>;
  readonly profileOverrides?: (name: PhoneName) => Partial<PhoneBehaviour>;
  readonly user?: PromptAnswer;
  readonly legacyOnly?: boolean;
  /** What this phone really does, in one sentence. */
  expected(p: PhoneProfile): string;
  run(env: ScenarioEnv): Promise<void>;
  judge(p: PhoneProfile, events: readonly ScenarioEvent[], state: JudgeState): Check[];
  /** What to tell the user after the run. */
  advice?(p: PhoneProfile, events: readonly ScenarioEvent[]): string | undefined;
}

// ------------------------------------------------------------------ helpers

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** The events of the n-th connection (0-based): from its 'connected' up to the next one. */
export function connectionEvents(events: readonly ScenarioEvent[], n: number): ScenarioEvent[] {
  const starts: number[] = [];
  events.forEach((e, i) => {
    if (e.kind === 'connected') starts.push(i);
  });
  const from = starts[n];
  if (from === undefined) return [];
  const to = starts[n + 1] ?? events.length;
  return events.slice(from, to);
}

function check(what: string, ok: boolean, detail?: string): Check {
  return detail === undefined ? { what, ok } : { what, ok, detail };
}

function indexOf(events: readonly ScenarioEvent[], pred: (e: ScenarioEvent) => boolean): number {
  return events.findIndex(pred);
}

const isPairingRequest = (e: ScenarioEvent): boolean => e.kind === 'smp' && e.from === 'phone' && e.pdu === 'pairingRequest';

/** Runs phone steps; a PhoneError ends them (recorded), anything else propagates. */
async function attempt(env: ScenarioEnv, steps: () => Promise<void>): Promise<PhoneError | undefined> {
  try {
    await steps();
    return undefined;
  } catch (err) {
    if (!(err instanceof PhoneError)) throw err;
    // A lost bond was reported when it happened.
    if (err.kind !== 'peer-removed-pairing') env.phone.record({ kind: 'phone-error', message: err.message });
    return err;
  }
}

/** Connect, discover, read the encrypted health record (pairing on 0x05), subscribe to heart rate, take notifications, disconnect. */
async function firstSession(env: ScenarioEnv, label = 'first connection: the phone pairs'): Promise<PhoneError | undefined> {
  env.note(label);
  let s: PhoneSession | undefined;
  const err = await attempt(env, async () => {
    s = await env.run(env.phone.connect(env.target));
    await env.run(s.discover());
    await env.run(s.read(HealthUuid.record));
    await env.run(s.subscribe(GattUuid.heartRateMeasurement));
    await env.sleep(3500);
  });
  // After a failure the app shows it; the link stays a moment before the phone lets it go.
  if (err) await env.sleep(1000);
  if (s?.open) await env.run(s.disconnect());
  return err;
}

/** Connect (the phone encrypts by itself when bonded), use the cached database, take notifications without subscribing, read the record. */
async function returningSession(env: ScenarioEnv, label: string): Promise<PhoneError | undefined> {
  env.note(label);
  let s: PhoneSession | undefined;
  const err = await attempt(env, async () => {
    s = await env.run(env.phone.connect(env.target));
    await env.run(s.discover());
    await env.sleep(3500);
    await env.run(s.read(HealthUuid.record));
  });
  if (err) await env.sleep(1000);
  if (s?.open) await env.run(s.disconnect());
  return err;
}

/** Checks of a clean first pairing (connection n). */
function firstPairingChecks(p: PhoneProfile, all: readonly ScenarioEvent[], n: number, state: JudgeState): Check[] {
  // On real hardware only the phone's side is seen.
  const sim = state.wearableBonds !== undefined;
  const ev = connectionEvents(all, n);
  const req = eventsOf(ev, 'smp').find((e) => e.from === 'phone' && e.pdu === 'pairingRequest');
  const want = p.pairingRequest;
  const mtu = eventsOf(ev, 'mtu')[0];
  const firstErr = eventsOf(ev, 'att-error')[0];
  const paired = eventsOf(ev, 'paired');
  const bonds = eventsOf(ev, 'bond-saved');
  const read = eventsOf(ev, 'gatt').find((e) => e.op === 'read');
  const hrNotifications = eventsOf(ev, 'notification').length;
  return [
    check(
      `the phone's Pairing Request: IO ${hex2(want.ioCapability)}, AuthReq ${hex2(want.authReq)}, key distribution ${hex2(want.initiatorKeyDist)}/${hex2(want.responderKeyDist)}`,
      !!req && req.ioCapability === want.ioCapability && req.authReq === want.authReq && req.initiatorKeyDist === want.initiatorKeyDist && req.responderKeyDist === want.responderKeyDist,
      req ? `sent IO ${hex2(req.ioCapability ?? 0)}, AuthReq ${hex2(req.authReq ?? 0)}, key distribution ${hex2(req.initiatorKeyDist ?? 0)}/${hex2(req.responderKeyDist ?? 0)}` : 'no Pairing Request',
    ),
    check(`ATT MTU: the phone asked ${p.mtu}`, mtu?.asked === p.mtu && mtu.mtu === Math.min(p.mtu, 517), mtu ? `asked ${mtu.asked}, got ${mtu.mtu}` : 'no MTU exchange'),
    check(
      'pairing started after the wearable refused the encrypted health record with 0x05',
      firstErr?.code === 0x05 && indexOf(ev, (e) => e.kind === 'att-error') < indexOf(ev, isPairingRequest),
      firstErr ? `first ATT error ${hex2(firstErr.code)}` : 'no ATT error',
    ),
    check('the user accepted the pairing prompt', eventsOf(ev, 'prompt').some((e) => e.answer === 'accept')),
    check(
      'both sides paired (LE Secure Connections Just Works: level 2, 16-byte key) and saved a bond',
      paired.some((e) => e.side === 'phone' && e.level === 2 && e.keySize === 16 && e.bonded) &&
        (!sim || paired.some((e) => e.side === 'wearable' && e.level === 2 && e.bonded)) &&
        bonds.some((e) => e.side === 'phone') &&
        (!sim || bonds.some((e) => e.side === 'wearable')),
      `paired: ${paired.map((e) => `${e.side} L${e.level}`).join(', ') || 'none'}; bonds saved: ${bonds.map((e) => e.side).join(', ') || 'none'}`,
    ),
    check('the health record was read after pairing', !!read && (!sim || (read.length ?? 0) > 0), read ? `${read.length} bytes` : 'not read'),
    check('heart rate notifications arrived after subscribing', hrNotifications >= 3, `${hrNotifications} notification(s)`),
  ];
}

/** Checks of a reconnection that re-encrypts with the stored key (connection n). */
function reconnectChecks(p: PhoneProfile, all: readonly ScenarioEvent[], n: number, state: JudgeState): Check[] {
  const sim = state.wearableBonds !== undefined;
  const ev = connectionEvents(all, n);
  const enc = eventsOf(ev, 'encryption');
  const discovered = eventsOf(ev, 'discovered')[0];
  return [
    check('the phone encrypted with its stored key right after connecting', eventsOf(ev, 'encrypt-with-bond').some((e) => e.why === 'connect') === p.encryptsBondedLinkOnConnect),
    check(
      'encryption succeeded on both sides (Encryption Change status 0x00)',
      enc.some((e) => e.side === 'phone' && e.status === 0 && e.enabled) && (!sim || enc.some((e) => e.side === 'wearable' && e.status === 0 && e.enabled)),
      enc.map((e) => `${e.side} ${hex2(e.status)}`).join(', ') || 'no Encryption Change',
    ),
    check('no pairing and no prompt', !ev.some(isPairingRequest) && eventsOf(ev, 'prompt').length === 0),
    check(
      p.gattCaching ? 'the cached database was used (no rediscovery)' : 'the database was discovered again',
      discovered?.cached === p.gattCaching,
    ),
    check(
      'notifications arrived without subscribing again (CCCD restored from the bond)',
      eventsOf(ev, 'notification').length >= 3 && !eventsOf(ev, 'gatt').some((e) => e.op === 'subscribe'),
      `${eventsOf(ev, 'notification').length} notification(s)`,
    ),
    check('no ATT security error', !eventsOf(ev, 'att-error').some((e) => [0x05, 0x0f].includes(e.code))),
  ];
}

function forgetAdvice(p: PhoneProfile): string {
  return `On the phone: Settings > Bluetooth > "Noira Band" > ${p.name === 'ios' ? '(i) > Forget This Device' : 'Forget / Unpair'}, then pair again. The wearable cannot fix this alone: ${p.label} keeps the keys the wearable lost.`;
}

// ------------------------------------------------------------------ the scenarios

/** Both forgot-device scenarios: a first pairing, the phone forgets the wearable, comes back and reads the record. */
async function forgotDeviceRun(env: ScenarioEnv): Promise<void> {
  await firstSession(env);
  const id = env.wearable?.identity ?? env.phone.bonds.list()[0]?.peer;
  if (id) await env.phone.forget(id);
  await env.sleep(2000);
  env.note('second connection: the phone has no key, the wearable still has the bond');
  let s: PhoneSession | undefined;
  await attempt(env, async () => {
    s = await env.run(env.phone.connect(env.target));
    await env.run(s.discover());
    await env.run(s.read(HealthUuid.record));
  });
  if (s?.open) await env.run(s.disconnect());
}

export const SCENARIOS: Readonly<Record<ScenarioName, ScenarioDef>> = {
  'first-pairing': {
    name: 'first-pairing',
    title: 'first pairing: connect, discover, read the encrypted health record (0x05, pair, retry), subscribe to heart rate',
    needsWearable: false,
    expected: (p) =>
      `${p.label} pairs only after the wearable refuses the encrypted record with 0x05 (Just Works, after the user taps Pair), bonds, retries the read, and receives heart rate notifications`,
    run: async (env) => {
      await firstSession(env);
    },
    judge: (p, events, state) => firstPairingChecks(p, events, 0, state),
  },

  reconnect: {
    name: 'reconnect',
    title: 'reconnection: re-encryption with the stored key, no prompt, CCCDs restored',
    needsWearable: false,
    expected: (p) => `${p.label} encrypts with the stored key as soon as it connects; no pairing, no prompt; notifications resume without subscribing again`,
    run: async (env) => {
      await firstSession(env);
      await env.sleep(2000);
      await returningSession(env, 'second connection: the phone comes back');
    },
    judge: (p, events, state) => [...firstPairingChecks(p, events, 0, state), ...reconnectChecks(p, events, 1, state)],
  },

  'peripheral-lost-bond': {
    name: 'peripheral-lost-bond',
    title: "the wearable lost its bonds (the DK was reflashed); the phone still has its keys",
    needsWearable: true,
    expected: (p) =>
      p.lostBond === 'give-up'
        ? `${p.label} tries its stored key, the wearable has none (0x06 PIN or Key Missing): "${p.lostBondMessage}", it disconnects and does NOT pair until the user forgets the device on the phone`
        : `${p.label} tries its stored key, the wearable has none (0x06 PIN or Key Missing); it keeps the link and pairs again when the wearable answers 0x05`,
    run: async (env) => {
      await firstSession(env);
      env.note('the wearable is reflashed: its bond store is emptied');
      await env.wearable?.eraseBonds();
      await env.sleep(2000);
      await returningSession(env, 'second connection: the phone comes back with its old keys');
    },
    judge: (p, events, state) => {
      const ev = connectionEvents(events, 1);
      const phoneEnc = eventsOf(ev, 'encryption').filter((e) => e.side === 'phone');
      const common = [
        check('the phone tried its stored key when it connected', eventsOf(ev, 'encrypt-with-bond').some((e) => e.why === 'connect')),
        check('the wearable had no key for it (LTK Request Negative Reply)', eventsOf(ev, 'ltk-reply').some((e) => !e.positive) || state.wearableBonds === undefined),
        check('encryption failed with 0x06 PIN or Key Missing', phoneEnc.some((e) => e.status === HciStatus.PinOrKeyMissing), phoneEnc.map((e) => hex2(e.status)).join(', ') || 'no Encryption Change'),
      ];
      if (p.lostBond === 'give-up') {
        return [
          ...common,
          check(`the phone reported "${p.lostBondMessage}"`, eventsOf(ev, 'phone-error').some((e) => e.message.includes(p.lostBondMessage))),
          check('the phone disconnected', eventsOf(ev, 'disconnected').length > 0),
          check('no pairing was attempted', !ev.some(isPairingRequest) && eventsOf(ev, 'prompt').length === 0),
          check('the phone still holds its (now useless) bond', state.phoneBonds === 1, `${state.phoneBonds} bond(s) on the phone`),
        ];
      }
      const paired = eventsOf(ev, 'paired');
      return [
        ...common,
        check(
          'the phone paired again after the wearable answered 0x05',
          eventsOf(ev, 'att-error').some((e) => e.code === 0x05) && indexOf(ev, (e) => e.kind === 'att-error' && e.code === 0x05) < indexOf(ev, isPairingRequest),
        ),
        check('both sides paired and bonded again', paired.some((e) => e.side === 'phone' && e.bonded) && paired.some((e) => e.side === 'wearable' && e.bonded)),
        check('one bond on each side', state.phoneBonds === 1 && (state.wearableBonds ?? 1) === 1, `phone ${state.phoneBonds}, wearable ${state.wearableBonds ?? '?'}`),
      ];
    },
    advice: (p) => (p.lostBond === 'give-up' ? forgetAdvice(p) : undefined),
  },

  'phone-forgot-device': {
    name: 'phone-forgot-device',
    title: 'the user forgot the wearable on the phone; the wearable keeps the bond',
    needsWearable: false,
    expected: (p) =>
      `${p.label} has no key any more, connects from an address the wearable still resolves to the old bond, gets 0x0F, pairs, and the wearable (re-pairing policy 'reject') refuses with Pairing Failed 0x03`,
    run: forgotDeviceRun,
    judge: (_p, events, state) => {
      const ev = connectionEvents(events, 1);
      const fail = eventsOf(ev, 'smp').find((e) => e.from === 'wearable' && e.pdu === 'pairingFailed');
      return [
        check('the phone did not try to encrypt (it has no key)', eventsOf(ev, 'encrypt-with-bond').length === 0),
        check('the wearable answered the protected read with 0x0F Insufficient Encryption (it still has a key)', eventsOf(ev, 'att-error').some((e) => e.code === 0x0f)),
        check('the phone sent a Pairing Request', ev.some(isPairingRequest)),
        check('the wearable refused it with Pairing Failed 0x03 Authentication Requirements', fail?.reason === SmpReason.AuthenticationRequirements, fail ? `Pairing Failed ${hex2(fail.reason ?? 0)}` : 'no Pairing Failed from the wearable'),
        check('no new bond on either side', !eventsOf(ev, 'bond-saved').length && state.phoneBonds === 0, `phone ${state.phoneBonds} bond(s)`),
        check('the wearable kept its old bond', (state.wearableBonds ?? 1) === 1),
      ];
    },
    advice: () =>
      'The wearable still holds the old bond and refuses to replace it (Zephyr-like default). Either remove it on the wearable (`wearable-host bonds remove <phone identity>`) and pair again, or run the wearable with `--repair replace` so a new pairing replaces the old bond once it succeeds.',
  },

  'phone-forgot-device-replace': {
    name: 'phone-forgot-device-replace',
    title: "the user forgot the wearable on the phone; the wearable runs with --repair replace",
    needsWearable: false,
    wearablePolicy: { rePairing: 'replace' },
    expected: (p) =>
      `${p.label} has no key any more, gets 0x0F, pairs, and the wearable (re-pairing policy 'replace') accepts: the new bond replaces the old one once pairing completed, and the read succeeds`,
    run: forgotDeviceRun,
    judge: (_p, events, state) => {
      const ev = connectionEvents(events, 1);
      const fail = eventsOf(ev, 'smp').find((e) => e.pdu === 'pairingFailed');
      return [
        check('the phone did not try to encrypt (it has no key)', eventsOf(ev, 'encrypt-with-bond').length === 0),
        check('the wearable answered the protected read with 0x0F Insufficient Encryption (it still has a key)', eventsOf(ev, 'att-error').some((e) => e.code === 0x0f)),
        check('the phone sent a Pairing Request', ev.some(isPairingRequest)),
        check('no Pairing Failed', fail === undefined, fail ? `Pairing Failed ${hex2(fail.reason ?? 0)} from the ${fail.from}` : undefined),
        // On a second DK only the phone's side is seen: the wearable's bond is judged where it is visible.
        check(
          'both sides saved the new bond',
          eventsOf(ev, 'bond-saved').some((e) => e.side === 'phone') &&
            (state.wearableBonds === undefined || eventsOf(ev, 'bond-saved').some((e) => e.side === 'wearable')) &&
            state.phoneBonds === 1,
          `bonds saved: ${eventsOf(ev, 'bond-saved').map((e) => e.side).join(', ') || 'none'}; phone ${state.phoneBonds} bond(s)`,
        ),
        check('the wearable holds one bond for the phone (the old one was replaced, not added)', (state.wearableBonds ?? 1) === 1),
        check('the health record was read after pairing', eventsOf(ev, 'gatt').some((e) => e.op === 'read')),
      ];
    },
    advice: () =>
      "With --repair replace the wearable accepts a new pairing from a phone it already has a bond for, and replaces the old bond only after the new pairing completed. It cannot tell the real phone from a device claiming its identity (Level 2 has no authentication): combine it with --pairing-window.",
  },

  'security-request-ignored': {
    name: 'security-request-ignored',
    title: "the wearable sends a Security Request on connect; an iPhone that ignores it",
    needsWearable: false,
    wearablePolicy: { securityRequest: 'on-connect' },
    profileOverrides: (name) => (name === 'ios' ? { honoursSecurityRequest: false } : {}),
    expected: (p) =>
      p.honoursSecurityRequest
        ? `${p.label} pairs as soon as the Security Request arrives (after the user taps Pair), before any protected request`
        : `${p.label} (configured to ignore Security Requests) does not pair until a protected read gets 0x05; then it pairs and retries`,
    run: async (env) => {
      await firstSession(env, 'connection: the wearable asks for security at once');
    },
    judge: (p, events, state) => {
      const ev = connectionEvents(events, 0);
      const sr = eventsOf(ev, 'smp').find((e) => e.from === 'wearable' && e.pdu === 'securityRequest');
      const reqAt = indexOf(ev, isPairingRequest);
      const errAt = indexOf(ev, (e) => e.kind === 'att-error');
      const paired = eventsOf(ev, 'paired');
      const base = [
        check('the wearable sent a Security Request', !!sr),
        check('pairing succeeded', paired.some((e) => e.side === 'phone') && (state.wearableBonds === undefined || paired.some((e) => e.side === 'wearable'))),
      ];
      if (p.honoursSecurityRequest) {
        return [...base, check('the phone paired on the Security Request, before any ATT error', reqAt >= 0 && (errAt < 0 || reqAt < errAt))];
      }
      return [
        ...base,
        check('the phone ignored the Security Request', sr?.ignored === true),
        check('the Pairing Request came only after the protected read got 0x05', errAt >= 0 && reqAt > errAt && (ev[errAt] as { code?: number }).code === 0x05),
      ];
    },
  },

  'user-cancelled': {
    name: 'user-cancelled',
    title: 'the user taps Cancel at the pairing prompt',
    needsWearable: false,
    user: 'cancel',
    expected: (p) => `${p.label} ends the pairing with Pairing Failed ${hex2(p.cancelReason)} (${p.name === 'ios' ? 'unverified for iOS' : 'AOSP'}); no bond on either side; the read fails`,
    run: async (env) => {
      await firstSession(env, 'connection: the user will cancel');
    },
    judge: (p, events, state) => {
      const ev = connectionEvents(events, 0);
      const phoneFail = eventsOf(ev, 'smp').find((e) => e.from === 'phone' && e.pdu === 'pairingFailed');
      const wearableFailed = eventsOf(ev, 'pairing-failed').find((e) => e.side === 'wearable');
      return [
        check('the prompt was answered with Cancel', eventsOf(ev, 'prompt').some((e) => e.answer === 'cancel')),
        check(`the phone sent Pairing Failed ${hex2(p.cancelReason)}`, phoneFail?.reason === p.cancelReason, phoneFail ? `sent ${hex2(phoneFail.reason ?? 0)}` : 'no Pairing Failed from the phone'),
        check(
          "the wearable saw the phone's Pairing Failed",
          wearableFailed === undefined ? state.wearableBonds === undefined : wearableFailed.by === 'peer' && wearableFailed.reason === p.cancelReason,
        ),
        check('no encryption and no bond on either side', !eventsOf(ev, 'encryption').some((e) => e.enabled) && state.phoneBonds === 0 && (state.wearableBonds ?? 0) === 0),
        check('the protected read failed for the app', eventsOf(ev, 'phone-error').length > 0),
      ];
    },
  },

  'prompt-timeout': {
    name: 'prompt-timeout',
    title: 'nobody answers the pairing prompt: the SMP timeout (30 s) ends the pairing',
    needsWearable: false,
    user: 'no-answer',
    expected: (p) => `${p.label} keeps its prompt open and sends nothing; 30 s after its last SMP PDU the wearable's SMP timeout ends the pairing; no bond`,
    run: async (env) => {
      await firstSession(env, 'connection: nobody answers the prompt');
    },
    judge: (_p, events, state) => {
      const ev = connectionEvents(events, 0);
      const wearableFailed = eventsOf(ev, 'pairing-failed').find((e) => e.side === 'wearable');
      const lastWearableSmp = eventsOf(ev, 'smp').filter((e) => e.from === 'wearable').pop();
      return [
        check('no answer at the prompt', eventsOf(ev, 'prompt').some((e) => e.answer === 'no-answer')),
        check('the phone never sent its DHKey Check', !eventsOf(ev, 'smp').some((e) => e.from === 'phone' && e.pdu === 'pairingDhKeyCheck')),
        check(
          "the wearable's 30 s SMP timeout ended the pairing",
          state.wearableBonds === undefined || (wearableFailed?.by === 'timeout' && !!lastWearableSmp && Math.abs(wearableFailed.at - lastWearableSmp.at - 30_000) < 1000),
          wearableFailed ? `ended by ${wearableFailed.by}${lastWearableSmp ? ` ${((wearableFailed.at - lastWearableSmp.at) / 1000).toFixed(1)} s after its last PDU` : ''}` : 'no failure reported',
        ),
        check('no bond on either side', state.phoneBonds === 0 && (state.wearableBonds ?? 0) === 0),
      ];
    },
  },

  'legacy-only-central': {
    name: 'legacy-only-central',
    title: 'a central that can only do LE legacy pairing (no Secure Connections bit)',
    needsWearable: false,
    legacyOnly: true,
    expected: () => 'the wearable pairs with LE Secure Connections only and answers a legacy Pairing Request with Pairing Failed 0x03; no bond',
    run: async (env) => {
      await firstSession(env, 'connection: a legacy-only central');
    },
    judge: (_p, events, state) => {
      const ev = connectionEvents(events, 0);
      const req = eventsOf(ev, 'smp').find((e) => e.from === 'phone' && e.pdu === 'pairingRequest');
      const fail = eventsOf(ev, 'smp').find((e) => e.from === 'wearable' && e.pdu === 'pairingFailed');
      return [
        check('the Pairing Request had no Secure Connections bit', !!req && ((req.authReq ?? 0) & AuthReq.SecureConnections) === 0, req ? `AuthReq ${hex2(req.authReq ?? 0)}` : 'no request'),
        check('the wearable answered Pairing Failed 0x03 Authentication Requirements', fail?.reason === SmpReason.AuthenticationRequirements, fail ? hex2(fail.reason ?? 0) : 'none'),
        check('no Pairing Response, no encryption, no bond', !eventsOf(ev, 'smp').some((e) => e.pdu === 'pairingResponse') && !eventsOf(ev, 'encryption').some((e) => e.enabled) && state.phoneBonds === 0 && (state.wearableBonds ?? 0) === 0),
      ];
    },
  },

  'rpa-rotated': {
    name: 'rpa-rotated',
    title: 'the phone comes back from a new resolvable private address',
    needsWearable: false,
    expected: (p) => `${p.label} reconnects from a new RPA; the wearable resolves it with the IRK it got when pairing and re-encrypts with the stored key, without pairing`,
    run: async (env) => {
      await firstSession(env);
      await env.sleep(2000);
      await returningSession(env, 'second connection: from a new address');
    },
    judge: (p, events, state) => {
      const c = eventsOf(events, 'connected');
      const a0 = c[0]?.phoneAddress ?? '';
      const a1 = c[1]?.phoneAddress ?? '';
      const isRpa = (s: string): boolean => s.endsWith('(random)') && randomAddressKind(s.slice(0, 17)) === 'resolvable';
      // Recorded as the wearable's link comes up, just before the phone's 'connected'; in the first
      // connection the identity came from pairing, so a bond-sourced resolution is the reconnection's.
      const resolved = eventsOf(events, 'identity-resolved').find((e) => e.side === 'wearable' && e.source === 'bond');
      const id = state.phoneIdentity ? formatAddress(state.phoneIdentity) : undefined;
      return [
        check('both connections came from resolvable private addresses, and they differ', isRpa(a0) && isRpa(a1) && a0 !== a1, `${a0} then ${a1}`),
        check(
          "the wearable resolved the new address to the phone's identity with the stored IRK",
          state.wearableBonds === undefined || (resolved?.source === 'bond' && resolved.identity === id),
          resolved ? `${resolved.address} -> ${resolved.identity} (${resolved.source})` : 'not resolved',
        ),
        ...reconnectChecks(p, events, 1, state),
      ];
    },
  },
};

export function scenarioByName(name: string): ScenarioDef | undefined {
  return isScenarioName(name) ? SCENARIOS[name] : undefined;
}
