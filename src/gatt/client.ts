/**
 * The GATT client of one connection, on an {@link AttBearer} (the bearer sequences requests one at
 * a time, runs the 30 s transaction timeout and confirms indications). Procedures of Core 5.4
 * Vol 3 Part G 4:
 * - 4.3.1 Exchange MTU;
 * - 4.4.1 Discover All Primary Services (Read By Group Type 0x2800), 4.4.2 by UUID (Find By Type Value);
 * - 4.6.1 Discover All Characteristics of a Service (Read By Type 0x2803);
 * - 4.7.1 Discover All Characteristic Descriptors (Find Information);
 * - 4.8.1 Read, 4.8.3 Read Long (Read Blob);
 * - 4.9.1 Write Without Response, 4.9.3 Write, 4.9.4 Write Long (Prepare + Execute Write, the
 *   echoed value checked as 4.9.5 asks for reliable writes);
 * - 4.10 / 4.11 notifications and indications, 4.12.3 CCCD writes to subscribe.
 *
 * An ATT Error Response rejects the operation with {@link AttError}(code, handle); a closed bearer
 * (30 s timeout, disconnection) with {@link AttBearerError}. PDUs go through the ATT codec table
 * (src/att/pdu.ts); nothing is encoded here by hand.
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import { bytesEqual, concatBytes } from '../util/bytes.js';
import { WearableHostError } from '../util/errors.js';
import type { AttBearer } from '../att/bearer.js';
import { AttErrorCode, ExecuteWriteFlags, type AttPduOf, type AttRequest, type AttResponse } from '../att/pdu.js';
import { ATT_MAX_VALUE_LENGTH, AttError } from '../att/types.js';
import { CccdBit, CharacteristicPropertyBit } from './database.js';
import { GattUuid, Uuid, type UuidLike } from './uuid.js';

/** A primary service found on the peer. */
export interface DiscoveredService {
  readonly uuid: Uuid;
  readonly startHandle: number;
  readonly endHandle: number;
}

/** A characteristic found on the peer. */
export interface DiscoveredCharacteristic {
  readonly uuid: Uuid;
  readonly declarationHandle: number;
  readonly valueHandle: number;
  /** Property bits of the declaration. Core 5.4 Vol 3 Part G 3.3.1.1. */
  readonly properties: number;
  /** Last handle of the characteristic (before the next declaration or the end of the service). */
  readonly endHandle: number;
  readonly serviceStartHandle: number;
}

/** A descriptor found on the peer. */
export interface DiscoveredDescriptor {
  readonly uuid: Uuid;
  readonly handle: number;
}

/** A characteristic with its descriptors, as {@link GattClient.discoverAll} returns it. */
export interface CharacteristicView extends DiscoveredCharacteristic {
  readonly descriptors: readonly DiscoveredDescriptor[];
  /** Client Characteristic Configuration descriptor (0x2902), when present. */
  readonly cccdHandle: number | undefined;
}

export interface ServiceView extends DiscoveredService {
  readonly characteristics: readonly CharacteristicView[];
}

/** The whole remote database, as discovered. */
export interface RemoteDatabase {
  readonly services: readonly ServiceView[];
  /** The first characteristic with this UUID (in any service, or in `service` when given). */
  characteristic(uuid: UuidLike, service?: UuidLike): CharacteristicView | undefined;
  service(uuid: UuidLike): ServiceView | undefined;
}

export type GattClientEvents = {
  /** A Handle Value Notification from the peer's server. Core 5.4 Vol 3 Part G 4.10. */
  notification: [handle: number, value: Uint8Array];
  /** A Handle Value Indication from the peer's server (already confirmed by the bearer). Core 5.4 Vol 3 Part G 4.11. */
  indication: [handle: number, value: Uint8Array];
  /** ATT_MTU changed. */
  mtuChanged: [mtu: number];
};

export interface GattClientOptions {
  bearer: AttBearer;
  log?: Logger;
}

/** A procedure that got an answer the spec does not allow (not an ATT error code). */
export class GattProcedureError extends WearableHostError {
  constructor(message: string) {
    super('gatt', message);
    this.name = 'GattProcedureError';
  }
}

const LAST_HANDLE = 0xffff;

function h4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

function uuid16Bytes(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, v >> 8);
}

export class GattClient extends TypedEmitter<GattClientEvents> {
  readonly bearer: AttBearer;
  private readonly log: Logger;

  constructor(opts: GattClientOptions) {
    super();
    this.bearer = opts.bearer;
    this.log = opts.log ?? silentLogger();
    this.bearer.on('peerNotification', (handle, value) => this.emit('notification', handle, value));
    this.bearer.on('peerIndication', (handle, value) => this.emit('indication', handle, value));
    this.bearer.on('mtuChanged', (mtu) => this.emit('mtuChanged', mtu));
  }

