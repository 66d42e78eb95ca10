/**
 * THE diagnosis rules: each is data (id, title, severity, likely cause, fixes, sources) plus one
 * predicate over a connection's timeline. Adding a rule is adding one entry to {@link RULES}. The
 * rules about what a pairing negotiated live in rules/pairing.ts, the table of Pairing Failed
 * reasons in rules/pairing-failed.ts, shared helpers in rules/common.ts; docs/diagnosis.md says
 * what each rule relies on.
 *
 * Terms: "the phone" is the central, "the accessory" the peripheral, whichever of them the capture
 * was taken on (see timeline.ts). Sources are those of docs/field-notes.md:
 * Apple Accessory Design Guidelines (ADG, 2022) sections 35.6, 40.8, 40.10; Nordic DevZone threads
 * 86794, 72912, 66416, 60455; Apple developer forums 776041; Zephyr smp.c (update_keys_check,
 * BT_SMP_SC_PAIR_ONLY), gatt.c and issues #49927, #87820, #23226; NimBLE-Arduino #116; apache nimble
 * #2206; embassy-rs/trouble #622; google/bumble #124 and PR #890; wonderslug/esphome-ancs #15;
 * weliem/bluez_inc #117; and the Core 5.4 sections named per rule.
 *
 * Predicates must not fire on a clean first pairing (Security Request or 0x05, Pairing Request,
 * encryption) nor on a clean bonded reconnection (LTK request answered, encrypted, protected read
 * served); test/diagnose proves both for every rule.
 *
 * Adding a rule: write a {@link RuleDef} (its predicate reads {@link RuleContext}: the connection's
 * events, its security summary, earlier connections of the same peer), add it to {@link RULES}, and
 * add a capture that makes it fire to test/diagnose/rules.test.ts.
 */
import { hciStatusName } from '../hci/status.js';
import { SmpReason, smpReasonName } from '../smp/pdu.js';
import { checkAppleConnectionParameters, formatConnectionParameters, DEFAULT_PERIPHERAL_PARAMETERS } from '../l2cap/conn-params.js';
import { describeEvent } from './describe.js';
import { before, wantsSecureConnections, type ConnectionSecurity } from './security.js';
import { addressText, type ConnectionRecord, type PacketRef, type Timeline } from './timeline.js';
import { OPTION, RULE_TIMING, bondingFlag, completed, ev, firstAfter, hex, pairingAttempts, pairingMethod, seconds, type Evidence } from './rules/common.js';
import { makePairingFailedRule } from './rules/pairing-failed.js';
import { authenticationUnreachable, legacyPairingUsed, pairingUnanswered, pairingWithoutBonding } from './rules/pairing.js';

export { OPTION, RULE_TIMING, type Evidence } from './rules/common.js';

export type Severity = 'error' | 'warning' | 'hint';
/** Where the fix is made. */
export type FixTarget = 'phone' | 'firmware' | 'wearable-host';

export interface Fix {
  readonly where: FixTarget;
  readonly text: string;
}

/** What a predicate returns when its rule fires. */
export interface RuleHit {
  readonly evidence: readonly Evidence[];
  /** The case at hand, in a sentence or two (appended to the rule's cause). */
  readonly detail?: string;
  /** Overrides the rule's severity for this case. */
  readonly severity?: Severity;
  /** Tells several hits of one rule on one connection apart; default: the first evidence packet. */
  readonly key?: string;
  /**
   * The capture also allows another explanation: the rules this one supersedes still report, so
   * the user sees both readings.
   */
  readonly tentative?: boolean;
  /** Overrides the rule's title for this case (a rule keyed by a code, such as the Pairing Failed reason). */
  readonly title?: string;
  /** Overrides the rule's general cause for this case. */
  readonly cause?: string;
  /** Overrides the rule's fixes for this case. */
  readonly fixes?: readonly Fix[];
}

/** Everything a predicate may read. */
export interface RuleContext {
  readonly timeline: Timeline;
  readonly conn: ConnectionRecord;
  readonly sec: ConnectionSecurity;
  /** Earlier connections of the same peer (same identity, or same address), oldest first. */
  readonly earlier: readonly { readonly conn: ConnectionRecord; readonly sec: ConnectionSecurity }[];
  /** The end of the capture, or the clock's time when live. */
  readonly now: number;
  /** No more packets will come for this connection (it ended, or the capture is complete). */
  readonly final: boolean;
  /** Live use: evaluate this connection again at `time` (Unix ms) even if no packet arrives. */
  wakeAt(time: number): void;
}

export interface RuleDef {
  /** Stable id, used in JSON output and tests. */
  readonly id: string;
  readonly title: string;
  readonly severity: Severity;
  /** The likely cause, as the user reads it. */
  readonly cause: string;
  readonly fixes: readonly Fix[];
  /** Where the knowledge comes from. */
  readonly sources: readonly string[];
  /** Rules whose findings on the same connection this one explains better (they are dropped when both fire). */
  readonly supersedes?: readonly string[];
  readonly match: (ctx: RuleContext) => readonly RuleHit[];
}

/** HCI 0x3D Connection Terminated due to MIC Failure. Core 5.4 Vol 1 Part F 2.61. */
const MIC_FAILURE = 0x3d;

