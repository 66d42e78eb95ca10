/**
 * THE diagnosis rules: each is data (id, title, severity, likely cause, fixes, sources) plus one
 * predicate over a connection's timeline. This file holds what a rule is ({@link RuleDef}) and the
 * registry: {@link RULES}, in the order findings are listed. The rules themselves live in rules/ by
 * concern: security-request.ts (a Security Request ignored or colliding), stored-keys.ts (a stale
 * bond, an unresolved private address, a key mismatch), pairing-refused.ts (a pairing refused or
 * abandoned), pairing.ts (what a pairing negotiated), link.ts (Service Changed, connection
 * parameters), pairing-failed.ts (the table of Pairing Failed reasons) and bond-store-full.ts (the
 * live-only rule); shared helpers in rules/common.ts. docs/diagnosis.md says what each rule relies on.
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
 * Adding a rule: write a {@link RuleDef} in the rules/ file of its concern (its predicate reads
 * {@link RuleContext}: the connection's events, its security summary, earlier connections of the
 * same peer), add it to {@link RULES}, and add a capture that makes it fire to
 * test/diagnose/rules.test.ts.
 */
import { hciStatusName } from '../hci/status.js';
import type { ConnectionSecurity } from './security.js';
import type { ConnectionRecord, Timeline } from './timeline.js';
import type { Evidence } from './rules/common.js';
import { makePairingFailedRule } from './rules/pairing-failed.js';
import { authenticationUnreachable, keySizeTooShort, legacyPairingUsed, pairingUnanswered, pairingWithoutBonding } from './rules/pairing.js';
import { legacyPairingRefused, pairingCancelled, pairingNotAccepted, rePairingRefused } from './rules/pairing-refused.js';
import { connectionParametersNotApple, serviceChangedBeforeEncryption } from './rules/link.js';
import { securityRequestCollision, securityRequestIgnored } from './rules/security-request.js';
import { keyMismatch, phoneKeptStaleBond, rpaNotResolved } from './rules/stored-keys.js';

export { OPTION, RULE_TIMING, type Evidence } from './rules/common.js';
export { bondEvidence } from './rules/pairing-refused.js';

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
