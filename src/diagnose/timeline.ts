/**
 * The timeline: HCI traffic (a capture file or the running host's packet trace) decoded into typed
 * events per connection, the one model every diagnosis rule reads.
 *
 * Perspective. The capturing host is either the accessory (our btsnoop: we are the peripheral, Role
 * 0x01 in LE Connection Complete) or the phone (Android's btsnoop_hci.log, iOS PacketLogger: the
 * central). Packets the capturing host sent (host->controller) have origin 'local', the others
 * 'remote'; with the connection's role this gives who sent each PDU, as `from: 'phone' |
 * 'accessory'`. This assumes the phone is the central and the accessory the peripheral, as with every
 * phone and wearable. When a capture starts after the connection was made, the role is inferred from
 * the first packet that reveals it (an LTK Request event means we are the peripheral, LE Enable
 * Encryption the central, a Security Request comes from the peripheral, a Pairing Request from the
 * central) and earlier events of that connection are updated.
 *
 * Only what the rules need is kept: ATT requests, error responses, MTU exchange, indications and
 * confirmations are events; notifications and ordinary responses are counted, not stored (a long
 * connection does not grow the timeline), except GATT discovery responses, which are read to learn
 * the Service Changed handle. ACL fragments are reassembled per connection handle and direction.
 *
 * Core 5.4 references: HCI events and commands Vol 4 Part E 7; ACL Vol 4 Part E 5.4.2; L2CAP basic
 * frames Vol 3 Part A 3.1; SMP Vol 3 Part H 3; ATT Vol 3 Part F 3.4; Service Changed Vol 3 Part G 7.1.
 */
import { addressTypeFromByte, isResolvablePrivateAddress, randomAddressKind, type Address } from '../util/address.js';
import { decodeAcl, AclBoundary } from '../hci/acl.js';
import { decodeCommand, decodeReturn, formatOpcode } from '../hci/commands.js';
import { decodeEvent, type HciEvent } from '../hci/events.js';
import { decodeSignaling } from '../l2cap/signaling-pdu.js';
import type { ConnectionParameters } from '../l2cap/conn-params.js';
import { decodeSmp, type SmpPdu } from '../smp/pdu.js';
import { decodeAttPdu, type AttPdu } from '../att/pdu.js';
import { irkResolvesAddress } from '../privacy/rpa.js';
import type { CapturedPacket, HciDirection } from './capture.js';

/** The two parties of a phone-accessory link. */
export type Side = 'phone' | 'accessory';
/** Whether the capturing host sent the packet ('local') or received it over the air ('remote'). */
export type Origin = 'local' | 'remote';
/** Which device the capture was taken on. */
export type CapturePerspective = 'accessory' | 'phone' | 'unknown';

/** Where an event is in the capture. */
export interface PacketRef {
  /** Packet (frame) number, 1-based. */
  readonly number: number;
  /** Unix ms. */
  readonly time: number;
  /** JSON log line, when the capture is a log. */
  readonly line?: number;
}

/** How a peer's identity became known. */
export type IdentitySource =
  /** The on-air address is itself an identity address (public or static random). */
  | 'address'
  /** The controller resolved the RPA from its resolving list (Enhanced Connection Complete, type 0x02/0x03). */
  | 'controller'
  /** The resolver given to the decoder (the host's bond store). */
  | 'resolver'
  /** ah() with an IRK seen earlier in this capture (SMP Identity Information or LE Add Device To Resolving List). */
  | 'trace-irk'
  /** Identity Address Information distributed during pairing on this connection. */
  | 'pairing';

export interface PeerInfo {
  /** The address the peer used on air (the RPA when the controller resolved it). */
  readonly onAir: Address;
  /** The on-air address is a resolvable private address. Core 5.4 Vol 6 Part B 1.3.2.2. */
  readonly isRpa: boolean;
  /** The peer's identity address, when known. */
  identity?: Address;
  identitySource?: IdentitySource;
  /** For 'trace-irk': where the IRK that resolved the address was seen, and how. */
  irkSeenAt?: PacketRef;
  irkVia?: 'smp' | 'resolving-list';
}

/** A connection as the timeline knows it. Mutable while the capture is decoded. */
export interface ConnectionRecord {
  /** 1-based, in order of appearance. */
  readonly id: number;
  readonly handle: number;
  /** Role of the capturing host on this link: 'peripheral' means the capture was taken at the accessory. */
  localRole: 'central' | 'peripheral' | undefined;
  roleSource: 'connection-complete' | 'inferred' | undefined;
  /** Undefined when the connection was made before the capture started. */
  peer: PeerInfo | undefined;
  /** The LE Connection Complete, if captured. */
  start: PacketRef | undefined;
  /** The Disconnection Complete, if captured. */
  end: PacketRef | undefined;
  disconnectReason: number | undefined;
  /** Connection parameters in HCI units (interval 1.25 ms, timeout 10 ms). */
  params: { interval: number; latency: number; timeout: number } | undefined;
  readonly events: TimelineEvent[];
  /** ATT PDUs counted but not kept as events (notifications, ordinary responses, write commands). */
  attCounted: number;
  /** ATT PDUs kept as events, error responses aside. */
  attKept: number;
}

