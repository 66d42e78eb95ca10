/**
 * A readable transcript of a scenario: one line per event, time in seconds since the start (virtual
 * time on the virtual air), who did it, what happened.
 */
import { hciStatusName } from '../hci/status.js';
import { attErrorName } from '../att/pdu.js';
import { formatAuthReq, formatKeyDist, ioCapabilityName, smpPduInfo, smpReasonName } from '../smp/pdu.js';
import type { ScenarioEvent } from './events.js';

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}
function h4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

/** The line for one event (without the time column). */
export function describeScenarioEvent(e: ScenarioEvent, phoneLabel = 'phone'): string {
  const who = (a: 'phone' | 'wearable'): string => (a === 'phone' ? phoneLabel : 'wearable');
  switch (e.kind) {
    case 'connected':
      return `${phoneLabel} connected from ${e.phoneAddress} to ${e.wearableAddress}, interval ${e.intervalMs} ms`;
    case 'disconnected':
      return `disconnected: ${e.reasonName}${e.reason === 0x16 ? ` (${phoneLabel} ended it)` : e.reason === 0x13 ? ' (the wearable ended it)' : ''}`;
    case 'smp': {
      const name = smpPduInfo(e.pdu).name;
      const to = e.from === 'phone' ? 'wearable' : phoneLabel;
      let fields = '';
      if (e.pdu === 'pairingRequest' || e.pdu === 'pairingResponse') {
        fields = ` IO ${ioCapabilityName(e.ioCapability ?? 0)}, AuthReq ${formatAuthReq(e.authReq ?? 0)}, key dist ${formatKeyDist(e.initiatorKeyDist ?? 0)}/${formatKeyDist(e.responderKeyDist ?? 0)}`;
      } else if (e.pdu === 'securityRequest') {
        fields = ` AuthReq ${formatAuthReq(e.authReq ?? 0)}`;
      } else if (e.pdu === 'pairingFailed') {
        fields = ` ${hex2(e.reason ?? 0)} (${smpReasonName(e.reason ?? 0)})`;
      }
      return `${who(e.from)} -> ${to}: SMP ${name}${fields}${e.ignored ? `  [ignored by ${phoneLabel}]` : ''}`;
    }
    case 'mtu':
      return `${phoneLabel} Exchange MTU: asked ${e.asked}, ATT_MTU now ${e.mtu}`;
    case 'discovered':
      return `${phoneLabel} GATT database: ${e.services} services, ${e.characteristics} characteristics ${e.cached ? '(cached from the bond, no discovery)' : '(discovered)'}`;
    case 'gatt':
      return `${phoneLabel} ${e.op === 'read' ? 'read' : e.op === 'write' ? 'wrote' : 'subscribed to'} ${e.what} (${h4(e.handle)})${e.length !== undefined ? `: ${e.length} bytes` : ''}`;
    case 'att-error':
      return `wearable -> ${phoneLabel}: ATT error ${hex2(e.code)} (${attErrorName(e.code)}) to the ${e.op} of ${h4(e.handle)}`;
    case 'encryption':
      return e.status === 0
        ? `${who(e.side)} link ${e.enabled ? 'encrypted' : 'no longer encrypted'}`
        : `${who(e.side)} encryption failed: ${hciStatusName(e.status)}`;
    case 'encrypt-with-bond':
      return `${phoneLabel} starts encryption with its stored key (${e.why === 'connect' ? 'on connecting' : e.why === 'att-error' ? 'after an ATT security error' : 'on the Security Request'})`;
    case 'ltk-reply':
      return e.positive ? 'wearable LTK request: key found' : 'wearable LTK request: no key for this phone, LTK Request Negative Reply';
    case 'prompt':
      return `user at the "Pair with Noira Band?" prompt: ${e.answer === 'accept' ? 'taps Pair' : e.answer === 'cancel' ? 'taps Cancel' : 'does not answer'}`;
    case 'paired':
      return `${who(e.side)} paired: security level ${e.level}, ${e.keySize}-byte key, ${e.bonded ? 'bonded' : 'not bonded'}`;
    case 'pairing-failed':
      return `${who(e.side)} pairing ended: ${e.by === 'peer' ? 'the peer sent' : e.by === 'local' ? 'sent' : e.by === 'timeout' ? 'SMP timeout (30 s)' : e.by}${e.reason !== undefined ? ` Pairing Failed ${hex2(e.reason)} (${smpReasonName(e.reason)})` : ''}`;
    case 'bond-saved':
      return `${who(e.side)} bond saved for ${e.peer}`;
    case 'identity-resolved':
      return `${who(e.side)} ${e.address} is ${e.identity} (${e.source === 'bond' ? 'resolved with a stored IRK' : 'from its Identity Address Information'})`;
    case 'notification':
      return `wearable -> ${phoneLabel}: notification ${h4(e.handle)}, ${e.length} bytes`;
    case 'parameter-request':
      return `${phoneLabel} ${e.accepted ? 'accepts' : 'rejects'} the wearable's connection parameters (${e.summary})`;
    case 'phone-error':
      return `${phoneLabel} reports: ${e.message}`;
    case 'note':
      return `-- ${e.text}`;
  }
}

/** `  12.345 s  line`. */
export function transcriptLine(e: ScenarioEvent, t0: number, phoneLabel?: string): string {
  const t = ((e.at - t0) / 1000).toFixed(3).padStart(8);
  return `${t} s  ${describeScenarioEvent(e, phoneLabel)}`;
}

/**
 * Prints events as they come, plus derived lines a reader wants: how long each pairing took from
 * the Pairing Request to the phone's bond, and how much of it the user spent at the prompt.
 */
export class Transcript {
  private pairingStart: number | undefined;
  private promptShown: number | undefined;
  private promptAnswered: number | undefined;

  constructor(
    private readonly t0: number,
    private readonly phoneLabel: string,
    private readonly print: (line: string) => void,
  ) {}

  add(e: ScenarioEvent): void {
    this.print(transcriptLine(e, this.t0, this.phoneLabel));
    if (e.kind === 'smp' && e.from === 'phone' && e.pdu === 'pairingRequest') {
      this.pairingStart = e.at;
      this.promptShown = undefined;
      this.promptAnswered = undefined;
    } else if (e.kind === 'smp' && e.from === 'wearable' && e.pdu === 'pairingRandom') {
      this.promptShown = e.at;
    } else if (e.kind === 'prompt') {
      this.promptAnswered = e.at;
    } else if (e.kind === 'paired' && e.side === 'phone' && this.pairingStart !== undefined) {
      const total = Math.round(e.at - this.pairingStart);
      const user = this.promptShown !== undefined && this.promptAnswered !== undefined ? Math.round(this.promptAnswered - this.promptShown) : undefined;
      this.print(`${' '.repeat(12)}pairing took ${total} ms${user !== undefined ? ` (${user} ms of it at the prompt, ${total - user} ms on the link)` : ''}`);
      this.pairingStart = undefined;
    }
  }
}
