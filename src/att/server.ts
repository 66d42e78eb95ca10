/**
 * The ATT server of one connection, serving a {@link GattDatabase}: discovery (Find Information,
 * Find By Type Value, Read By Group Type, Read By Type), reads (Read, Read Blob, Read Multiple,
 * Read Multiple Variable Length), writes (Write Request/Command, Signed Write Command, Prepare and
 * Execute Write), notifications and indications, with per-attribute permissions, per-connection
 * and per-bond CCCDs, and GATT robust caching.
 *
 * Make one per connection: `new AttServer({ db, lower, clock, log, bonds, mtu })`, feed it
 * `onPdu`, `onSecurityChanged` and `onDisconnected`.
 *
 * Permission checks (Core 5.4 Vol 3 Part F 3.4.4-3.4.6, Vol 3 Part C 10.2.1), in this order:
 * 1. `notPermitted` -> 0x02 Read Not Permitted / 0x03 Write Not Permitted.
 * 2. A security requirement on an unencrypted link -> 0x05 Insufficient Authentication when no
 *    LTK exists for the peer (the client should pair), 0x0F Insufficient Encryption when one
 *    does (the client should encrypt) (docs/field-notes.md "Error semantics").
 * 3. Encrypted, but `authenticated` needs a MITM key and `secureConnections` an authenticated LE
 *    Secure Connections key -> 0x05.
 * 4. Encrypted with a key shorter than the minimum (16 unless configured; always 16 for
 *    `secureConnections`) -> 0x0C Encryption Key Size Too Short.
 * 5. Authorization required and refused by the application -> 0x08.
 * Every 0x05 and 0x0F sent is reported to `lower.onSecurityRejection`.
 *
 * Written values: a write handler (`onWrite`) gets a view of the received PDU's bytes, valid for
 * the call (until the promise it returns settles): it must not modify it, and copies it if it
 * keeps it. The server copies a value only where it stores it (as the attribute's value when the
 * attribute has no read handler, and for 'written' listeners, who each get their own copy). A
 * Write Command whose checks and handler are synchronous is carried out synchronously: no
 * promise, no closure and no context object per PDU.
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import type { Address } from '../util/address.js';
import { TypedEmitter } from '../util/emitter.js';
import { bytesEqual } from '../util/bytes.js';
import { copyBytes } from '../util/byte-pool.js';
import type { LinkSecurity } from '../smp/link-security.js';
import type { BondRecord, BondStore } from '../bonds/types.js';
import {
  allocateConnectionId,
  CccdBit,
  CharacteristicPropertyBit,
  ClientFeatureBit,
  CLIENT_FEATURES_DEFINED,
  type AccessContext,
  type Attribute,
  type AuthorizeHook,
  type GattConnection,
  type GattDatabase,
} from '../gatt/database.js';
import { GattUuid, Uuid } from '../gatt/uuid.js';
import { AttBearer, type AttRequestHandler } from './bearer.js';
import {
  AttErrorCode,
  AttOpcode,
  attErrorName,
  encodeAttPdu,
  encodeErrorResponse,
  type AttCommand,
  type AttPduOf,
  type AttRequest,
  type GroupData,
  type HandleValue,
  type HandleUuid,
  type HandlesInformation,
  type LengthValue,
} from './pdu.js';
import { signatureCounter, verifySignedWrite } from './signing.js';
import { AttError, type AccessRequirement, type AttBearerCloseReason, type AttLower } from './types.js';

export interface AttServerOptions {
  db: GattDatabase;
  lower: AttLower;
  clock: Clock;
  log?: Logger;
  /** Where CCCDs, Client Supported Features, the last-seen Database Hash and sign counters of bonded clients persist. */
  bonds?: BondStore;
  /** Our receive MTU, 23..517 (default 517). */
  mtu?: number;
  /** Minimum encryption key size for `encrypted`/`authenticated` attributes, 7..16 (default 16). */
  minKeySize?: number;
  /** Prepared writes queued per client before 0x09 Prepare Queue Full (default 64). */
  prepareQueueLimit?: number;
  /** Bytes of prepared values queued per client before 0x09 (default 4096). */
  prepareQueueBytes?: number;
  /** Authorization for attributes that require it and have no hook of their own; without one they are refused (0x08). */
  authorize?: AuthorizeHook;
  /** Transaction timeout (default 30 s). */
  transactionTimeoutMs?: number;
  /** See {@link AttBearer} (default 256). */
  notifyQueueLimit?: number;
}

export type AttServerEvents = {
  /** A client changed (or a bond restored) the CCCD of a characteristic value. */
  subscriptionChanged: [valueHandle: number, cccd: number];
  /** A client wrote an attribute value (after the write handler accepted it). */
  written: [handle: number, value: Uint8Array];
  /** The client became change-aware of the current database. Core 5.4 Vol 3 Part G 2.5.2.1. */
  changeAware: [];
  mtuChanged: [mtu: number];
  /** An indication was not confirmed in 30 s: the bearer is dead; drop the link. */
  timeout: [];
  closed: [reason: AttBearerCloseReason];
};

/** A handler result that has to be awaited (what `await` would wait for). */
function isPromiseLike<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function';
}

function ignoreResult(): void {}

type WriteVia = NonNullable<AccessContext['via']>;
const WRITE_VIA_INDEX: Readonly<Record<WriteVia, number>> = { writeRequest: 0, writeCommand: 1, signedWriteCommand: 2, executeWrite: 3 };

interface PreparedWrite {
  readonly handle: number;
  readonly offset: number;
  readonly value: Uint8Array;
}