interface Base {
  readonly at: PacketRef;
}
interface OnConnection extends Base {
  readonly connId: number;
}
interface Sent extends OnConnection {
  readonly origin: Origin;
  /** Who sent it; undefined while the connection's role is unknown. */
  from: Side | undefined;
}

/** Every timeline event: a closed union tagged by `kind`. */
export type TimelineEvent =
  /** LE Set (Extended) Advertising Enable sent by the capturing host. Core 5.4 Vol 4 Part E 7.8.9 / 7.8.56. */
  | (Base & { kind: 'advertising'; enabled: boolean })
  /** LE (Enhanced) Connection Complete. Core 5.4 Vol 4 Part E 7.7.65.1 / 7.7.65.10. */
  | (OnConnection & { kind: 'connection'; status: number; localRole: 'central' | 'peripheral'; peer: PeerInfo; interval: number; latency: number; timeout: number })
  /** A failed connection attempt (status != 0): no connection record. */
  | (Base & { kind: 'connectionFailed'; status: number })
  /** Disconnection Complete; `requestedBy` when an HCI Disconnect from the capturing host preceded it. Core 5.4 Vol 4 Part E 7.7.5. */
  | (OnConnection & { kind: 'disconnection'; status: number; reason: number; requestedBy: Side | undefined; requestedReason: number | undefined })
  /** An ATT PDU kept for the rules. Core 5.4 Vol 3 Part F 3.4. */
  | (Sent & { kind: 'att'; pdu: AttPdu })
  /** An SMP PDU. Core 5.4 Vol 3 Part H 3. */
  | (Sent & { kind: 'smp'; pdu: SmpPdu })
  /** LE Long Term Key Request (accessory-side captures). Core 5.4 Vol 4 Part E 7.7.65.5. */
  | (OnConnection & { kind: 'ltkRequest'; ediv: number; rand: bigint })
  /** LE Long Term Key Request Reply (positive) or Negative Reply. Core 5.4 Vol 4 Part E 7.8.25 / 7.8.26. */
  | (OnConnection & { kind: 'ltkReply'; positive: boolean })
  /** LE Enable Encryption (phone-side captures). Core 5.4 Vol 4 Part E 7.8.24. */
  | (OnConnection & { kind: 'startEncryption'; ediv: number; rand: bigint })
  /** Encryption Change (v1/v2) or Encryption Key Refresh Complete. Core 5.4 Vol 4 Part E 7.7.8 / 7.7.39. */
  | (OnConnection & { kind: 'encryptionChange'; status: number; enabled: boolean; keySize: number | undefined; refresh: boolean })
  /** Read Encryption Key Size result. Core 5.4 Vol 4 Part E 7.5.7. */
  | (OnConnection & { kind: 'keySize'; keySize: number })
  /**
   * A connection parameter request: L2CAP Connection Parameter Update Request (Core 5.4 Vol 3 Part A
   * 4.20), HCI LE Connection Update sent by the capturing host (Vol 4 Part E 7.8.18), or the LL
   * procedure reported as LE Remote Connection Parameter Request (7.7.65.6).
   */
  | (Sent & { kind: 'connParamRequest'; via: 'l2cap' | 'hci' | 'll'; params: ConnectionParameters })
  /** L2CAP Connection Parameter Update Response. Core 5.4 Vol 3 Part A 4.21. */
  | (Sent & { kind: 'connParamResponse'; accepted: boolean; result: number })
  /** LE Connection Update Complete. Core 5.4 Vol 4 Part E 7.7.65.3. */
  | (OnConnection & { kind: 'connUpdate'; status: number; interval: number; latency: number; timeout: number })
  /**
   * A Handle Value Indication from the accessory on the Service Changed characteristic: its value
   * handle known (given, or learned from GATT discovery in this capture) or `guessed` (a 4-byte
   * handle range indicated before the phone's first request). Core 5.4 Vol 3 Part G 7.1.
   */
  | (Sent & { kind: 'serviceChanged'; attHandle: number; guessed: boolean; startHandle: number; endHandle: number })
  /** HCI Reset sent by the capturing host: it (re)started, and whatever it kept only in memory is gone. Core 5.4 Vol 4 Part E 7.3.2. */
  | (Base & { kind: 'hostReset' })
  /** LE Add Device To Resolving List: the capturing host holds this peer IRK. Core 5.4 Vol 4 Part E 7.8.38. */
  | (Base & { kind: 'resolvingListAdd'; identity: Address })
  /** A command the controller refused (Command Complete/Status with an error) that matters here. */
  | (Base & { kind: 'commandFailed'; connId: number | undefined; opcode: number; name: string; status: number })
  /** A packet that could not be decoded. */
  | (Base & { kind: 'decodeError'; connId: number | undefined; message: string });

export type TimelineEventKind = TimelineEvent['kind'];
export type TimelineEventOf<K extends TimelineEventKind> = Extract<TimelineEvent, { kind: K }>;

/** An IRK seen in the capture and the identity it belongs to. */
export interface KnownIrk {
  readonly irk: Uint8Array;
  readonly identity: Address;
  readonly seenAt: PacketRef;
  readonly via: 'smp' | 'resolving-list';
}