const FORGET_ON_PHONE = 'iPhone: Settings > Bluetooth > (i) next to the accessory > Forget This Device; Android: Settings > Connected devices > the accessory > Forget/Unpair. Then connect again and accept the pairing prompt.';

/** Evidence that the accessory held a bond for this connection's peer before `ref` (or the connection), if the capture shows one. */
export function bondEvidence(ctx: RuleContext, ref?: { at: PacketRef }): Evidence | undefined {
  const { sec, conn } = ctx;
  // Same connection: encrypted with a stored key before, or 0x0F (Zephyr answers 0x0F when an LTK exists, 0x05 when not).
  const ltkOk = sec.ltkReplies.find((r) => r.positive && (!ref || before(r, ref)));
  if (ltkOk) return ev(ltkOk);
  const enc = sec.encryptedAt;
  if (enc && (!ref || before(enc, ref)) && sec.pairingRequests.every((p) => !before(p, enc))) return ev(enc, `${describeEvent(enc)} with a stored key`);
  const insuffEnc = sec.attSecurityErrors.find((e) => e.pdu.errorCode === 0x0f && (!ref || before(e, ref)));
  if (insuffEnc) return ev(insuffEnc, `${describeEvent(insuffEnc)}: the accessory answers 0x0F when it holds a key for the peer`);
  // Earlier connections of the same identity that encrypted (paired and bonded, or reconnected with the key).
  for (let i = ctx.earlier.length - 1; i >= 0; i--) {
    const e = ctx.earlier[i];
    if (e?.sec.encryptedAt) return ev(e.sec.encryptedAt, `connection ${e.conn.id} with the same peer was encrypted (${e.sec.summary})`);
  }
  if (conn.peer?.identitySource === 'controller') {
    const c = conn.events.find((x) => x.kind === 'connection');
    if (c) return ev(c, `${describeEvent(c)}: the controller's resolving list holds this peer's IRK, so the accessory keeps a bond for it`);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The rules.
// ---------------------------------------------------------------------------------------------

/** 1. The accessory asked for security, nothing followed, and nothing protected was accessed. */
const securityRequestIgnored: RuleDef = {
  id: 'security-request-ignored',
  title: 'Nothing triggered pairing',
  severity: 'error',
  cause:
    'The accessory sent an SMP Security Request and the phone neither started pairing nor encryption, and no ATT request was rejected for lack of security. ' +
    'iOS does not reliably honour a Security Request (early ones are often ignored) and Apple documents the trigger as an ATT request rejected with Insufficient Authentication (0x05): ' +
    'iOS then pairs and shows the Pair prompt. Apps cannot start pairing on iOS.',
  fixes: [
    { where: 'wearable-host', text: `Let a protected characteristic trigger pairing: ${OPTION.securityRequest} after-att-rejection (or never), and make sure the characteristics the app uses require encryption, so the phone's first access gets 0x05 Insufficient Authentication.` },
    { where: 'phone', text: 'Open the app (or a GATT browser such as nRF Connect or LightBlue) and read or write a protected characteristic: that access is what makes iOS pair and show the prompt.' },
  ],
  sources: ['Apple ADG 2022 sec. 40.10', 'Nordic DevZone 86794, 72912, 66416', 'docs/field-notes.md: Security Request row (zephyr devel list, google/bumble #498)'],
  match(ctx) {
    const { sec, conn } = ctx;
    const sr = sec.securityRequests[0];
    if (!sr) return [];
    const answered = conn.events.find(
      (e) =>
        before(sr, e) &&
        ((e.kind === 'smp' && e.from === 'phone') || e.kind === 'ltkRequest' || e.kind === 'startEncryption' || (e.kind === 'encryptionChange' && e.enabled)),
    );
    // The phone was securing the link on its own (before or after the request; a Pairing Request
    // that crossed the Security Request on air comes just before it): not this rule.
    if (answered || sec.encryptedAt || sec.ltkRequests.length > 0 || sec.startEncryptions.length > 0) return [];
    if (sec.pairingRequests.some((p) => p.from === 'phone')) return [];
    if (sec.attSecurityErrors.length > 0) return [];
    const endTime = conn.end?.time ?? ctx.now;
    const waited = endTime - sr.at.time;
    if (conn.end === undefined && waited < RULE_TIMING.securityRequestWaitMs) {
      ctx.wakeAt(sr.at.time + RULE_TIMING.securityRequestWaitMs);
      return [];
    }
    const reqs = sec.phoneRequests.filter((e) => before(sr, e));
    const evidence: Evidence[] = [ev(sr)];
    if (sec.disconnection) evidence.push(ev(sec.disconnection));
    const accessed = reqs.length
      ? ` The phone made ${reqs.length} ATT request(s) after it, none of them to a protected attribute.`
      : ' The phone made no ATT request after it (no app read anything).';
    const detail = `Security Request sent ${seconds(waited)} ${conn.end ? 'before the link went down' : 'ago'}; the phone has not started pairing.${accessed} iOS pairs when an app reads a protected characteristic.`;
    return [{ evidence, detail }];
  },
};

/** 2. The phone encrypts with a key the accessory no longer has. */
const phoneKeptStaleBond: RuleDef = {
  id: 'phone-kept-stale-bond',
  title: 'The phone holds a bond the accessory lost',
  severity: 'error',
  cause:
    'The phone tried to encrypt the link with the key of an earlier pairing, and the accessory has no key for it (LTK request answered with a negative reply, or encryption failed with 0x06 PIN or Key Missing). ' +
    'The accessory lost its bond (bond file deleted or replaced, firmware/host reinstalled) while the phone kept its own. Since iOS 13.4 the iPhone does not re-pair by itself: CoreBluetooth reports "Peer removed pairing information" and the user must forget the device. Android usually pairs again.',
  fixes: [
    { where: 'phone', text: FORGET_ON_PHONE },
    { where: 'wearable-host', text: `Keep the bond store across restarts and updates: run with the same ${OPTION.bonds} FILE, and check with \`wearable-host bonds list\` that the phone's identity is still there.` },
  ],
  sources: ['Apple developer forums 776041', 'Nordic DevZone 60455', 'docs/field-notes.md: LTK Request with EDIV = 0 and Rand = 0 answered negatively -> 0x06'],
  match(ctx) {
    const { sec } = ctx;
    const hits: RuleHit[] = [];
    // Accessory side: LTK request, negative reply.
    for (const req of sec.ltkRequests) {
      const neg = sec.ltkReplies.find((r) => !r.positive && before(req, r));
      if (!neg || sec.ltkReplies.some((r) => r.positive && before(req, r) && before(r, neg))) continue;
      const evidence: Evidence[] = [ev(req), ev(neg)];
      const fail = firstAfter(sec.encryptionChanges, neg);
      if (fail && !fail.enabled) evidence.push(ev(fail));
      const repaired = sec.pairingRequests.find((p) => before(neg, p));
      if (sec.disconnection && (!repaired || before(sec.disconnection, repaired))) evidence.push(ev(sec.disconnection));
      hits.push(
        repaired && sec.encryptedAt && before(repaired, sec.encryptedAt)
          ? { evidence: [...evidence, ev(repaired)], severity: 'warning', detail: 'The phone then paired again on its own (Android usually does; an iPhone does not).' }
          : { evidence },
      );
      break;
    }
    if (hits.length) return hits;
    // Phone side (or an accessory capture with Encryption Change v2): encryption failed with 0x06.
    const keyMissing = sec.encryptionChanges.find((e) => e.status === 0x06);
    if (keyMissing) {
      const start = [...sec.startEncryptions, ...sec.ltkRequests].find((s) => before(s, keyMissing));
      const evidence: Evidence[] = [...(start ? [ev(start)] : []), ev(keyMissing)];
      if (sec.disconnection && before(keyMissing, sec.disconnection)) evidence.push(ev(sec.disconnection));
      hits.push({ evidence });
    }
    return hits;
  },
};

/** 3. An RPA that a stored IRK resolves, treated as an unknown device. */
const rpaNotResolved: RuleDef = {
  id: 'rpa-not-resolved',
  title: 'The phone\'s private address was not resolved although its IRK is stored',
  severity: 'error',
  supersedes: ['phone-kept-stale-bond'],
  cause:
    'The phone connected with a resolvable private address that an IRK known to the accessory resolves (ah()), but the accessory treated it as an unknown device: it answered the LTK request negatively or rejected access with 0x05 Insufficient Authentication (the code for "no key for this peer"). ' +
    'Phones rotate their address (about every 15 minutes); an accessory must resolve it against the IRKs of its bonds on every connection (ADG 40.8), else a bonded phone looks like a stale bond.',
  fixes: [
    { where: 'wearable-host', text: `Check that the bond kept the phone's IRK (\`wearable-host bonds list\` shows it) and that address resolution runs on every connection; if the controller's resolving list is used, that the bond is loaded into it. Report a wearable-host bug with this capture if both are true.` },
    { where: 'firmware', text: 'Store the peer IRK with the bond and resolve with it: in Zephyr keep CONFIG_BT_SETTINGS=y with settings_load() at boot (bonds and IRKs persist), CONFIG_BT_PRIVACY / the controller resolving list (CONFIG_BT_CTLR_PRIVACY) sized for every bond (CONFIG_BT_MAX_PAIRED), and do not call bt_unpair() on disconnection. "Forget This Device" on the phone does not fix this.' },
    { where: 'phone', text: `As a workaround only: ${FORGET_ON_PHONE}` },
  ],
  sources: ['Apple ADG 2022 sec. 40.8', 'google/bumble #124', 'zephyr #23226', 'Core 5.4 Vol 3 Part H 2.2.2 (ah), Vol 6 Part B 1.3.2.3'],
  // A new pairing the accessory accepted is deliberately not evidence here: with a re-pairing policy of
  // 'replace' a correctly resolved phone that forgot the accessory looks the same on the wire.
  match(ctx) {
    const { conn, sec } = ctx;
    const peer = conn.peer;
    if (conn.localRole === 'central') return phoneSideUnresolved(ctx);
    if (!peer?.isRpa || (peer.identitySource !== 'trace-irk' && peer.identitySource !== 'resolver') || !peer.identity) return [];
    const neg = sec.ltkReplies.find((r) => !r.positive);
    // 0x05 on a link already encrypted is about the key's strength, not a missing key.
    const insuffAuth = sec.attSecurityErrors.find((e) => e.pdu.errorCode === 0x05 && (!sec.encryptedAt || before(e, sec.encryptedAt)));
    const treatedAsNew = neg ?? insuffAuth;
    if (!treatedAsNew) return [];
    const evidence: Evidence[] = [];
    if (peer.irkSeenAt) {
      const via = peer.irkVia === 'resolving-list' ? 'LE Add Device To Resolving List' : 'SMP Identity Information from the phone';
      evidence.push({ at: peer.irkSeenAt, what: `${via}: the IRK of ${peer.identity.address} is known from here on` });
    }
    const connEv = conn.events.find((e) => e.kind === 'connection');
    if (connEv) evidence.push(ev(connEv));
    const req = neg ? sec.ltkRequests.find((r) => before(r, neg)) : undefined;
    if (req) evidence.push(ev(req));
    evidence.push(ev(treatedAsNew));
    const how = peer.identitySource === 'trace-irk' ? 'an IRK distributed earlier in this capture' : "the host's bond store";
    const detail = `${addressText(peer.onAir)} resolves to ${peer.identity.address} (${peer.identity.type}) with ${how}, yet the controller reported it unresolved and the accessory ${neg ? 'had no key for it' : 'answered 0x05 as for an unknown device'}.`;
    // An IRK seen only in SMP earlier in the capture proves the accessory knew the phone then, not
    // that it still holds the bond: it may have lost it since (bond file deleted, host reinstalled),
    // which looks the same on the wire. The host's own bond store, or the IRK it loaded into the
    // controller's resolving list, is proof that it should have resolved the address.
    if (peer.identitySource === 'trace-irk' && peer.irkVia !== 'resolving-list') {
      // The IRK came with a bonded pairing in this capture and the accessory's host did not restart
      // (no HCI Reset) since: it still holds that bond unless it deleted it on purpose, so the new
      // address went unresolved. With a restart in between a lost bond is just as likely.
      const irkAt = peer.irkSeenAt;
      const pairedIn = irkAt ? ctx.earlier.find((e) => e.conn.events.some((x) => x.at.number === irkAt.number)) : undefined;
      const bonded = pairedIn ? pairingAttempts(pairedIn.sec).some((a) => completed(a) && bondingFlag(a.request.pdu.authReq) && bondingFlag(a.response.pdu.authReq)) : false;
      const reset = irkAt ? ctx.timeline.events.find((x) => x.kind === 'hostReset' && before({ at: irkAt }, x) && (!conn.start || before(x, conn.start))) : undefined;
      if (conn.localRole === 'peripheral' && bonded && !reset && ctx.timeline.events.length > 0) {
        return [
          {
            evidence,
            detail: `${detail} The IRK came with a bonded pairing on connection ${pairedIn?.conn.id}, and the accessory's host did not restart since (no HCI Reset in between): it failed to resolve the phone's new address, the bond was not lost.`,
          },
        ];
      }
      if (reset) evidence.splice(1, 0, ev(reset, `${describeEvent(reset)} between the pairing and this connection`));
      return [
        {
          evidence,
          severity: 'warning',
          tentative: true,
          detail: `${detail} Either the accessory failed to resolve the address, or it lost the bond after the pairing in this capture (then see the stale-bond finding); the capture alone cannot tell which.`,
        },
      ];
    }
    return [{ evidence, detail }];
  },
};

/**
 * rpa-not-resolved seen from the phone: it gave the accessory its IRK in a bonded pairing earlier in
 * the capture, and now its stored key is refused (0x06). The phone cannot see the accessory's bond
 * store, its restarts or the phone's own on-air address: both readings stay open (tentative).
 */
function phoneSideUnresolved(ctx: RuleContext): RuleHit[] {
  const keyMissing = ctx.sec.encryptionChanges.find((e) => e.status === 0x06);
  if (!keyMissing) return [];
  for (let i = ctx.earlier.length - 1; i >= 0; i--) {
    const e = ctx.earlier[i];
    if (!e) continue;
    const bondedPairing = pairingAttempts(e.sec).find((a) => completed(a) && bondingFlag(a.request.pdu.authReq) && bondingFlag(a.response.pdu.authReq));
    const irk = e.sec.smp.find((x) => x.from === 'phone' && x.pdu.type === 'identityInformation');
    if (!bondedPairing || !irk) continue;
    const start = ctx.sec.startEncryptions.find((s) => before(s, keyMissing));
    return [
      {
        evidence: [ev(irk, `${describeEvent(irk)}: the phone gave the accessory its IRK (connection ${e.conn.id}, bonded)`), ...(start ? [ev(start)] : []), ev(keyMissing)],
        severity: 'warning',
        tentative: true,
        detail:
          'The phone distributed its identity in a bonded pairing earlier in this capture, and now the accessory has no key for it. If the phone connects from resolvable private addresses (iPhones and Android phones do), either the accessory failed to resolve the phone\'s new address (fix: IRK storage and resolution on the accessory) or it lost the bond (fix: Forget This Device). ' +
          "A phone capture cannot tell: it does not show the accessory's bond store, its restarts or its LTK reply. The accessory's btsnoop of the same reconnection does.",
      },
    ];
  }
  return [];
}

/** 4. Re-pairing from a phone that forgot the accessory is refused because the accessory still holds the old bond. */
const rePairingRefused: RuleDef = {
  id: 'repairing-refused',
  title: 'The accessory refuses to pair again with a phone it holds a bond for',
  severity: 'error',
  cause:
    'The phone started a new LE Secure Connections pairing (it forgot the accessory, or was reset) and the accessory answered Pairing Failed 0x03 Authentication Requirements because it still holds a bond for the same identity (same IRK, so the new address resolves to the old bond). ' +
    "Refusing an unauthenticated (Just Works) pairing from a bonded identity is Zephyr's default (update_keys_check) and wearable-host's default re-pairing policy; the phone cannot recover by itself.",
  fixes: [
    { where: 'wearable-host', text: `Allow re-pairing: ${OPTION.rePairing} replace (the old bond is replaced only after the new pairing completed, so a failed or spoofed attempt never evicts it), or remove the old bond: \`wearable-host bonds remove ADDRESS\`.` },
    { where: 'phone', text: 'Nothing to change on the phone once the accessory accepts the new pairing; try pairing again afterwards.' },
  ],
  sources: ['zephyr smp.c update_keys_check', 'zephyr #49927, #87820', 'NimBLE-Arduino #116', 'embassy-rs/trouble #622', 'apache/mynewt-nimble #2206 (replace only after success)'],
  match(ctx) {
    const { sec } = ctx;
    for (const fail of sec.pairingFailures) {
      if (fail.from !== 'accessory' || fail.pdu.reason !== SmpReason.AuthenticationRequirements) continue;
      const req = [...sec.pairingRequests].reverse().find((p) => before(p, fail) && p.from === 'phone');
      if (!req || !wantsSecureConnections(req.pdu.authReq)) continue;
      const bond = bondEvidence(ctx, req);
      if (bond) return [{ evidence: [bond, ev(req), ev(fail)] }];
      return [
        {
          evidence: [ev(req), ev(fail)],
          severity: 'warning',
          detail:
            'No earlier bond for this phone is visible in the capture, so this is the likely cause only if the accessory holds one from before the capture; otherwise the accessory requires MITM protection (passkey or numeric comparison) that this phone\'s IO capabilities cannot give.',
        },
      ];
    }
    return [];
  },
};

/** 5. A central that offers only legacy pairing. */
const legacyPairingRefused: RuleDef = {
  id: 'legacy-pairing-refused',
  title: 'The phone offered only legacy pairing',
  severity: 'error',
  cause:
    'The Pairing Request did not set the Secure Connections bit, and the accessory pairs with LE Secure Connections only, so it answered Pairing Failed 0x03 Authentication Requirements (as Zephyr does with BT_SMP_SC_PAIR_ONLY). ' +
    'Legacy Just Works pairing gives no protection against a passive eavesdropper.',
  fixes: [
    { where: 'phone', text: 'Use a central whose Bluetooth stack supports LE Secure Connections (Bluetooth 4.2 or later host); every current iPhone and Android phone does. A test tool or library acting as the central may need its SC option turned on.' },
    { where: 'wearable-host', text: 'No option: wearable-host pairs with LE Secure Connections only, on purpose.' },
  ],
  sources: ['docs/field-notes.md: Legacy Pairing Request to an LESC-only device -> 0x03 (Zephyr BT_SMP_SC_PAIR_ONLY)', 'Core 5.4 Vol 3 Part H 3.5.1 (AuthReq SC bit)'],
  match(ctx) {
    const { sec } = ctx;
    for (const fail of sec.pairingFailures) {
      if (fail.from !== 'accessory' || fail.pdu.reason !== SmpReason.AuthenticationRequirements) continue;
      const req = [...sec.pairingRequests].reverse().find((p) => before(p, fail) && p.from === 'phone');
      if (req && !wantsSecureConnections(req.pdu.authReq)) return [{ evidence: [ev(req), ev(fail)] }];
    }
    return [];
  },
};

/** 6. The user cancelled, or nobody answered the pairing prompt in time. */
const pairingCancelled: RuleDef = {
  id: 'pairing-cancelled',
  title: 'Pairing cancelled on the phone or the prompt timed out',
  severity: 'warning',
  cause:
    'Pairing started and the phone gave up: it sent Pairing Failed 0x08 Unspecified Reason (what phones send when the user cancels or dismisses the prompt; on a Just Works pairing Android sends 0x0C Numeric Comparison Failed for the same Cancel), or it stopped answering and the 30 s SMP timeout ended the procedure. ' +
    'On iOS the Just Works pairing needs the user to answer the system "Pair / Cancel" alert.',
  fixes: [
    { where: 'phone', text: 'Pair again and tap "Pair" on the prompt within 30 seconds, with the phone unlocked. If no prompt appears at all, check that the phone does not still hold an old bond (Forget This Device).' },
  ],
  sources: ['Core 5.4 Vol 3 Part H 3.4 (SMP timeout 30 s), 3.5.5 (Pairing Failed reasons)', 'docs/field-notes.md: Just Works prompt (bluez #650, RxAndroidBle FAQ)'],
  match(ctx) {
    const { sec, conn } = ctx;
    // 0x08 is what a phone sends when the user cancels; on a Just Works pairing (a consent prompt, no
    // real passkey or comparison) Android reports the cancel as 0x0C and some stacks as 0x01.
    const phoneFail = sec.pairingFailures.find((f) => {
      if (f.from !== 'phone') return false;
      if (f.pdu.reason === SmpReason.UnspecifiedReason) return true;
      if (f.pdu.reason !== SmpReason.NumericComparisonFailed && f.pdu.reason !== SmpReason.PasskeyEntryFailed) return false;
      const a = [...pairingAttempts(sec)].reverse().find((x) => before(x.request, f));
      return a?.response !== undefined && pairingMethod(a.request.pdu, a.response.pdu) === 'just-works';
    });
    if (phoneFail) {
      const rsp = [...sec.pairingResponses].reverse().find((r) => before(r, phoneFail));
      const evidence: Evidence[] = [...(rsp ? [ev(rsp)] : []), ev(phoneFail)];
      const after = rsp ? ` ${seconds(phoneFail.at.time - rsp.at.time)} after the accessory's Pairing Response` : '';
      return [{ evidence, detail: `The phone sent Pairing Failed ${hex(phoneFail.pdu.reason)} (${smpReasonName(phoneFail.pdu.reason)})${after}.` }];
    }
    // Stalled: pairing started, no failure, no encryption, and the phone went silent.
    const req = sec.pairingRequests[0];
    if (!req || sec.pairingFailures.length > 0 || (sec.encryptedAt && before(req, sec.encryptedAt))) return [];
    const lastSmp = sec.smp[sec.smp.length - 1];
    if (!lastSmp || lastSmp.from !== 'accessory') return [];
    const endTime = conn.end?.time ?? ctx.now;
    const idle = endTime - lastSmp.at.time;
    if (conn.end === undefined && idle < RULE_TIMING.smpTimeoutMs) {
      ctx.wakeAt(lastSmp.at.time + RULE_TIMING.smpTimeoutMs);
      return [];
    }
    const evidence: Evidence[] = [ev(req), ev(lastSmp, `${describeEvent(lastSmp)}: the last SMP PDU; the phone never answered it`)];
    if (sec.disconnection) evidence.push(ev(sec.disconnection));
    return [
      {
        evidence,
        detail:
          idle >= RULE_TIMING.smpTimeoutMs
            ? `The phone stopped answering for ${seconds(idle)}, beyond the 30 s SMP timeout: the prompt was not answered.`
            : `The phone stopped answering and the link went down ${seconds(idle)} later: the prompt was cancelled or the app closed the connection.`,
      },
    ];
  },
};

/** 7. Encrypted with different keys on the two sides. */
const keyMismatch: RuleDef = {
  id: 'key-mismatch',
  title: 'Key mismatch: MIC failure',
  severity: 'error',
  cause:
    'The link went down with 0x3D Connection Terminated due to MIC Failure: the two sides encrypted with different keys. The accessory answered the LTK request with a key the phone does not hold: a stale or duplicated bond for this phone, an address resolved to the wrong bond, or a bond replaced on one side only.',
  fixes: [
    { where: 'wearable-host', text: 'List the bonds (`wearable-host bonds list`): remove stale or duplicate entries for this phone (`wearable-host bonds remove ADDRESS`).' },
    { where: 'phone', text: FORGET_ON_PHONE },
  ],
  sources: ['google/bumble PR #890 (wrong LTK chosen on reconnect)', 'Core 5.4 Vol 1 Part F 2.61 (0x3D)'],
  match(ctx) {
    const { sec } = ctx;
    const mic = sec.disconnection?.reason === 0x3d ? sec.disconnection : sec.encryptionChanges.find((e) => e.status === 0x3d);
    if (!mic) return [];
    const start = [...sec.ltkReplies.filter((r) => r.positive), ...sec.startEncryptions].find((s) => before(s, mic));
    return [{ evidence: [...(start ? [ev(start)] : []), ev(mic)] }];
  },
};

/** 8. Security Request sent while the phone starts encryption on its own. */
const securityRequestCollision: RuleDef = {
  id: 'security-request-collision',
  title: 'Security Request collided with the phone starting encryption',
  severity: 'error',
  supersedes: ['security-request-ignored'],
  cause:
    'A bonded iPhone starts encryption with its stored key as soon as it connects. The accessory sent an SMP Security Request at the same moment; the phone answered with Pairing Failed or the encryption failed, and the link went down. Reconnections repeat the pattern (a reconnect loop). ' +
    'One report reads the phone\'s answer as Pairing Failed 0x0D; that code is uncertain, the collision is not.',
  fixes: [
    { where: 'wearable-host', text: `Do not send a Security Request to a phone that encrypts by itself: ${OPTION.securityRequest} after-att-rejection (or never). A bonded phone is re-encrypted through its LTK request without one.` },
  ],
  sources: ['wonderslug/esphome-ancs #15 (the 0x0D reason is that project\'s reading, uncertain)', 'docs/field-notes.md: Security Request on reconnect can collide with iOS starting encryption'],
  match(ctx) {
    const { sec, conn } = ctx;
    const starts = [...sec.ltkRequests, ...sec.startEncryptions];
    const window = RULE_TIMING.collisionWindowMs;
    for (const sr of sec.securityRequests) {
      const start = starts.find((s) => {
        const dt = sr.at.time - s.at.time;
        if (Math.abs(dt) <= window) return true;
        // Or sent while the phone's encryption was in flight.
        const done = firstAfter(sec.encryptionChanges, s);
        return before(s, sr) && (!done || before(sr, done));
      });
      const phoneFail = sec.pairingFailures.find((f) => f.from === 'phone' && before(sr, f) && f.at.time - sr.at.time <= window);
      const loopHint = phoneFail?.pdu.reason === SmpReason.BrEdrPairingInProgress;
      if (!start && !loopHint) continue;
      // A MIC failure (0x3D) means the two sides used different keys (key-mismatch); on its own it is no sign of a collision.
      const encFail = sec.encryptionChanges.find((e) => !e.enabled && before(sr, e) && e.status !== MIC_FAILURE);
      const down = sec.disconnection && sec.disconnection.reason !== MIC_FAILURE && (!sec.encryptedAt || before(sec.disconnection, sec.encryptedAt)) ? sec.disconnection : undefined;
      const trouble = phoneFail ?? encFail ?? (conn.end && !sec.encryptedAt ? down : undefined);
      if (!trouble) continue;
      const evidence: Evidence[] = [...(start ? [ev(start)] : []), ev(sr), ev(trouble)];
      if (down && trouble !== down) evidence.push(ev(down));
      const repeats = ctx.earlier.filter((e) => e.sec.securityRequests.length > 0 && !e.sec.encryptedAt).length;
      return [{ evidence, ...(repeats > 0 ? { detail: `Earlier connection(s) of this phone ended the same way (${repeats}): a reconnect loop.` } : {}) }];
    }
    return [];
  },
};

/** 9. Service Changed indicated on a bonded reconnection before the link was encrypted. */
const serviceChangedBeforeEncryption: RuleDef = {
  id: 'service-changed-before-encryption',
  title: 'Service Changed indicated before encryption on a bonded reconnection',
  severity: 'warning',
  cause:
    'On a reconnection of a bonded phone the accessory indicated Service Changed before the link was encrypted. One report saw iOS drop the link 30 s later, consistent with the indication never being confirmed (the ATT transaction timeout is 30 s, Core 5.4 Vol 3 Part F 3.3.3). For a bonded client it belongs on the encrypted link.',
  fixes: [
    { where: 'wearable-host', text: 'Send Service Changed to a bonded client only once the link is encrypted with its key. If this capture comes from wearable-host, report it as a bug with the capture.' },
  ],
  sources: ['weliem/bluez_inc #117', 'Core 5.4 Vol 3 Part G 7.1 (Service Changed, bonded clients)'],
  match(ctx) {
    const { sec, conn } = ctx;
    const sc = conn.events.find((e) => e.kind === 'serviceChanged' && e.from === 'accessory');
    if (!sc) return [];
    if (sec.encryptedAt && before(sec.encryptedAt, sc)) return [];
    // Bonded reconnection: the phone encrypts with a stored key here, or an earlier connection of this peer was secured.
    const reconnect = [...sec.ltkRequests, ...sec.startEncryptions][0];
    const bonded = reconnect ?? ctx.earlier.find((e) => e.sec.encryptedAt)?.sec.encryptedAt;
    if (!bonded || sec.pairingRequests.some((p) => before(p, sc))) return [];
    const evidence: Evidence[] = [ev(bonded, reconnect ? undefined : `${describeEvent(bonded)} on an earlier connection: the phone is bonded`), ev(sc)];
    if (sec.encryptedAt) evidence.push(ev(sec.encryptedAt));
    if (sec.disconnection) evidence.push(ev(sec.disconnection));
    return [{ evidence, ...(sc.kind === 'serviceChanged' && sc.guessed ? { detail: 'The Service Changed handle is a guess (no GATT discovery in the capture).' } : {}) }];
  },
};

/** 10. The accessory asks for connection parameters outside Apple's rules. */
const connectionParametersNotApple: RuleDef = {
  id: 'connection-parameters-not-apple',
  title: "Connection parameters outside Apple's rules",
  severity: 'warning',
  cause:
    "The accessory requested connection parameters that break Apple's Accessory Design Guidelines; iOS rejects or ignores such requests, and the link stays on the phone's parameters (or is dropped by an accessory that insists).",
  fixes: [
    { where: 'wearable-host', text: `Request parameters within Apple's rules: Interval Min >= 15 ms and a multiple of 15 ms, latency <= 30, 2 s <= timeout <= 6 s, Interval Max x (latency + 1) <= 2 s and three times that below the timeout. wearable-host's default (${formatConnectionParameters(DEFAULT_PERIPHERAL_PARAMETERS)}) complies.` },
  ],
  sources: ['Apple ADG 2022 sec. 35.6 (Connection Parameters)'],
  match(ctx) {
    const hits: RuleHit[] = [];
    const seen = new Set<string>();
    for (const e of ctx.conn.events) {
      if (e.kind !== 'connParamRequest' || e.from !== 'accessory') continue;
      const v = checkAppleConnectionParameters(e.params);
      if (v.length === 0) continue;
      const key = `${e.params.intervalMin}/${e.params.intervalMax}/${e.params.latency}/${e.params.timeout}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const rsp = ctx.conn.events.find((r) => r.kind === 'connParamResponse' && before(e, r));
      hits.push({ key, evidence: [ev(e), ...(rsp ? [ev(rsp)] : [])], detail: v.map((x) => x.detail).join('; ') + '.' });
    }
    return hits;
  },
};

/** 11. An encryption key shorter than 16 bytes was accepted. */
const keySizeTooShort: RuleDef = {
  id: 'key-size-too-short',
  title: 'A short encryption key was accepted',
  severity: 'error',
  cause:
    'The link uses a key shorter than 16 bytes. The key size is what the pairing negotiated: the smaller of the Maximum Encryption Key Size fields of the Pairing Request and Response (Core 5.4 Vol 3 Part H 2.3.4), and the accessory accepted it instead of failing with 0x06. ' +
    "Short keys are what the KNOB attack forces. The controller's Read Encryption Key Size is not needed (upstream Zephyr's hci_uart does not even implement it: Unknown HCI Command).",
  fixes: [
    { where: 'firmware', text: 'Require 16-byte keys: Zephyr CONFIG_BT_SMP_MIN_ENC_KEY_SIZE=16 (pairing with a smaller maximum then fails with 0x06), and offer 16 in the Pairing Response.' },
    { where: 'wearable-host', text: `${OPTION.minKeySize} 16 (the default); lower it only for a known central that cannot do better, accepting the weaker key.` },
    { where: 'phone', text: 'Use a central that offers a 16-byte maximum key size (all current phones do); a test tool may have lowered it.' },
  ],
  sources: ['Core 5.4 Vol 3 Part H 2.3.4 (encryption key size), 3.5.1', 'KNOB attack (CVE-2019-9506)', 'Zephyr Kconfig BT_SMP_MIN_ENC_KEY_SIZE'],
  match(ctx) {
    const { sec } = ctx;
    const hits: RuleHit[] = [];
    for (const a of pairingAttempts(sec)) {
      // Accepted means used: the link was encrypted with the short key (an accessory that refuses fails the pairing instead).
      if (a.keySize === undefined || a.keySize >= 16 || a.failure || !a.response || !a.encrypted) continue;
      const evidence: Evidence[] = [ev(a.request), ev(a.response), ev(a.encrypted)];
      const reported = sec.keySizes.find((k) => a.response && before(a.response, k));
      hits.push({
        evidence,
        detail:
          `Negotiated key size ${a.keySize} bytes: min(${a.request.pdu.maxKeySize} from the phone, ${a.response.pdu.maxKeySize} from the accessory), and the link was encrypted with it.` +
          (reported && reported.keySize !== a.keySize ? ` The controller reports ${reported.keySize}; the negotiation is what counts.` : ''),
      });
    }
    if (hits.length || sec.pairingResponses.length) return hits;
    // No pairing in this capture (a reconnection): a controller report, when it has one, is the only figure.
    const short = sec.keySizes.find((k) => k.keySize < 16);
    if (short) {
      const e = ctx.conn.events.find((x) => x.at.number === short.at.number && (x.kind === 'keySize' || x.kind === 'encryptionChange'));
      return [{ evidence: [e ? ev(e) : { at: short.at, what: `key size ${short.keySize}` }], detail: `The controller reports a key of ${short.keySize} bytes; the pairing that made it is not in this capture.` }];
    }
    return [];
  },
};

/** 12. The accessory is not accepting new pairings right now. */
const pairingNotAccepted: RuleDef = {
  id: 'pairing-not-accepted',
  title: 'The accessory is not accepting pairing now',
  severity: 'error',
  cause:
    'The accessory refused the Pairing Request with 0x05 Pairing Not Supported (its pairing window is closed, or pairing is disabled) or 0x09 Repeated Attempts (too many failed attempts: it backs off for a while).',
  fixes: [
    { where: 'wearable-host', text: `Open the pairing window (${OPTION.pairingWindow} SECONDS, counted from start-up or the button that opens it) and pair within it; after 0x09 wait for the back-off before trying again.` },
  ],
  sources: ['Core 5.4 Vol 3 Part H 3.5.5 (reasons 0x05, 0x09), 2.3.6 (repeated attempts)', 'issue 5: pairing window and repeated-attempts back-off'],
  match(ctx) {
    const fail = ctx.sec.pairingFailures.find((f) => f.from === 'accessory' && (f.pdu.reason === SmpReason.PairingNotSupported || f.pdu.reason === SmpReason.RepeatedAttempts));
    if (!fail) return [];
    const req = [...ctx.sec.pairingRequests].reverse().find((p) => before(p, fail));
    return [{ evidence: [...(req ? [ev(req)] : []), ev(fail)] }];
  },
};

/** Every rule, in the order findings are listed. */
export const RULES: readonly RuleDef[] = [
  securityRequestIgnored,
  phoneKeptStaleBond,
  rpaNotResolved,
  rePairingRefused,
  legacyPairingRefused,
  pairingUnanswered,
  legacyPairingUsed,
  keySizeTooShort,
  pairingWithoutBonding,
  authenticationUnreachable,
  pairingCancelled,
  keyMismatch,
  securityRequestCollision,
  serviceChangedBeforeEncryption,
  connectionParametersNotApple,
  pairingNotAccepted,
  // Last: names every Pairing Failed the rules above do not explain.
  makePairingFailedRule([rePairingRefused, legacyPairingRefused, pairingCancelled, pairingNotAccepted, securityRequestCollision]),
];

/** A rule by id. */
export function ruleById(id: string): RuleDef | undefined {
  return RULES.find((r) => r.id === id);
}

/** The HCI status text used in messages (re-exported for renderers). */
export { hciStatusName };
