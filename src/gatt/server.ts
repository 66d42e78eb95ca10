/**
 * The GATT server of one connection, serving a {@link GattDatabase} over an ATT bearer: it owns
 * the connection's view of the database and wires the parts that each keep one concern:
 * - here: the bearer, notifications and indications, Write Command, and access to one attribute
 *   (permission checks, per-connection values, the application's read/write handlers,
 *   ATT_ERROR_RSP);
 * - src/gatt/requests.ts: the requests (discovery, reads, writes, prepared writes);
 * - src/gatt/permissions.ts: the permission vocabulary and the order of the checks;
 * - src/gatt/client-config.ts: CCCDs and Client Supported Features, persisted in the bond;
 * - src/gatt/caching.ts: robust caching and Service Changed.
 *
 * Make one per connection: `new GattServer({ db, lower, clock, log, bonds, mtu })`, feed it
 * `onPdu`, `onSecurityChanged` and `onDisconnected`. Every 0x05 and 0x0F sent is reported to
 * `lower.onSecurityRejection`.
 *
 * Written values: a write handler (`onWrite`) gets a view of the received PDU's bytes, valid for
 * the call (until the promise it returns settles): it must not modify it, and copies it if it
 * keeps it. The server copies a value only where it stores it (as the attribute's value, see
 * {@link storesWrittenValue}, and for 'written' listeners, who each get their own copy). A
 * Write Command whose checks and handler are synchronous is carried out synchronously: no
 * promise, no closure and no context object per PDU.
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import type { Address } from '../util/address.js';
import { TypedEmitter } from '../util/emitter.js';
import { copyBytes } from '../util/byte-pool.js';
import type { LinkSecurity } from '../smp/link-security.js';
import type { BondStore } from '../bonds/types.js';
import { AttBearer, type AttRequestHandler } from '../att/bearer.js';
import { AttErrorCode, attErrorName, encodeErrorResponse, type AttCommand, type AttPduOf, type AttRequest } from '../att/pdu.js';
import { AttError, type AttBearerCloseReason, type AttLower } from '../att/types.js';
import {
  allocateConnectionId,
  CccdBit,
  type AccessContext,
  type Attribute,
  type AuthorizeHook,
  type GattConnection,
  type GattDatabase,
} from './database.js';
import { authorizationCode, requirementCode, type AccessRequirement } from './permissions.js';
import { ClientConfiguration } from './client-config.js';
import { ChangeAwareness } from './caching.js';
import { RequestProcedures, type WriteVia } from './requests.js';

/** What the GATT server needs from the layers around it, besides what its bearer needs. */
export interface GattServerLower extends AttLower {
  /** The link's security as SMP maintains it, read at every access check. */
  readonly security: LinkSecurity;
  /** The peer's resolved identity address when it is bonded (CCCD and caching state persist under it). */
  peerIdentity(): Address | undefined;
  /** Told whenever we answered 0x05 Insufficient Authentication or 0x0F Insufficient Encryption (SMP's Security Request policy may act). */
  onSecurityRejection?(code: number): void;
}

