/**
 * What a scenario records: a closed union of events from both sides of the link, with the clock
 * time each happened. The simulated phone records its own side (SMP PDUs both ways as it saw
 * them, ATT errors it got, encryption results, the user's answer at the prompt); the runner adds
 * the simulated wearable's side (its pairing results, LTK replies, bonds, address resolution).
 */
import type { SmpPduType } from '../smp/pdu.js';
import type { FailureSource } from '../smp/types.js';

/** Which device did or saw something. */
export type Actor = 'phone' | 'wearable';

/** The user's answer at the pairing prompt. */
export type PromptAnswer = 'accept' | 'cancel' | 'no-answer';

interface At {
  /** Clock time, ms. */
  readonly at: number;
}

export type ScenarioEvent =
  | (At & { readonly kind: 'connected'; readonly phoneAddress: string; readonly wearableAddress: string; readonly intervalMs: number })
  | (At & { readonly kind: 'disconnected'; readonly reason: number; readonly reasonName: string })
  | (At & {
      readonly kind: 'smp';
      /** Who sent it. */
      readonly from: Actor;
      readonly pdu: SmpPduType;
      /** Pairing Failed reason. */
      readonly reason?: number;
      /** Pairing Request / Response / Security Request fields. */
      readonly authReq?: number;
      readonly ioCapability?: number;
      readonly initiatorKeyDist?: number;
      readonly responderKeyDist?: number;
      /** The phone did not pass it to its SMP layer (an ignored Security Request). */
      readonly ignored?: boolean;
    })
  | (At & { readonly kind: 'mtu'; readonly asked: number; readonly mtu: number })
  | (At & { readonly kind: 'discovered'; readonly services: number; readonly characteristics: number; readonly cached: boolean })
  | (At & { readonly kind: 'gatt'; readonly op: 'read' | 'write' | 'subscribe'; readonly handle: number; readonly what: string; readonly length?: number })
  | (At & { readonly kind: 'att-error'; readonly op: 'read' | 'write' | 'subscribe'; readonly handle: number; readonly code: number })
  | (At & { readonly kind: 'encryption'; readonly side: Actor; readonly status: number; readonly enabled: boolean })
  | (At & { readonly kind: 'encrypt-with-bond'; readonly why: 'connect' | 'att-error' | 'security-request' })
  | (At & { readonly kind: 'ltk-reply'; readonly positive: boolean })
  | (At & { readonly kind: 'prompt'; readonly answer: PromptAnswer })
  | (At & { readonly kind: 'paired'; readonly side: Actor; readonly level: number; readonly bonded: boolean; readonly keySize: number })
  | (At & { readonly kind: 'pairing-failed'; readonly side: Actor; readonly reason: number | undefined; readonly by: FailureSource })
  | (At & { readonly kind: 'bond-saved'; readonly side: Actor; readonly peer: string })
  | (At & { readonly kind: 'identity-resolved'; readonly side: Actor; readonly address: string; readonly identity: string; readonly source: 'bond' | 'pairing' })
  | (At & { readonly kind: 'notification'; readonly handle: number; readonly length: number })
  | (At & { readonly kind: 'parameter-request'; readonly accepted: boolean; readonly summary: string })
  | (At & { readonly kind: 'phone-error'; readonly message: string })
  | (At & { readonly kind: 'note'; readonly text: string });

export type ScenarioEventKind = ScenarioEvent['kind'];
export type ScenarioEventOf<K extends ScenarioEventKind> = Extract<ScenarioEvent, { kind: K }>;

/** Events of one kind, in order. */
export function eventsOf<K extends ScenarioEventKind>(events: readonly ScenarioEvent[], kind: K): ScenarioEventOf<K>[] {
  return events.filter((e): e is ScenarioEventOf<K> => e.kind === kind);
}

/** `phone:pairingRequest`, `wearable:pairingFailed(0x03)`: SMP PDUs as compact tokens, for tests and summaries. */
export function smpTrail(events: readonly ScenarioEvent[]): string[] {
  return eventsOf(events, 'smp').map((e) => `${e.from}:${e.pdu}${e.reason !== undefined ? `(0x${e.reason.toString(16).padStart(2, '0')})` : ''}${e.ignored ? '(ignored)' : ''}`);
}
