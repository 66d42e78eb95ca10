/**
 * Rules about what a pairing negotiated, read from the Pairing Request and Response themselves
 * (both sides' captures carry both PDUs): legacy pairing, a short encryption key, no bonding, a
 * Pairing Request the accessory never answered, and characteristics that demand an authentication
 * the IO capabilities can never give.
 */
import { AuthReq, ioCapabilityName, KeyDist } from '../../smp/pdu.js';
import type { RuleDef, RuleHit } from '../rules.js';
import { before } from '../security.js';
import { describeEvent } from '../describe.js';
import {
  OPTION,
  PAIRING_METHOD_TEXT,
  RULE_TIMING,
  bondingFlag,
  bothSecureConnections,
  completed,
  ev,
  hex,
  keyDistNames,
  pairingAttempts,
  pairingMethod,
  seconds,
  type Evidence,
  type PairingMethod,
} from './common.js';

/** 1. Legacy pairing completed: the accessory allowed it. */
export const legacyPairingUsed: RuleDef = {
  id: 'legacy-pairing-used',
  title: 'Legacy pairing was used',
  severity: 'error',
  cause:
    'The link was paired with LE legacy pairing: one side did not set the Secure Connections bit, and the accessory went along. A legacy Just Works key is derived from a temporary key of zero, so anyone who records the pairing can compute the key and decrypt the link (Core 5.4 Vol 3 Part H 2.3.5.2; Vol 1 Part A 5.4.1). ' +
    'An accessory that pairs with LE Secure Connections only refuses such a request with Pairing Failed 0x03.',
  fixes: [
    { where: 'firmware', text: 'Allow LE Secure Connections only: Zephyr CONFIG_BT_SMP_SC_PAIR_ONLY=y (legacy Pairing Requests then get 0x03), and set the SC bit in the Pairing Response; then remove the legacy bonds.' },
    { where: 'wearable-host', text: 'wearable-host pairs with LE Secure Connections only; if this capture is of wearable-host, report it as a bug.' },
    { where: 'phone', text: 'Every current iPhone and Android phone offers LE Secure Connections; a central that does not is an old or test stack: turn its SC option on.' },
  ],
  sources: ['Core 5.4 Vol 3 Part H 2.3.5.1 (SC used only when both set the SC bit), 2.3.5.2, 3.5.1', 'Zephyr Kconfig BT_SMP_SC_PAIR_ONLY'],
  match(ctx) {
    const hits: RuleHit[] = [];
    for (const a of pairingAttempts(ctx.sec)) {
      if (!completed(a) || bothSecureConnections(a.request.pdu, a.response.pdu)) continue;
      const noSc = [a.request.pdu.authReq & AuthReq.SecureConnections ? undefined : 'the phone', a.response.pdu.authReq & AuthReq.SecureConnections ? undefined : 'the accessory'].filter((x) => x);
      hits.push({
        evidence: [ev(a.request), ev(a.response), ev(a.encrypted, `${describeEvent(a.encrypted)} with the legacy key`)],
        detail: `The Secure Connections bit is clear in the AuthReq of ${noSc.join(' and ')}; the accessory answered and the pairing completed as legacy ${PAIRING_METHOD_TEXT[pairingMethod(a.request.pdu, a.response.pdu)]}.`,
      });
    }
    if (hits.length || ctx.sec.pairingRequests.length) return hits;
    // A reconnection with a legacy key: its EDIV and Rand are not zero (LE Secure Connections keys use zero). Core 5.4 Vol 3 Part H 2.4.4.2.
    const legacyStart = [...ctx.sec.ltkRequests, ...ctx.sec.startEncryptions].find((s) => s.ediv !== 0 || s.rand !== 0n);
    const enc = legacyStart ? ctx.sec.encryptionChanges.find((e) => e.enabled && before(legacyStart, e)) : undefined;
    if (legacyStart && enc) {
      return [
        {
          evidence: [ev(legacyStart), ev(enc)],
          severity: 'warning',
          detail: 'This bonded reconnection used a key from a legacy pairing (non-zero EDIV/Rand); the pairing itself is not in the capture.',
          key: 'legacy-key',
        },
      ];
    }
    return [];
  },
};