  /** Current ATT_MTU. */
  get mtu(): number {
    return this.bearer.mtu;
  }

  /** Sends one request; an ATT_ERROR_RSP becomes {@link AttError}. */
  private async request<T extends AttResponse['type']>(pdu: AttRequest, expect: T): Promise<AttPduOf<T>> {
    const rsp = await this.bearer.request(pdu);
    if (rsp.type === 'errorResponse') throw new AttError(rsp.errorCode, rsp.handle);
    if (rsp.type !== expect) throw new GattProcedureError(`expected ${expect} to ${pdu.type}, got ${rsp.type}`);
    return rsp as AttPduOf<T>;
  }

  // ------------------------------------------------------------------ MTU

  /**
   * Exchange MTU with our receive MTU (the bearer's). Resolves with the resulting ATT_MTU.
   * Core 5.4 Vol 3 Part G 4.3.1, Part F 3.4.2.
   */
  async exchangeMtu(): Promise<number> {
    await this.request({ type: 'exchangeMtuRequest', clientRxMtu: this.bearer.serverMtu }, 'exchangeMtuResponse');
    return this.bearer.mtu;
  }

  // ------------------------------------------------------------------ discovery

  /** Discover All Primary Services. Core 5.4 Vol 3 Part G 4.4.1. */
  async discoverPrimaryServices(): Promise<DiscoveredService[]> {
    const out: DiscoveredService[] = [];
    let start = 0x0001;
    while (start <= LAST_HANDLE) {
      let rsp: AttPduOf<'readByGroupTypeResponse'>;
      try {
        rsp = await this.request(
          { type: 'readByGroupTypeRequest', startHandle: start, endHandle: LAST_HANDLE, groupType: uuid16Bytes(GattUuid.primaryService) },
          'readByGroupTypeResponse',
        );
      } catch (err) {
        if (err instanceof AttError && err.code === AttErrorCode.attributeNotFound) break;
        throw err;
      }
      let last = start - 1;
      for (const d of rsp.data) {
        if (d.handle < start || d.endGroupHandle < d.handle) throw new GattProcedureError(`service group ${h4(d.handle)}-${h4(d.endGroupHandle)} is outside the range asked for (from ${h4(start)})`);
        out.push({ uuid: Uuid.fromBytes(d.value), startHandle: d.handle, endHandle: d.endGroupHandle });
        last = d.endGroupHandle;
      }
      if (last >= LAST_HANDLE || last < start) break;
      start = last + 1;
    }
    return out;
  }

  /** Discover Primary Service by Service UUID. Core 5.4 Vol 3 Part G 4.4.2. */
  async discoverPrimaryServicesByUuid(uuid: UuidLike): Promise<DiscoveredService[]> {
    const u = Uuid.of(uuid);
    const out: DiscoveredService[] = [];
    let start = 0x0001;
    while (start <= LAST_HANDLE) {
      let rsp: AttPduOf<'findByTypeValueResponse'>;
      try {
        rsp = await this.request(
          { type: 'findByTypeValueRequest', startHandle: start, endHandle: LAST_HANDLE, attributeType: GattUuid.primaryService, value: u.bytes },
          'findByTypeValueResponse',
        );
      } catch (err) {
        if (err instanceof AttError && err.code === AttErrorCode.attributeNotFound) break;
        throw err;
      }
      let last = start - 1;
      for (const h of rsp.handles) {
        if (h.foundHandle < start || h.groupEndHandle < h.foundHandle) throw new GattProcedureError(`service ${h4(h.foundHandle)}-${h4(h.groupEndHandle)} is outside the range asked for`);
        out.push({ uuid: u, startHandle: h.foundHandle, endHandle: h.groupEndHandle });
        last = h.groupEndHandle;
      }
      if (last >= LAST_HANDLE || last < start) break;
      start = last + 1;
    }
    return out;
  }

