/**
 * Link encryption on the virtual air (Core 5.4 Vol 6 Part B 5.1.3): the central's LE Enable
 * Encryption, the peripheral host's LTK request and its replies, what a wrong key does (MIC
 * failure), encryption pause and refresh, and the key size the link really has, read from the
 * SMP Pairing Request / Response in clear on the link.
 */
import { HciStatus } from '../../hci/status.js';
import { bytesEqual } from '../../util/bytes.js';
import { ConnectionEvents, type LinkEnd } from './link.js';

interface EncryptionProcedure {
  ltk: Uint8Array;
  rand: bigint;
  ediv: number;
  refresh: boolean;
  stage: 'queued' | 'wait-host' | 'replied';
}

/** A connection that can be encrypted; {@link AirConnection} adds the other LL procedures. */
export abstract class EncryptedLink extends ConnectionEvents {
  /**
   * Size in octets of the key the link is encrypted with (Read Encryption Key Size, Encryption
   * Change v2); 0 while unencrypted. See {@link VirtualAir.keySizeOf}.
   */
  keySize = 0;
  /** Largest key sizes of the SMP Pairing Request / Response seen on this link (Core 5.4 Vol 3 Part H 3.5.1, 3.5.2). */
  private pairingKeySizes: { request?: number; response?: number } = {};
  private enc: EncryptionProcedure | undefined;

  /**
   * The simulation's view of the key size the two hosts negotiate: the Maximum Encryption Key Size
   * octet of a Pairing Request (0x01) or Pairing Response (0x02) in clear on the SMP channel
   * (L2CAP CID 0x0006). A controller cannot read it (the host shortens an LE key by masking it,
   * Core 5.4 Vol 3 Part H 2.3.4); the virtual air can, so Read Encryption Key Size reports the
   * size the link really has and short-key handling can be tested end to end.
   */
  protected noteHostFrame(frame: Uint8Array): void {
    // Basic L2CAP header (length, CID 0x0006), SMP code, IO, OOB, AuthReq, Maximum Encryption Key Size.
    if (frame.length < 9 || frame[2] !== 0x06 || frame[3] !== 0x00) return;
    const code = frame[4];
    const size = frame[8] as number;
    if (code === 0x01) this.pairingKeySizes = { request: size };
    else if (code === 0x02) this.pairingKeySizes = { ...this.pairingKeySizes, response: size };
  }

  /**
   * The peripheral's LL receives the central's LL_START_ENC_RSP, the first encrypted PDU, and its
   * MIC check fails: it leaves the connection without a LL_TERMINATE_IND (Core 5.4 Vol 6 Part B
   * 5.1.3.1). With a `receiver-only` firmware the central hears nothing more and reports Connection
   * Timeout (0x08) once the supervision timeout has passed; with `both` the two hosts get 0x3D.
   */
  private micFailure(): void {
    const p = this.peripheral;
    if (p.ctrl.firmware.micFailure === 'both') {
      this.closeWith(HciStatus.ConnectionTerminatedMicFailure, HciStatus.ConnectionTerminatedMicFailure);
      return;
    }
    const n = p.flush();
    p.lost = true;
    p.ctrl.buffersFlushed(n);
    p.ctrl.removeLink(p.handle);
    p.ctrl.emit('DisconnectionComplete', { status: HciStatus.Success, handle: p.handle, reason: HciStatus.ConnectionTerminatedMicFailure });
    this.stopResponseTimer();
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.lossTimer = this.clock.setTimeout(() => {
      this.lossTimer = undefined;
      this.closeWith(HciStatus.ConnectionTimeout, HciStatus.ConnectionTimeout);
    }, this.timeout * 10);
  }

  /** Central's LE Enable Encryption. Returns the Command Status code. */
  startEncryption(end: LinkEnd, ltk: Uint8Array, rand: bigint, ediv: number): number {
    if (end.role !== 'central') return HciStatus.CommandDisallowed;
    if (this.enc || this.terminating || this.closed) return HciStatus.CommandDisallowed;
    const enc: EncryptionProcedure = { ltk, rand, ediv, refresh: this.encrypted, stage: 'queued' };
    this.enc = enc;
    this.enqueueProc(() => {
      // Data stops while LL_ENC_REQ / LL_PAUSE_ENC_REQ and the responses are exchanged.
      this.paused = true;
      this.atEvent(1, () => {
        const p = this.peripheral;
        enc.stage = 'wait-host';
        if (p.ctrl.wants('LeLongTermKeyRequest')) {
          p.ctrl.emit('LeLongTermKeyRequest', { handle: p.handle, rand, ediv });
          this.startResponseTimer();
        } else {
          // Event masked: the LL answers as a negative reply would (Zephyr hci.c le_ltk_request).
          this.ltkAnswer(undefined);
        }
      });
    });
    return HciStatus.Success;
  }

  /** Peripheral host's LTK Request Reply (`ltk`) or Negative Reply (undefined). Returns the Command Complete status. */
  ltkReply(end: LinkEnd, ltk: Uint8Array | undefined): number {
    if (end.role !== 'peripheral' || !this.enc || this.enc.stage !== 'wait-host' || this.closed) return HciStatus.CommandDisallowed;
    this.ltkAnswer(ltk);
    return HciStatus.Success;
  }

  private ltkAnswer(ltk: Uint8Array | undefined): void {
    const enc = this.enc;
    if (!enc) return;
    enc.stage = 'replied';
    this.stopResponseTimer();
    this.atEvent(1, () => {
      this.enc = undefined;
      const c = this.central;
      const p = this.peripheral;
      if (ltk === undefined) {
        if (enc.refresh) {
          // Encryption paused and no key: the link cannot go back to clear text; it ends with
          // PIN or Key Missing (Zephyr ull_conn.c ll_start_enc_req_send on refresh).
          this.closeWith(HciStatus.PinOrKeyMissing, HciStatus.PinOrKeyMissing);
          return;
        }
        // LL_REJECT_EXT_IND(PIN or Key Missing): the central's host learns it; the link stays up.
        this.paused = false;
        c.ctrl.encryptionChanged(c.handle, HciStatus.PinOrKeyMissing, false);
        this.procDone();
        this.kick();
        return;
      }
      if (!bytesEqual(ltk, enc.ltk)) {
        // Session keys differ: the first encrypted PDU fails its MIC check. Core 5.4 Vol 6 Part B 5.1.3.1.
        this.micFailure();
        return;
      }
      const k = this.pairingKeySizes;
      if (k.request !== undefined && k.response !== undefined) {
        // Encryption right after a pairing on this link: the negotiated size, remembered for the key.
        this.air.rememberKeySize(enc.ltk, Math.min(k.request, k.response));
        this.pairingKeySizes = {};
      }
      this.keySize = this.air.keySizeOf(enc.ltk);
      this.encrypted = true;
      this.paused = false;
      for (const s of [c, p]) {
        if (enc.refresh) s.ctrl.emit('EncryptionKeyRefreshComplete', { status: HciStatus.Success, handle: s.handle });
        else s.ctrl.encryptionChanged(s.handle, HciStatus.Success, true);
      }
      this.procDone();
      this.kick();
    });
  }
}
