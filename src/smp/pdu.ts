/**
 * Security Manager Protocol PDUs: one table keyed by SMP code (name, exact length, decode,
 * encode), a closed union {@link SmpPdu}, and the constants the PDUs carry.
 * Core 5.4 Vol 3 Part H 3 (Security Manager Protocol).
 *
 * Every SMP PDU has a fixed length (Vol 3 Part H 3.5 - 3.6). {@link decodeSmp} never throws: a PDU
 * of the wrong length is answered with Invalid Parameters (0x0A), an unknown code with Command
 * Not Supported (0x07), and a field outside its range with Invalid Parameters.
 */
import { addressFromWire, addressToWire, type Address } from '../util/address.js';
import { ByteReader, ByteWriter, toHex } from '../util/bytes.js';

/** SMP command codes. Core 5.4 Vol 3 Part H 3.3, Table 3.1. */
export const SmpCode = {
  PairingRequest: 0x01,
  PairingResponse: 0x02,
  PairingConfirm: 0x03,
  PairingRandom: 0x04,
  PairingFailed: 0x05,
  EncryptionInformation: 0x06,
  CentralIdentification: 0x07,
  IdentityInformation: 0x08,
  IdentityAddressInformation: 0x09,
  SigningInformation: 0x0a,
  SecurityRequest: 0x0b,
  PairingPublicKey: 0x0c,
  PairingDhKeyCheck: 0x0d,
  PairingKeypressNotification: 0x0e,
} as const;
export type SmpCodeValue = (typeof SmpCode)[keyof typeof SmpCode];

/** Pairing Failed reason codes. Core 5.4 Vol 3 Part H 3.5.5, Table 3.7. */
export const SmpReason = {
  PasskeyEntryFailed: 0x01,
  OobNotAvailable: 0x02,
  AuthenticationRequirements: 0x03,
  ConfirmValueFailed: 0x04,
  PairingNotSupported: 0x05,
  EncryptionKeySize: 0x06,
  CommandNotSupported: 0x07,
  UnspecifiedReason: 0x08,
  RepeatedAttempts: 0x09,
  InvalidParameters: 0x0a,
  DhKeyCheckFailed: 0x0b,
  NumericComparisonFailed: 0x0c,
  BrEdrPairingInProgress: 0x0d,
  CrossTransportKeyDerivationNotAllowed: 0x0e,
  KeyRejected: 0x0f,
} as const;
export type SmpReasonValue = (typeof SmpReason)[keyof typeof SmpReason];

const REASON_NAMES: Readonly<Record<number, string>> = {
  0x01: 'Passkey Entry Failed',
  0x02: 'OOB Not Available',
  0x03: 'Authentication Requirements',
  0x04: 'Confirm Value Failed',
  0x05: 'Pairing Not Supported',
  0x06: 'Encryption Key Size',
  0x07: 'Command Not Supported',
  0x08: 'Unspecified Reason',
  0x09: 'Repeated Attempts',
  0x0a: 'Invalid Parameters',
  0x0b: 'DHKey Check Failed',
  0x0c: 'Numeric Comparison Failed',
  0x0d: 'BR/EDR Pairing In Progress',
  0x0e: 'Cross-transport Key Derivation/Generation Not Allowed',
  0x0f: 'Key Rejected',
};

/** The spec's name of a Pairing Failed reason, `Reserved (0x42)` for others. */
export function smpReasonName(reason: number): string {
  return REASON_NAMES[reason] ?? `Reserved (0x${reason.toString(16).padStart(2, '0')})`;
}

/** IO capabilities. Core 5.4 Vol 3 Part H 3.5.1, Table 3.4. */
export const IoCapability = {
  DisplayOnly: 0x00,
  DisplayYesNo: 0x01,
  KeyboardOnly: 0x02,
  NoInputNoOutput: 0x03,
  KeyboardDisplay: 0x04,
} as const;
export type IoCapabilityValue = (typeof IoCapability)[keyof typeof IoCapability];

const IO_NAMES = ['DisplayOnly', 'DisplayYesNo', 'KeyboardOnly', 'NoInputNoOutput', 'KeyboardDisplay'] as const;

export function ioCapabilityName(io: number): string {
  return IO_NAMES[io] ?? `Reserved (0x${io.toString(16).padStart(2, '0')})`;
}

