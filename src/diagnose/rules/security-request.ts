/**
 * Rules about the accessory's SMP Security Request: one the phone never acted on (iOS pairs on an
 * ATT error, not on the request), and one that collided with the phone starting encryption with its
 * stored key. Core 5.4 Vol 3 Part H 3.6.7 (Security Request).
 */
import { SmpReason } from '../../smp/pdu.js';
import type { RuleDef } from '../rules.js';
import { before } from '../security.js';
import { OPTION, RULE_TIMING, ev, firstAfter, seconds, type Evidence } from './common.js';

/** HCI 0x3D Connection Terminated due to MIC Failure. Core 5.4 Vol 1 Part F 2.61. */
const MIC_FAILURE = 0x3d;

/** 1. The accessory asked for security, nothing followed, and nothing protected was accessed. */
export const securityRequestIgnored: RuleDef = {
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

/** 2. Security Request sent while the phone starts encryption on its own. */
export const securityRequestCollision: RuleDef = {
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
