/**
 * Rules that explain why a pairing stopped: the accessory refused it (it holds a bond for the
 * phone, the phone offered only legacy pairing, its pairing window is closed or it backs off), or
 * the phone gave up (the user cancelled, or nobody answered the prompt before the SMP timeout).
 * Core 5.4 Vol 3 Part H 3.5.5 (Pairing Failed reasons), 3.4 (SMP timeout).
 */
import { SmpReason, smpReasonName } from '../../smp/pdu.js';
import type { RuleContext, RuleDef } from '../rules.js';
import { describeEvent } from '../describe.js';
import { before, wantsSecureConnections } from '../security.js';
import type { PacketRef } from '../timeline.js';
import { OPTION, RULE_TIMING, ev, hex, pairingAttempts, pairingMethod, seconds, type Evidence } from './common.js';

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

/** 1. Re-pairing from a phone that forgot the accessory is refused because the accessory still holds the old bond. */
export const rePairingRefused: RuleDef = {
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

/** 2. A central that offers only legacy pairing. */
export const legacyPairingRefused: RuleDef = {
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

/** 3. The user cancelled, or nobody answered the pairing prompt in time. */
export const pairingCancelled: RuleDef = {
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

/** 4. The accessory is not accepting new pairings right now. */
export const pairingNotAccepted: RuleDef = {
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