export interface TimelineOptions {
  /**
   * Resolves an on-air address to an identity (live: the host's bond store `resolve`). Returns the
   * identity address, or undefined when no stored IRK resolves it.
   */
  resolveAddress?: (address: Address) => Address | undefined;
  /** Value handle of the accessory's Service Changed characteristic, when known (live: our GATT database). */
  serviceChangedHandle?: number;
  /**
   * Keep the flat `events` list of the whole timeline (default true). The rules read only the
   * per-connection lists; a long-running live diagnoser turns this off.
   */
  keepGlobalEvents?: boolean;
  /** ATT requests kept per connection before further ones are only counted (default 2000); the same bound applies to ATT Error Responses, counted apart. */
  maxAttEventsPerConnection?: number;
  /**
   * Events of any other kind kept per connection (default: no bound); its LE Connection Complete and
   * Disconnection Complete are always kept. A long-running live diagnoser bounds it so that a peer
   * flooding one link cannot grow memory.
   */
  maxEventsPerConnection?: number;
  /** IRKs remembered (default: no bound); the oldest is forgotten first. */
  maxIrks?: number;
}

export interface Timeline {
  readonly events: readonly TimelineEvent[];
  readonly connections: readonly ConnectionRecord[];
  readonly perspective: CapturePerspective;
  readonly irks: readonly KnownIrk[];
  /** Value handle of Service Changed, if given or learned. */
  readonly serviceChangedHandle: number | undefined;
  readonly firstTime: number | undefined;
  readonly lastTime: number | undefined;
  readonly packetCount: number;
}

const UUID_SERVICE_CHANGED = 0x2a05;
const UUID_CHARACTERISTIC = 0x2803;
const CID_ATT = 0x0004;
const CID_LE_SIGNALING = 0x0005;
const CID_SMP = 0x0006;
/** LE Set Extended Advertising Enable: not in the HCI command table (legacy advertising is what we send). */
const OPCODE_LE_SET_EXTENDED_ADVERTISING_ENABLE = 0x2039;
/** LE Enhanced Connection Complete v2 subevent (extended advertising): the v1 layout plus 3 bytes. */
const SUBEVENT_ENHANCED_CONNECTION_COMPLETE_V2 = 0x29;

/** ATT PDU types kept as events; the rest are counted. */
const KEPT_ATT: ReadonlySet<AttPdu['type']> = new Set<AttPdu['type']>([
  'errorResponse',
  'exchangeMtuRequest',
  'exchangeMtuResponse',
  'findInformationRequest',
  'findByTypeValueRequest',
  'readByTypeRequest',
  'readRequest',
  'readBlobRequest',
  'readMultipleRequest',
  'readByGroupTypeRequest',
  'writeRequest',
  'prepareWriteRequest',
  'executeWriteRequest',
  'readMultipleVariableRequest',
  'handleValueIndication',
  'handleValueConfirmation',
]);

/** Who sent a packet with `origin` on a link where the capturing host has `localRole`. */
export function sideOf(origin: Origin, localRole: 'central' | 'peripheral' | undefined): Side | undefined {
  if (localRole === undefined) return undefined;
  const localSide: Side = localRole === 'peripheral' ? 'accessory' : 'phone';
  return origin === 'local' ? localSide : localSide === 'accessory' ? 'phone' : 'accessory';
}

/** The key that groups connections of the same peer: its identity when known, else its on-air address. */
export function peerKey(conn: ConnectionRecord): string | undefined {
  const a = conn.peer?.identity ?? conn.peer?.onAir;
  return a ? `${a.type}:${a.address}` : undefined;
}

interface Reassembly {
  parts: Uint8Array[];
  have: number;
  need: number;
}

/**
 * Builds a timeline one packet at a time. `push` returns the events that packet produced (live
 * use); `timeline()` the whole timeline so far.
 */
export class TimelineBuilder {
  private readonly events: TimelineEvent[] = [];
  private readonly connections: ConnectionRecord[] = [];
  /** Connections by id (ids are never reused; {@link drop} removes a record from both). */
  private readonly byId = new Map<number, ConnectionRecord>();
  private nextId = 1;
  /** Per connection id: ATT Error Responses kept, and events of other kinds kept (retention bounds). */
  private readonly kept = new Map<number, { errors: number; other: number }>();
  /** Events not kept because of the bounds, over all connections. */
  droppedEvents = 0;
  private readonly byHandle = new Map<number, ConnectionRecord>();
  private readonly reassembly = new Map<number, Reassembly>();
  private readonly irks: KnownIrk[] = [];
  /** Per connection id: the IRK the remote side distributed, waiting for its Identity Address Information. */
  private readonly pendingIrk = new Map<number, { irk: Uint8Array; at: PacketRef }>();
  /** Per connection id: last ATT request from the client, to interpret discovery responses. */
  private readonly lastRequest = new Map<number, AttPdu>();
  /** Per connection id: the phone sent its first ATT request (for the Service Changed guess). */
  private readonly phoneSpoke = new Set<number>();
  /** Per handle: an HCI Disconnect the capturing host sent. */
  private readonly pendingDisconnect = new Map<number, number>();
  private scHandle: number | undefined;
  private first: number | undefined;
  private last: number | undefined;
  private count = 0;
  private out: TimelineEvent[] = [];

  constructor(private readonly opts: TimelineOptions = {}) {
    this.scHandle = opts.serviceChangedHandle;
  }

