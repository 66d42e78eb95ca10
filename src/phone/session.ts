/**
 * One connection of a simulated phone to the accessory, with the phone's reactions as its
 * {@link PhoneProfile} sets them: encrypting with the stored key on connect, SMP taps (Security
 * Requests honoured or ignored, the consent prompt held before the DHKey Check, what Cancel sends),
 * what happens when the accessory refused the stored key, LE legacy-only pairing, and GATT
 * operations that secure the link and retry once after an ATT security error.
 * Core 5.4 Vol 3 Part H 2.3.5.6 (LE Secure Connections phases), 3.5.5 (Pairing Failed),
 * Vol 3 Part F 3.4.1.1 (ATT error codes).
 */
import type { CentralLink } from '../central/link.js';
import type { RemoteDatabase, CharacteristicView } from '../gatt/client.js';
import { HciStatus, hciStatusName } from '../hci/status.js';
import { AuthReq, KeyDist, SmpReason, decodeSmp, encodeSmp, smpReasonName, type SmpPdu } from '../smp/pdu.js';
import { SmpError } from '../smp/errors.js';
import { AttError } from '../att/types.js';
import { attErrorName } from '../att/pdu.js';
import { AttBearerError } from '../att/types.js';
import type { UuidLike } from '../gatt/uuid.js';
import type { TimerHandle } from '../util/clock.js';
import type { PhoneProfile } from './profiles.js';
import type { PromptAnswer } from './events.js';
import { PhoneError } from './errors.js';
import type { SimulatedPhone } from './phone.js';

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** One connection of the phone to the accessory, with the phone's security reactions. */
export class PhoneSession {
  readonly link: CentralLink;
  remote: RemoteDatabase | undefined;
  /** Notification values by value handle, in arrival order. */
  readonly notifications = new Map<number, Uint8Array[]>();
  private encryptionWaiters: ((status: number) => void)[] = [];
  private encrypting: Promise<number> | undefined;
  /** The accessory refused our stored key on this connection. */
  private bondRefused = false;
  private givenUp: PhoneError | undefined;
  private closed: { reason: number; name: string } | undefined;
  private closeWaiters: (() => void)[] = [];
  private heldCheck: Uint8Array | undefined;
  private cancelPairing: ((e: PhoneError) => void) | undefined;
  private legacyWaiter: ((pdu: SmpPdu) => void) | undefined;
  private legacyTimer: TimerHandle | undefined;

  constructor(
    readonly phone: SimulatedPhone,
    link: CentralLink,
    private readonly legacyOnly: boolean,
  ) {
    this.link = link;
    link.gatt.on('notification', (handle, value) => {
      let l = this.notifications.get(handle);
      if (!l) this.notifications.set(handle, (l = []));
      l.push(value);
      this.phone.record({ kind: 'notification', handle, length: value.length });
    });
  }

  private get profile(): PhoneProfile {
    return this.phone.profile;
  }

  get open(): boolean {
    return this.closed === undefined && this.link.open;
  }

