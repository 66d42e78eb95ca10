/**
 * L2CAP for one LE connection: basic-mode frames on the fixed channels (ATT 0x0004, LE signaling
 * 0x0005, SMP 0x0006), and the LE signaling commands a wearable meets. The HCI driver has already
 * reassembled ACL fragments into whole frames; this layer checks each frame's length against its
 * channel's MTU and hands the payload to the channel's handler. Core 5.4 Vol 3 Part A 3.1, 4.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import { toHex } from '../util/bytes.js';
import { ACL_TX_HEADROOM, allocTx, claimHeadroom } from '../hci/acl-tx.js';
import {
  CreditBasedResult,
  LE_SIGNALING_MTU,
  RejectReason,
  decodeSignaling,
  encodeSignaling,
  formatSignaling,
  type SignalingPdu,
} from './signaling-pdu.js';
import {
  checkAppleConnectionParameters,
  formatConnectionParameters,
  isValidConnectionParameters,
  type ConnectionParameters,
} from './conn-params.js';

/** Fixed channel identifiers on LE. Core 5.4 Vol 3 Part A 2.1. */
export const FixedCid = {
  Att: 0x0004,
  LeSignaling: 0x0005,
  Smp: 0x0006,
} as const;

/** The basic-mode header: Length (2 octets) and Channel ID (2 octets). Core 5.4 Vol 3 Part A 3.1. */
export const L2CAP_BASIC_HEADER = 4;

/** Room an upper layer leaves in front of a PDU for the headers below it: H:4 type byte, ACL header, L2CAP basic header. */
export const FIXED_CHANNEL_TX_HEADROOM = ACL_TX_HEADROOM + L2CAP_BASIC_HEADER;

/**
 * A buffer for one PDU of `length` bytes to send with {@link L2capConnection.sendFixed}, with room
 * in front for the L2CAP, ACL and H:4 headers, so the PDU is never copied on its way to the
 * transport. Write the PDU into it, then hand it over once; do not write to it afterwards.
 */
export function allocFixedChannelPdu(length: number): Uint8Array {
  return allocTx(FIXED_CHANNEL_TX_HEADROOM, length);
}

/** SMP's MTU on LE Secure Connections. Core 5.4 Vol 3 Part H 3.2. */
export const SMP_MTU = 65;

/** Signaling request timeout (RTX), within the spec's 1..60 s. Core 5.4 Vol 3 Part A 6.2.1. */
export const SIGNALING_RTX_MS = 30_000;

export interface L2capLower {
  /** Sends one complete L2CAP frame on this connection; resolves when handed to the controller. */
  send(frame: Uint8Array): Promise<void>;
}

export type ParameterUpdateOutcome = 'accepted' | 'rejected' | 'timeout' | 'disconnected';

export type L2capEvents = {
  /** Our Connection Parameter Update Request was answered (or not). */
  parameterUpdateResult: [{ params: ConnectionParameters; outcome: ParameterUpdateOutcome }];
  /** The peer (a peripheral) asked us, as central, for new parameters. */
  parameterUpdateRequested: [{ params: ConnectionParameters; accepted: boolean }];
  /** A frame was dropped; `reason` says why. */
  frameDropped: [{ cid: number; reason: string; length: number }];
  /** Every signaling command received (decoded), for the timeline. */
  signaling: [SignalingPdu];
};

export interface L2capOptions {
  handle: number;
  role: 'central' | 'peripheral';
  lower: L2capLower;
  clock: Clock;
  log: Logger;
  /** Largest ATT PDU accepted: the server's/client's maximum ATT_MTU (default 517). */
  attMtu?: number;
  /**
   * Central only: decides on a peripheral's parameter request and applies it (HCI LE Connection
   * Update). Default: accept valid parameters without applying them.
   */
  onParameterUpdateRequest?: (params: ConnectionParameters) => Promise<boolean>;
}

type Handler = (payload: Uint8Array) => void;

export class L2capConnection extends TypedEmitter<L2capEvents> {
  readonly handle: number;
  readonly role: 'central' | 'peripheral';
  private readonly lower: L2capLower;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly attMtu: number;
  private readonly onParamRequest: ((p: ConnectionParameters) => Promise<boolean>) | undefined;
  private readonly handlers = new Map<number, Handler>();
  private nextIdentifier = 1;
  private pendingUpdate: { identifier: number; params: ConnectionParameters; timer: TimerHandle; resolve: (o: ParameterUpdateOutcome) => void } | undefined;
  private closed = false;

  constructor(opts: L2capOptions) {
    super();
    this.handle = opts.handle;
    this.role = opts.role;
    this.lower = opts.lower;
    this.clock = opts.clock;
    this.log = opts.log;
    this.attMtu = opts.attMtu ?? 517;
    this.onParamRequest = opts.onParameterUpdateRequest;
  }

