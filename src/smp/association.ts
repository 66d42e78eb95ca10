/**
 * Choosing the association model of an LE Secure Connections pairing from the two Pairing
 * Request / Pairing Response feature sets. Core 5.4 Vol 3 Part H 2.3.5.1 (Tables 2.6 - 2.8).
 */
import { AuthReq, IoCapability, type PairingFeatures } from './pdu.js';
import type { AssociationModel, PasskeyAction } from './types.js';

export type Association =
  | { readonly model: 'justWorks' | 'numericComparison'; readonly authenticated: boolean }
  | {
      readonly model: 'passkeyEntry';
      readonly authenticated: true;
      readonly initiator: PasskeyAction;
      readonly responder: PasskeyAction;
    }
  /** OOB data was flagged; this stack has no OOB channel (0x02 OOB Not Available). */
  | { readonly model: 'oob'; readonly authenticated: true };

type Cell = 'JW' | 'NC' | 'PI' | 'PR' | 'PB';

/**
 * Table 2.8 for LE Secure Connections: rows are the initiator's IO capability, columns the
 * responder's (DisplayOnly, DisplayYesNo, KeyboardOnly, NoInputNoOutput, KeyboardDisplay).
 * PI: passkey, initiator displays and responder inputs; PR: responder displays and initiator
 * inputs; PB: both input.
 */
const SC_TABLE: readonly (readonly Cell[])[] = [
  /* DisplayOnly     */ ['JW', 'JW', 'PI', 'JW', 'PI'],
  /* DisplayYesNo    */ ['JW', 'NC', 'PI', 'JW', 'NC'],
  /* KeyboardOnly    */ ['PR', 'PR', 'PB', 'JW', 'PR'],
  /* NoInputNoOutput */ ['JW', 'JW', 'JW', 'JW', 'JW'],
  /* KeyboardDisplay */ ['PR', 'NC', 'PI', 'JW', 'NC'],
];

/**
 * The association model for LE Secure Connections. OOB is used when either side has OOB data
 * (Table 2.7); otherwise, when neither side sets MITM, Just Works; otherwise Table 2.8.
 */
export function selectAssociation(initiator: PairingFeatures, responder: PairingFeatures): Association {
  if (initiator.oobDataFlag === 1 || responder.oobDataFlag === 1) return { model: 'oob', authenticated: true };
  const mitm = ((initiator.authReq | responder.authReq) & AuthReq.Mitm) !== 0;
  if (!mitm) return { model: 'justWorks', authenticated: false };
  const row = SC_TABLE[initiator.ioCapability];
  const cell = row?.[responder.ioCapability];
  switch (cell) {
    case 'NC':
      return { model: 'numericComparison', authenticated: true };
    case 'PI':
      return { model: 'passkeyEntry', authenticated: true, initiator: 'display', responder: 'input' };
    case 'PR':
      return { model: 'passkeyEntry', authenticated: true, initiator: 'input', responder: 'display' };
    case 'PB':
      return { model: 'passkeyEntry', authenticated: true, initiator: 'input', responder: 'input' };
    default:
      return { model: 'justWorks', authenticated: false };
  }
}

/** Whether an IO capability can take part in a MITM-protected model at all. */
export function canDoMitm(io: number): boolean {
  return io !== IoCapability.NoInputNoOutput;
}

export type { AssociationModel };