/** The link security a verified signed write stands for: the bond's key properties (LE security mode 2, Core 5.4 Vol 3 Part C 10.2.2). */
function signedSecurity(bond: BondRecord): LinkSecurity {
  return {
    encrypted: true,
    keySize: bond.keySize,
    authenticated: bond.authenticated,
    secureConnections: bond.secureConnections,
    level: bond.authenticated ? (bond.secureConnections && bond.keySize === 16 ? 4 : 3) : 2,
    hasLtk: () => true,
  };
}


export class AttServer extends TypedEmitter<AttServerEvents> implements GattConnection, AttRequestHandler {
  readonly id = allocateConnectionId();
  readonly bearer: AttBearer;
  readonly db: GattDatabase;
  private readonly lower: AttLower;
  private readonly log: Logger;
  private readonly bonds: BondStore | undefined;
  private readonly minKeySize: number;
  private readonly prepareLimit: number;
  private readonly prepareByteLimit: number;
  private readonly authorizeHook: AuthorizeHook | undefined;

  /** CCCD values of this connection, by CCCD handle. */
  private readonly cccd = new Map<number, number>();
  /** CCCDs the client wrote on this connection (they win over a bond's stored values on restore). */
  private readonly cccdWritten = new Set<number>();
  private clientFeatures = 0;
  private _changeAware = true;
  /** Database Out Of Sync was sent since the client became change-unaware. */
  private outOfSyncSent = false;
  /** The client read the Database Hash while change-unaware. */
  private hashReadWhileUnaware = false;
  private readonly prepared: PreparedWrite[] = [];
  /** Write contexts, one per attribute and way of writing, made on first use (they never change). */
  private readonly writeContexts = new Map<number, AccessContext>();
  private preparedBytes = 0;
  private bondRestored = false;
  private serviceChangedDeferred = false;
  private closed = false;

  constructor(opts: AttServerOptions) {
    super();
    this.db = opts.db;
    this.lower = opts.lower;
    this.log = opts.log ?? silentLogger();
    this.bonds = opts.bonds;
    const min = opts.minKeySize ?? 16;
    if (!Number.isInteger(min) || min < 7 || min > 16) throw new RangeError(`minKeySize must be 7..16, got ${min}`);
    this.minKeySize = min;
    this.prepareLimit = opts.prepareQueueLimit ?? 64;
    this.prepareByteLimit = opts.prepareQueueBytes ?? 4096;
    this.authorizeHook = opts.authorize;
    this.bearer = new AttBearer({
      lower: opts.lower,
      clock: opts.clock,
      log: this.log,
      ...(opts.mtu !== undefined ? { mtu: opts.mtu } : {}),
      ...(opts.transactionTimeoutMs !== undefined ? { transactionTimeoutMs: opts.transactionTimeoutMs } : {}),
      ...(opts.notifyQueueLimit !== undefined ? { notifyQueueLimit: opts.notifyQueueLimit } : {}),
    });
    this.bearer.setHandler(this);
    this.bearer.on('mtuChanged', (mtu) => this.emit('mtuChanged', mtu));
    this.bearer.on('timeout', () => this.emit('timeout'));
    this.bearer.on('closed', (reason) => {
      this.closed = true;
      this.db.detach(this);
      this.prepared.length = 0;
      this.emit('closed', reason);
    });
    this.db.attach(this);

    // Robust caching: a bonded client starts change-unaware when the database changed since it
    // last saw it (Core 5.4 Vol 3 Part G 2.5.2.1). Identity comes from address resolution; CCCDs
    // wait for encryption (onSecurityChanged).
    const bond = this.bond();
    if (bond) {
      this.clientFeatures = bond.gatt.clientFeatures & CLIENT_FEATURES_DEFINED;
      // An unknown last-seen hash (bond older than caching) counts as aware; a matching hash
      // explicitly marked change-unaware (e.g. by the application after a change) does not.
      const seen = bond.gatt.databaseHash;
      this._changeAware = seen === undefined || (seen === this.db.hashHex && bond.gatt.changeAware !== false);
    }
    if (this.lower.security.encrypted) this.onSecurityChanged();
  }

  // ---------------------------------------------------------------- GattConnection

  get peer(): Address {
    return this.lower.peer;
  }
  get identity(): Address | undefined {
    return this.lower.peerIdentity();
  }
  get security(): LinkSecurity {
    return this.lower.security;
  }
  get mtu(): number {
    return this.bearer.mtu;
  }
  /** Whether the client is change-aware of this database. Core 5.4 Vol 3 Part G 2.5.2.1. */
  get changeAware(): boolean {
    return this._changeAware;
  }
  /** The CCCD value of this connection for a characteristic value handle (0 when none). */
  cccdOf(valueHandle: number): number {
    const h = this.db.characteristic(valueHandle)?.cccdHandle;
    return h === undefined ? 0 : (this.cccd.get(h) ?? 0);
  }

  isSubscribed(valueHandle: number, kind: 'notify' | 'indicate'): boolean {
    return (this.cccdOf(valueHandle) & (kind === 'notify' ? CccdBit.notification : CccdBit.indication)) !== 0;
  }

  /** Why a value may not go to this client now, or undefined when it may. */
  private sendBlocker(valueHandle: number, kind: 'notify' | 'indicate'): string | undefined {
    if (this.closed) return 'bearer closed';
    const ch = this.db.characteristic(valueHandle);
    if (!ch || ch.valueHandle !== valueHandle || ch.cccdHandle === undefined) return 'not a characteristic value with a CCCD';
    if (!this.isSubscribed(valueHandle, kind)) return 'not subscribed';
    // The subscription's security must still hold (e.g. an encrypted characteristic on a link that is not).
    const cccdAttr = this.db.attribute(ch.cccdHandle) as Attribute;
    if (this.securityCode(cccdAttr.permissions.write, 'write', this.lower.security) !== 0) return 'link security below the subscription requirement';
    // Core 5.4 Vol 3 Part G 2.5.2.1: nothing but Service Changed to a change-unaware robust-caching client.
    if (!this._changeAware && this.robustCaching && valueHandle !== this.db.serviceChangedHandle) return 'client is change-unaware';
    return undefined;
  }