  /** Resolves when the link is down. */
  whenClosed(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  // ------------------------------------------------------------------ link events

  /** @internal */
  async afterConnect(): Promise<void> {
    const bond = this.phone.bonds.resolve(this.link.peer);
    if (bond && this.profile.encryptsBondedLinkOnConnect) {
      this.phone.record({ kind: 'encrypt-with-bond', why: 'connect' });
      const p = this.encryptWithBond();
      // The reaction to a refused key happens at once (iOS disconnects), not at the next request.
      p.then((status) => {
        if (status !== 0) this.onBondRefused(status);
      }, () => undefined);
    }
    const asked = this.profile.mtu;
    try {
      const mtu = await this.link.gatt.exchangeMtu();
      this.phone.record({ kind: 'mtu', asked, mtu });
    } catch (err) {
      if (!this.open) throw this.closedError();
      throw err;
    }
  }

  /** @internal */
  onEncryptionChanged(status: number, enabled: boolean): void {
    this.phone.record({ kind: 'encryption', side: 'phone', status, enabled });
    const w = this.encryptionWaiters;
    this.encryptionWaiters = [];
    for (const f of w) f(status);
  }

  /** @internal */
  onDisconnected(reason: number, name: string): void {
    this.closed = { reason, name };
    this.phone.clearTimer(this.legacyTimer);
    this.phone.record({ kind: 'disconnected', reason, reasonName: name });
    for (const f of this.encryptionWaiters) f(HciStatus.ConnectionTerminatedByLocalHost);
    this.encryptionWaiters = [];
    this.cancelPairing?.(this.closedError());
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }

  private closedError(): PhoneError {
    if (this.givenUp) return this.givenUp;
    const c = this.closed;
    return new PhoneError('disconnected', `the accessory is not connected${c ? ` (${hciStatusName(c.reason)})` : ''}`, c?.reason);
  }

  // ------------------------------------------------------------------ SMP taps

  /** @internal an SMP PDU from the accessory; false keeps it from our SMP session. */
  onSmpIn(bytes: Uint8Array): boolean {
    const d = decodeSmp(bytes);
    if (!d.ok) return true;
    const pdu = d.pdu;
    if (pdu.type === 'securityRequest' && !this.profile.honoursSecurityRequest) {
      this.recordSmp('wearable', pdu, true);
      this.phone.record({ kind: 'note', text: `${this.profile.label} ignores the Security Request (honoursSecurityRequest=false)` });
      return false;
    }
    if (pdu.type === 'securityRequest' && this.encrypting) {
      // Already encrypting with the stored key: nothing more to do (AOSP ignores a Security Request while busy).
      this.recordSmp('wearable', pdu, true);
      return false;
    }
    this.recordSmp('wearable', pdu);
    if (this.legacyWaiter && (pdu.type === 'pairingResponse' || pdu.type === 'pairingFailed')) {
      const w = this.legacyWaiter;
      this.legacyWaiter = undefined;
      w(pdu);
      return false;
    }
    if (pdu.type === 'securityRequest' && this.phone.bonds.resolve(this.link.peer) && !this.link.security.encrypted) {
      this.phone.record({ kind: 'encrypt-with-bond', why: 'security-request' });
    }
    return true;
  }

  /** @internal an SMP PDU our session sends; undefined holds it (the consent prompt). */
  onSmpOut(bytes: Uint8Array): Uint8Array | undefined {
    const d = decodeSmp(bytes);
    if (!d.ok) return bytes;
    const pdu = d.pdu;
    if (pdu.type === 'pairingDhKeyCheck' && this.link.smp.model === 'justWorks' && this.profile.promptPlacement === 'before-dhkey-check') {
      this.heldCheck = bytes;
      void this.phone.askUser().then((answer) => this.onPromptAnswer(answer));
      return undefined;
    }
    this.recordSmp('phone', pdu);
    return bytes;
  }

  private onPromptAnswer(answer: PromptAnswer): void {
    const held = this.heldCheck;
    this.heldCheck = undefined;
    if (!held || !this.open) return;
    if (answer === 'accept') {
      const d = decodeSmp(held);
      if (d.ok) this.recordSmp('phone', d.pdu);
      this.link.sendSmp(held);
      return;
    }
    // Cancel: the phone ends the pairing with its Pairing Failed reason.
    const reason = this.profile.cancelReason;
    const pdu: SmpPdu = { type: 'pairingFailed', reason };
    this.recordSmp('phone', pdu);
    this.link.sendSmp(encodeSmp(pdu));
    this.cancelPairing?.(new PhoneError('pairing-cancelled', `the user cancelled pairing; ${this.profile.label} sent Pairing Failed ${hex2(reason)} (${smpReasonName(reason)})`, reason));
  }

  private recordSmp(from: 'phone' | 'wearable', pdu: SmpPdu, ignored = false): void {
    const base = { kind: 'smp' as const, from, pdu: pdu.type, ...(ignored ? { ignored } : {}) };
    switch (pdu.type) {
      case 'pairingRequest':
      case 'pairingResponse':
        this.phone.record({ ...base, authReq: pdu.authReq, ioCapability: pdu.ioCapability, initiatorKeyDist: pdu.initiatorKeyDist, responderKeyDist: pdu.responderKeyDist });
        return;
      case 'securityRequest':
        this.phone.record({ ...base, authReq: pdu.authReq });
        return;
      case 'pairingFailed':
        this.phone.record({ ...base, reason: pdu.reason });
        return;
      default:
        this.phone.record(base);
    }
  }

  // ------------------------------------------------------------------ security

  /** Starts encryption with the stored key and resolves with the Encryption Change status. */
  private encryptWithBond(): Promise<number> {
    if (this.encrypting) return this.encrypting;
    const p = new Promise<number>((resolve) => {
      this.encryptionWaiters.push(resolve);
      if (!this.link.smp.encryptWithBond()) {
        this.encryptionWaiters = this.encryptionWaiters.filter((f) => f !== resolve);
        resolve(HciStatus.PinOrKeyMissing);
      }
    });
    this.encrypting = p;
    void p.then(() => {
      if (this.encrypting === p) this.encrypting = undefined;
    });
    return p;
  }

  /** The accessory refused our key: the profile's reaction. */
  private onBondRefused(status: number): void {
    if (this.bondRefused || !this.open) return;
    this.bondRefused = true;
    if (this.profile.lostBond === 'give-up') {
      this.givenUp = new PhoneError(
        'peer-removed-pairing',
        `"${this.profile.lostBondMessage}" (encryption with the stored key failed: ${hciStatusName(status)}). The accessory no longer has the keys this phone stored; ${this.profile.label} will not pair again until the user removes the device on the phone (Settings > Bluetooth > (i) > Forget This Device).`,
        status,
      );
      this.phone.record({ kind: 'phone-error', message: this.givenUp.message });
      void this.link.disconnect(HciStatus.RemoteUserTerminatedConnection);
      return;
    }
    this.phone.record({ kind: 'phone-error', message: `${this.profile.lostBondMessage} (encryption with the stored key failed: ${hciStatusName(status)})` });
  }

  /**
   * Makes the link secure after the accessory refused a request with `code`: wait for (or start)
   * encryption with the stored key, else pair. Returns true when the request should be retried.
   */
  private async secure(code: number): Promise<boolean> {
    if (this.givenUp) throw this.givenUp;
    if (this.link.security.encrypted) return false;
    if (this.encrypting) {
      const st = await this.encrypting;
      if (st === 0) return true;
      this.onBondRefused(st);
      if (this.givenUp) throw this.givenUp;
    }
    const bond = this.phone.bonds.resolve(this.link.peer);
    if (bond && !this.bondRefused) {
      this.phone.record({ kind: 'encrypt-with-bond', why: 'att-error' });
      const st = await this.encryptWithBond();
      if (st === 0) return true;
      this.onBondRefused(st);
      if (this.givenUp) throw this.givenUp;
    }
    this.phone.record({ kind: 'note', text: `${this.profile.label} pairs after ATT error ${hex2(code)} (${attErrorName(code)})` });
    await this.pair();
    return true;
  }

  /** Pairs (LE Secure Connections, or a legacy request for a legacy-only central). */
  async pair(): Promise<void> {
    if (!this.open) throw this.closedError();
    if (this.legacyOnly) return this.legacyPair();
    const cancelled = new Promise<never>((_resolve, reject) => {
      this.cancelPairing = reject;
    });
    const paired = this.link.smp.pair();
    paired.catch(() => undefined);
    cancelled.catch(() => undefined);
    try {
      await Promise.race([paired, cancelled]);
    } catch (err) {
      if (err instanceof PhoneError) throw err;
      if (!this.open) throw this.closedError();
      if (err instanceof SmpError) {
        const what = err.reason === undefined ? 'the SMP timeout expired (no answer)' : `Pairing Failed ${hex2(err.reason)} (${smpReasonName(err.reason)})`;
        throw new PhoneError('pairing-failed', `pairing failed: ${what}`, err.reason);
      }
      throw err;
    } finally {
      this.cancelPairing = undefined;
    }
  }

  /** An LE legacy Pairing Request (no SC bit); a legacy-only phone can go no further with a LESC-only accessory. */
  private async legacyPair(): Promise<void> {
    const f = this.profile.pairingRequest;
    const pdu: SmpPdu = {
      type: 'pairingRequest',
      ioCapability: f.ioCapability,
      oobDataFlag: 0,
      authReq: f.authReq & ~(AuthReq.SecureConnections | AuthReq.Ct2 | AuthReq.Keypress),
      maxKeySize: f.maxKeySize,
      initiatorKeyDist: f.initiatorKeyDist & (KeyDist.EncKey | KeyDist.IdKey | KeyDist.SignKey),
      responderKeyDist: f.responderKeyDist & (KeyDist.EncKey | KeyDist.IdKey | KeyDist.SignKey),
    };
    const answer = new Promise<SmpPdu | undefined>((resolve) => {
      this.legacyWaiter = resolve;
      this.legacyTimer = this.phone.clock.setTimeout(() => resolve(undefined), 30_000);
    });
    this.recordSmp('phone', pdu);
    this.link.sendSmp(encodeSmp(pdu));
    const rsp = await answer;
    this.phone.clearTimer(this.legacyTimer);
    this.legacyWaiter = undefined;
    if (!rsp) throw new PhoneError('pairing-failed', 'pairing failed: no answer to the legacy Pairing Request within 30 s');
    if (rsp.type === 'pairingFailed') throw new PhoneError('pairing-failed', `pairing failed: the accessory sent Pairing Failed ${hex2(rsp.reason)} (${smpReasonName(rsp.reason)})`, rsp.reason);
    const stop: SmpPdu = { type: 'pairingFailed', reason: SmpReason.PairingNotSupported };
    this.recordSmp('phone', stop);
    this.link.sendSmp(encodeSmp(stop));
    throw new PhoneError('pairing-failed', 'the accessory accepted LE legacy pairing; this simulated legacy central stops after the Pairing Response');
  }

  // ------------------------------------------------------------------ GATT with the phone's reactions

  /** Runs a GATT operation; on an ATT error the profile reacts to, secures the link and retries once. */
  private async withSecurity<T>(op: 'read' | 'write' | 'subscribe', handle: number, fn: () => Promise<T>): Promise<T> {
    if (this.givenUp) throw this.givenUp;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof AttBearerError) throw this.open ? new PhoneError('att', err.message) : this.closedError();
        if (!(err instanceof AttError)) throw err;
        this.phone.record({ kind: 'att-error', op, handle: err.handle || handle, code: err.code });
        if (attempt > 0 || !this.profile.pairsOnAttErrors.includes(err.code)) {
          throw new PhoneError('att', `${op} of handle 0x${handle.toString(16).padStart(4, '0')} failed: ATT error ${hex2(err.code)} (${attErrorName(err.code)})`, err.code);
        }
        if (!(await this.secure(err.code))) {
          throw new PhoneError('att', `${op} of handle 0x${handle.toString(16).padStart(4, '0')} failed on an encrypted link: ATT error ${hex2(err.code)} (${attErrorName(err.code)})`, err.code);
        }
      }
    }
  }

  /** Discovers the database, or uses the cached one of a bonded accessory (GATT caching). */
  async discover(): Promise<RemoteDatabase> {
    if (this.givenUp) throw this.givenUp;
    const cached = this.phone.cachedDatabase(this.link.peerIdentity ?? this.phone.bonds.resolve(this.link.peer)?.peer);
    if (cached) {
      this.remote = cached;
      this.phone.record({ kind: 'discovered', services: cached.services.length, characteristics: cached.services.reduce((n, s) => n + s.characteristics.length, 0), cached: true });
      return cached;
    }
    let db: RemoteDatabase;
    try {
      db = await this.link.gatt.discoverAll();
    } catch (err) {
      if (!this.open) throw this.closedError();
      throw err;
    }
    this.remote = db;
    this.phone.rememberDatabase(this.link.peerIdentity, db);
    this.phone.record({ kind: 'discovered', services: db.services.length, characteristics: db.services.reduce((n, s) => n + s.characteristics.length, 0), cached: false });
    return db;
  }

  private char(uuid: UuidLike): CharacteristicView {
    const c = this.remote?.characteristic(uuid);
    if (!c) throw new PhoneError('att', `characteristic ${String(uuid)} not found: discover() first, or the accessory does not have it`);
    return c;
  }

  async read(uuid: UuidLike): Promise<Uint8Array> {
    const c = this.char(uuid);
    const v = await this.withSecurity('read', c.valueHandle, () => this.link.gatt.read(c.valueHandle));
    this.phone.record({ kind: 'gatt', op: 'read', handle: c.valueHandle, what: c.uuid.toString(), length: v.length });
    return v;
  }

  async write(uuid: UuidLike, value: Uint8Array): Promise<void> {
    const c = this.char(uuid);
    await this.withSecurity('write', c.valueHandle, () => this.link.gatt.write(c.valueHandle, value));
    this.phone.record({ kind: 'gatt', op: 'write', handle: c.valueHandle, what: c.uuid.toString(), length: value.length });
  }

  async subscribe(uuid: UuidLike, kind: 'notify' | 'indicate' = 'notify'): Promise<CharacteristicView> {
    const c = this.char(uuid);
    await this.withSecurity('subscribe', c.valueHandle, () => this.link.gatt.subscribe(c, kind));
    this.phone.record({ kind: 'gatt', op: 'subscribe', handle: c.valueHandle, what: c.uuid.toString() });
    return c;
  }

  /** Notifications received for a characteristic so far. */
  received(uuid: UuidLike): Uint8Array[] {
    const c = this.remote?.characteristic(uuid);
    return c ? (this.notifications.get(c.valueHandle) ?? []) : [];
  }

  async disconnect(): Promise<void> {
    if (!this.open) return;
    await this.link.disconnect();
  }
}
