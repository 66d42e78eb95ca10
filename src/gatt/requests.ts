/**
 * The ATT requests our GATT server answers, one connection's worth (Core 5.4 Vol 3 Part F 3.4 with
 * GATT's procedures, Vol 3 Part G 4): discovery (Find Information, Find By Type Value, Read By
 * Group Type, Read By Type), reads (Read, Read Blob, Read Multiple, Read Multiple Variable Length)
 * and writes (Write Request, Prepare Write and Execute Write, with the connection's queue of
 * prepared writes). Each answer is the encoded success PDU or an ATT_ERROR_RSP. Access to one
 * attribute (permissions, per-connection values, the application's handlers) is the server's,
 * through {@link AttributeServer}; the robust caching gate runs before (src/gatt/caching.ts).
 */
import { bytesEqual } from '../util/bytes.js';
import {
  AttErrorCode,
  AttOpcode,
  encodeAttPdu,
  encodeErrorResponse,
  type AttPduOf,
  type AttRequest,
  type GroupData,
  type HandleValue,
  type HandleUuid,
  type HandlesInformation,
  type LengthValue,
} from '../att/pdu.js';
import type { AccessContext, Attribute, GattDatabase } from './database.js';
import type { AccessRequirement } from './permissions.js';
import { AttError } from '../att/types.js';
import { GattUuid, Uuid } from './uuid.js';

/** How a whole new value reached an attribute. */
export type WriteVia = NonNullable<AccessContext['via']>;

/** What the request procedures need of the connection's server: access to one attribute at a time. */
export interface AttributeServer {
  readonly db: GattDatabase;
  /** The current ATT_MTU. */
  readonly mtu: number;
  /** 0 when this link meets `req` (no authorization asked), else the ATT error code. */
  securityCode(req: AccessRequirement, op: 'read' | 'write'): number;
  /** Permissions, security, then authorization: 0 or the ATT error code. */
  access(a: Attribute, op: 'read' | 'write'): number | Promise<number>;
  /** The attribute's current value for this connection. Throws AttError from read handlers. */
  readValue(a: Attribute, offset: number): Promise<Uint8Array>;
  /** Validates and applies a whole new value: 0 or the ATT error code. */
  applyWrite(a: Attribute, value: Uint8Array, via: WriteVia): number | Promise<number>;
  /** The ATT error code for a failure thrown by an application handler. */
  handlerFailure(err: unknown, handle: number): number;
  /** An ATT_ERROR_RSP (security refusals are reported and logged). */
  error(opcode: number, handle: number, code: number): Uint8Array;
}

export interface RequestProceduresOptions {
  /** Prepared writes queued per client before 0x09 Prepare Queue Full (default 64). */
  prepareQueueLimit?: number;
  /** Bytes of prepared values queued per client before 0x09 (default 4096). */
  prepareQueueBytes?: number;
}

interface PreparedWrite {
  readonly handle: number;
  readonly offset: number;
  readonly value: Uint8Array;
}

export class RequestProcedures {
  private readonly db: GattDatabase;
  private readonly prepareLimit: number;
  private readonly prepareByteLimit: number;
  private readonly prepared: PreparedWrite[] = [];
  private preparedBytes = 0;

  constructor(
    private readonly server: AttributeServer,
    opts: RequestProceduresOptions = {},
  ) {
    this.db = server.db;
    this.prepareLimit = opts.prepareQueueLimit ?? 64;
    this.prepareByteLimit = opts.prepareQueueBytes ?? 4096;
  }

