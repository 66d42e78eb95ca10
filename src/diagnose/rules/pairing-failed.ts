/**
 * Every Pairing Failed, from either side, named by its reason: one table keyed by the reason code
 * (Core 5.4 Vol 3 Part H 3.5.5, Table 3.7) with what that reason means when the phone or the
 * accessory sends it, and the fix. Failures that a more specific rule explains (a refused
 * re-pairing, legacy pairing refused, a cancelled prompt, a closed pairing window, a Security
 * Request collision) are left to that rule; this one names all the others.
 */
import { smpReasonName, SmpReason } from '../../smp/pdu.js';
import type { Fix, RuleContext, RuleDef, RuleHit } from '../rules.js';
import { before } from '../security.js';
import type { Side } from '../timeline.js';
import { OPTION, bondingFlag, ev, hex, type Evidence } from './common.js';

interface ReasonEntry {
  /** What the reason means when `from` sends it; `ctx` and the request let a meaning depend on the case. */
  readonly meaning: (from: Side | undefined, request: { authReq: number } | undefined) => string;
  readonly fixes: readonly Fix[];
}

const who = (from: Side | undefined): string => (from ? `the ${from}` : 'one side');
const Who = (from: Side | undefined): string => (from ? `The ${from}` : 'One side');

const DISPLAYLESS_IO =
  'A displayless accessory must declare NoInputNoOutput so LE Secure Connections Just Works is used: in Zephyr, register no passkey_display, passkey_entry or passkey_confirm callbacks in struct bt_conn_auth_cb (bt_conn_auth_cb_register) and keep CONFIG_BT_SMP_ENFORCE_MITM=n.';

