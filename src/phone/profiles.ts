/**
 * How iOS and Android behave as the central, as data. Every rule is ONE row of {@link PHONE_RULES}
 * with the value for each phone, where it comes from, and how sure we are, so a capture that shows
 * otherwise corrects one row (or a `--profile` override) and nothing else. The simulated phone
 * (phone.ts) only interprets these values; it has no iOS- or Android-specific branches of its own.
 *
 * Sources are docs/field-notes.md's "Phones: iOS and Android as the central" table unless a row says more.
 * Status: 'documented' (vendor documentation or the platform's source code), 'observed' (public
 * captures or reports of real phones), 'unverified' (a best guess with the reason; check it against
 * a capture before relying on it).
 */
import { AuthReq, IoCapability, KeyDist, SmpReason } from '../smp/pdu.js';
import type { InitialConnectionParameters } from '../central/central.js';

export type PhoneName = 'ios' | 'android';
export const PHONE_NAMES: readonly PhoneName[] = ['ios', 'android'];

export type RuleStatus = 'documented' | 'observed' | 'unverified';

/** One rule: the value per phone and its provenance. */
export interface PhoneRule<T> {
  readonly topic: string;
  readonly ios: T;
  readonly android: T;
  readonly source: string;
  readonly status: { readonly ios: RuleStatus; readonly android: RuleStatus };
  readonly note?: string;
}

/** The Pairing Request the phone sends (Core 5.4 Vol 3 Part H 3.5.1). */
export interface PairingRequestFields {
  readonly ioCapability: number;
  readonly authReq: number;
  readonly maxKeySize: number;
  readonly initiatorKeyDist: number;
  readonly responderKeyDist: number;
}

/** What the phone does when the accessory refuses the key it stored (LTK negative reply: Encryption Change 0x06). */
export type LostBondReaction =
  /** Report "Peer removed pairing information", disconnect, never re-pair until the user forgets the device. */
  | 'give-up'
  /** Keep the link; the next Insufficient Authentication makes it pair again (replacing its old keys). */
  | 're-pair';

/** Where the Just Works consent prompt sits in the pairing. */
export type PromptPlacement =
  /** After the nonces (the peer's confirm value checked), before our DHKey Check: the spec's user-confirmation point. */
  'before-dhkey-check';

/** How the phone answers a peripheral's L2CAP Connection Parameter Update Request. */
export type ParameterPolicy =
  /** Reject requests that break Apple's Accessory Design Guidelines 35.6. */
  | 'apple-adg'
  /** Accept any request valid per the Core spec. */
  | 'spec';

function rule<T>(r: PhoneRule<T>): PhoneRule<T> {
  return r;
}

const UNVERIFIED_IOS = { ios: 'unverified', android: 'documented' } as const;