  private get robustCaching(): boolean {
    return (this.clientFeatures & ClientFeatureBit.robustCaching) !== 0;
  }

  /**
   * Notifies the value if the client subscribed to notifications. Resolves true once the PDU was
   * handed to the controller (await it to follow the link's pace), false when not sent.
   */
  async notify(valueHandle: number, value: Uint8Array): Promise<boolean> {
    const why = this.sendBlocker(valueHandle, 'notify');
    if (why) {
      this.log.debug({ handle: valueHandle, why }, 'notification not sent');
      return false;
    }
    await this.bearer.notify(valueHandle, value);
    return true;
  }

  /** Indicates the value if the client subscribed to indications; resolves true on confirmation, false when not sent. */
  async indicate(valueHandle: number, value: Uint8Array): Promise<boolean> {
    const why = this.sendBlocker(valueHandle, 'indicate');
    if (why) {
      this.log.debug({ handle: valueHandle, why }, 'indication not sent');
      return false;
    }
    await this.bearer.indicate(valueHandle, value);
    return true;
  }

  async sendValue(valueHandle: number, value: Uint8Array): Promise<'notified' | 'indicated' | 'skipped'> {
    if (this.sendBlocker(valueHandle, 'notify') === undefined) {
      await this.bearer.notify(valueHandle, value);
      return 'notified';
    }
    if (this.sendBlocker(valueHandle, 'indicate') === undefined) {
      await this.bearer.indicate(valueHandle, value);
      return 'indicated';
    }
    return 'skipped';
  }

  // ---------------------------------------------------------------- inputs

  /** One reassembled ATT PDU from L2CAP CID 0x0004; the ATT layer owns the buffer from then on (see {@link AttBearer.onPdu}). */
  onPdu(bytes: Uint8Array): void {
    this.bearer.onPdu(bytes);
  }

  /**
   * The link's security changed (encryption on, key refreshed, or pairing done). Once the link is
   * encrypted and the peer is bonded: restore its CCCDs and Client Supported Features, record the
   * database it now sees, and indicate Service Changed when the database changed since its last
   * connection. Never before encryption: iOS drops a link that gets Service Changed before it
   * encrypted (docs/field-notes.md, weliem/bluez_inc #117).
   */
  onSecurityChanged(): void {
    if (this.closed || !this.lower.security.encrypted) return;
    const bond = this.bond();
    if (bond && !this.bondRestored) {
      this.bondRestored = true;
      this.restoreFromBond(bond);
    }
    if (bond) {
      if (this._changeAware) {
        if (bond.gatt.databaseHash !== this.db.hashHex || bond.gatt.clientFeatures !== this.clientFeatures || !bond.gatt.changeAware) {
          this.persistGatt({ databaseHash: this.db.hashHex, changeAware: true });
        }
      } else {
        this.serviceChangedDeferred = true;
      }
    }
    if (this.serviceChangedDeferred) {
      this.serviceChangedDeferred = false;
      this.sendServiceChanged();
    }
  }

  /** The link is gone. */
  onDisconnected(): void {
    this.bearer.onDisconnected();
  }

  /**
   * Indicates Service Changed for 0x0001..0xFFFF (Core 5.4 Vol 3 Part G 7.1) if the client
   * subscribed; to a bonded client only once the link is encrypted (deferred until then).
   */
  indicateServiceChanged(): void {
    if (this.identity && !this.lower.security.encrypted) {
      this.serviceChangedDeferred = true;
      return;
    }
    this.sendServiceChanged();
  }

  private sendServiceChanged(): void {
    const h = this.db.serviceChangedHandle;
    if (h === undefined || !this.isSubscribed(h, 'indicate')) return;
    this.log.info({ peer: this.peer.address }, 'database changed since this client last saw it: indicating Service Changed');
    this.indicate(h, Uint8Array.of(0x01, 0x00, 0xff, 0xff)).catch((err: unknown) => {
      this.log.info({ err, peer: this.peer.address }, 'Service Changed indication not confirmed');
    });
  }

  // ---------------------------------------------------------------- bonds

  private bond(): BondRecord | undefined {
    const id = this.lower.peerIdentity();
    return id && this.bonds ? this.bonds.get(id) : undefined;
  }

  /** The bond when its state may be written: bonded and encrypted (the identity is proven). */
  private trustedBond(): BondRecord | undefined {
    return this.lower.security.encrypted ? this.bond() : undefined;
  }

  private restoreFromBond(bond: BondRecord): void {
    const seen = bond.gatt.databaseHash;
    const sameDb = seen === undefined || seen === this.db.hashHex;
    for (const [key, stored] of Object.entries(bond.cccd)) {
      const h = Number(key);
      const a = this.db.attribute(h);
      if (!a || a.kind !== 'cccd' || this.cccdWritten.has(h)) continue;
      // After a database change only the Service Changed subscription is still meaningful.
      if (!sameDb && h !== this.db.serviceChangedCccdHandle) continue;
      const v = stored & this.cccdSupported(a);
      if (v === (this.cccd.get(h) ?? 0)) continue;
      this.cccd.set(h, v);
      const vh = a.characteristic?.valueHandle;
      if (vh !== undefined) this.emit('subscriptionChanged', vh, v);
    }
    this.clientFeatures |= bond.gatt.clientFeatures & CLIENT_FEATURES_DEFINED;
    const merged = this.cccdRecord();
    if (!sameRecord(merged, bond.cccd)) this.persist({ cccd: merged });
  }