/** 2. An encryption key shorter than 16 bytes was accepted. */
export const keySizeTooShort: RuleDef = {
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

/** 3. The phone's Pairing Request got no answer at all. */
export const pairingUnanswered: RuleDef = {
  id: 'pairing-unanswered',
  title: 'The accessory never answered the Pairing Request',
  severity: 'error',
  cause:
    'The phone sent an SMP Pairing Request and the accessory sent nothing back: no Pairing Response, no Pairing Failed. The phone gives up after the 30 s SMP timeout (Core 5.4 Vol 3 Part H 3.4) or disconnects. ' +
    'An accessory that does not want to pair must answer Pairing Failed; silence means its SMP is not running or is blocked: pairing left waiting for an app callback, SMP not built in or not routed, or the Bluetooth RX thread stuck.',
  fixes: [
    { where: 'firmware', text: 'In Zephyr: if struct bt_conn_auth_cb has pairing_confirm, a Just Works pairing the phone started waits silently for the app to consent: call bt_conn_auth_pairing_confirm() (or bt_conn_auth_cancel()); register the callbacks with bt_conn_auth_cb_register() before advertising; CONFIG_BT_SMP=y; do not block in Bluetooth callbacks (the RX thread handles SMP), and check CONFIG_BT_RX_STACK_SIZE.' },
    { where: 'wearable-host', text: 'wearable-host always answers a Pairing Request; if this capture is of wearable-host, report it with the capture and the log.' },
    { where: 'phone', text: 'Nothing to change on the phone; reconnect after the accessory is fixed.' },
  ],
  sources: ['Core 5.4 Vol 3 Part H 3.4 (SMP timeout), 3.5.5', 'Zephyr include/zephyr/bluetooth/conn.h (bt_conn_auth_cb.pairing_confirm, bt_conn_auth_pairing_confirm)'],
  match(ctx) {
    const { sec, conn } = ctx;
    const attempts = pairingAttempts(sec);
    const last = attempts[attempts.length - 1];
    // Fires only when the latest request went unanswered: an accessory that answered a retry is slow, not silent.
    if (!last || last.accessoryAnswered) return [];
    const idleEnd = conn.end?.time ?? ctx.now;
    if (conn.end === undefined && idleEnd - last.request.at.time < RULE_TIMING.smpTimeoutMs) {
      ctx.wakeAt(last.request.at.time + RULE_TIMING.smpTimeoutMs);
      return [];
    }
    // A link lost right after the request gave the accessory no time to answer: an SMP answer takes a few
    // connection events (up to 4 s each), so the accessory gets at least 1 s or six intervals.
    const interval = conn.params ? conn.params.interval * 1.25 : 50;
    if (conn.end && idleEnd - last.request.at.time < Math.max(1000, 6 * interval)) return [];
    let i = attempts.length - 1;
    while (i > 0 && !(attempts[i - 1] as typeof last).accessoryAnswered) i--;
    const silent = attempts.slice(i);
    const first = silent[0] as typeof last;
    const evidence: Evidence[] = silent.slice(0, 3).map((a) => ev(a.request, `${describeEvent(a.request)}: no SMP PDU from the accessory followed`));
    if (sec.disconnection) evidence.push(ev(sec.disconnection));
    const waited = idleEnd - first.request.at.time;
    const seenOn =
      conn.localRole === 'peripheral'
        ? "The request is in the accessory's own HCI trace: it reached the accessory's host, which did not answer."
        : conn.localRole === 'central'
          ? "Seen from the phone: the request was sent; a phone capture cannot tell whether it reached the accessory's host (the accessory's btsnoop would show it)."
          : '';
    const end = conn.end ? `the link went down ${seconds(waited)} after the first request` : `${seconds(waited)} passed without an answer`;
    return [
      {
        evidence,
        detail: `${silent.length} Pairing Request(s) without an answer; ${end}. ${seenOn}`.trim(),
      },
    ];
  },
};

/** 4. Paired, but no bond: nothing persists. */
export const pairingWithoutBonding: RuleDef = {
  id: 'pairing-without-bonding',
  title: 'Paired without bonding: nothing persists',
  severity: 'error',
  cause:
    'The pairing completed but no bond was made: keys are stored only when both Pairing Request and Response set Bonding_Flags to Bonding (Core 5.4 Vol 3 Part H 3.5.1), and a bond is only usable if the keys needed next time were distributed. ' +
    'The phone pairs again on every connection (an iPhone shows the prompt every time) and nothing survives a disconnection.',
  fixes: [
    { where: 'firmware', text: 'Keep bonding on: Zephyr CONFIG_BT_BONDABLE=y (bt_set_bondable(true)), CONFIG_BT_SETTINGS=y with settings_load() so bonds survive a reset, and do not clear the key distribution bits the phone asks for (IdKey, EncKey); CONFIG_BT_BONDING_REQUIRED=y makes the accessory refuse non-bonding requests instead.' },
    { where: 'phone', text: "A phone's system pairing always bonds; a central that clears the Bonding flag is a test tool or a custom stack: turn bonding on there." },
    { where: 'wearable-host', text: `This host always bonds; check that its bond store (${OPTION.bonds} FILE) is writable.` },
  ],
  sources: ['Core 5.4 Vol 3 Part H 3.5.1 (Bonding_Flags), 3.6.1 (key distribution), 2.4.1', 'Zephyr Kconfig BT_BONDABLE, BT_BONDING_REQUIRED, BT_SETTINGS'],
  match(ctx) {
    const hits: RuleHit[] = [];
    const againOn = ctx.earlier.filter((e) => pairingAttempts(e.sec).some((a) => completed(a))).map((e) => e.conn.id);
    const again = againOn.length ? ` The phone already paired on connection(s) ${againOn.join(', ')}: it pairs again every time.` : '';
    for (const a of pairingAttempts(ctx.sec)) {
      if (!completed(a)) continue;
      const req = a.request.pdu;
      const rsp = a.response.pdu;
      const cleared = [bondingFlag(req.authReq) ? undefined : 'the phone (Pairing Request)', bondingFlag(rsp.authReq) ? undefined : 'the accessory (Pairing Response)'].filter((x) => x);
      if (cleared.length) {
        hits.push({ evidence: [ev(a.request), ev(a.response), ev(a.encrypted)], detail: `Bonding_Flags is No Bonding in the AuthReq of ${cleared.join(' and ')}.${again}` });
        continue;
      }
      // Bonding agreed, but were the keys needed next time distributed? The response's fields are the negotiated ones.
      const sc = bothSecureConnections(req, rsp);
      const noKeys = rsp.initiatorKeyDist === 0 && rsp.responderKeyDist === 0;
      const phoneRpa = ctx.conn.peer?.isRpa === true && ctx.conn.localRole === 'peripheral';
      const noPhoneId = (rsp.initiatorKeyDist & KeyDist.IdKey) === 0;
      const noLegacyLtk = !sc && (rsp.responderKeyDist & KeyDist.EncKey) === 0;
      if (noLegacyLtk || (noPhoneId && (noKeys || phoneRpa))) {
        const why = noLegacyLtk
          ? 'legacy pairing without EncKey from the accessory leaves the phone no key to encrypt with next time'
          : "the phone's IdKey (IRK and identity address) was not distributed, so the accessory cannot recognise the phone at its next resolvable private address";
        hits.push({
          evidence: [ev(a.request), ev(a.response)],
          detail: `Bonding was agreed but the key distribution negotiated in the Pairing Response is ${keyDistNames(rsp.initiatorKeyDist)} (phone) / ${keyDistNames(rsp.responderKeyDist)} (accessory): ${why}.${again}`,
        });
      }
    }
    return hits;
  },
};

/** 6. A characteristic demands authentication (MITM) that this pairing can never give. */
export const authenticationUnreachable: RuleDef = {
  id: 'authentication-unreachable',
  title: 'A characteristic needs authentication (MITM) the IO capabilities can never give',
  severity: 'error',
  cause:
    'The link is encrypted, yet the accessory still answers 0x05 Insufficient Authentication: the attribute requires an authenticated (MITM-protected) key, and the key is unauthenticated because the pairing was Just Works. ' +
    'With a NoInputNoOutput accessory every pairing is Just Works (Core 5.4 Vol 3 Part H 2.3.5.1), so the access fails forever, on every phone. This is the trap of a displayless wearable at security level 2.',
  fixes: [
    { where: 'firmware', text: 'Use BT_GATT_PERM_READ_ENCRYPT / BT_GATT_PERM_WRITE_ENCRYPT where BT_GATT_PERM_READ_AUTHEN / _WRITE_AUTHEN was written (a displayless device cannot authenticate), or give the device a display and passkey callbacks.' },
    { where: 'wearable-host', text: `In the ${OPTION.gatt} FILE give the characteristic the permission "encrypted" instead of "authenticated", unless ${OPTION.ioCapability} gives the device a display or keyboard.` },
  ],
  sources: ['Core 5.4 Vol 3 Part F 3.4.1.1 (0x05 Insufficient Authentication)', 'Core 5.4 Vol 3 Part H 2.3.5.1 (association models), Vol 3 Part C 10.2 (security levels)', 'Zephyr include/zephyr/bluetooth/gatt.h (BT_GATT_PERM_READ_AUTHEN vs READ_ENCRYPT)'],
  match(ctx) {
    const { sec } = ctx;
    const enc = sec.encryptedAt;
    if (!enc) return [];
    const after = sec.attSecurityErrors.filter((e) => e.pdu.errorCode === 0x05 && before(enc, e));
    const firstErr = after[0];
    if (!firstErr) return [];
    // How the key in use was made: a pairing on this connection before the error, or on an earlier one.
    const here = pairingAttempts(sec).filter((a) => completed(a) && before(a.encrypted, firstErr));
    const earlier = ctx.earlier.flatMap((e) => pairingAttempts(e.sec).filter((a) => completed(a)));
    const made = here[here.length - 1] ?? earlier[earlier.length - 1];
    let method: PairingMethod | undefined;
    if (made?.response) method = pairingMethod(made.request.pdu, made.response.pdu);
    if (method !== undefined && method !== 'just-works') return []; // an authenticated key: another cause (level 4, key size)
    const handles = [...new Set(after.map((e) => hex(e.pdu.handle, 4)))];
    const evidence: Evidence[] = [];
    if (made?.response) evidence.push(ev(made.request), ev(made.response));
    evidence.push(ev(enc), ev(firstErr));
    if (after.length > 1) evidence.push(ev(after[after.length - 1] as typeof firstErr, `${describeEvent(after[after.length - 1] as typeof firstErr)} (${after.length} such rejections on the encrypted link)`));
    let how: string;
    if (made?.response) {
      const accIo = made.response.pdu.ioCapability;
      how =
        `IO capabilities phone ${ioCapabilityName(made.request.pdu.ioCapability)}, accessory ${ioCapabilityName(accIo)}: ${PAIRING_METHOD_TEXT['just-works']}` +
        (accIo === 0x03 ? '; with a NoInputNoOutput accessory no pairing can ever be authenticated.' : '.');
    } else how = 'The pairing that made the key is not in this capture, so its association model is unknown; a displayless accessory can only have an unauthenticated key.';
    return [
      {
        evidence,
        detail: `The link is encrypted and the accessory still answers 0x05 on handle(s) ${handles.join(', ')} (${after.length} time(s)). ${how}`,
        ...(made?.response ? {} : { severity: 'warning' as const }),
      },
    ];
  },
};