  /** Answers one well-formed request (never Exchange MTU, which the bearer answers). */
  answer(req: AttRequest, opcode: number): Uint8Array | Promise<Uint8Array> {
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

  /** The connection ended: prepared writes are discarded. */
  close(): void {
    this.clearPrepared();
  }

  private badRange(start: number, end: number): boolean {
    return start === 0 || start > end;
  }

  /** Core 5.4 Vol 3 Part F 3.4.3.1. */
  private findInformation(req: AttPduOf<'findInformationRequest'>, opcode: number): Uint8Array {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.server.error(opcode, s, AttErrorCode.invalidHandle);
    const room = this.server.mtu - 2;
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
    if (entries.length === 0) return this.server.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'findInformationResponse', format, entries });
  }

  /** Core 5.4 Vol 3 Part F 3.4.3.3: only readable attributes match; never a security error. */
  private async findByTypeValue(req: AttPduOf<'findByTypeValueRequest'>, opcode: number): Promise<Uint8Array> {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.server.error(opcode, s, AttErrorCode.invalidHandle);
    const type = Uuid.from16(req.attributeType);
    const max = Math.floor((this.server.mtu - 1) / 4);
    const handles: HandlesInformation[] = [];
    const last = Math.min(e, this.db.lastHandle);
    for (let h = s; h <= last && handles.length < max; h++) {
      const a = this.db.attribute(h);
      if (!a || a.type.key !== type.key) continue;
      if (a.permissions.authorizeRead || this.server.securityCode(a.permissions.read, 'read') !== 0) continue;
      let v: Uint8Array;
      try {
        v = await this.server.readValue(a, 0);
      } catch {
        continue;
      }
      if (!bytesEqual(v, req.value)) continue;
      let end = h;
      if (a.kind === 'primaryService' || a.kind === 'secondaryService') end = a.service.endHandle;
      else if (a.kind === 'characteristic' && a.characteristic) end = a.characteristic.endHandle;
      handles.push({ foundHandle: h, groupEndHandle: end });
    }
    if (handles.length === 0) return this.server.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'findByTypeValueResponse', handles });
  }

  /**
   * Core 5.4 Vol 3 Part F 3.4.4.1: pairs of equal length, values cut to min(ATT_MTU-4, 253). The
   * first matching attribute that fails gives the error with its handle; a later one ends the list.
   */
  private async readByType(req: AttPduOf<'readByTypeRequest'>, opcode: number): Promise<Uint8Array> {
    const { startHandle: s, endHandle: e } = req;
    if (this.badRange(s, e)) return this.server.error(opcode, s, AttErrorCode.invalidHandle);
    const type = Uuid.fromBytes(req.attributeType);
    const maxValue = Math.min(this.server.mtu - 4, 253);
    const data: HandleValue[] = [];
    let pairLen = 0;
    const last = Math.min(e, this.db.lastHandle);
    for (let h = s; h <= last; h++) {
      const a = this.db.attribute(h);
      if (!a || a.type.key !== type.key) continue;
      let code = await this.server.access(a, 'read');
      let v: Uint8Array | undefined;
      if (code === 0) {
        try {
          v = await this.server.readValue(a, 0);
        } catch (err) {
          code = this.server.handlerFailure(err, h);
        }
      }
      if (code !== 0 || !v) {
        if (data.length === 0) return this.server.error(opcode, h, code);
        break;
      }
      const len = Math.min(v.length, maxValue);
      if (data.length === 0) pairLen = 2 + len;
      else if (2 + len !== pairLen) break;
      if (2 + (data.length + 1) * pairLen > this.server.mtu) break;
      data.push({ handle: h, value: v.subarray(0, len) });
    }
    if (data.length === 0) return this.server.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'readByTypeResponse', data });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.3. */
  private async read(handle: number, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.server.error(opcode, handle, AttErrorCode.invalidHandle);
    const code = await this.server.access(a, 'read');
    if (code !== 0) return this.server.error(opcode, handle, code);
    let v: Uint8Array;
    try {
      v = await this.server.readValue(a, 0);
    } catch (err) {
      return this.server.error(opcode, err instanceof AttError ? handle : 0, this.server.handlerFailure(err, handle));
    }
    return encodeAttPdu({ type: 'readResponse', value: v.subarray(0, this.server.mtu - 1) });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.5. */
  private async readBlob(handle: number, offset: number, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.server.error(opcode, handle, AttErrorCode.invalidHandle);
    const code = await this.server.access(a, 'read');
    if (code !== 0) return this.server.error(opcode, handle, code);
    let v: Uint8Array;
    try {
      v = await this.server.readValue(a, offset);
    } catch (err) {
      return this.server.error(opcode, err instanceof AttError ? handle : 0, this.server.handlerFailure(err, handle));
    }
    // A fixed-length value that fits a Read Response is not long.
    if (a.fixedLength && v.length <= this.server.mtu - 1) return this.server.error(opcode, handle, AttErrorCode.attributeNotLong);
    if (offset > v.length) return this.server.error(opcode, handle, AttErrorCode.invalidOffset);
    return encodeAttPdu({ type: 'readBlobResponse', value: v.subarray(offset, offset + this.server.mtu - 1) });
  }

  /** Core 5.4 Vol 3 Part F 3.4.4.7 and 3.4.4.11: every handle is checked; the first failure answers with its handle. */
  private async readMultiple(handles: readonly number[], opcode: number, variable: boolean): Promise<Uint8Array> {
    const values: Uint8Array[] = [];
    for (const h of handles) {
      const a = this.db.attribute(h);
      if (!a) return this.server.error(opcode, h, AttErrorCode.invalidHandle);
      const code = await this.server.access(a, 'read');
      if (code !== 0) return this.server.error(opcode, h, code);
      try {
        values.push(await this.server.readValue(a, 0));
      } catch (err) {
        return this.server.error(opcode, h, this.server.handlerFailure(err, h));
      }
    }
    const room = this.server.mtu - 1;
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
    if (this.badRange(s, e)) return this.server.error(opcode, s, AttErrorCode.invalidHandle);
    const t = Uuid.fromBytes(req.groupType).value16;
    if (t !== GattUuid.primaryService && t !== GattUuid.secondaryService) return this.server.error(opcode, s, AttErrorCode.unsupportedGroupType);
    const primary = t === GattUuid.primaryService;
    const maxValue = Math.min(this.server.mtu - 6, 251);
    const data: GroupData[] = [];
    let entryLen = 0;
    for (const svc of this.db.services) {
      if (svc.handle < s || svc.handle > e || svc.primary !== primary) continue;
      const a = this.db.attribute(svc.handle) as Attribute;
      let code = await this.server.access(a, 'read');
      let v: Uint8Array | undefined;
      if (code === 0) {
        try {
          v = await this.server.readValue(a, 0);
        } catch (err) {
          code = this.server.handlerFailure(err, a.handle);
        }
      }
      if (code !== 0 || !v) {
        if (data.length === 0) return this.server.error(opcode, a.handle, code);
        break;
      }
      const len = Math.min(v.length, maxValue);
      if (data.length === 0) entryLen = 4 + len;
      else if (4 + len !== entryLen) break;
      if (2 + (data.length + 1) * entryLen > this.server.mtu) break;
      data.push({ handle: svc.handle, endGroupHandle: svc.endHandle, value: v.subarray(0, len) });
    }
    if (data.length === 0) return this.server.error(opcode, s, AttErrorCode.attributeNotFound);
    return encodeAttPdu({ type: 'readByGroupTypeResponse', data });
  }

  /** Core 5.4 Vol 3 Part F 3.4.5.1. */
  private async write(handle: number, value: Uint8Array, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(handle);
    if (!a) return this.server.error(opcode, handle, AttErrorCode.invalidHandle);
    let code = await this.server.access(a, 'write');
    if (code !== 0) return this.server.error(opcode, handle, code);
    code = await this.server.applyWrite(a, value, 'writeRequest');
    if (code !== 0) return this.server.error(opcode, code === AttErrorCode.unlikelyError ? 0 : handle, code);
    return Uint8Array.of(AttOpcode.writeResponse);
  }

  /** Core 5.4 Vol 3 Part F 3.4.6.1: permissions now, value checks at execution. */
  private async prepareWrite(req: AttPduOf<'prepareWriteRequest'>, opcode: number): Promise<Uint8Array> {
    const a = this.db.attribute(req.handle);
    if (!a) return this.server.error(opcode, req.handle, AttErrorCode.invalidHandle);
    const code = await this.server.access(a, 'write');
    if (code !== 0) return this.server.error(opcode, req.handle, code);
    if (this.prepared.length >= this.prepareLimit || this.preparedBytes + req.value.length > this.prepareByteLimit) {
      return this.server.error(opcode, req.handle, AttErrorCode.prepareQueueFull);
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
    if (flags !== 0x01) return this.server.error(opcode, 0x0000, AttErrorCode.invalidPdu);
    const queue = this.prepared.slice();
    this.clearPrepared();
    const built = new Map<number, Uint8Array>();
    for (const p of queue) {
      const a = this.db.attribute(p.handle) as Attribute;
      let cur = built.get(p.handle);
      if (!cur) {
        try {
          cur = await this.server.readValue(a, 0);
        } catch (err) {
          return this.server.error(opcode, p.handle, this.server.handlerFailure(err, p.handle));
        }
      }
      if (p.offset > cur.length) return this.server.error(opcode, p.handle, AttErrorCode.invalidOffset);
      let next: Uint8Array;
      if (a.fixedLength) {
        if (p.offset + p.value.length > cur.length) return this.server.error(opcode, p.handle, AttErrorCode.invalidAttributeValueLength);
        next = cur.slice();
        next.set(p.value, p.offset);
      } else {
        if (p.offset + p.value.length > a.maxLength) return this.server.error(opcode, p.handle, AttErrorCode.invalidAttributeValueLength);
        next = new Uint8Array(p.offset + p.value.length);
        next.set(cur.subarray(0, p.offset));
        next.set(p.value, p.offset);
      }
      built.set(p.handle, next);
    }
    for (const [h, v] of built) {
      const code = await this.server.applyWrite(this.db.attribute(h) as Attribute, v, 'executeWrite');
      if (code !== 0) return this.server.error(opcode, h, code);
    }
    return Uint8Array.of(AttOpcode.executeWriteResponse);
  }
}