  private cccdRecord(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const [h, v] of this.cccd) if (v !== 0) out[h] = v;
    return out;
  }

  private persist(patch: Parameters<BondStore['update']>[1]): void {
    const id = this.lower.peerIdentity();
    if (!this.bonds || !id || !this.trustedBond()) return;
    this.bonds.update(id, patch).catch((err: unknown) => {
      this.log.warn({ err, peer: id.address, store: this.bonds?.description }, 'could not save GATT state of a bonded client');
    });
  }

  private persistGatt(changes: Partial<BondRecord['gatt']>): void {
    const bond = this.trustedBond();
    if (!bond) return;
    this.persist({ gatt: { ...bond.gatt, clientFeatures: this.clientFeatures, ...changes } });
  }

  private becomeChangeAware(why: string): void {
    if (this._changeAware) return;
    this._changeAware = true;
    this.outOfSyncSent = false;
    this.hashReadWhileUnaware = false;
    this.log.info({ peer: this.peer.address, why }, 'client is change-aware of the database');
    this.persistGatt({ databaseHash: this.db.hashHex, changeAware: true });
    this.emit('changeAware');
  }

  /** Bearer hook: our indication was confirmed. */
  onConfirmation(handle: number): void {
    if (handle === this.db.serviceChangedHandle) this.becomeChangeAware('Service Changed confirmed');
  }

  // ---------------------------------------------------------------- access checks

  /** 0 when `req` is met by `s`, else the ATT error code. See the file comment for the order. */
  private securityCode(req: AccessRequirement, op: 'read' | 'write', s: LinkSecurity): number {
    switch (req) {
      case 'none':
        return 0;
      case 'notPermitted':
        return op === 'read' ? AttErrorCode.readNotPermitted : AttErrorCode.writeNotPermitted;
      default:
        if (!s.encrypted) return s.hasLtk() ? AttErrorCode.insufficientEncryption : AttErrorCode.insufficientAuthentication;
        if ((req === 'authenticated' || req === 'secureConnections') && !s.authenticated) return AttErrorCode.insufficientAuthentication;
        if (req === 'secureConnections' && !s.secureConnections) return AttErrorCode.insufficientAuthentication;
        if (s.keySize < (req === 'secureConnections' ? 16 : this.minKeySize)) return AttErrorCode.encryptionKeySizeTooShort;
        return 0;
    }
  }

  /**
   * Full check: permissions, security, then authorization. Synchronous unless an authorization
   * hook answers with a promise.
   */
  private access(a: Attribute, op: 'read' | 'write', s: LinkSecurity = this.lower.security): number | Promise<number> {
    const code = this.securityCode(op === 'read' ? a.permissions.read : a.permissions.write, op, s);
    if (code !== 0) return code;
    if (op === 'read' ? a.permissions.authorizeRead : a.permissions.authorizeWrite) {
      const hook = a.authorize ?? this.authorizeHook;
      if (!hook) return AttErrorCode.insufficientAuthorization;
      const ok = hook({ op, handle: a.handle, attribute: a, connection: this });
      if (isPromiseLike(ok)) return Promise.resolve(ok).then(authorizationCode);
      return authorizationCode(ok);
    }
    return 0;
  }

  /** An ATT_ERROR_RSP; reports 0x05/0x0F to SMP and logs security refusals. */
  private error(opcode: number, handle: number, code: number): Uint8Array {
    if (code === AttErrorCode.insufficientAuthentication || code === AttErrorCode.insufficientEncryption) {
      this.log.info(
        { peer: this.peer.address, handle, code },
        code === AttErrorCode.insufficientAuthentication
          ? `access to handle 0x${handle.toString(16).padStart(4, '0')} refused: ${attErrorName(code)} (the client should pair)`
          : `access to handle 0x${handle.toString(16).padStart(4, '0')} refused: ${attErrorName(code)} (a key exists: the client should encrypt)`,
      );
      try {
        this.lower.onSecurityRejection?.(code);
      } catch (err) {
        this.log.error({ err }, 'onSecurityRejection hook failed');
      }
    }
    return encodeErrorResponse(opcode, handle, code);
  }

  private ctx(handle: number, offset: number): AccessContext {
    return { handle, connection: this, offset };
  }

  /** The context of a write (offset 0): the same frozen object for every write of `handle` made the same way. */
  private writeContext(handle: number, via: WriteVia): AccessContext {
    const key = handle * 4 + WRITE_VIA_INDEX[via];
    let c = this.writeContexts.get(key);
    if (!c) {
      c = Object.freeze({ handle, connection: this, offset: 0, via });
      this.writeContexts.set(key, c);
    }
    return c;
  }

  /** The attribute's current value for this connection. Throws AttError from read handlers. */
  private async readValue(a: Attribute, offset: number): Promise<Uint8Array> {
    switch (a.kind) {
      case 'cccd': {
        const v = this.cccd.get(a.handle) ?? 0;
        return Uint8Array.of(v & 0xff, v >> 8);
      }
      case 'clientSupportedFeatures':
        return Uint8Array.of(this.clientFeatures);
      case 'databaseHash':
        if (!this._changeAware) this.hashReadWhileUnaware = true;
        return this.db.hash;
      default:
        return a.onRead ? await a.onRead(this.ctx(a.handle, offset)) : a.value;
    }
  }

  /** Error code for a failure thrown by an application handler (AttError keeps its code; anything else is 0x0E). */
  private handlerFailure(err: unknown, handle: number): number {
    if (err instanceof AttError) return err.code;
    this.log.error({ err, handle }, 'attribute handler failed: Unlikely Error');
    return AttErrorCode.unlikelyError;
  }

  private cccdSupported(a: Attribute): number {
    const p = a.characteristic?.properties ?? 0;
    return ((p & CharacteristicPropertyBit.notify) !== 0 ? CccdBit.notification : 0) | ((p & CharacteristicPropertyBit.indicate) !== 0 ? CccdBit.indication : 0);
  }

  /**
   * Validates and applies a whole new value. Returns 0 or an ATT error code; a promise of it only
   * when the write handler returns one.
   * Core 5.4 Vol 3 Part F 3.4.5.1: a fixed-length value takes a shorter write into its leading
   * bytes; a longer one is 0x0D; a variable-length value takes the new length up to its maximum.
   * `value` is lent for the call (see the file comment): it is copied only where it is kept.
   */
  private applyWrite(a: Attribute, value: Uint8Array, via: WriteVia): number | Promise<number> {
    if (a.fixedLength ? value.length > a.value.length : value.length > a.maxLength) return AttErrorCode.invalidAttributeValueLength;
    switch (a.kind) {
      case 'cccd': {
        const old = this.cccd.get(a.handle) ?? 0;
        let v = old;
        if (value.length >= 1) v = (v & 0xff00) | (value[0] as number);
        if (value.length >= 2) v = (v & 0x00ff) | ((value[1] as number) << 8);
        // Bits for what the characteristic cannot do, and RFU bits, are ignored.
        v &= this.cccdSupported(a);
        this.cccd.set(a.handle, v);
        this.cccdWritten.add(a.handle);
        if (v !== old) {
          const vh = a.characteristic?.valueHandle;
          this.log.debug({ peer: this.peer.address, handle: vh, cccd: v }, 'subscription changed');
          if (vh !== undefined) this.emit('subscriptionChanged', vh, v);
          this.persist({ cccd: this.cccdRecord() });
        }
        return 0;
      }
      case 'clientSupportedFeatures': {
        // Core 5.4 Vol 3 Part G 7.2: RFU bits ignored; a client may not clear a bit it set (0x13).
        const v = (value[0] ?? 0) & CLIENT_FEATURES_DEFINED;
        if ((this.clientFeatures & ~v) !== 0) return AttErrorCode.valueNotAllowed;
        if (v !== this.clientFeatures) {
          this.clientFeatures = v;
          this.persistGatt({});
        }
        return 0;
      }
      case 'value':
      case 'descriptor': {
        let v = value;
        if (a.fixedLength && value.length < a.value.length) {
          v = a.value.slice();
          v.set(value);
        }
        if (!a.onWrite) return this.storeWritten(a, v);
        let r: ReturnType<NonNullable<Attribute['onWrite']>>;
        try {
          r = a.onWrite(v, this.writeContext(a.handle, via));
        } catch (err) {
          return this.handlerFailure(err, a.handle);
        }
        if (isPromiseLike(r)) {
          return Promise.resolve(r).then(
            (code) => (typeof code === 'number' && code !== 0 ? code : this.storeWritten(a, v)),
            (err: unknown) => this.handlerFailure(err, a.handle),
          );
        }
        if (typeof r === 'number' && r !== 0) return r;
        return this.storeWritten(a, v);
      }
      default:
        return AttErrorCode.writeNotPermitted;
    }
  }

  /** A value write the handler (if any) accepted: keep a copy when it is the stored value, tell 'written' listeners. Returns 0. */
  private storeWritten(a: Attribute, v: Uint8Array): number {
    if (!a.onRead) a.value = copyBytes(v);
    if (this.listenerCount('written') > 0) this.emit('written', a.handle, copyBytes(v));
    return 0;
  }

  // ---------------------------------------------------------------- requests

  async handleRequest(req: AttRequest, raw: Uint8Array): Promise<Uint8Array> {
    const opcode = raw[0] as number;
    const gate = this.robustCachingGate(req, opcode);
    if (gate) return gate;
    switch (req.type) {
      case 'findInformationRequest':
        return this.findInformation(req, opcode);
      case 'findByTypeValueRequest':
        return this.findByTypeValue(req, opcode);
      case 'readByTypeRequest':
        return this.readByType(req, opcode);
      case 'readRequest':
        return this.read(req.handle, opcode);
      case 'readBlobRequest':
        return this.readBlob(req.handle, req.offset, opcode);
      case 'readMultipleRequest':
        return this.readMultiple(req.handles, opcode, false);
      case 'readMultipleVariableRequest':
        return this.readMultiple(req.handles, opcode, true);
      case 'readByGroupTypeRequest':
        return this.readByGroupType(req, opcode);
      case 'writeRequest':
        return this.write(req.handle, req.value, opcode);
      case 'prepareWriteRequest':
        return this.prepareWrite(req, opcode);
      case 'executeWriteRequest':
        return this.executeWrite(req.flags, opcode);
      case 'exchangeMtuRequest':
        // Answered by the bearer; never reaches here.
        return encodeErrorResponse(opcode, 0, AttErrorCode.unlikelyError);
    }
  }

  /**
   * Robust caching (Core 5.4 Vol 3 Part G 2.5.2.1). A change-unaware client becomes change-aware
   * when it sends a request after we sent it Database Out Of Sync, or after it read the Database
   * Hash. Until then a robust-caching client gets 0x12 (once) for requests at attribute handles,
   * and for Read By Type of anything but «Include»/«Characteristic» over a range other than
   * 0x0001..0xFFFF; discovery requests are served.
   */
  private robustCachingGate(req: AttRequest, opcode: number): Uint8Array | undefined {
    if (this._changeAware) return undefined;
    if (this.outOfSyncSent || this.hashReadWhileUnaware) {
      this.becomeChangeAware(this.outOfSyncSent ? 'request after Database Out Of Sync' : 'request after reading the Database Hash');
      return undefined;
    }
    if (!this.robustCaching) return undefined;
    let handle: number | undefined;
    switch (req.type) {
      case 'readRequest':
      case 'readBlobRequest':
      case 'writeRequest':
      case 'prepareWriteRequest':
        handle = req.handle;
        break;
      case 'readMultipleRequest':
      case 'readMultipleVariableRequest':
        handle = req.handles[0];
        break;
      case 'readByTypeRequest': {
        const t = req.attributeType.length === 2 ? (req.attributeType[0] as number) | ((req.attributeType[1] as number) << 8) : -1;
        const discovery = t === GattUuid.include || t === GattUuid.characteristic;
        const fullRange = req.startHandle === 0x0001 && req.endHandle === 0xffff;
        if (!discovery && !fullRange) handle = req.startHandle;
        break;
      }
      default:
        break;
    }
    if (handle === undefined) return undefined;
    this.outOfSyncSent = true;
    this.log.info({ peer: this.peer.address }, 'change-unaware client: Database Out Of Sync');
    return encodeErrorResponse(opcode, handle, AttErrorCode.databaseOutOfSync);
  }

  private badRange(start: number, end: number): boolean {
    return start === 0 || start > end;
  }

  /** Core 5.4 Vol 3 Part F 3.4.3.1. */
  private findInformation(req: AttPduOf<'findInformationRequest'>, opcode: number): Uint8Array {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.error(opcode, s, AttErrorCode.invalidHandle);
    const room = this.mtu - 2;
    const entries: HandleUuid[] = [];
    let format = 0;
    let used = 0;
    const last = Math.min(e, this.db.lastHandle);
    for (let h = s; h <= last; h++) {
      const a = this.db.attribute(h);
      if (!a) continue;
      const fmt = a.type.is16 ? 0x01 : 0x02;
      const size = a.type.is16 ? 4 : 18;
      if (format === 0) format = fmt;
      else if (fmt !== format) break;
      if (used + size > room) break;
      entries.push({ handle: h, uuid: a.type.bytes });
      used += size;
    }
    if (entries.length === 0) return this.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'findInformationResponse', format, entries });
  }

  /** Core 5.4 Vol 3 Part F 3.4.3.3: only readable attributes match; never a security error. */
  private async findByTypeValue(req: AttPduOf<'findByTypeValueRequest'>, opcode: number): Promise<Uint8Array> {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.error(opcode, s, AttErrorCode.invalidHandle);
    const type = Uuid.from16(req.attributeType);
    const max = Math.floor((this.mtu - 1) / 4);
    const handles: HandlesInformation[] = [];
    const last = Math.min(e, this.db.lastHandle);
    for (let h = s; h <= last && handles.length < max; h++) {
      const a = this.db.attribute(h);
      if (!a || a.type.key !== type.key) continue;
      if (a.permissions.authorizeRead || this.securityCode(a.permissions.read, 'read', this.lower.security) !== 0) continue;
      let v: Uint8Array;
      try {
        v = await this.readValue(a, 0);
      } catch {
        continue;
      }
      if (!bytesEqual(v, req.value)) continue;
      let end = h;
      if (a.kind === 'primaryService' || a.kind === 'secondaryService') end = a.service.endHandle;
      else if (a.kind === 'characteristic' && a.characteristic) end = a.characteristic.endHandle;
      handles.push({ foundHandle: h, groupEndHandle: end });
    }
    if (handles.length === 0) return this.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'findByTypeValueResponse', handles });
  }

  /**
   * Core 5.4 Vol 3 Part F 3.4.4.1: pairs of equal length, values cut to min(ATT_MTU-4, 253). The
   * first matching attribute that fails gives the error with its handle; a later one ends the list.
   */
  private async readByType(req: AttPduOf<'readByTypeRequest'>, opcode: number): Promise<Uint8Array> {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.error(opcode, s, AttErrorCode.invalidHandle);
    const type = Uuid.fromBytes(req.attributeType);
    const maxValue = Math.min(this.mtu - 4, 253);
    const data: HandleValue[] = [];
    let pairLen = 0;
    const last = Math.min(e, this.db.lastHandle);
    for (let h = s; h <= last; h++) {
      const a = this.db.attribute(h);
      if (!a || a.type.key !== type.key) continue;
      let code = await this.access(a, 'read');
      let v: Uint8Array | undefined;
      if (code === 0) {
        try {
          v = await this.readValue(a, 0);
        } catch (err) {
          code = this.handlerFailure(err, h);
        }
      }
      if (code !== 0 || !v) {
        if (data.length === 0) return this.error(opcode, h, code);
        break;
      }
      const len = Math.min(v.length, maxValue);
      if (data.length === 0) pairLen = 2 + len;
      else if (2 + len !== pairLen) break;
      if (2 + (data.length + 1) * pairLen > this.mtu) break;
      data.push({ handle: h, value: v.subarray(0, len) });
    }
    if (data.length === 0) return this.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'readByTypeResponse', data });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.3. */
  private async read(handle: number, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.error(opcode, handle, AttErrorCode.invalidHandle);
    const code = await this.access(a, 'read');
    if (code !== 0) return this.error(opcode, handle, code);
    let v: Uint8Array;
    try {
      v = await this.readValue(a, 0);
    } catch (err) {
      return this.error(opcode, err instanceof AttError ? handle : 0, this.handlerFailure(err, handle));
    }
    return encodeAttPdu({ type: 'readResponse', value: v.subarray(0, this.mtu - 1) });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.5. */
  private async readBlob(handle: number, offset: number, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.error(opcode, handle, AttErrorCode.invalidHandle);
    const code = await this.access(a, 'read');
    if (code !== 0) return this.error(opcode, handle, code);
    let v: Uint8Array;
    try {
      v = await this.readValue(a, offset);
    } catch (err) {
      return this.error(opcode, err instanceof AttError ? handle : 0, this.handlerFailure(err, handle));
    }
    // A fixed-length value that fits a Read Response is not long.
    if (a.fixedLength && v.length <= this.mtu - 1) return this.error(opcode, handle, AttErrorCode.attributeNotLong);
    if (offset > v.length) return this.error(opcode, handle, AttErrorCode.invalidOffset);
    return encodeAttPdu({ type: 'readBlobResponse', value: v.subarray(offset, offset + this.mtu - 1) });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.7 and 3.4.4.11: every handle is checked; the first failure answers with its handle. */
  private async readMultiple(handles: readonly number[], opcode: number, variable: boolean): Promise<Uint8Array> {
    const values: Uint8Array[] = [];
    for (const h of handles) {
      const a = this.db.attribute(h);
      if (!a) return this.error(opcode, h, AttErrorCode.invalidHandle);
      const code = await this.access(a, 'read');
      if (code !== 0) return this.error(opcode, h, code);
      try {
        values.push(await this.readValue(a, 0));
      } catch (err) {
        return this.error(opcode, h, this.handlerFailure(err, h));
      }
    }
    const room = this.mtu - 1;
    if (!variable) {
      let n = 0;
      for (const v of values) n += v.length;
      const out = new Uint8Array(Math.min(n, room));
      let o = 0;
      for (const v of values) {
        if (o >= out.length) break;
        const take = Math.min(v.length, out.length - o);
        out.set(v.subarray(0, take), o);
        o += take;
      }
      return encodeAttPdu({ type: 'readMultipleResponse', values: out });
    }
    // Truncated after ATT_MTU-1, or at the start of a tuple whose length field would not fit (3.4.4.12).
    const tuples: LengthValue[] = [];
    let used = 0;
    for (const v of values) {
      if (used + 2 > room) break;
      const take = Math.min(v.length, room - used - 2);
      tuples.push({ length: v.length, value: v.subarray(0, take) });
      used += 2 + take;
      if (take < v.length) break;
    }
    return encodeAttPdu({ type: 'readMultipleVariableResponse', tuples });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.9 with GATT's grouping types «Primary Service» and «Secondary Service» (Vol 3 Part G 2.5.3). */
  private async readByGroupType(req: AttPduOf<'readByGroupTypeRequest'>, opcode: number): Promise<Uint8Array> {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.error(opcode, s, AttErrorCode.invalidHandle);
    const t = Uuid.fromBytes(req.groupType).value16;
    if (t !== GattUuid.primaryService && t !== GattUuid.secondaryService) return this.error(opcode, s, AttErrorCode.unsupportedGroupType);
    const primary = t === GattUuid.primaryService;
    const maxValue = Math.min(this.mtu - 6, 251);
    const data: GroupData[] = [];
    let entryLen = 0;
    for (const svc of this.db.services) {
      if (svc.handle < s || svc.handle > e || svc.primary !== primary) continue;
      const a = this.db.attribute(svc.handle) as Attribute;
      let code = await this.access(a, 'read');
      let v: Uint8Array | undefined;
      if (code === 0) {
        try {
          v = await this.readValue(a, 0);
        } catch (err) {
          code = this.handlerFailure(err, a.handle);
        }
      }
      if (code !== 0 || !v) {
        if (data.length === 0) return this.error(opcode, a.handle, code);
        break;
      }
      const len = Math.min(v.length, maxValue);
      if (data.length === 0) entryLen = 4 + len;
      else if (4 + len !== entryLen) break;
      if (2 + (data.length + 1) * entryLen > this.mtu) break;
      data.push({ handle: svc.handle, endGroupHandle: svc.endHandle, value: v.subarray(0, len) });
    }
    if (data.length === 0) return this.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'readByGroupTypeResponse', data });
  }

  /** Core 5.4 Vol 3 Part F 3.4.5.1. */
  private async write(handle: number, value: Uint8Array, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.error(opcode, handle, AttErrorCode.invalidHandle);
    let code = await this.access(a, 'write');
    if (code !== 0) return this.error(opcode, handle, code);
    code = await this.applyWrite(a, value, 'writeRequest');
    if (code !== 0) return this.error(opcode, code === AttErrorCode.unlikelyError ? 0 : handle, code);
    return Uint8Array.of(AttOpcode.writeResponse);
  }

  /** Core 5.4 Vol 3 Part F 3.4.6.1: permissions now, value checks at execution. */
  private async prepareWrite(req: AttPduOf<'prepareWriteRequest'>, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(req.handle);
    if (!a) return this.error(opcode, req.handle, AttErrorCode.invalidHandle);
    const code = await this.access(a, 'write');
    if (code !== 0) return this.error(opcode, req.handle, code);
    if (this.prepared.length >= this.prepareLimit || this.preparedBytes + req.value.length > this.prepareByteLimit) {
      return this.error(opcode, req.handle, AttErrorCode.prepareQueueFull);
    }
    this.prepared.push({ handle: req.handle, offset: req.offset, value: req.value.slice() });
    this.preparedBytes += req.value.length;
    return encodeAttPdu({ type: 'prepareWriteResponse', handle: req.handle, offset: req.offset, value: req.value });
  }

  private clearPrepared(): void {
    this.prepared.length = 0;
    this.preparedBytes = 0;
  }

  /**
   * Core 5.4 Vol 3 Part F 3.4.6.3. Each prepared part is written at its offset into the value built
   * so far (starting from the current value); an offset past its end is 0x07, a result longer than
   * the attribute allows is 0x0D, both with the handle, and the queue is discarded. All values are
   * validated before any is written; then they are written in the order their handles were first
   * prepared.
   */
  private async executeWrite(flags: number, opcode: number): Promise<Uint8Array> {
    if (flags === 0x00) {
      this.clearPrepared();
      return Uint8Array.of(AttOpcode.executeWriteResponse);
    }
    if (flags !== 0x01) return this.error(opcode, 0x0000, AttErrorCode.invalidPdu);
    const queue = this.prepared.slice();
    this.clearPrepared();
    const built = new Map<number, Uint8Array>();
    for (const p of queue) {
      const a = this.db.attribute(p.handle) as Attribute;
      let cur = built.get(p.handle);
      if (!cur) {
        try {
          cur = await this.readValue(a, 0);
        } catch (err) {
          return this.error(opcode, p.handle, this.handlerFailure(err, p.handle));
        }
      }
      if (p.offset > cur.length) return this.error(opcode, p.handle, AttErrorCode.invalidOffset);
      let next: Uint8Array;
      if (a.fixedLength) {
        if (p.offset + p.value.length > cur.length) return this.error(opcode, p.handle, AttErrorCode.invalidAttributeValueLength);
        next = cur.slice();
        next.set(p.value, p.offset);
      } else {
        if (p.offset + p.value.length > a.maxLength) return this.error(opcode, p.handle, AttErrorCode.invalidAttributeValueLength);
        next = new Uint8Array(p.offset + p.value.length);
        next.set(cur.subarray(0, p.offset));
        next.set(p.value, p.offset);
      }
      built.set(p.handle, next);
    }
    for (const [h, v] of built) {
      const code = await this.applyWrite(this.db.attribute(h) as Attribute, v, 'executeWrite');
      if (code !== 0) return this.error(opcode, h, code);
    }
    return Uint8Array.of(AttOpcode.executeWriteResponse);
  }

  // ---------------------------------------------------------------- commands

  /** Carries out a command; synchronous (returns nothing) when the checks and the write handler are. */
  handleCommand(cmd: AttCommand, raw: Uint8Array): void | Promise<void> {
    // Core 5.4 Vol 3 Part G 2.5.2.1: a change-unaware robust-caching client's commands are ignored.
    if (!this._changeAware && this.robustCaching) {
      this.log.debug({ peer: this.peer.address, command: cmd.type }, 'command from a change-unaware client ignored');
      return;
    }
    const a = this.db.attribute(cmd.handle);
    if (!a) return;
    if (cmd.type !== 'writeCommand') return this.signedWrite(a, cmd, raw);
    const code = this.access(a, 'write');
    if (typeof code !== 'number') return this.writeCommandAfter(code, a, cmd.value);
    if (code !== 0) return;
    const r = this.applyWrite(a, cmd.value, 'writeCommand');
    if (typeof r !== 'number') return r.then(ignoreResult);
  }

  /** A Write Command whose authorization hook answered with a promise. */
  private async writeCommandAfter(access: Promise<number>, a: Attribute, value: Uint8Array): Promise<void> {
    if ((await access) !== 0) return;
    await this.applyWrite(a, value, 'writeCommand');
  }

  /**
   * ATT_SIGNED_WRITE_CMD (Core 5.4 Vol 3 Part F 3.4.5.4, Vol 3 Part H 2.4.5): carried out only for
   * a bonded peer whose CSRK we hold, on a characteristic with the Authenticated Signed Writes
   * property, with a valid signature and a sign counter above the last one seen. The permission
   * check then uses the bond's key properties in place of the link's (LE security mode 2,
   * Core 5.4 Vol 3 Part C 10.2.2). Anything else is ignored, as every failed command is.
   */
  private async signedWrite(a: Attribute, cmd: AttPduOf<'signedWriteCommand'>, raw: Uint8Array): Promise<void> {
    const bond = this.bond();
    const csrk = bond?.peerCsrk;
    if (!bond || !csrk) {
      this.log.debug({ peer: this.peer.address, handle: cmd.handle }, 'signed write without a CSRK for the peer ignored');
      return;
    }
    if (a.kind !== 'value' || ((a.characteristic?.properties ?? 0) & CharacteristicPropertyBit.authenticatedSignedWrites) === 0) {
      this.log.debug({ handle: cmd.handle }, 'signed write to a characteristic without Authenticated Signed Writes ignored');
      return;
    }
    const counter = signatureCounter(cmd.signature);
    if (bond.peerSignCounter !== undefined && counter <= bond.peerSignCounter) {
      this.log.info({ peer: this.peer.address, counter, last: bond.peerSignCounter }, 'signed write with a replayed sign counter ignored');
      return;
    }
    if (!verifySignedWrite(csrk, raw)) {
      this.log.info({ peer: this.peer.address, handle: cmd.handle }, 'signed write with a bad signature ignored');
      return;
    }
    const id = this.lower.peerIdentity();
    if (this.bonds && id) {
      this.bonds.update(id, { peerSignCounter: counter }).catch((err: unknown) => {
        this.log.warn({ err }, 'could not save the sign counter');
      });
    }
    if ((await this.access(a, 'write', this.lower.security.encrypted ? this.lower.security : signedSecurity(bond))) !== 0) return;
    await this.applyWrite(a, cmd.value, 'signedWriteCommand');
  }
}

function authorizationCode(ok: boolean): number {
  return ok ? 0 : AttErrorCode.insufficientAuthorization;
}

function sameRecord(a: Readonly<Record<number, number>>, b: Readonly<Record<number, number>>): boolean {
  const ka = Object.keys(a).filter((k) => a[Number(k)] !== 0);
  const kb = Object.keys(b).filter((k) => b[Number(k)] !== 0);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (a[Number(k)] !== b[Number(k)]) return false;
  return true;
}