  /** Decodes one packet; returns the events it produced. Never throws on malformed input. */
  push(p: CapturedPacket): TimelineEvent[] {
    this.out = [];
    this.count++;
    if (this.first === undefined) this.first = p.time;
    this.last = p.time;
    const at: PacketRef = p.line === undefined ? { number: p.number, time: p.time } : { number: p.number, time: p.time, line: p.line };
    const type = p.h4[0];
    const body = p.h4.subarray(1);
    if (type === 0x01 && p.direction === 'host->controller') this.onCommand(body, at);
    else if (type === 0x04 && p.direction === 'controller->host') this.onEvent(body, at);
    else if (type === 0x02) {
      if (!p.truncated) this.onAcl(body, p.direction, at);
    } else if (type === undefined) this.add({ kind: 'decodeError', at, connId: undefined, message: 'empty packet' });
    return this.out;
  }

  /** The timeline so far. Cheap: it shares the builder's arrays. */
  timeline(): Timeline {
    return {
      events: this.events,
      connections: this.connections,
      perspective: this.perspective(),
      irks: this.irks,
      serviceChangedHandle: this.scHandle,
      firstTime: this.first,
      lastTime: this.last,
      packetCount: this.count,
    };
  }

  /** The connection currently using `handle`, if any. */
  connectionByHandle(handle: number): ConnectionRecord | undefined {
    return this.byHandle.get(handle);
  }

  private perspective(): CapturePerspective {
    let acc = 0;
    let phone = 0;
    for (const c of this.connections) {
      if (c.localRole === 'peripheral') acc++;
      else if (c.localRole === 'central') phone++;
    }
    if (acc === 0 && phone === 0) return 'unknown';
    return acc >= phone ? 'accessory' : 'phone';
  }

  private add(e: TimelineEvent): void {
    if (this.opts.keepGlobalEvents !== false) this.events.push(e);
    this.out.push(e);
    if (!('connId' in e) || e.connId === undefined) return;
    const c = this.byId.get(e.connId);
    if (!c) return;
    const cap = this.opts.maxEventsPerConnection;
    if (cap !== undefined && e.kind !== 'connection' && e.kind !== 'disconnection' && e.kind !== 'att') {
      const k = this.keptOf(c.id);
      if (k.other >= cap) {
        this.droppedEvents++;
        return;
      }
      k.other++;
    }
    c.events.push(e);
  }

  private keptOf(connId: number): { errors: number; other: number } {
    let k = this.kept.get(connId);
    if (!k) {
      k = { errors: 0, other: 0 };
      this.kept.set(connId, k);
    }
    return k;
  }

  /** The connection record with this id, unless it was dropped. */
  connectionById(connId: number): ConnectionRecord | undefined {
    return this.byId.get(connId);
  }

  /**
   * Ends every open connection at `at` (live use: the host sent HCI Reset, which drops every link,
   * Core 5.4 Vol 4 Part E 7.3.2, and no Disconnection Complete will come for them). Returns their ids.
   */
  endOpenConnections(at: PacketRef): number[] {
    const ids: number[] = [];
    for (const c of this.byHandle.values()) {
      if (c.end === undefined) c.end = at;
      ids.push(c.id);
    }
    this.byHandle.clear();
    this.reassembly.clear();
    this.pendingDisconnect.clear();
    return ids;
  }

  /**
   * Removes an ended connection from the timeline entirely, with everything kept for it. Live use:
   * bounds memory over a long session (the diagnoser keeps a few ended connections for the rules
   * that look at earlier connections of the same peer, and drops older ones).
   */
  drop(connId: number): void {
    const c = this.byId.get(connId);
    if (!c || c.end === undefined) return;
    this.byId.delete(connId);
    const i = this.connections.indexOf(c);
    if (i >= 0) this.connections.splice(i, 1);
    this.kept.delete(connId);
    this.pendingIrk.delete(connId);
    this.lastRequest.delete(connId);
    this.phoneSpoke.delete(connId);
  }

  /**
   * Drops the ATT traffic of an ended connection, keeping what tells its security story (SMP, LTK,
   * encryption, ATT errors, ...). Live use: bounds memory over a long session.
   */
  forget(connId: number): void {
    const c = this.byId.get(connId);
    if (!c || c.end === undefined) return;
    const kept = c.events.filter((e) => e.kind !== 'att' || e.pdu.type === 'errorResponse' || e.pdu.type === 'exchangeMtuRequest' || e.pdu.type === 'exchangeMtuResponse');
    c.events.length = 0;
    c.events.push(...kept);
  }

  private addIrk(k: KnownIrk): void {
    this.irks.push(k);
    const max = this.opts.maxIrks;
    if (max !== undefined && this.irks.length > max) this.irks.splice(0, this.irks.length - max);
  }

  /** The connection on `handle`; traffic on a handle whose LE Connection Complete was not captured opens one. */
  private connFor(handle: number): ConnectionRecord {
    return this.byHandle.get(handle) ?? this.newConnection(handle, undefined, undefined, undefined);
  }

  private newConnection(handle: number, localRole: 'central' | 'peripheral' | undefined, peer: PeerInfo | undefined, start: PacketRef | undefined): ConnectionRecord {
    const c: ConnectionRecord = {
      id: this.nextId++,
      handle,
      localRole,
      roleSource: localRole === undefined ? undefined : 'connection-complete',
      peer,
      start,
      end: undefined,
      disconnectReason: undefined,
      params: undefined,
      events: [],
      attCounted: 0,
      attKept: 0,
    };
    this.connections.push(c);
    this.byId.set(c.id, c);
    this.byHandle.set(handle, c);
    return c;
  }