  /** Routes payloads received on a fixed channel (ATT or SMP) to `handler`. */
  setHandler(cid: number, handler: Handler): void {
    this.handlers.set(cid, handler);
  }

  /**
   * Sends `payload` on a fixed channel in one basic-mode frame; resolves when handed to the
   * controller. A payload from {@link allocFixedChannelPdu} gets its header written in front of it
   * (no copy) and belongs to L2CAP from then on: do not modify it. Any other payload is copied
   * before this returns, into a frame with room for the ACL and H:4 headers; the caller may reuse it.
   */
  sendFixed(cid: number, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`connection 0x${this.handle.toString(16)} is closed`));
    const len = payload.length;
    let frame = claimHeadroom(payload, L2CAP_BASIC_HEADER);
    if (!frame) {
      frame = allocTx(ACL_TX_HEADROOM, L2CAP_BASIC_HEADER + len);
      frame.set(payload, L2CAP_BASIC_HEADER);
    }
    frame[0] = len & 0xff;
    frame[1] = len >> 8;
    frame[2] = cid & 0xff;
    frame[3] = cid >> 8;
    return this.lower.send(frame);
  }

  /** A complete L2CAP frame from the HCI driver. Never throws. */
  onFrame(frame: Uint8Array): void {
    if (this.closed) return;
    if (frame.length < 4) {
      this.drop(0, `frame of ${frame.length} bytes has no basic header`, frame.length);
      return;
    }
    const len = (frame[0] as number) | ((frame[1] as number) << 8);
    const cid = (frame[2] as number) | ((frame[3] as number) << 8);
    if (frame.length - 4 !== len) {
      this.drop(cid, `length field ${len}, ${frame.length - 4} bytes present`, frame.length);
      return;
    }
    const payload = frame.subarray(4);
    switch (cid) {
      case FixedCid.LeSignaling:
        this.onSignaling(payload);
        return;
      case FixedCid.Att:
        if (len > this.attMtu) {
          this.drop(cid, `ATT PDU of ${len} bytes exceeds the maximum ATT_MTU ${this.attMtu}`, len);
          return;
        }
        break;
      case FixedCid.Smp:
        if (len > SMP_MTU) {
          this.drop(cid, `SMP PDU of ${len} bytes exceeds the SMP MTU ${SMP_MTU}`, len);
          return;
        }
        break;
      default:
        break;
    }
    const h = this.handlers.get(cid);
    if (!h) {
      this.drop(cid, 'no channel with this CID', len);
      return;
    }
    try {
      h(payload);
    } catch (err) {
      this.log.error({ err, handle: this.handle, cid }, 'L2CAP channel handler threw; frame dropped');
    }
  }

  /**
   * Peripheral: asks the central for new connection parameters (Connection Parameter Update
   * Request, Core 5.4 Vol 3 Part A 4.20). Resolves with the outcome; logs it.
   */
  requestParameterUpdate(params: ConnectionParameters): Promise<ParameterUpdateOutcome> {
    if (this.pendingUpdate) return Promise.resolve('rejected');
    const violations = checkAppleConnectionParameters(params);
    if (violations.length > 0) {
      this.log.warn({ handle: this.handle, violations }, 'requested connection parameters break Apple accessory rules; iOS may reject them');
    }
    const identifier = this.allocIdentifier();
    return new Promise<ParameterUpdateOutcome>((resolve) => {
      const timer = this.clock.setTimeout(() => this.finishUpdate('timeout'), SIGNALING_RTX_MS);
      this.pendingUpdate = { identifier, params, timer, resolve };
      this.sendSignaling({ type: 'connectionParameterUpdateRequest', identifier, ...params });
    });
  }

  /** The connection is gone: pending procedures end, nothing more is sent. */
  close(): void {
    if (this.closed) return;
    this.finishUpdate('disconnected');
    this.closed = true;
    this.handlers.clear();
  }

  private finishUpdate(outcome: ParameterUpdateOutcome): void {
    const p = this.pendingUpdate;
    if (!p) return;
    this.pendingUpdate = undefined;
    this.clock.clearTimeout(p.timer);
    const level = outcome === 'accepted' ? 'info' : 'warn';
    this.log[level]({ handle: this.handle, outcome }, `connection parameter update (${formatConnectionParameters(p.params)}): ${outcome}`);
    this.emit('parameterUpdateResult', { params: p.params, outcome });
    p.resolve(outcome);
  }

  private allocIdentifier(): number {
    const id = this.nextIdentifier;
    this.nextIdentifier = id >= 255 ? 1 : id + 1;
    return id;
  }

  private drop(cid: number, reason: string, length: number): void {
    this.log.warn({ handle: this.handle, cid, length }, `L2CAP frame dropped: ${reason}`);
    this.emit('frameDropped', { cid, reason, length });
  }

  private sendSignaling(pdu: SignalingPdu): void {
    this.log.debug({ handle: this.handle, pdu: formatSignaling(pdu) }, 'L2CAP signaling sent');
    this.sendFixed(FixedCid.LeSignaling, encodeSignaling(pdu)).catch((err: unknown) => {
      this.log.debug({ err, handle: this.handle }, 'signaling send failed (link gone?)');
    });
  }

  private reject(identifier: number, reason: number, data: Uint8Array = new Uint8Array(0)): void {
    this.sendSignaling({ type: 'commandReject', identifier, reason, data });
  }

  private onSignaling(payload: Uint8Array): void {
    if (payload.length > LE_SIGNALING_MTU) {
      // Core 5.4 Vol 3 Part A 4.1: Command Reject with the signaling MTU as data.
      const id = payload[1] ?? 0;
      this.reject(id, RejectReason.SignalingMtuExceeded, new Uint8Array([LE_SIGNALING_MTU, 0]));
      return;
    }
    const d = decodeSignaling(payload);
    if (!d.ok) {
      this.log.debug({ handle: this.handle, bytes: toHex(payload), detail: d.detail }, 'L2CAP signaling not understood');
      // A response or reject we cannot parse is dropped; an unknown or malformed request is rejected.
      if (d.identifier !== 0 && !isResponseCode(d.code)) this.reject(d.identifier, RejectReason.CommandNotUnderstood);
      return;
    }
    const pdu = d.pdu;
    this.log.debug({ handle: this.handle, pdu: formatSignaling(pdu) }, 'L2CAP signaling received');
    this.emit('signaling', pdu);
    if (pdu.identifier === 0) return; // Identifier 0x00 is never valid. Core 5.4 Vol 3 Part A 4.
    switch (pdu.type) {
      case 'connectionParameterUpdateResponse': {
        const p = this.pendingUpdate;
        if (p && p.identifier === pdu.identifier) this.finishUpdate(pdu.result === 0 ? 'accepted' : 'rejected');
        return;
      }
      case 'connectionParameterUpdateRequest':
        this.onParameterRequest(pdu);
        return;
      case 'leCreditBasedConnectionRequest':
        // We offer no L2CAP CoC: refuse with "SPSM not supported" rather than ignore. Core 5.4 Vol 3 Part A 4.23.
        this.sendSignaling({
          type: 'leCreditBasedConnectionResponse',
          identifier: pdu.identifier,
          destinationCid: 0,
          mtu: 0,
          mps: 0,
          initialCredits: 0,
          result: CreditBasedResult.SpsmNotSupported,
        });
        return;
      case 'creditBasedConnectionRequest':
        this.sendSignaling({
          type: 'creditBasedConnectionResponse',
          identifier: pdu.identifier,
          mtu: 0,
          mps: 0,
          initialCredits: 0,
          result: CreditBasedResult.SpsmNotSupported,
          destinationCids: pdu.sourceCids.map(() => 0),
        });
        return;
      case 'disconnectionRequest':
        // No dynamic channels exist: Invalid CID in request, data = the CIDs. Core 5.4 Vol 3 Part A 4.1.
        this.reject(pdu.identifier, RejectReason.InvalidCidInRequest, new Uint8Array([pdu.destinationCid & 0xff, pdu.destinationCid >> 8, pdu.sourceCid & 0xff, pdu.sourceCid >> 8]));
        return;
      case 'flowControlCredit':
        // Credits for a channel that does not exist: ignored. Core 5.4 Vol 3 Part A 4.24.
        return;
      case 'commandReject':
        if (this.pendingUpdate && this.pendingUpdate.identifier === pdu.identifier) this.finishUpdate('rejected');
        return;
      default:
        return; // Unsolicited responses are ignored.
    }
  }

  private onParameterRequest(pdu: Extract<SignalingPdu, { type: 'connectionParameterUpdateRequest' }>): void {
    if (this.role !== 'central') {
      // Only the central may answer this request. Core 5.4 Vol 3 Part A 4.20.
      this.reject(pdu.identifier, RejectReason.CommandNotUnderstood);
      return;
    }
    const params: ConnectionParameters = { intervalMin: pdu.intervalMin, intervalMax: pdu.intervalMax, latency: pdu.latency, timeout: pdu.timeout };
    const respond = (accepted: boolean): void => {
      this.sendSignaling({ type: 'connectionParameterUpdateResponse', identifier: pdu.identifier, result: accepted ? 0 : 1 });
      this.emit('parameterUpdateRequested', { params, accepted });
    };
    if (!isValidConnectionParameters(params)) {
      respond(false);
      return;
    }
    const decide = this.onParamRequest ?? (() => Promise.resolve(true));
    decide(params).then(respond, (err: unknown) => {
      this.log.warn({ err, handle: this.handle }, 'applying the peer parameter request failed');
      respond(false);
    });
  }
}

function isResponseCode(code: number): boolean {
  return code === 0x01 || code === 0x07 || code === 0x13 || code === 0x15 || code === 0x18 || code === 0x1a;
}