/** Meaning and fix of every Pairing Failed reason. Core 5.4 Vol 3 Part H 3.5.5, Table 3.7. */
export const PAIRING_FAILED_REASONS: Readonly<Record<number, ReasonEntry>> = {
  [SmpReason.PasskeyEntryFailed]: {
    meaning: (from) =>
      `${from === 'phone' ? 'The user cancelled or did not finish passkey entry on the phone' : `Passkey entry failed on ${who(from)} (nobody entered or confirmed the passkey)`}. ` +
      'Passkey entry is chosen only when MITM protection was requested and the IO capabilities allow a passkey (Core 5.4 Vol 3 Part H 2.3.5.1): the accessory declared a display or keyboard.',
    fixes: [
      { where: 'phone', text: 'Enter the passkey shown by the other device within 30 s.' },
      { where: 'firmware', text: DISPLAYLESS_IO },
      { where: 'wearable-host', text: `${OPTION.ioCapability} no-input-no-output (the default) on a device without display or keyboard.` },
    ],
  },
  [SmpReason.OobNotAvailable]: {
    meaning: (from) => `${Who(from)} has no out-of-band data although the other side's OOB Data Flag asked for OOB pairing.`,
    fixes: [
      { where: 'firmware', text: 'Set the OOB Data Flag only when OOB data was really exchanged (Zephyr: bt_le_oob_set_sc_data / the oob_data_request callback); otherwise leave it clear.' },
      { where: 'phone', text: 'Phones set the flag only for NFC pairing: pair without NFC, from the Bluetooth settings or the app.' },
    ],
  },
  [SmpReason.AuthenticationRequirements]: {
    meaning: (from) =>
      from === 'phone'
        ? "The phone's security requirements cannot be met by the accessory's Pairing Response (for example it does not offer LE Secure Connections or bonding the phone asked for)."
        : 'The accessory requires more than this pairing can give: usually MITM protection (security level 3 or 4) that Just Works with a displayless accessory can never provide, or LE Secure Connections the phone did not offer.',
    fixes: [
      { where: 'firmware', text: 'A displayless accessory reaches level 2 (LE Secure Connections, unauthenticated): use CONFIG_BT_SMP_SC_PAIR_ONLY, not CONFIG_BT_SMP_SC_ONLY (which demands level 4), keep CONFIG_BT_SMP_ENFORCE_MITM=n, and ask bt_conn_set_security() for BT_SECURITY_L2.' },
      { where: 'wearable-host', text: `Give characteristics the permission "encrypted", not "authenticated" (${OPTION.gatt} FILE), unless ${OPTION.ioCapability} gives the device a display or keyboard.` },
    ],
  },
  [SmpReason.ConfirmValueFailed]: {
    meaning: (from) =>
      `${Who(from)} computed a confirm value different from the one it received. With passkey entry the two sides used different passkeys (mistyped); with Just Works or Numeric Comparison a Pairing Public Key, Confirm or Random value was corrupted, or the sender's confirm function (f4 with LE Secure Connections, c1 in legacy pairing) is wrong.`,
    fixes: [
      { where: 'phone', text: 'With passkey entry: retype the passkey carefully.' },
      { where: 'firmware', text: "Without passkey entry this is an SMP implementation bug: check f4/c1 against the spec's sample data (Core 5.4 Vol 3 Part H Appendix D) and use the vendor's SMP rather than a hand-made one." },
    ],
  },
  [SmpReason.PairingNotSupported]: {
    meaning: (from) =>
      from === 'accessory'
        ? 'The accessory does not allow pairing now: its SMP is disabled (Zephyr without CONFIG_BT_SMP answers every Pairing Request this way), an app callback refused it (pairing_accept), or its pairing window is closed.'
        : `${Who(from)} does not support or allow pairing now.`,
    fixes: [
      { where: 'firmware', text: 'Enable SMP (CONFIG_BT_SMP=y) and, with CONFIG_BT_SMP_APP_PAIRING_ACCEPT, return BT_SECURITY_ERR_SUCCESS from pairing_accept for the phone.' },
      { where: 'wearable-host', text: `Open the pairing window (${OPTION.pairingWindow}) and pair within it.` },
    ],
  },
  [SmpReason.EncryptionKeySize]: {
    meaning: (from) =>
      `${Who(from)} refused the key size: the negotiated maximum (the smaller of the two Maximum Encryption Key Size fields, Core 5.4 Vol 3 Part H 2.3.4) is below its minimum. Refusing is right: a short key is what the KNOB attack forces.`,
    fixes: [
      { where: 'phone', text: 'Use a central that offers 16 bytes (every current phone does; a test tool may have lowered it).' },
      { where: 'firmware', text: 'Offer a maximum key size of 16 and keep the minimum at 16 (Zephyr CONFIG_BT_SMP_MIN_ENC_KEY_SIZE=16).' },
      { where: 'wearable-host', text: `${OPTION.minKeySize} 16 (the default); lower it only for a known central that cannot do better.` },
    ],
  },
  [SmpReason.CommandNotSupported]: {
    meaning: (from) => `${Who(from)} received an SMP command it does not support or did not expect at that point (for example Keypress Notifications without the Keypress bit, a PDU out of the protocol's order, or SMP on a device without it).`,
    fixes: [
      { where: 'firmware', text: 'Send only the PDUs the negotiated pairing allows, in order (Core 5.4 Vol 3 Part H 2.3); update the SMP stack.' },
      { where: 'wearable-host', text: 'If the accessory is wearable-host, report it with this capture.' },
    ],
  },
  [SmpReason.UnspecifiedReason]: {
    meaning: (from, req) =>
      from === 'accessory'
        ? req && !bondingFlag(req.authReq)
          ? "The accessory requires bonding and the phone's Pairing Request says No Bonding: Zephyr answers exactly this with 0x08 when CONFIG_BT_BONDING_REQUIRED=y."
          : "The accessory's SMP gave up without a specific reason: an internal failure such as no free slot for the peer's keys, or an app callback that refused the pairing."
        : 'The phone ended the pairing without a specific reason: usually the user cancelled or dismissed the prompt, or the app closed the connection.',
    fixes: [
      { where: 'phone', text: "A phone's system pairing always bonds; a central that clears the Bonding flag is a test tool or a custom stack: turn bonding on there." },
      { where: 'firmware', text: 'Read the accessory\'s SMP log at this moment; with CONFIG_BT_BONDING_REQUIRED=y only bonding centrals can pair (on purpose).' },
    ],
  },
  [SmpReason.RepeatedAttempts]: {
    meaning: (from) => `${Who(from)} refuses pairing for a while after repeated failed attempts from this peer (Core 5.4 Vol 3 Part H 2.3.6); the wait grows with each failure.`,
    fixes: [
      { where: 'phone', text: 'Wait before trying again, and fix the cause of the earlier failures first (they are in the capture).' },
      { where: 'wearable-host', text: 'wearable-host backs off after repeated failures; wait for the back-off to end.' },
    ],
  },
  [SmpReason.InvalidParameters]: {
    meaning: (from) => `${Who(from)} received an SMP PDU with an invalid length or field (for example a Maximum Encryption Key Size outside 7..16, a reserved IO capability, or a public key not on the P-256 curve).`,
    fixes: [
      { where: 'firmware', text: 'Decode the PDU before the failure (in the evidence) and correct the field; update the SMP stack.' },
      { where: 'wearable-host', text: 'If the accessory is wearable-host, report it with this capture.' },
    ],
  },
  [SmpReason.DhKeyCheckFailed]: {
    meaning: (from) =>
      `${Who(from)}'s DHKey Check did not match: the two sides derived different keys, because a public key was invalid or altered, one side used the specification's debug key pair, or a device in the middle changed the exchange.`,
    fixes: [
      { where: 'firmware', text: 'Never use the debug keys in the field (Zephyr CONFIG_BT_USE_DEBUG_KEYS=n); check the ECDH (LE Read Local P-256 Public Key / LE Generate DHKey, or CONFIG_BT_ECC) and f5/f6.' },
      { where: 'wearable-host', text: 'Keep --allow-debug-keys off (the default); if it repeats, report it with this capture.' },
      { where: 'phone', text: 'Pair again away from other radios; if it repeats the accessory stack is at fault.' },
    ],
  },
  [SmpReason.NumericComparisonFailed]: {
    meaning: (from) =>
      `${from === 'phone' ? 'The user refused the numeric comparison on the phone (or the numbers differed)' : `${Who(from)} refused the numeric comparison`}. ` +
      'Numeric Comparison is chosen only when both sides declared DisplayYesNo or KeyboardDisplay and one asked for MITM (Core 5.4 Vol 3 Part H 2.3.5.1): the accessory claimed a display it may not have.',
    fixes: [
      { where: 'firmware', text: DISPLAYLESS_IO },
      { where: 'wearable-host', text: `${OPTION.ioCapability} no-input-no-output (the default) on a device without display.` },
      { where: 'phone', text: 'Accept the comparison only when both devices show the same number.' },
    ],
  },
  [SmpReason.BrEdrPairingInProgress]: {
    meaning: (from) =>
      `${Who(from)} considers another pairing to be in progress with this peer (over BR/EDR, or a colliding procedure: iOS has been reported answering a Security Request that crossed its own security procedure with 0x0D).`,
    fixes: [
      { where: 'wearable-host', text: `Do not send a Security Request while the phone may be securing the link: ${OPTION.securityRequest} never or after-att-rejection.` },
      { where: 'firmware', text: 'Do not call bt_conn_set_security() in the connected callback of a bonded phone: it encrypts by itself.' },
    ],
  },
  [SmpReason.CrossTransportKeyDerivationNotAllowed]: {
    meaning: (from) => `${Who(from)} refused cross-transport key derivation: the LinkKey bit was set in the key distribution (Android asks for it) and the BR/EDR key may not be derived or overwritten.`,
    fixes: [
      { where: 'firmware', text: 'An LE-only accessory clears the LinkKey bit in its Pairing Response instead of failing the pairing (Core 5.4 Vol 3 Part H 3.6.1).' },
    ],
  },
  [SmpReason.KeyRejected]: {
    meaning: (from) =>
      `${Who(from)} refused a key the other side distributed: for example an Identity Address Information carrying an address that is not an identity address, or an identity already bonded with other keys.`,
    fixes: [
      { where: 'firmware', text: 'Distribute a public or static random identity address with the IRK (Core 5.4 Vol 3 Part H 3.6.4) and never the same identity for two bonds.' },
      { where: 'phone', text: 'Forget the device on the phone, then pair again.' },
    ],
  },
};