  /** Sets the capturing host's role on a connection whose LE Connection Complete was not captured. */
  private inferRole(c: ConnectionRecord, role: 'central' | 'peripheral'): void {
    if (c.localRole !== undefined) return;
    c.localRole = role;
    c.roleSource = 'inferred';
    for (const e of c.events) if ('origin' in e) e.from = sideOf(e.origin, role);
  }

  // ---- HCI commands (host -> controller) ----

  private onCommand(body: Uint8Array, at: PacketRef): void {
    if (body.length >= 4 && ((body[0] as number) | ((body[1] as number) << 8)) === OPCODE_LE_SET_EXTENDED_ADVERTISING_ENABLE) {
      this.add({ kind: 'advertising', at, enabled: body[3] === 1 });
      return;
    }
    const d = decodeCommand(body);
    if (!d.ok) {
      if (d.reason !== 'unknown-opcode') this.add({ kind: 'decodeError', at, connId: undefined, message: `HCI command ${formatOpcode(d.opcode)}: ${d.detail}` });
      return;
    }
    switch (d.name) {
      case 'LeSetAdvertisingEnable': {
        const p = d.params as { enable: boolean };
        this.add({ kind: 'advertising', at, enabled: p.enable });
        return;
      }
      case 'LeLongTermKeyRequestReply':
      case 'LeLongTermKeyRequestNegativeReply': {
        const c = this.connFor((d.params as { handle: number }).handle);
        this.inferRole(c, 'peripheral');
        this.add({ kind: 'ltkReply', at, connId: c.id, positive: d.name === 'LeLongTermKeyRequestReply' });
        return;
      }
      case 'LeEnableEncryption': {
        const p = d.params as { handle: number; rand: bigint; ediv: number };
        const c = this.connFor(p.handle);
        this.inferRole(c, 'central');
        this.add({ kind: 'startEncryption', at, connId: c.id, ediv: p.ediv, rand: p.rand });
        return;
      }
      case 'Disconnect': {
        const p = d.params as { handle: number; reason: number };
        this.pendingDisconnect.set(p.handle, p.reason);
        return;
      }
      case 'LeConnectionUpdate': {
        const p = d.params as { handle: number; connIntervalMin: number; connIntervalMax: number; maxLatency: number; supervisionTimeout: number };
        const c = this.connFor(p.handle);
        this.add({
          kind: 'connParamRequest',
          at,
          connId: c.id,
          origin: 'local',
          from: sideOf('local', c.localRole),
          via: 'hci',
          params: { intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout },
        });
        return;
      }
      case 'Reset':
        this.add({ kind: 'hostReset', at });
        return;
      case 'LeAddDeviceToResolvingList': {
        const p = d.params as { peerIdentityAddressType: number; peerIdentityAddress: string; peerIrk: Uint8Array };
        const identity: Address = { type: addressTypeFromByte(p.peerIdentityAddressType), address: p.peerIdentityAddress };
        if (p.peerIrk.some((b) => b !== 0)) this.addIrk({ irk: p.peerIrk, identity, seenAt: at, via: 'resolving-list' });
        this.add({ kind: 'resolvingListAdd', at, identity });
        return;
      }
      default:
        return;
    }
  }

  // ---- HCI events (controller -> host) ----

  private onEvent(body: Uint8Array, at: PacketRef): void {
    let input = body;
    if (body[0] === 0x3e && body[2] === SUBEVENT_ENHANCED_CONNECTION_COMPLETE_V2) {
      input = body.slice();
      input[2] = 0x0a;
    }
    const d = decodeEvent(input);
    if (!d.ok) {
      this.add({ kind: 'decodeError', at, connId: undefined, message: `HCI event 0x${d.code.toString(16).padStart(2, '0')}: ${d.error}` });
      return;
    }
    if (!d.event) return;
    this.onDecodedEvent(d.event, at);
  }