/** The table. Correct a row here when a capture of a real phone disagrees. */
export const PHONE_RULES = {
  pairingRequest: rule<PairingRequestFields>({
    topic: 'Pairing Request fields',
    ios: { ioCapability: IoCapability.KeyboardDisplay, authReq: AuthReq.Bonding | AuthReq.Mitm | AuthReq.SecureConnections, maxKeySize: 16, initiatorKeyDist: KeyDist.EncKey | KeyDist.IdKey, responderKeyDist: KeyDist.EncKey | KeyDist.IdKey },
    android: {
      ioCapability: IoCapability.KeyboardDisplay,
      authReq: AuthReq.Bonding | AuthReq.Mitm | AuthReq.SecureConnections | AuthReq.Ct2,
      maxKeySize: 16,
      initiatorKeyDist: KeyDist.EncKey | KeyDist.IdKey | KeyDist.SignKey | KeyDist.LinkKey,
      responderKeyDist: KeyDist.EncKey | KeyDist.IdKey | KeyDist.SignKey | KeyDist.LinkKey,
    },
    source: 'iOS: noble #243 (an iOS 9 era capture); Android: AOSP smp_act.cc (CT2 when LMP >= 5.0); docs/field-notes.md "Pairing Request seen"',
    status: UNVERIFIED_IOS,
    note: 'iOS values are from an old capture; current iOS may differ (docs/field-notes.md marks them unverified)',
  }),
  mtu: rule<number>({
    topic: 'ATT MTU asked for in Exchange MTU (the phone starts it)',
    ios: 185,
    android: 517,
    source: 'iOS: esysberlin/ble-guides (185 since iOS 10, larger on newer devices); Android: Android docs (Android 14+ asks 517)',
    status: { ios: 'observed', android: 'documented' },
  }),
  privacy: rule<{ readonly rpa: true; readonly rotate: 'every-connection'; readonly distributeIdentity: true }>({
    topic: 'own address: resolvable private address, new one per connection here, identity (IRK + address) distributed when pairing',
    ios: { rpa: true, rotate: 'every-connection', distributeIdentity: true },
    android: { rpa: true, rotate: 'every-connection', distributeIdentity: true },
    source: 'Apple ADG 40.8 (accessories should resolve RPAs in all situations); AOSP btm_ble_int.h (RPA rotation about 15 min)',
    status: { ios: 'documented', android: 'documented' },
    note: 'real phones rotate about every 15 minutes; the simulation rotates on every connection so each reconnection exercises resolution',
  }),
  pairsOnAttErrors: rule<readonly number[]>({
    topic: 'ATT errors that make the phone pair (or encrypt) and retry the request',
    ios: [0x05, 0x0f],
    android: [0x05, 0x0f],
    source: 'Apple Accessory Design Guidelines 2022 sec. 40.10 (pairing only after Insufficient Authentication); AOSP BluetoothGatt.java (retry after 0x05/0x0F)',
    status: { ios: 'documented', android: 'documented' },
  }),
  honoursSecurityRequest: rule<boolean>({
    topic: 'pairs (or encrypts, when bonded) on an SMP Security Request',
    ios: true,
    android: true,
    source: 'iOS: zephyr devel list, google/bumble #498 ("usually honoured on current iOS, not guaranteed; early ones sometimes ignored"); Android: AOSP smp_act.cc (after user consent)',
    status: { ios: 'observed', android: 'documented' },
    note: 'iOS "usually": set honoursSecurityRequest=false to reproduce an iPhone that ignores it',
  }),
  encryptsBondedLinkOnConnect: rule<boolean>({
    topic: 'starts encryption with the stored key right after connecting to a bonded accessory',
    ios: true,
    android: true,
    source: 'iOS: wonderslug/esphome-ancs #15 (iOS starts LL encryption as soon as it connects); Android: OneKeyHQ/hardware-js-sdk #951 btsnoop (encryption ~33 ms after connecting)',
    status: { ios: 'observed', android: 'observed' },
  }),
  promptPlacement: rule<PromptPlacement>({
    topic: 'Just Works consent prompt ("Pair" / "Cancel")',
    ios: 'before-dhkey-check',
    android: 'before-dhkey-check',
    source: 'iOS: system Pair/Cancel alert (bluez #650), placement not published; Android: AOSP smp_act.cc smp_process_peer_nonce (consent after the nonces for a KeyboardDisplay phone)',
    status: UNVERIFIED_IOS,
  }),
  cancelReason: rule<number>({
    topic: 'Pairing Failed reason sent when the user taps Cancel',
    ios: SmpReason.UnspecifiedReason,
    android: SmpReason.NumericComparisonFailed,
    source: 'Android: AOSP smp_api.cc SMP_SecurityGrant ("Consent dialog fails for JUSTWORKS" sends 0x0C); iOS: no public capture found',
    status: UNVERIFIED_IOS,
    note: 'the iOS value is a placeholder (0x08 Unspecified Reason) until a capture shows what iOS sends',
  }),
  lostBond: rule<LostBondReaction>({
    topic: 'the accessory lost the bond the phone keeps (LTK negative reply, Encryption Change 0x06)',
    ios: 'give-up',
    android: 're-pair',
    source: 'iOS: Apple developer forums 776041 (since iOS 13.4: "Peer removed pairing information", user must Forget This Device); Android: DevZone 60455 ("usually recovers"); OneKeyHQ/hardware-js-sdk #951 (Android re-pairs once the accessory asks for authentication)',
    status: { ios: 'observed', android: 'observed' },
  }),
  lostBondMessage: rule<string>({
    topic: 'what the phone tells the app and user when the accessory lost the bond',
    ios: 'Peer removed pairing information',
    android: 'encryption failed (PIN or Key Missing); pairing again',
    source: 'iOS: CoreBluetooth error text, Apple developer forums 776041; Android: AOSP logs "encryption failed" (OneKeyHQ/hardware-js-sdk #951)',
    status: { ios: 'observed', android: 'observed' },
  }),
  connectionParameters: rule<ParameterPolicy>({
    topic: "answer to the accessory's connection parameter request",
    ios: 'apple-adg',
    android: 'spec',
    source: 'Apple ADG 35.6 (Interval Min >= 15 ms and a multiple of 15 ms, latency <= 30, 2 s <= timeout <= 6 s, ...; requests outside may be rejected); Android: no published rules',
    status: { ios: 'documented', android: 'documented' },
  }),
  gattCaching: rule<boolean>({
    topic: "caches a bonded accessory's GATT database (no rediscovery on reconnection)",
    ios: true,
    android: true,
    source: 'Apple developer forums 45623 (rediscovers on Service Changed); Android caches',
    status: { ios: 'observed', android: 'observed' },
  }),
  initialConnection: rule<InitialConnectionParameters>({
    topic: 'connection parameters asked for when connecting',
    ios: { intervalMin: 24, intervalMax: 24, latency: 0, timeout: 500 },
    android: { intervalMin: 24, intervalMax: 24, latency: 0, timeout: 500 },
    source: 'none: an illustrative 30 ms / 5 s; no rule depends on it',
    status: { ios: 'unverified', android: 'unverified' },
  }),
} as const;