export interface GattServerOptions {
  db: GattDatabase;
  lower: GattServerLower;
  clock: Clock;
  log?: Logger;
  /** Where CCCDs, Client Supported Features and the last-seen Database Hash of bonded clients persist. */
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

export type GattServerEvents = {
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

const WRITE_VIA_INDEX: Readonly<Record<WriteVia, number>> = { writeRequest: 0, writeCommand: 1, executeWrite: 2 };


/**
 * Whether a written value becomes the attribute's stored value (served to reads, returned by
 * `GattDatabase.value`). Not when something else owns it: a read handler answers the reads, or a
 * write handler takes every write of a variable-length value that no peer may read. The handler
 * then is the value's only consumer (as a write callback is in Zephyr, NimBLE and ble-host, which
 * store nothing themselves), and keeping a copy per write would cost memory and time for a value
 * nobody can read back over the air: `value()` keeps what the application set.
 */
export function storesWrittenValue(a: Attribute): boolean {
  if (a.onRead) return false;
  return !(a.onWrite && a.permissions.read === 'notPermitted' && !a.fixedLength);
}
export class GattServer extends TypedEmitter<GattServerEvents> implements GattConnection, AttRequestHandler {
  readonly id = allocateConnectionId();
  readonly bearer: AttBearer;
  readonly db: GattDatabase;
  private readonly lower: GattServerLower;
  private readonly log: Logger;
  private readonly minKeySize: number;
  private readonly authorizeHook: AuthorizeHook | undefined;
  /** CCCDs and Client Supported Features of this client. */
  private readonly client: ClientConfiguration;
  /** Whether the client is change-aware; Service Changed. */
  private readonly caching: ChangeAwareness;
  private readonly requests: RequestProcedures;
  /** Write contexts, one per attribute and way of writing, made on first use (they never change). */
  private readonly writeContexts = new Map<number, AccessContext>();
  private closed = false;

  constructor(opts: GattServerOptions) {
    super();
    this.db = opts.db;
    this.lower = opts.lower;
    this.log = opts.log ?? silentLogger();
    const min = opts.minKeySize ?? 16;
    if (!Number.isInteger(min) || min < 7 || min > 16) throw new RangeError(`minKeySize must be 7..16, got ${min}`);
    this.minKeySize = min;
    this.authorizeHook = opts.authorize;
    this.client = new ClientConfiguration({
      db: this.db,
      bonds: opts.bonds,
      link: this.lower,
      log: this.log,
      onSubscriptionChanged: (vh, v) => this.emit('subscriptionChanged', vh, v),
    });
    this.caching = new ChangeAwareness({ db: this.db, client: this.client, connection: this, log: this.log, onChangeAware: () => this.emit('changeAware') });
    const bearer = new AttBearer({
      lower: opts.lower,
      clock: opts.clock,
      log: this.log,
      ...(opts.mtu !== undefined ? { mtu: opts.mtu } : {}),
      ...(opts.transactionTimeoutMs !== undefined ? { transactionTimeoutMs: opts.transactionTimeoutMs } : {}),
      ...(opts.notifyQueueLimit !== undefined ? { notifyQueueLimit: opts.notifyQueueLimit } : {}),
    });
    this.bearer = bearer;
    this.requests = new RequestProcedures(
      {
        db: this.db,
        get mtu() {
          return bearer.mtu;
        },
        securityCode: (req, op) => this.securityCode(req, op, this.lower.security),
        access: (a, op) => this.access(a, op),
        readValue: (a, offset) => this.readValue(a, offset),
        applyWrite: (a, value, via) => this.applyWrite(a, value, via),
        handlerFailure: (err, handle) => this.handlerFailure(err, handle),
        error: (opcode, handle, code) => this.error(opcode, handle, code),
      },
      {
        ...(opts.prepareQueueLimit !== undefined ? { prepareQueueLimit: opts.prepareQueueLimit } : {}),
        ...(opts.prepareQueueBytes !== undefined ? { prepareQueueBytes: opts.prepareQueueBytes } : {}),
      },
    );
    this.bearer.setHandler(this);
    this.bearer.on('mtuChanged', (mtu) => this.emit('mtuChanged', mtu));
    this.bearer.on('timeout', () => this.emit('timeout'));
    this.bearer.on('closed', (reason) => {
      this.closed = true;
      this.db.detach(this);
      this.requests.close();
      this.emit('closed', reason);
    });
    this.db.attach(this);
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
    return this.caching.changeAware;
  }
  /** The CCCD value of this connection for a characteristic value handle (0 when none). */
  cccdOf(valueHandle: number): number {
    const h = this.db.characteristic(valueHandle)?.cccdHandle;
    return h === undefined ? 0 : this.client.cccdValue(h);
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
    if (this.caching.restricted && valueHandle !== this.db.serviceChangedHandle) return 'client is change-unaware';
    return undefined;
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
   * connection (src/gatt/caching.ts).
   */
  onSecurityChanged(): void {
    if (this.closed || !this.lower.security.encrypted) return;
    this.caching.onEncrypted(this.client.restoreOnEncryption());
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
    this.caching.indicateServiceChanged();
  }

  /** Bearer hook: our indication was confirmed. */
  onConfirmation(handle: number): void {
    this.caching.onConfirmation(handle);
  }

  // ---------------------------------------------------------------- access checks

  /** 0 when `req` is met by `s`, else the ATT error code (src/gatt/permissions.ts). */
  private securityCode(req: AccessRequirement, op: 'read' | 'write', s: LinkSecurity): number {
    return requirementCode(req, op, s, this.minKeySize);
  }

  /**
   * Full check: permissions, security, then authorization. Synchronous unless an authorization
   * hook answers with a promise.
   */
  private access(a: Attribute, op: 'read' | 'write'): number | Promise<number> {
    const code = this.securityCode(op === 'read' ? a.permissions.read : a.permissions.write, op, this.lower.security);
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
        const v = this.client.cccdValue(a.handle);
        return Uint8Array.of(v & 0xff, v >> 8);
      }
      case 'clientSupportedFeatures':
        return Uint8Array.of(this.client.features);
      case 'databaseHash':
        this.caching.onHashRead();
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
      case 'cccd':
        return this.client.writeCccd(a, value);
      case 'clientSupportedFeatures':
        return this.client.writeClientFeatures(value);
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

  /** A value write accepted (by the write handler, where there is one): keep a copy when it is the stored value, tell 'written' listeners. Returns 0. */
  private storeWritten(a: Attribute, v: Uint8Array): number {
    if (storesWrittenValue(a)) a.value = copyBytes(v);
    if (this.listenerCount('written') > 0) this.emit('written', a.handle, copyBytes(v));
    return 0;
  }

  // ---------------------------------------------------------------- requests

  /** One request: the robust caching gate (src/gatt/caching.ts), then its procedure (src/gatt/requests.ts). */
  async handleRequest(req: AttRequest, raw: Uint8Array): Promise<Uint8Array> {
    const opcode = raw[0] as number;
    const gate = this.caching.gate(req, opcode);
    if (gate) return gate;
    return this.requests.answer(req, opcode);
  }

  // ---------------------------------------------------------------- commands

  /**
   * Carries out a command; synchronous (returns nothing) when the checks and the write handler are.
   * A Signed Write Command is a command this server does not support, so it is ignored (Core 5.4
   * Vol 3 Part F 3.3; why signed writes are not supported: docs/api.md "Signed writes").
   */
  handleCommand(cmd: AttCommand, raw: Uint8Array): void | Promise<void> {
    // Core 5.4 Vol 3 Part G 2.5.2.1: a change-unaware robust-caching client's commands are ignored.
    if (this.caching.restricted) {
      this.log.debug({ peer: this.peer.address, command: cmd.type }, 'command from a change-unaware client ignored');
      return;
    }
    const a = this.db.attribute(cmd.handle);
    if (!a) return;
    if (cmd.type !== 'writeCommand') return this.ignoreSignedWrite(cmd);
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

  private ignoreSignedWrite(cmd: AttPduOf<'signedWriteCommand'>): void {
    this.log.debug({ peer: this.peer.address, handle: cmd.handle }, 'Signed Write Command ignored: signed writes are not supported');
  }
}