  private onDecodedEvent(ev: HciEvent, at: PacketRef): void {
    switch (ev.name) {
      case 'LeConnectionComplete':
      case 'LeEnhancedConnectionComplete': {
        const p = ev.params;
        if (p.status !== 0) {
          this.add({ kind: 'connectionFailed', at, status: p.status });
          return;
        }
        const role = p.role === 0x01 ? 'peripheral' : 'central';
        const peer = this.peerInfo(p.peerAddressType, p.peerAddress, ev.name === 'LeEnhancedConnectionComplete' ? ev.params.peerResolvablePrivateAddress : undefined);
        const prior = this.byHandle.get(p.handle);
        if (prior && prior.end === undefined) prior.end = at; // a lost Disconnection Complete
        const c = this.newConnection(p.handle, role, peer, at);
        c.params = { interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout };
        for (const key of [...this.reassembly.keys()]) if (key >> 1 === p.handle) this.reassembly.delete(key);
        this.add({ kind: 'connection', at, connId: c.id, status: 0, localRole: role, peer, interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout });
        return;
      }
      case 'DisconnectionComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle);
        if (p.status !== 0) {
          this.add({ kind: 'commandFailed', at, connId: c.id, opcode: 0x0406, name: 'Disconnect', status: p.status });
          return;
        }
        const requested = this.pendingDisconnect.get(p.handle);
        this.pendingDisconnect.delete(p.handle);
        c.end = at;
        c.disconnectReason = p.reason;
        this.byHandle.delete(p.handle);
        this.reassembly.delete(p.handle << 1);
        this.reassembly.delete((p.handle << 1) | 1);
        this.add({
          kind: 'disconnection',
          at,
          connId: c.id,
          status: p.status,
          reason: p.reason,
          requestedBy: requested === undefined ? undefined : sideOf('local', c.localRole),
          requestedReason: requested,
        });
        return;
      }
      case 'EncryptionChange':
      case 'EncryptionChangeV2': {
        const p = ev.params;
        const c = this.connFor(p.handle);
        const keySize = ev.name === 'EncryptionChangeV2' ? ev.params.keySize : undefined;
        this.add({ kind: 'encryptionChange', at, connId: c.id, status: p.status, enabled: p.status === 0 && p.enabled !== 0, keySize, refresh: false });
        return;
      }
      case 'EncryptionKeyRefreshComplete': {
        const c = this.connFor(ev.params.handle);
        this.add({ kind: 'encryptionChange', at, connId: c.id, status: ev.params.status, enabled: ev.params.status === 0, keySize: undefined, refresh: true });
        return;
      }
      case 'LeLongTermKeyRequest': {
        const c = this.connFor(ev.params.handle);
        this.inferRole(c, 'peripheral');
        this.add({ kind: 'ltkRequest', at, connId: c.id, ediv: ev.params.ediv, rand: ev.params.rand });
        return;
      }
      case 'LeConnectionUpdateComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle);
        if (p.status === 0) c.params = { interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout };
        this.add({ kind: 'connUpdate', at, connId: c.id, status: p.status, interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout });
        return;
      }
      case 'LeRemoteConnectionParameterRequest': {
        const p = ev.params;
        const c = this.connFor(p.handle);
        this.add({
          kind: 'connParamRequest',
          at,
          connId: c.id,
          origin: 'remote',
          from: sideOf('remote', c.localRole),
          via: 'll',
          params: { intervalMin: p.intervalMin, intervalMax: p.intervalMax, latency: p.maxLatency, timeout: p.timeout },
        });
        return;
      }
      case 'CommandComplete':
        this.onCommandComplete(ev.params.opcode, ev.params.returnParameters, at);
        return;
      case 'CommandStatus': {
        const p = ev.params;
        if (p.status !== 0 && p.opcode === 0x2019) {
          this.add({ kind: 'commandFailed', at, connId: undefined, opcode: p.opcode, name: 'LeEnableEncryption', status: p.status });
        }
        return;
      }
      default:
        return;
    }
  }

  private onCommandComplete(opcode: number, ret: Uint8Array, at: PacketRef): void {
    const status = ret[0];
    if (status === undefined) return;
    if (opcode === 0x1408) {
      // Read Encryption Key Size: status, handle, key size.
      if (status !== 0) {
        this.add({ kind: 'commandFailed', at, connId: undefined, opcode, name: 'ReadEncryptionKeySize', status });
        return;
      }
      try {
        const r = decodeReturn('ReadEncryptionKeySize', ret.subarray(1));
        const c = this.connFor(r.handle);
        this.add({ kind: 'keySize', at, connId: c.id, keySize: r.keySize });
      } catch {
        this.add({ kind: 'decodeError', at, connId: undefined, message: `Read Encryption Key Size return of ${ret.length} bytes` });
      }
      return;
    }
    if ((opcode === 0x201a || opcode === 0x201b) && status !== 0) {
      const handle = ret.length >= 3 ? (ret[1] as number) | ((ret[2] as number) << 8) : undefined;
      const c = handle === undefined ? undefined : this.byHandle.get(handle);
      this.add({ kind: 'commandFailed', at, connId: c?.id, opcode, name: opcode === 0x201a ? 'LeLongTermKeyRequestReply' : 'LeLongTermKeyRequestNegativeReply', status });
    }
  }

  private peerInfo(typeByte: number, address: string, peerRpaText: string | undefined): PeerInfo {
    const resolvedByController = (typeByte === 0x02 || typeByte === 0x03) && peerRpaText !== undefined && peerRpaText !== '00:00:00:00:00:00';
    if (resolvedByController) {
      const identity: Address = { type: typeByte === 0x02 ? 'public' : 'random', address };
      const onAir: Address = { type: 'random', address: peerRpaText };
      return { onAir, isRpa: true, identity, identitySource: 'controller' };
    }
    const onAir: Address = { type: addressTypeFromByte(typeByte), address };
    const rpa = isResolvablePrivateAddress(onAir);
    if (!rpa) {
      // Public or static random: the address is the identity (a non-resolvable private address is not).
      const identityLike = onAir.type === 'public' || randomAddressKind(address) === 'static';
      return identityLike ? { onAir, isRpa: false, identity: onAir, identitySource: 'address' } : { onAir, isRpa: false };
    }
    const viaResolver = this.opts.resolveAddress?.(onAir);
    if (viaResolver) return { onAir, isRpa: true, identity: viaResolver, identitySource: 'resolver' };
    for (let i = this.irks.length - 1; i >= 0; i--) {
      const k = this.irks[i] as KnownIrk;
      if (irkResolvesAddress(k.irk, onAir)) return { onAir, isRpa: true, identity: k.identity, identitySource: 'trace-irk', irkSeenAt: k.seenAt, irkVia: k.via };
    }
    return { onAir, isRpa: true };
  }

  // ---- ACL data, L2CAP ----

  private onAcl(body: Uint8Array, dir: HciDirection, at: PacketRef): void {
    const d = decodeAcl(body);
    if (!d.ok) {
      this.add({ kind: 'decodeError', at, connId: undefined, message: `ACL: ${d.error}` });
      return;
    }
    const { handle, boundary, data } = d.packet;
    const key = (handle << 1) | (dir === 'host->controller' ? 0 : 1);
    let frame: Uint8Array | undefined;
    if (boundary === AclBoundary.Continuing) {
      const r = this.reassembly.get(key);
      if (!r) {
        this.add({ kind: 'decodeError', at, connId: this.byHandle.get(handle)?.id, message: `ACL continuation on handle 0x${handle.toString(16)} without a start fragment` });
        return;
      }
      r.parts.push(data);
      r.have += data.length;
      if (r.need < 0 && r.have >= 4) r.need = 4 + l2capLength(r.parts);
      if (r.need >= 0 && r.have >= r.need) {
        frame = concat(r.parts, r.have);
        this.reassembly.delete(key);
      } else return;
    } else {
      if (this.reassembly.has(key)) {
        this.add({ kind: 'decodeError', at, connId: this.byHandle.get(handle)?.id, message: `ACL start fragment on handle 0x${handle.toString(16)} before the previous L2CAP frame was complete (dropped)` });
        this.reassembly.delete(key);
      }
      const need = data.length >= 4 ? 4 + ((data[0] as number) | ((data[1] as number) << 8)) : -1;
      if (need >= 0 && data.length >= need) frame = data;
      else {
        this.reassembly.set(key, { parts: [data], have: data.length, need });
        return;
      }
    }
    const len = (frame[0] as number) | ((frame[1] as number) << 8);
    if (frame.length !== 4 + len) {
      this.add({ kind: 'decodeError', at, connId: this.byHandle.get(handle)?.id, message: `L2CAP frame on handle 0x${handle.toString(16)}: length field ${len}, ${frame.length - 4} bytes` });
      return;
    }
    const cid = (frame[2] as number) | ((frame[3] as number) << 8);
    const payload = frame.subarray(4);
    const c = this.connFor(handle);
    const origin: Origin = dir === 'host->controller' ? 'local' : 'remote';
    if (cid === CID_SMP) this.onSmp(c, origin, payload, at);
    else if (cid === CID_ATT) this.onAtt(c, origin, payload, at);
    else if (cid === CID_LE_SIGNALING) this.onSignaling(c, origin, payload, at);
  }

  private onSmp(c: ConnectionRecord, origin: Origin, payload: Uint8Array, at: PacketRef): void {
    const r = decodeSmp(payload);
    if (!r.ok) {
      this.add({ kind: 'decodeError', at, connId: c.id, message: `SMP: ${r.message}` });
      return;
    }
    const pdu = r.pdu;
    if (pdu.type === 'securityRequest') this.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
    else if (pdu.type === 'pairingRequest') this.inferRole(c, origin === 'local' ? 'central' : 'peripheral');
    else if (pdu.type === 'pairingResponse') this.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
    if (origin === 'remote') {
      if (pdu.type === 'identityInformation') this.pendingIrk.set(c.id, { irk: pdu.irk, at });
      else if (pdu.type === 'identityAddressInformation') {
        const pending = this.pendingIrk.get(c.id);
        this.pendingIrk.delete(c.id);
        if (pending && pending.irk.some((b) => b !== 0)) this.addIrk({ irk: pending.irk, identity: pdu.address, seenAt: pending.at, via: 'smp' });
        if (c.peer && !c.peer.identity) {
          c.peer.identity = pdu.address;
          c.peer.identitySource = 'pairing';
        } else if (!c.peer) {
          c.peer = { onAir: pdu.address, isRpa: false, identity: pdu.address, identitySource: 'pairing' };
        }
      }
    }
    this.add({ kind: 'smp', at, connId: c.id, origin, from: sideOf(origin, c.localRole), pdu: redactSmp(pdu) });
  }

  private onAtt(c: ConnectionRecord, origin: Origin, payload: Uint8Array, at: PacketRef): void {
    const r = decodeAttPdu(payload);
    if (!r.ok) {
      this.add({ kind: 'decodeError', at, connId: c.id, message: `ATT: ${r.reason}` });
      return;
    }
    const pdu = r.pdu;
    const from = sideOf(origin, c.localRole);
    if (r.spec.kind === 'request') {
      this.lastRequest.set(c.id, pdu);
      if (from !== 'accessory') this.phoneSpoke.add(c.id);
    } else if (pdu.type === 'readByTypeResponse' || pdu.type === 'findInformationResponse') {
      this.learnServiceChanged(c.id, pdu);
    }
    if (pdu.type === 'handleValueIndication' && from !== 'phone') {
      const sc = this.serviceChangedFor(c.id, pdu);
      if (sc) {
        this.add({ kind: 'serviceChanged', at, connId: c.id, origin, from, ...sc });
        return;
      }
    }
    const maxAtt = this.opts.maxAttEventsPerConnection ?? 2000;
    if (KEPT_ATT.has(pdu.type) && (pdu.type === 'errorResponse' ? this.keptOf(c.id).errors < maxAtt : c.attKept < maxAtt)) {
      if (pdu.type !== 'errorResponse') c.attKept++;
      else this.keptOf(c.id).errors++;
      this.add({ kind: 'att', at, connId: c.id, origin, from, pdu });
    } else c.attCounted++;
  }

  /** Learns the Service Changed value handle from discovery responses (characteristic declarations, Find Information). */
  private learnServiceChanged(connId: number, pdu: AttPdu): void {
    if (pdu.type === 'findInformationResponse') {
      for (const e of pdu.entries) if (e.uuid.length === 2 && ((e.uuid[0] as number) | ((e.uuid[1] as number) << 8)) === UUID_SERVICE_CHANGED) this.scHandle = e.handle;
      return;
    }
    if (pdu.type !== 'readByTypeResponse') return;
    const req = this.lastRequest.get(connId);
    if (!req || req.type !== 'readByTypeRequest' || req.attributeType.length !== 2) return;
    if (((req.attributeType[0] as number) | ((req.attributeType[1] as number) << 8)) !== UUID_CHARACTERISTIC) return;
    for (const d of pdu.data) {
      // Characteristic declaration value: properties (1), value handle (2), UUID (2 or 16). Core 5.4 Vol 3 Part G 3.3.1.
      if (d.value.length === 5 && ((d.value[3] as number) | ((d.value[4] as number) << 8)) === UUID_SERVICE_CHANGED) {
        this.scHandle = (d.value[1] as number) | ((d.value[2] as number) << 8);
      }
    }
  }

  private serviceChangedFor(connId: number, pdu: AttPdu & { type: 'handleValueIndication' }): { attHandle: number; guessed: boolean; startHandle: number; endHandle: number } | undefined {
    if (pdu.value.length !== 4) return undefined;
    const startHandle = (pdu.value[0] as number) | ((pdu.value[1] as number) << 8);
    const endHandle = (pdu.value[2] as number) | ((pdu.value[3] as number) << 8);
    if (this.scHandle !== undefined) {
      return pdu.handle === this.scHandle ? { attHandle: pdu.handle, guessed: false, startHandle, endHandle } : undefined;
    }
    // Guess: a handle range indicated before the phone asked anything on this connection.
    if (startHandle >= 1 && startHandle <= endHandle && !this.phoneSpoke.has(connId)) {
      return { attHandle: pdu.handle, guessed: true, startHandle, endHandle };
    }
    return undefined;
  }

  private onSignaling(c: ConnectionRecord, origin: Origin, payload: Uint8Array, at: PacketRef): void {
    const r = decodeSignaling(payload);
    if (!r.ok) {
      if (r.reason === 'bad-length') this.add({ kind: 'decodeError', at, connId: c.id, message: `L2CAP signaling: ${r.detail}` });
      return;
    }
    const pdu = r.pdu;
    if (pdu.type === 'connectionParameterUpdateRequest') {
      this.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
      this.add({
        kind: 'connParamRequest',
        at,
        connId: c.id,
        origin,
        from: sideOf(origin, c.localRole),
        via: 'l2cap',
        params: { intervalMin: pdu.intervalMin, intervalMax: pdu.intervalMax, latency: pdu.latency, timeout: pdu.timeout },
      });
    } else if (pdu.type === 'connectionParameterUpdateResponse') {
      this.add({ kind: 'connParamResponse', at, connId: c.id, origin, from: sideOf(origin, c.localRole), accepted: pdu.result === 0, result: pdu.result });
    }
  }
}

