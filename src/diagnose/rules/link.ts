/**
 * Rules about what the accessory does on the link besides pairing: Service Changed indicated to a
 * bonded phone before encryption, and connection parameters outside Apple's rules.
 * Core 5.4 Vol 3 Part G 7.1 (Service Changed); Apple ADG 2022 sec. 35.6.
 */
import { checkAppleConnectionParameters, formatConnectionParameters, DEFAULT_PERIPHERAL_PARAMETERS } from '../../l2cap/conn-params.js';
import type { RuleDef, RuleHit } from '../rules.js';
import { describeEvent } from '../describe.js';
import { before } from '../security.js';
import { ev, type Evidence } from './common.js';

/** 1. Service Changed indicated on a bonded reconnection before the link was encrypted. */
export const serviceChangedBeforeEncryption: RuleDef = {
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

/** 2. The accessory asks for connection parameters outside Apple's rules. */
export const connectionParametersNotApple: RuleDef = {
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