/** AuthReq field bits. Core 5.4 Vol 3 Part H 3.5.1, Figure 3.3 and Table 3.5. */
export const AuthReq = {
  /** Bonding_Flags (2 bits): 0b00 No Bonding, 0b01 Bonding. */
  BondingFlagsMask: 0x03,
  Bonding: 0x01,
  Mitm: 0x04,
  SecureConnections: 0x08,
  Keypress: 0x10,
  Ct2: 0x20,
} as const;

/** Key distribution bits (Initiator / Responder Key Distribution). Core 5.4 Vol 3 Part H 3.6.1, Figure 3.11. */
export const KeyDist = {
  EncKey: 0x01,
  IdKey: 0x02,
  SignKey: 0x04,
  LinkKey: 0x08,
} as const;

/** Passkey entry notification types. Core 5.4 Vol 3 Part H 3.5.8, Table 3.8. */
export const KeypressNotificationType = {
  PasskeyEntryStarted: 0x00,
  PasskeyDigitEntered: 0x01,
  PasskeyDigitErased: 0x02,
  PasskeyCleared: 0x03,
  PasskeyEntryCompleted: 0x04,
} as const;

/** The six fields shared by Pairing Request and Pairing Response. Core 5.4 Vol 3 Part H 3.5.1 - 3.5.2. */
export interface PairingFeatures {
  readonly ioCapability: number;
  readonly oobDataFlag: number;
  readonly authReq: number;
  readonly maxKeySize: number;
  readonly initiatorKeyDist: number;
  readonly responderKeyDist: number;
}