function l2capLength(parts: Uint8Array[]): number {
  const head = concat(parts, Math.min(4, parts.reduce((n, p) => n + p.length, 0)));
  return (head[0] as number) | ((head[1] as number) << 8);
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    if (o >= n) break;
    const take = Math.min(p.length, n - o);
    out.set(take === p.length ? p : p.subarray(0, take), o);
    o += take;
  }
  return out;
}

/** Key material stays out of the timeline (and so out of reports): LTK, IRK and CSRK are zeroed copies. */
function redactSmp(pdu: SmpPdu): SmpPdu {
  switch (pdu.type) {
    case 'encryptionInformation':
      return { type: pdu.type, ltk: new Uint8Array(16) };
    case 'identityInformation':
      return { type: pdu.type, irk: new Uint8Array(16) };
    case 'signingInformation':
      return { type: pdu.type, csrk: new Uint8Array(16) };
    default:
      return pdu;
  }
}

/** Builds the timeline of a whole capture. */
export function buildTimeline(packets: Iterable<CapturedPacket>, opts: TimelineOptions = {}): Timeline {
  const b = new TimelineBuilder(opts);
  for (const p of packets) b.push(p);
  return b.timeline();
}

/** Events of one kind on one connection. */
export function eventsOf<K extends TimelineEventKind>(conn: ConnectionRecord, kind: K): TimelineEventOf<K>[] {
  return conn.events.filter((e): e is TimelineEventOf<K> => e.kind === kind);
}

/** Short text of an address for messages. */
export function addressText(a: Address): string {
  return `${a.address} (${a.type}${isResolvablePrivateAddress(a) ? ', resolvable private' : ''})`;
}