  /** Discover All Characteristics of a Service. Core 5.4 Vol 3 Part G 4.6.1. */
  async discoverCharacteristics(service: DiscoveredService): Promise<DiscoveredCharacteristic[]> {
    const found: { uuid: Uuid; declarationHandle: number; valueHandle: number; properties: number }[] = [];
    let start = service.startHandle;
    while (start <= service.endHandle) {
      let rsp: AttPduOf<'readByTypeResponse'>;
      try {
        rsp = await this.request(
          { type: 'readByTypeRequest', startHandle: start, endHandle: service.endHandle, attributeType: uuid16Bytes(GattUuid.characteristic) },
          'readByTypeResponse',
        );
      } catch (err) {
        if (err instanceof AttError && err.code === AttErrorCode.attributeNotFound) break;
        throw err;
      }
      let last = start - 1;
      for (const d of rsp.data) {
        const v = d.value;
        if (v.length !== 5 && v.length !== 19) throw new GattProcedureError(`characteristic declaration at ${h4(d.handle)} is ${v.length} bytes (5 or 19 expected)`);
        if (d.handle < start || d.handle > service.endHandle) throw new GattProcedureError(`characteristic declaration ${h4(d.handle)} is outside ${h4(start)}-${h4(service.endHandle)}`);
        found.push({
          declarationHandle: d.handle,
          properties: v[0] as number,
          valueHandle: (v[1] as number) | ((v[2] as number) << 8),
          uuid: Uuid.fromBytes(v.subarray(3)),
        });
        last = d.handle;
      }
      if (last < start || last >= service.endHandle) break;
      start = last + 1;
    }
    return found.map((c, i) => ({
      ...c,
      endHandle: i + 1 < found.length ? (found[i + 1] as { declarationHandle: number }).declarationHandle - 1 : service.endHandle,
      serviceStartHandle: service.startHandle,
    }));
  }

  /** Discover All Characteristic Descriptors. Core 5.4 Vol 3 Part G 4.7.1. */
  async discoverDescriptors(ch: DiscoveredCharacteristic): Promise<DiscoveredDescriptor[]> {
    const out: DiscoveredDescriptor[] = [];
    let start = ch.valueHandle + 1;
    while (start <= ch.endHandle) {
      let rsp: AttPduOf<'findInformationResponse'>;
      try {
        rsp = await this.request({ type: 'findInformationRequest', startHandle: start, endHandle: ch.endHandle }, 'findInformationResponse');
      } catch (err) {
        if (err instanceof AttError && err.code === AttErrorCode.attributeNotFound) break;
        throw err;
      }
      let last = start - 1;
      for (const e of rsp.entries) {
        if (e.handle < start || e.handle > ch.endHandle) throw new GattProcedureError(`descriptor ${h4(e.handle)} is outside ${h4(start)}-${h4(ch.endHandle)}`);
        out.push({ uuid: Uuid.fromBytes(e.uuid), handle: e.handle });
        last = e.handle;
      }
      if (last < start || last >= ch.endHandle) break;
      start = last + 1;
    }
    return out;
  }

  /** Every primary service, its characteristics and their descriptors. */
  async discoverAll(): Promise<RemoteDatabase> {
    const services: ServiceView[] = [];
    for (const s of await this.discoverPrimaryServices()) {
      const chars: CharacteristicView[] = [];
      for (const c of await this.discoverCharacteristics(s)) {
        const descriptors = c.endHandle > c.valueHandle ? await this.discoverDescriptors(c) : [];
        const cccd = descriptors.find((d) => d.uuid.value16 === GattUuid.clientCharacteristicConfiguration);
        chars.push({ ...c, descriptors, cccdHandle: cccd?.handle });
      }
      services.push({ ...s, characteristics: chars });
    }
    return remoteDatabase(services);
  }

  // ------------------------------------------------------------------ reads

  /** One Read Request (the value may be cut at ATT_MTU-1). Core 5.4 Vol 3 Part G 4.8.1. */
  async readShort(handle: number): Promise<Uint8Array> {
    const rsp = await this.request({ type: 'readRequest', handle }, 'readResponse');
    return rsp.value.slice();
  }

  /** One Read Blob Request. Core 5.4 Vol 3 Part F 3.4.4.5. */
  async readBlob(handle: number, offset: number): Promise<Uint8Array> {
    const rsp = await this.request({ type: 'readBlobRequest', handle, offset }, 'readBlobResponse');
    return rsp.value.slice();
  }

  /**
   * Read Long Characteristic Value: a Read Request, then Read Blob Requests while the part
   * returned fills the PDU (ATT_MTU-1 bytes). Attribute Not Long on the first blob, or an empty
   * part, ends the value. Core 5.4 Vol 3 Part G 4.8.3.
   */
  async read(handle: number): Promise<Uint8Array> {
    const first = await this.readShort(handle);
    const parts: Uint8Array[] = [first];
    let total = first.length;
    let last = first;
    while (last.length === this.bearer.mtu - 1 && total < ATT_MAX_VALUE_LENGTH) {
      try {
        last = await this.readBlob(handle, total);
      } catch (err) {
        // Core 5.4 Vol 3 Part F 3.4.4.5: Attribute Not Long when the value fits a Read Response;
        // Invalid Offset from servers that refuse offset == length.
        if (err instanceof AttError && (err.code === AttErrorCode.attributeNotLong || err.code === AttErrorCode.invalidOffset)) break;
        throw err;
      }
      if (last.length === 0) break;
      parts.push(last);
      total += last.length;
    }
    return parts.length === 1 ? first : concatBytes(...parts);
  }

  // ------------------------------------------------------------------ writes