/** Fields of each PDU type, keyed by the union's `type` tag. */
export interface SmpPduFields {
  /** Core 5.4 Vol 3 Part H 3.5.1 */
  pairingRequest: PairingFeatures;
  /** Core 5.4 Vol 3 Part H 3.5.2 */
  pairingResponse: PairingFeatures;
  /** Core 5.4 Vol 3 Part H 3.5.3. 16 bytes LE. */
  pairingConfirm: { readonly confirm: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.5.4. 16 bytes LE. */
  pairingRandom: { readonly random: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.5.5 */
  pairingFailed: { readonly reason: number };
  /** Core 5.4 Vol 3 Part H 3.6.2. 16 bytes LE. */
  encryptionInformation: { readonly ltk: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.6.3 */
  centralIdentification: { readonly ediv: number; readonly rand: bigint };
  /** Core 5.4 Vol 3 Part H 3.6.4. 16 bytes LE. */
  identityInformation: { readonly irk: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.6.5 */
  identityAddressInformation: { readonly address: Address };
  /** Core 5.4 Vol 3 Part H 3.6.6. 16 bytes LE. */
  signingInformation: { readonly csrk: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.6.7 */
  securityRequest: { readonly authReq: number };
  /** Core 5.4 Vol 3 Part H 3.5.6. X (32 bytes LE) then Y (32 bytes LE). */
  pairingPublicKey: { readonly publicKey: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.5.7. 16 bytes LE. */
  pairingDhKeyCheck: { readonly check: Uint8Array };
  /** Core 5.4 Vol 3 Part H 3.5.8 */
  pairingKeypressNotification: { readonly notificationType: number };
}

export type SmpPduType = keyof SmpPduFields;
/** One PDU of a given type. */
export type SmpPduOf<K extends SmpPduType> = { readonly type: K } & SmpPduFields[K];
/** Every SMP PDU: a closed union tagged by `type`. */
export type SmpPdu = { [K in SmpPduType]: SmpPduOf<K> }[SmpPduType];

/** A field out of range while decoding: the reason to answer (Invalid Parameters) and why. */
interface FieldProblem {
  readonly problem: string;
}

interface PduSpec<K extends SmpPduType> {
  readonly type: K;
  readonly code: SmpCodeValue;
  /** The spec's name. */
  readonly name: string;
  /** Exact PDU length including the code octet. */
  readonly length: number;
  /** Decodes the parameters (the reader is past the code and the length is already checked). */
  decode(r: ByteReader): SmpPduFields[K] | FieldProblem;
  encode(w: ByteWriter, p: SmpPduFields[K]): void;
}

function decodeFeatures(r: ByteReader): PairingFeatures | FieldProblem {
  const ioCapability = r.u8();
  const oobDataFlag = r.u8();
  const authReq = r.u8();
  const maxKeySize = r.u8();
  const initiatorKeyDist = r.u8();
  const responderKeyDist = r.u8();
  if (ioCapability > IoCapability.KeyboardDisplay) return { problem: `IO capability 0x${ioCapability.toString(16)} is reserved` };
  if (oobDataFlag > 1) return { problem: `OOB data flag 0x${oobDataFlag.toString(16)} is reserved` };
  return { ioCapability, oobDataFlag, authReq, maxKeySize, initiatorKeyDist, responderKeyDist };
}

function encodeFeatures(w: ByteWriter, p: PairingFeatures): void {
  w.u8(p.ioCapability).u8(p.oobDataFlag).u8(p.authReq).u8(p.maxKeySize).u8(p.initiatorKeyDist).u8(p.responderKeyDist);
}

function bytesField<N extends string>(name: N, n: number): {
  decode(r: ByteReader): { [P in N]: Uint8Array };
  encode(w: ByteWriter, p: { [P in N]: Uint8Array }): void;
} {
  return {
    decode: (r) => ({ [name]: r.bytes(n) }) as { [P in N]: Uint8Array },
    encode: (w, p) => {
      const v = p[name];
      if (v.length !== n) throw new RangeError(`${name} must be ${n} bytes, got ${v.length}`);
      w.bytes(v);
    },
  };
}

/** The PDU table, keyed by type; {@link SMP_PDU_TABLE} is the same table keyed by code. */
const SPECS: { readonly [K in SmpPduType]: PduSpec<K> } = {
  pairingRequest: { type: 'pairingRequest', code: SmpCode.PairingRequest, name: 'Pairing Request', length: 7, decode: decodeFeatures, encode: encodeFeatures },
  pairingResponse: { type: 'pairingResponse', code: SmpCode.PairingResponse, name: 'Pairing Response', length: 7, decode: decodeFeatures, encode: encodeFeatures },
  pairingConfirm: { type: 'pairingConfirm', code: SmpCode.PairingConfirm, name: 'Pairing Confirm', length: 17, ...bytesField('confirm', 16) },
  pairingRandom: { type: 'pairingRandom', code: SmpCode.PairingRandom, name: 'Pairing Random', length: 17, ...bytesField('random', 16) },
  pairingFailed: {
    type: 'pairingFailed',
    code: SmpCode.PairingFailed,
    name: 'Pairing Failed',
    length: 2,
    decode: (r) => ({ reason: r.u8() }),
    encode: (w, p) => void w.u8(p.reason),
  },
  encryptionInformation: { type: 'encryptionInformation', code: SmpCode.EncryptionInformation, name: 'Encryption Information', length: 17, ...bytesField('ltk', 16) },
  centralIdentification: {
    type: 'centralIdentification',
    code: SmpCode.CentralIdentification,
    name: 'Central Identification',
    length: 11,
    decode: (r) => ({ ediv: r.u16(), rand: r.u64() }),
    encode: (w, p) => void w.u16(p.ediv).u64(p.rand),
  },
  identityInformation: { type: 'identityInformation', code: SmpCode.IdentityInformation, name: 'Identity Information', length: 17, ...bytesField('irk', 16) },
  identityAddressInformation: {
    type: 'identityAddressInformation',
    code: SmpCode.IdentityAddressInformation,
    name: 'Identity Address Information',
    length: 8,
    decode: (r) => {
      const t = r.u8();
      const a = r.bytes(6);
      if (t > 1) return { problem: `identity address type 0x${t.toString(16)} is reserved` };
      return { address: { type: t === 0 ? 'public' : 'random', address: addressFromWire(a) } };
    },
    encode: (w, p) => void w.u8(p.address.type === 'public' ? 0 : 1).bytes(addressToWire(p.address.address)),
  },
  signingInformation: { type: 'signingInformation', code: SmpCode.SigningInformation, name: 'Signing Information', length: 17, ...bytesField('csrk', 16) },
  securityRequest: {
    type: 'securityRequest',
    code: SmpCode.SecurityRequest,
    name: 'Security Request',
    length: 2,
    decode: (r) => ({ authReq: r.u8() }),
    encode: (w, p) => void w.u8(p.authReq),
  },
  pairingPublicKey: { type: 'pairingPublicKey', code: SmpCode.PairingPublicKey, name: 'Pairing Public Key', length: 65, ...bytesField('publicKey', 64) },
  pairingDhKeyCheck: { type: 'pairingDhKeyCheck', code: SmpCode.PairingDhKeyCheck, name: 'Pairing DHKey Check', length: 17, ...bytesField('check', 16) },
  pairingKeypressNotification: {
    type: 'pairingKeypressNotification',
    code: SmpCode.PairingKeypressNotification,
    name: 'Pairing Keypress Notification',
    length: 2,
    decode: (r) => {
      const t = r.u8();
      if (t > KeypressNotificationType.PasskeyEntryCompleted) return { problem: `keypress notification type 0x${t.toString(16)} is reserved` };
      return { notificationType: t };
    },
    encode: (w, p) => void w.u8(p.notificationType),
  },
};

/** What the table says about one code. */
export interface SmpPduInfo {
  readonly type: SmpPduType;
  readonly code: SmpCodeValue;
  readonly name: string;
  readonly length: number;
}

/** The PDU table keyed by SMP code (0x01..0x0E): name, exact length, type tag. Core 5.4 Vol 3 Part H 3.3. */
export const SMP_PDU_TABLE: ReadonlyMap<number, SmpPduInfo & PduSpec<SmpPduType>> = new Map(
  (Object.keys(SPECS) as SmpPduType[]).map((k) => [SPECS[k].code, SPECS[k] as SmpPduInfo & PduSpec<SmpPduType>]),
);

/** Table entry for a PDU type. */
export function smpPduInfo(type: SmpPduType): SmpPduInfo {
  return SPECS[type];
}

/** The result of decoding: the PDU, or the Pairing Failed reason to answer with and why. */
export type SmpDecodeResult =
  | { readonly ok: true; readonly pdu: SmpPdu }
  | {
      readonly ok: false;
      /** Pairing Failed reason to answer with (0x0A Invalid Parameters, 0x07 Command Not Supported). */
      readonly reason: SmpReasonValue;
      /** The code octet, when there was one. */
      readonly code: number | undefined;
      readonly message: string;
    };

/** Decodes one SMP PDU (code octet first). Never throws. Core 5.4 Vol 3 Part H 3.3. */
export function decodeSmp(bytes: Uint8Array): SmpDecodeResult {
  if (bytes.length === 0) return { ok: false, reason: SmpReason.InvalidParameters, code: undefined, message: 'empty SMP PDU' };
  const code = bytes[0] as number;
  const spec = SMP_PDU_TABLE.get(code);
  if (!spec) {
    return { ok: false, reason: SmpReason.CommandNotSupported, code, message: `unknown SMP code 0x${code.toString(16).padStart(2, '0')}` };
  }
  if (bytes.length !== spec.length) {
    return { ok: false, reason: SmpReason.InvalidParameters, code, message: `${spec.name} is ${spec.length} bytes, got ${bytes.length}` };
  }
  try {
    const r = new ByteReader(bytes);
    r.u8();
    const fields = spec.decode(r);
    if ('problem' in fields) return { ok: false, reason: SmpReason.InvalidParameters, code, message: `${spec.name}: ${fields.problem}` };
    return { ok: true, pdu: { type: spec.type, ...fields } as SmpPdu };
  } catch (err) {
    // Unreachable with the length checked; kept so that a table bug cannot throw into the caller.
    return { ok: false, reason: SmpReason.InvalidParameters, code, message: `${spec.name}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Encodes one SMP PDU. Throws RangeError for a field of the wrong size (a caller bug). */
export function encodeSmp<K extends SmpPduType>(pdu: SmpPduOf<K>): Uint8Array {
  const spec: PduSpec<K> = SPECS[pdu.type];
  const w = new ByteWriter(spec.length);
  w.u8(spec.code);
  spec.encode(w, pdu);
  const out = w.finish();
  if (out.length !== spec.length) throw new RangeError(`${spec.name} encoded to ${out.length} bytes, expected ${spec.length}`);
  return out;
}

function bitNames(v: number, names: readonly (readonly [number, string])[]): string {
  const parts = names.filter(([bit]) => (v & bit) !== 0).map(([, n]) => n);
  return `0x${v.toString(16).padStart(2, '0')}${parts.length ? `(${parts.join(',')})` : ''}`;
}

/** AuthReq as text: `0x0d(bond,mitm,sc)`. */
export function formatAuthReq(authReq: number): string {
  const bonding = (authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding ? ['bond'] : [];
  const rest = [
    [AuthReq.Mitm, 'mitm'],
    [AuthReq.SecureConnections, 'sc'],
    [AuthReq.Keypress, 'keypress'],
    [AuthReq.Ct2, 'ct2'],
  ] as const;
  const parts = [...bonding, ...rest.filter(([b]) => (authReq & b) !== 0).map(([, n]) => n)];
  return `0x${authReq.toString(16).padStart(2, '0')}${parts.length ? `(${parts.join(',')})` : ''}`;
}

/** Key distribution bits as text: `0x03(enc,id)`. */
export function formatKeyDist(v: number): string {
  return bitNames(v, [
    [KeyDist.EncKey, 'enc'],
    [KeyDist.IdKey, 'id'],
    [KeyDist.SignKey, 'sign'],
    [KeyDist.LinkKey, 'link'],
  ]);
}

/**
 * One line for logs: `Pairing Request io=KeyboardDisplay oob=0 authReq=0x2d(bond,mitm,sc,ct2) ...`.
 * Secret keys (LTK, IRK, CSRK) are redacted unless `showKeys`; confirm values, nonces, public keys
 * and check values travel in clear on air and are shown.
 */
export function formatSmp(pdu: SmpPdu, opts: { showKeys?: boolean } = {}): string {
  const name = SPECS[pdu.type].name;
  const secret = (b: Uint8Array): string => (opts.showKeys ? toHex(b) : `<${b.length} bytes redacted>`);
  switch (pdu.type) {
    case 'pairingRequest':
    case 'pairingResponse':
      return (
        `${name} io=${ioCapabilityName(pdu.ioCapability)} oob=${pdu.oobDataFlag} authReq=${formatAuthReq(pdu.authReq)} ` +
        `maxKeySize=${pdu.maxKeySize} initDist=${formatKeyDist(pdu.initiatorKeyDist)} respDist=${formatKeyDist(pdu.responderKeyDist)}`
      );
    case 'pairingConfirm':
      return `${name} ${toHex(pdu.confirm)}`;
    case 'pairingRandom':
      return `${name} ${toHex(pdu.random)}`;
    case 'pairingFailed':
      return `${name} reason=0x${pdu.reason.toString(16).padStart(2, '0')} (${smpReasonName(pdu.reason)})`;
    case 'encryptionInformation':
      return `${name} ltk=${secret(pdu.ltk)}`;
    case 'centralIdentification':
      return `${name} ediv=0x${pdu.ediv.toString(16).padStart(4, '0')} rand=0x${pdu.rand.toString(16).padStart(16, '0')}`;
    case 'identityInformation':
      return `${name} irk=${secret(pdu.irk)}`;
    case 'identityAddressInformation':
      return `${name} ${pdu.address.address} (${pdu.address.type})`;
    case 'signingInformation':
      return `${name} csrk=${secret(pdu.csrk)}`;
    case 'securityRequest':
      return `${name} authReq=${formatAuthReq(pdu.authReq)}`;
    case 'pairingPublicKey':
      return `${name} x=${toHex(pdu.publicKey.subarray(0, 32))} y=${toHex(pdu.publicKey.subarray(32, 64))}`;
    case 'pairingDhKeyCheck':
      return `${name} ${toHex(pdu.check)}`;
    case 'pairingKeypressNotification':
      return `${name} type=${pdu.notificationType}`;
  }
}

/** A decode result as text for logs: the PDU, or why it was refused with its raw bytes. */
export function formatSmpBytes(bytes: Uint8Array, opts: { showKeys?: boolean } = {}): string {
  const r = decodeSmp(bytes);
  if (r.ok) return formatSmp(r.pdu, opts);
  return `malformed SMP PDU (${r.message}): ${toHex(bytes.subarray(0, 1))}${bytes.length > 1 ? '…' : ''} (${bytes.length} bytes)`;
}