const RESERVED: ReasonEntry = {
  meaning: (from) => `${Who(from)} sent a reason code the Core specification reserves: its SMP does not follow Vol 3 Part H 3.5.5.`,
  fixes: [{ where: 'firmware', text: 'Update the SMP stack of the side that sent it.' }],
};

/**
 * The rule naming every Pairing Failed. `claimedBy` are the rules whose evidence already explains a
 * failure (their evidence packet numbers are skipped here).
 */
export function makePairingFailedRule(claimedBy: readonly RuleDef[]): RuleDef {
  return {
    id: 'pairing-failed',
    title: 'Pairing failed',
    severity: 'error',
    cause: 'One side ended the pairing with SMP Pairing Failed; the reason code says why (Core 5.4 Vol 3 Part H 3.5.5).',
    fixes: [{ where: 'firmware', text: 'See the reason-specific fix.' }],
    sources: ['Core 5.4 Vol 3 Part H 3.5.5 (Table 3.7, Pairing Failed reasons), 2.3.5.1 (association models), 2.3.4 (key size), 2.3.6 (repeated attempts)', 'zephyr smp.c (CONFIG_BT_BONDING_REQUIRED -> 0x08, smp_null.c -> 0x05)', 'Zephyr Kconfig: BT_SMP_SC_PAIR_ONLY, BT_SMP_SC_ONLY, BT_SMP_ENFORCE_MITM, BT_SMP_MIN_ENC_KEY_SIZE, BT_USE_DEBUG_KEYS'],
    match(ctx: RuleContext): RuleHit[] {
      const { sec } = ctx;
      if (sec.pairingFailures.length === 0) return [];
      const claimed = new Set<number>();
      for (const r of claimedBy) {
        let hits: readonly RuleHit[] = [];
        try {
          hits = r.match({ ...ctx, wakeAt: () => undefined });
        } catch {
          hits = [];
        }
        for (const h of hits) for (const e of h.evidence) claimed.add(e.at.number);
      }
      const out: RuleHit[] = [];
      for (const fail of sec.pairingFailures) {
        if (claimed.has(fail.at.number)) continue;
        const reason = fail.pdu.reason;
        const entry = PAIRING_FAILED_REASONS[reason] ?? RESERVED;
        const req = [...sec.pairingRequests].reverse().find((p) => before(p, fail));
        const rsp = req ? sec.pairingResponses.find((p) => before(req, p) && before(p, fail)) : undefined;
        const evidence: Evidence[] = [...(req ? [ev(req)] : []), ...(rsp ? [ev(rsp)] : []), ev(fail)];
        if (sec.disconnection && before(fail, sec.disconnection)) evidence.push(ev(sec.disconnection));
        const meaning = entry.meaning(fail.from, req?.pdu);
        out.push({
          evidence,
          title: `Pairing failed: ${hex(reason)} ${smpReasonName(reason)} from the ${fail.from ?? 'unknown side'}`,
          cause: meaning,
          fixes: entry.fixes,
          ...(fail.from === 'accessory' && ctx.conn.localRole === 'central'
            ? { detail: 'Seen from the phone: the capture shows the accessory\'s answer, not the accessory\'s configuration; its own log or btsnoop says which setting produced it.' }
            : {}),
          key: `reason-${hex(reason)}-${fail.at.number}`,
        });
      }
      return out;
    },
  };
}
