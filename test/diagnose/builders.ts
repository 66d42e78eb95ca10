/**
 * Captures built byte by byte for the diagnosis tests: a {@link Scenario} speaks in terms of "the
 * phone" and "the accessory" and records the HCI packets the capturing side's host would have seen,
 * through the encoders of src/hci, src/smp, src/att and src/l2cap. It writes the result as a btsnoop
 * file, a PacketLogger file or a pino JSON log, or hands the packets over directly.
 */
import { encodeCommand, encodeReturn } from '../../src/hci/commands.js';
import { encodeEvent } from '../../src/hci/events.js';
import { encodeAcl, AclBoundary } from '../../src/hci/acl.js';
import { encodeBtsnoopHeader, encodeBtsnoopRecord, BtsnoopDatalink } from '../../src/hci/btsnoop.js';
import { encodeSmp, type SmpPdu, type PairingFeatures } from '../../src/smp/pdu.js';
import { encodeAttPdu, type AttPdu } from '../../src/att/pdu.js';
import { encodeSignaling, type SignalingPdu } from '../../src/l2cap/signaling-pdu.js';
import { encodePklg, type PklgEndian } from '../../src/diagnose/formats/pklg.js';
import { hciLogFields } from '../../src/diagnose/formats/pino.js';
import type { CapturedPacket, HciDirection } from '../../src/diagnose/capture.js';
import { addressTypeToByte, type Address } from '../../src/util/address.js';
import { concatBytes } from '../../src/util/bytes.js';
import { generateIrk, generateRpa } from '../../src/privacy/rpa.js';
import { seededRandom } from '../../src/util/random.js';

export type Side = 'phone' | 'accessory';

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export const ACCESSORY: Address = { type: 'random', address: 'F1:22:33:44:55:66' };
export const PHONE_IDENTITY: Address = { type: 'public', address: '48:5A:B6:3F:CE:FE' };

const rng = seededRandom('diagnose-builders');
/** The phone's IRK and two of its resolvable private addresses. */
export const PHONE_IRK = generateIrk(rng);
export const PHONE_RPA_1 = generateRpa(PHONE_IRK, rng);
export const PHONE_RPA_2 = generateRpa(PHONE_IRK, rng);
/** An RPA of another phone (another IRK). */
export const OTHER_RPA = generateRpa(generateIrk(rng), rng);

/** iOS-like Pairing Request (docs/field-notes.md table): KeyboardDisplay, AuthReq 0x0D, max key 16, 0x03/0x03. */
export const IOS_PAIRING_REQUEST: PairingFeatures = { ioCapability: 0x04, oobDataFlag: 0, authReq: 0x0d, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 };
/** Android-like Pairing Request: KeyboardDisplay, AuthReq 0x2D (CT2), max key 16, 0x0F/0x0F. */
export const ANDROID_PAIRING_REQUEST: PairingFeatures = { ioCapability: 0x04, oobDataFlag: 0, authReq: 0x2d, maxKeySize: 16, initiatorKeyDist: 0x0f, responderKeyDist: 0x0f };
/** Our Pairing Response: NoInputNoOutput, bonding + SC, 16, keys as asked (id + enc). */
export const ACCESSORY_PAIRING_RESPONSE: PairingFeatures = { ioCapability: 0x03, oobDataFlag: 0, authReq: 0x09, maxKeySize: 16, initiatorKeyDist: 0x03, responderKeyDist: 0x03 };

export interface PhoneProfile {
  readonly name: 'iOS' | 'Android';
  readonly pairingRequest: PairingFeatures;
  readonly mtu: number;
}
export const IOS: PhoneProfile = { name: 'iOS', pairingRequest: IOS_PAIRING_REQUEST, mtu: 185 };
export const ANDROID: PhoneProfile = { name: 'Android', pairingRequest: ANDROID_PAIRING_REQUEST, mtu: 517 };

/** A protected characteristic value handle and the Service Changed value handle in these captures. */
export const PROTECTED_HANDLE = 0x0010;
export const SERVICE_CHANGED_HANDLE = 0x0003;

export interface Recorded {
  direction: HciDirection;
  h4: Uint8Array;
  time: number;
}