  /**
   * Writes a value: a Write Request when it fits (ATT_MTU-3 bytes), Write Long otherwise.
   * Core 5.4 Vol 3 Part G 4.9.3 / 4.9.4.
   */
  async write(handle: number, value: Uint8Array): Promise<void> {
    if (value.length <= this.bearer.mtu - 3) {
      await this.request({ type: 'writeRequest', handle, value }, 'writeResponse');
      return;
    }
    await this.writeLong(handle, value);
  }

  /**
   * Write Long Characteristic Values: Prepare Write Requests of ATT_MTU-5 bytes, each echo
   * compared with what was sent (a mismatch cancels the queue with Execute Write flags 0x00), then
   * Execute Write flags 0x01. Core 5.4 Vol 3 Part G 4.9.4, Part F 3.4.6.
   */
  async writeLong(handle: number, value: Uint8Array, offset = 0): Promise<void> {
    const chunk = this.bearer.mtu - 5;
    try {
      for (let o = 0; o < value.length; o += chunk) {
        const part = value.subarray(o, Math.min(value.length, o + chunk));
        const rsp = await this.request({ type: 'prepareWriteRequest', handle, offset: offset + o, value: part }, 'prepareWriteResponse');
        if (rsp.handle !== handle || rsp.offset !== offset + o || !bytesEqual(rsp.value, part)) {
          throw new GattProcedureError(`Prepare Write Response for ${h4(handle)} offset ${offset + o} does not echo what was sent; the write was cancelled`);
        }
      }
    } catch (err) {
      if (!(err instanceof AttError) || err.code !== AttErrorCode.prepareQueueFull) {
        // Leave nothing queued at the server (a closed bearer cannot be answered).
        if (this.bearer.closed === undefined) await this.request({ type: 'executeWriteRequest', flags: ExecuteWriteFlags.cancel }, 'executeWriteResponse').catch(() => undefined);
      }
      throw err;
    }
    await this.request({ type: 'executeWriteRequest', flags: ExecuteWriteFlags.write }, 'executeWriteResponse');
  }

  /** Write Without Response (ATT Write Command); at most ATT_MTU-3 bytes. Core 5.4 Vol 3 Part G 4.9.1. */
  async writeWithoutResponse(handle: number, value: Uint8Array): Promise<void> {
    if (value.length > this.bearer.mtu - 3) {
      throw new RangeError(`Write Without Response carries at most ATT_MTU-3 = ${this.bearer.mtu - 3} bytes, got ${value.length}`);
    }
    await this.bearer.command({ type: 'writeCommand', handle, value });
  }

  // ------------------------------------------------------------------ subscriptions

  /**
   * Enables notifications or indications by writing the characteristic's CCCD.
   * Core 5.4 Vol 3 Part G 4.10.1 / 4.11.1, 3.3.3.3.
   */
  async subscribe(ch: CharacteristicView, kind: 'notify' | 'indicate'): Promise<void> {
    const bit = kind === 'notify' ? CharacteristicPropertyBit.notify : CharacteristicPropertyBit.indicate;
    if ((ch.properties & bit) === 0) throw new GattProcedureError(`characteristic ${ch.uuid.toString()} at ${h4(ch.valueHandle)} does not support ${kind === 'notify' ? 'notifications' : 'indications'}`);
    if (ch.cccdHandle === undefined) throw new AttError(AttErrorCode.attributeNotFound, ch.valueHandle, `characteristic ${ch.uuid.toString()} at ${h4(ch.valueHandle)} has no CCCD`);
    const v = kind === 'notify' ? CccdBit.notification : CccdBit.indication;
    await this.write(ch.cccdHandle, Uint8Array.of(v & 0xff, v >> 8));
    this.log.debug({ handle: ch.valueHandle, kind }, 'subscribed');
  }

  /** Writes 0x0000 to the CCCD. */
  async unsubscribe(ch: CharacteristicView): Promise<void> {
    if (ch.cccdHandle === undefined) throw new AttError(AttErrorCode.attributeNotFound, ch.valueHandle, `characteristic at ${h4(ch.valueHandle)} has no CCCD`);
    await this.write(ch.cccdHandle, Uint8Array.of(0, 0));
  }
}

/** Wraps discovered services with lookups. */
export function remoteDatabase(services: readonly ServiceView[]): RemoteDatabase {
  return {
    services,
    service: (uuid) => {
      const u = Uuid.of(uuid);
      return services.find((s) => s.uuid.equals(u));
    },
    characteristic: (uuid, service) => {
      const u = Uuid.of(uuid);
      const su = service === undefined ? undefined : Uuid.of(service);
      for (const s of services) {
        if (su && !s.uuid.equals(su)) continue;
        const c = s.characteristics.find((x) => x.uuid.equals(u));
        if (c) return c;
      }
      return undefined;
    },
  };
}