export type PhoneRuleKey = keyof typeof PHONE_RULES;

/** A phone's behaviour: one value per rule. */
export type PhoneBehaviour = { readonly [K in PhoneRuleKey]: (typeof PHONE_RULES)[K]['ios'] };

export interface PhoneProfile extends PhoneBehaviour {
  readonly name: PhoneName;
  /** `iOS` / `Android` for transcripts. */
  readonly label: string;
  /** Rules changed from the table (by a scenario or the user), for transcripts. */
  readonly overridden: readonly PhoneRuleKey[];
}

/** The profile of a phone, built from {@link PHONE_RULES}, with optional overrides. */
export function phoneProfile(name: PhoneName, overrides: Partial<PhoneBehaviour> = {}): PhoneProfile {
  const values: Record<string, unknown> = {};
  for (const [k, r] of Object.entries(PHONE_RULES)) values[k] = name === 'ios' ? r.ios : r.android;
  const overridden: PhoneRuleKey[] = [];
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined || !(k in PHONE_RULES)) continue;
    values[k] = v;
    overridden.push(k as PhoneRuleKey);
  }
  return { ...(values as unknown as PhoneBehaviour), name, label: name === 'ios' ? 'iOS' : 'Android', overridden };
}

export function isPhoneName(s: string): s is PhoneName {
  return (PHONE_NAMES as readonly string[]).includes(s);
}

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** A rule's value as text. */
export function formatRuleValue(key: PhoneRuleKey, v: unknown): string {
  if (key === 'pairingRequest') {
    const p = v as PairingRequestFields;
    return `IO ${hex2(p.ioCapability)}, AuthReq ${hex2(p.authReq)}, max key ${p.maxKeySize}, key dist ${hex2(p.initiatorKeyDist)}/${hex2(p.responderKeyDist)}`;
  }
  if (key === 'cancelReason') return hex2(v as number);
  if (key === 'pairsOnAttErrors') return (v as readonly number[]).map(hex2).join(', ');
  if (key === 'initialConnection') {
    const c = v as InitialConnectionParameters;
    return `${c.intervalMin * 1.25}-${c.intervalMax * 1.25} ms, latency ${c.latency}, timeout ${c.timeout * 10} ms`;
  }
  if (key === 'privacy') return 'RPA, new per connection, identity distributed';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The rule table as text lines (one block per rule), for `--profile P --scenario list` and transcripts. */
export function describeRules(name?: PhoneName): string[] {
  const out: string[] = [];
  for (const [k, r] of Object.entries(PHONE_RULES) as [PhoneRuleKey, PhoneRule<unknown>][]) {
    out.push(`${r.topic}:`);
    for (const p of name ? [name] : PHONE_NAMES) {
      const label = p === 'ios' ? 'iOS' : 'Android';
      out.push(`  ${label.padEnd(8)} ${formatRuleValue(k, p === 'ios' ? r.ios : r.android)}  [${r.status[p]}]`);
    }
    out.push(`  source: ${r.source}`);
    if (r.note) out.push(`  note: ${r.note}`);
  }
  return out;
}