function bytes(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

/** Records what the capturing side's HCI saw. Methods return the packet number they produced (the last one when several). */
export class Scenario {
  readonly records: Recorded[] = [];
  private t = T0;
  private handle = 0x0040;

  constructor(readonly capturedOn: Side) {}

  get now(): number {
    return this.t;
  }
  get lastNumber(): number {
    return this.records.length;
  }

  /** Moves time on. */
  wait(ms: number): this {
    this.t += ms;
    return this;
  }

  private rec(direction: HciDirection, h4: Uint8Array): number {
    this.records.push({ direction, h4, time: this.t });
    this.t += 1; // packets 1 ms apart unless waited
    return this.records.length;
  }
  /** The capturing host sends a command. */
  command(name: Parameters<typeof encodeCommand>[0], params: Parameters<typeof encodeCommand>[1]): number {
    return this.rec('host->controller', concatBytes(Uint8Array.of(0x01), encodeCommand(name, params as never)));
  }
  /** The controller sends an event. */
  event<N extends Parameters<typeof encodeEvent>[0]>(name: N, params: Parameters<typeof encodeEvent<N>>[1]): number {
    return this.rec('controller->host', concatBytes(Uint8Array.of(0x04), encodeEvent(name, params)));
  }
  commandComplete(opcode: number, ret: Uint8Array): number {
    return this.event('CommandComplete', { numHciCommandPackets: 1, opcode, returnParameters: ret });
  }
  raw(direction: HciDirection, h4: Uint8Array): number {
    return this.rec(direction, h4);
  }

  private dirOf(from: Side): HciDirection {
    return from === this.capturedOn ? 'host->controller' : 'controller->host';
  }

  /** An L2CAP basic frame on `cid` from `from`, optionally in ACL fragments of `fragment` bytes. */
  l2cap(from: Side, cid: number, payload: Uint8Array, fragment?: number): number {
    const frame = new Uint8Array(4 + payload.length);
    frame[0] = payload.length & 0xff;
    frame[1] = payload.length >> 8;
    frame[2] = cid & 0xff;
    frame[3] = cid >> 8;
    frame.set(payload, 4);
    const dir = this.dirOf(from);
    const first = dir === 'host->controller' ? AclBoundary.FirstNonFlushable : AclBoundary.FirstFlushable;
    const size = fragment ?? frame.length;
    let n = 0;
    for (let o = 0; o < frame.length; o += size) {
      n = this.rec(dir, concatBytes(Uint8Array.of(0x02), encodeAcl(this.handle, o === 0 ? first : AclBoundary.Continuing, frame.subarray(o, o + size))));
    }
    return n;
  }
  smp(from: Side, pdu: SmpPdu, fragment?: number): number {
    return this.l2cap(from, 0x0006, encodeSmp(pdu), fragment);
  }
  att(from: Side, pdu: AttPdu, fragment?: number): number {
    return this.l2cap(from, 0x0004, encodeAttPdu(pdu), fragment);
  }
  signaling(from: Side, pdu: SignalingPdu): number {
    return this.l2cap(from, 0x0005, encodeSignaling(pdu));
  }

  advertising(on: boolean): number {
    if (this.capturedOn !== 'accessory') return this.lastNumber;
    this.command('LeSetAdvertisingEnable', { enable: on });
    return this.commandComplete(0x200a, Uint8Array.of(0));
  }

  /**
   * LE Connection Complete as the capturing side sees it: the peer is the phone (accessory capture)
   * or the accessory (phone capture). `controllerResolved` gives an Enhanced Connection Complete with
   * the identity (type 0x02/0x03) and the RPA.
   */
  connect(opts: { phone?: Address; handle?: number; interval?: number; latency?: number; timeout?: number; controllerResolved?: { identity: Address; rpa: Address } } = {}): number {
    this.handle = opts.handle ?? this.handle;
    const peer = this.capturedOn === 'accessory' ? (opts.phone ?? PHONE_RPA_1) : ACCESSORY;
    const common = {
      status: 0,
      handle: this.handle,
      role: this.capturedOn === 'accessory' ? 0x01 : 0x00,
      connInterval: opts.interval ?? 24,
      connLatency: opts.latency ?? 0,
      supervisionTimeout: opts.timeout ?? 500,
      centralClockAccuracy: 0,
    };
    if (opts.controllerResolved) {
      const id = opts.controllerResolved.identity;
      return this.event('LeEnhancedConnectionComplete', {
        ...common,
        peerAddressType: id.type === 'public' ? 0x02 : 0x03,
        peerAddress: id.address,
        localResolvablePrivateAddress: '00:00:00:00:00:00',
        peerResolvablePrivateAddress: opts.controllerResolved.rpa.address,
      });
    }
    return this.event('LeConnectionComplete', { ...common, peerAddressType: addressTypeToByte(peer.type), peerAddress: peer.address });
  }

  /** The link is going down (`reason` as the Disconnection Complete reports it). */
  disconnect(reason = 0x13): number {
    return this.event('DisconnectionComplete', { status: 0, handle: this.handle, reason });
  }

  /**
   * The phone starts encryption with a stored key (or the STK/LTK after pairing): accessory side, an
   * LTK Request event; phone side, LE Enable Encryption (the number returned) and its Command Status.
   */
  startEncryption(ediv = 0, rand = 0n): number {
    if (this.capturedOn === 'accessory') return this.event('LeLongTermKeyRequest', { handle: this.handle, rand, ediv });
    const n = this.command('LeEnableEncryption', { handle: this.handle, rand, ediv, ltk: bytes(16, 0x11) });
    this.event('CommandStatus', { status: 0, numHciCommandPackets: 1, opcode: 0x2019 });
    return n;
  }

  /** The accessory answers the LTK request (accessory side only; a phone capture sees nothing). */
  ltkReply(positive: boolean): number {
    if (this.capturedOn !== 'accessory') return this.lastNumber;
    const n = positive
      ? this.command('LeLongTermKeyRequestReply', { handle: this.handle, ltk: bytes(16, 0x22) })
      : this.command('LeLongTermKeyRequestNegativeReply', { handle: this.handle });
    this.commandComplete(positive ? 0x201a : 0x201b, Uint8Array.of(0, this.handle & 0xff, this.handle >> 8));
    return n;
  }

  encryptionChange(status = 0, enabled = status === 0 ? 1 : 0): number {
    return this.event('EncryptionChange', { status, handle: this.handle, enabled });
  }

  /** Read Encryption Key Size and its result. */
  keySize(size: number): number {
    this.command('ReadEncryptionKeySize', { handle: this.handle });
    return this.commandComplete(0x1408, encodeReturn('ReadEncryptionKeySize', 0, { handle: this.handle, keySize: size }));
  }

  /** The accessory host loads a peer IRK into the controller's resolving list. */
  resolvingListAdd(identity: Address, irk: Uint8Array): number {
    this.command('LeAddDeviceToResolvingList', { peerIdentityAddressType: addressTypeToByte(identity.type), peerIdentityAddress: identity.address, peerIrk: irk, localIrk: bytes(16, 0) });
    return this.commandComplete(0x2027, Uint8Array.of(0));
  }

  // ---- compound steps ----

  /** MTU exchange started by the phone. */
  mtu(phoneMtu: number): number {
    this.att('phone', { type: 'exchangeMtuRequest', clientRxMtu: phoneMtu });
    return this.att('accessory', { type: 'exchangeMtuResponse', serverRxMtu: 247 });
  }

  /** The phone discovers characteristics: the response declares Service Changed (value handle {@link SERVICE_CHANGED_HANDLE}). */
  discoverServiceChanged(): number {
    this.att('phone', { type: 'readByTypeRequest', startHandle: 0x0001, endHandle: 0xffff, attributeType: Uint8Array.of(0x03, 0x28) });
    return this.att('accessory', {
      type: 'readByTypeResponse',
      data: [{ handle: SERVICE_CHANGED_HANDLE - 1, value: Uint8Array.of(0x20, SERVICE_CHANGED_HANDLE, 0x00, 0x05, 0x2a) }],
    });
  }

  /** The accessory indicates Service Changed for the whole database. */
  serviceChanged(handle = SERVICE_CHANGED_HANDLE): number {
    return this.att('accessory', { type: 'handleValueIndication', handle, value: Uint8Array.of(0x01, 0x00, 0xff, 0xff) });
  }

  /** The phone reads the protected characteristic; the accessory answers with `error` or the value. */
  protectedRead(error?: number): number {
    this.att('phone', { type: 'readRequest', handle: PROTECTED_HANDLE });
    return error === undefined
      ? this.att('accessory', { type: 'readResponse', value: Uint8Array.of(0x2a) })
      : this.att('accessory', { type: 'errorResponse', requestOpcode: 0x0a, handle: PROTECTED_HANDLE, errorCode: error });
  }

  /**
   * A complete LESC Just Works pairing from the phone's Pairing Request to key distribution,
   * including encryption. Returns the packet numbers of the landmarks.
   */
  pair(
    opts: { request?: PairingFeatures; response?: PairingFeatures; phoneIdentity?: Address; phoneIrk?: Uint8Array; keySize?: number | 'unsupported' } = {},
  ): { request: number; response: number; encrypted: number } {
    const req = opts.request ?? IOS_PAIRING_REQUEST;
    const rsp = opts.response ?? ACCESSORY_PAIRING_RESPONSE;
    const sc = (req.authReq & 0x08) !== 0 && (rsp.authReq & 0x08) !== 0;
    const request = this.smp('phone', { type: 'pairingRequest', ...req });
    const response = this.smp('accessory', { type: 'pairingResponse', ...rsp });
    if (sc) {
      this.smp('phone', { type: 'pairingPublicKey', publicKey: bytes(64, 0x01) }, 27);
      this.smp('accessory', { type: 'pairingPublicKey', publicKey: bytes(64, 0x02) }, 27);
      this.smp('accessory', { type: 'pairingConfirm', confirm: bytes(16, 0x03) });
      this.smp('phone', { type: 'pairingRandom', random: bytes(16, 0x04) });
      this.smp('accessory', { type: 'pairingRandom', random: bytes(16, 0x05) });
      this.wait(2000); // the user taps Pair
      this.smp('phone', { type: 'pairingDhKeyCheck', check: bytes(16, 0x06) });
      this.smp('accessory', { type: 'pairingDhKeyCheck', check: bytes(16, 0x07) });
    } else {
      // Legacy: confirm and random both ways, then encryption with the STK. Core 5.4 Vol 3 Part H 2.3.5.5.
      this.wait(2000);
      this.smp('phone', { type: 'pairingConfirm', confirm: bytes(16, 0x13) });
      this.smp('accessory', { type: 'pairingConfirm', confirm: bytes(16, 0x14) });
      this.smp('phone', { type: 'pairingRandom', random: bytes(16, 0x15) });
      this.smp('accessory', { type: 'pairingRandom', random: bytes(16, 0x16) });
    }
    this.startEncryption();
    this.ltkReply(true);
    const encrypted = this.encryptionChange(0);
    if (opts.keySize === 'unsupported') this.keySizeUnsupported();
    else this.keySize(opts.keySize ?? Math.min(req.maxKeySize, rsp.maxKeySize));
    // Key distribution as the Pairing Response negotiated it: the accessory's keys first. Core 5.4 Vol 3 Part H 3.6.1.
    if (!sc && rsp.responderKeyDist & 0x01) {
      this.smp('accessory', { type: 'encryptionInformation', ltk: bytes(16, 0x17) });
      this.smp('accessory', { type: 'centralIdentification', ediv: 0x1234, rand: 0x0102030405060708n });
    }
    if (rsp.responderKeyDist & 0x02) {
      this.smp('accessory', { type: 'identityInformation', irk: bytes(16, 0x08) });
      this.smp('accessory', { type: 'identityAddressInformation', address: ACCESSORY });
    }
    if (rsp.initiatorKeyDist & 0x02) {
      this.smp('phone', { type: 'identityInformation', irk: opts.phoneIrk ?? PHONE_IRK });
      this.smp('phone', { type: 'identityAddressInformation', address: opts.phoneIdentity ?? PHONE_IDENTITY });
    }
    return { request, response, encrypted };
  }

  /** Read Encryption Key Size answered as upstream Zephyr's hci_uart does: Command Status 0x01 Unknown HCI Command. */
  keySizeUnsupported(): number {
    this.command('ReadEncryptionKeySize', { handle: this.handle });
    return this.event('CommandStatus', { status: 0x01, numHciCommandPackets: 1, opcode: 0x1408 });
  }

  /** The accessory's host restarts: HCI Reset (seen only in the accessory's capture). */
  accessoryReset(): number {
    if (this.capturedOn !== 'accessory') return this.lastNumber;
    this.command('Reset', {});
    return this.commandComplete(0x0c03, Uint8Array.of(0));
  }

  /** A bonded reconnection: LTK request answered, encrypted, key size 16, protected read served. */
  reconnectEncrypted(ediv = 0, rand = 0n): { encrypted: number } {
    this.startEncryption(ediv, rand);
    this.ltkReply(true);
    const encrypted = this.encryptionChange(0);
    this.keySize(16);
    this.protectedRead();
    return { encrypted };
  }

  // ---- output ----

  packets(): CapturedPacket[] {
    return this.records.map((r, i) => ({ number: i + 1, time: r.time, direction: r.direction, h4: r.h4 }));
  }

  btsnoop(): Uint8Array {
    return concatBytes(encodeBtsnoopHeader(BtsnoopDatalink.H4), ...this.records.map((r) => encodeBtsnoopRecord(r.direction === 'host->controller' ? 'sent' : 'received', r.h4, r.time)));
  }

  pklg(endian: PklgEndian = 'big', withNote = false): Uint8Array {
    const recs = this.records.map((r) => ({ direction: r.direction, h4: r.h4, time: r.time }));
    return encodePklg(withNote ? [{ note: 'PacketLogger capture', time: T0 - 1 }, ...recs] : recs, endian);
  }

  jsonLog(withOtherLines = true): Uint8Array {
    const lines: string[] = [];
    if (withOtherLines) lines.push(JSON.stringify({ level: 30, time: T0 - 5, name: 'wearable-host', msg: 'controller ready' }));
    this.records.forEach((r, i) => {
      lines.push(JSON.stringify({ level: 20, time: r.time, name: 'wearable-host', ...hciLogFields(r.direction === 'host->controller' ? 'tx' : 'rx', r.h4, i + 1), msg: 'hci' }));
    });
    return new TextEncoder().encode(lines.join('\n') + '\n');
  }
}

/** The first pairing every accessory hopes for: 0x05 on a protected read, then pairing, then the read succeeds. */
export function cleanFirstPairing(capturedOn: Side, phone: PhoneProfile = IOS, opts: { securityRequest?: boolean } = {}): Scenario {
  const s = new Scenario(capturedOn);
  s.advertising(true);
  s.connect({ phone: PHONE_RPA_1 });
  s.advertising(false);
  if (opts.securityRequest) s.smp('accessory', { type: 'securityRequest', authReq: 0x09 });
  s.mtu(phone.mtu);
  if (!opts.securityRequest) s.protectedRead(0x05);
  s.pair({ request: phone.pairingRequest });
  s.protectedRead();
  s.wait(5000);
  s.disconnect(0x13);
  return s;
}

/** A first pairing then, later, a bonded reconnection with a new RPA. */
export function cleanPairingThenReconnection(capturedOn: Side, phone: PhoneProfile = IOS): Scenario {
  const s = cleanFirstPairing(capturedOn, phone);
  s.wait(60_000);
  s.advertising(true);
  s.connect({ phone: PHONE_RPA_2 });
  s.mtu(phone.mtu);
  s.reconnectEncrypted();
  s.wait(5000);
  s.disconnect(0x13);
  return s;
}

/** The three captures of one session: the accessory's btsnoop, the phone's btsnoop (Android btsnoop_hci.log) and the phone's PacketLogger file (iOS). */
export type CaptureForm = 'accessory btsnoop' | 'phone btsnoop' | 'phone pklg';
export const CAPTURE_FORMS: readonly CaptureForm[] = ['accessory btsnoop', 'phone btsnoop', 'phone pklg'];

/** Builds the session once per side (the builder returns the scenario and its landmark packet numbers) and returns each form's file bytes. */
export function captureForms<M>(build: (side: Side) => { s: Scenario; marks: M }): { form: CaptureForm; side: Side; bytes: Uint8Array; marks: M }[] {
  const acc = build('accessory');
  const phone = build('phone');
  return [
    { form: 'accessory btsnoop', side: 'accessory', bytes: acc.s.btsnoop(), marks: acc.marks },
    { form: 'phone btsnoop', side: 'phone', bytes: phone.s.btsnoop(), marks: phone.marks },
    { form: 'phone pklg', side: 'phone', bytes: phone.s.pklg(), marks: phone.marks },
  ];
}
