/**
 * Rules about encrypting with a bond's stored key: the phone kept a bond the accessory lost, the
 * accessory failed to resolve the phone's private address to the bond it holds, and the two sides
 * encrypted with different keys (MIC failure). Core 5.4 Vol 3 Part H 2.2.2 (ah); Vol 6 Part B
 * 1.3.2.3 (resolvable private address); Vol 1 Part F 2.6 (0x06), 2.61 (0x3D).
 */
import type { RuleContext, RuleDef, RuleHit } from '../rules.js';
import { describeEvent } from '../describe.js';
import { before } from '../security.js';
import { addressText } from '../timeline.js';
import { OPTION, bondingFlag, completed, ev, firstAfter, pairingAttempts, type Evidence } from './common.js';

const FORGET_ON_PHONE = 'iPhone: Settings > Bluetooth > (i) next to the accessory > Forget This Device; Android: Settings > Connected devices > the accessory > Forget/Unpair. Then connect again and accept the pairing prompt.';

/** 1. The phone encrypts with a key the accessory no longer has. */
export const phoneKeptStaleBond: RuleDef = {
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

/** 2. An RPA that a stored IRK resolves, treated as an unknown device. */
export const rpaNotResolved: RuleDef = {
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

/** 3. Encrypted with different keys on the two sides. */
export const keyMismatch: RuleDef = {
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
