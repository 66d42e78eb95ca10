/**
 * Which kind of phone is this? A HINT ONLY, always labelled as a guess: the signals are the phone's
 * Pairing Request fields and the ATT MTU it asks for, compared with the values docs/field-notes.md lists
 * (its "Pairing Request seen" and "MTU" rows: AOSP smp_act.cc; noble #243, an iOS 9 era capture
 * whose values are unverified on current iOS; esysberlin/ble-guides; Android docs). Nothing in the
 * diagnosis depends on it.
 */
import { AuthReq } from '../smp/pdu.js';
import type { ConnectionRecord } from './timeline.js';

export type PhonePlatform = 'iOS' | 'Android';

export interface PhoneGuess {
  /** The better-supported platform, or undefined when the signals disagree or are absent. */
  readonly platform: PhonePlatform | undefined;
  /** Each signal and what it suggests. */
  readonly signals: readonly { readonly what: string; readonly suggests: PhonePlatform }[];
  /** Always true: the text renderer and JSON say "guess". */
  readonly guess: true;
}

/** Signals from one connection; undefined when there are none. */
export function guessPhone(conn: ConnectionRecord): PhoneGuess | undefined {
  const signals: { what: string; suggests: PhonePlatform }[] = [];
  for (const e of conn.events) {
    if (e.kind === 'smp' && e.from === 'phone' && e.pdu.type === 'pairingRequest') {
      const p = e.pdu;
      if ((p.authReq & AuthReq.Ct2) !== 0 && p.initiatorKeyDist === 0x0f && p.responderKeyDist === 0x0f) {
        signals.push({ what: 'Pairing Request with CT2 and key distribution 0x0f/0x0f, as AOSP sends', suggests: 'Android' });
      } else if (p.authReq === 0x0d && p.initiatorKeyDist === 0x03 && p.responderKeyDist === 0x03) {
        signals.push({ what: 'Pairing Request AuthReq 0x0d with key distribution 0x03/0x03, as seen from iOS (older capture, unverified on current iOS)', suggests: 'iOS' });
      }
    } else if (e.kind === 'att' && e.from === 'phone' && e.pdu.type === 'exchangeMtuRequest') {
      const mtu = e.pdu.clientRxMtu;
      if (mtu === 517) signals.push({ what: 'ATT MTU 517, what Android 14 and later ask for', suggests: 'Android' });
      else if (mtu === 185) signals.push({ what: 'ATT MTU 185, what iOS has asked for since iOS 10', suggests: 'iOS' });
    }
  }
  if (signals.length === 0) return undefined;
  const ios = signals.filter((s) => s.suggests === 'iOS').length;
  const android = signals.length - ios;
  return { platform: ios > android ? 'iOS' : android > ios ? 'Android' : undefined, signals, guess: true };
}
