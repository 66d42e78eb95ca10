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
 * This file is the builder: each packet's HCI command, HCI event or L2CAP channel (SMP, ATT, LE
 * signaling) turned into events. The pieces it uses each own one concern: the model the rules read
 * (timeline-model.ts, re-exported here), the connection records and retention bounds
 * (timeline-connections.ts), the peers' identities and the IRKs seen (timeline-identity.ts), ACL
 * reassembly into L2CAP frames (timeline-acl.ts), and the Service Changed handle and indications
 * (timeline-service-changed.ts).
 *
 * Core 5.4 references: HCI events and commands Vol 4 Part E 7; ACL Vol 4 Part E 5.4.2; L2CAP basic
 * frames Vol 3 Part A 3.1; SMP Vol 3 Part H 3; ATT Vol 3 Part F 3.4; Service Changed Vol 3 Part G 7.1.
 */
import { addressTypeFromByte, type Address } from '../util/address.js';
import { decodeAcl } from '../hci/acl.js';
import { decodeCommand, decodeReturn, formatOpcode } from '../hci/commands.js';
import { decodeEvent, type HciEvent } from '../hci/events.js';
import { decodeSignaling } from '../l2cap/signaling-pdu.js';
import { decodeSmp, type SmpPdu } from '../smp/pdu.js';
import { decodeAttPdu, type AttPdu } from '../att/pdu.js';
import type { CapturedPacket, HciDirection } from './capture.js';
import { AclReassembler } from './timeline-acl.js';
import { ConnectionTable } from './timeline-connections.js';
import { PeerIdentityResolver } from './timeline-identity.js';
import { ServiceChangedWatch } from './timeline-service-changed.js';
import { sideOf, type ConnectionRecord, type Origin, type PacketRef, type Timeline, type TimelineEvent, type TimelineOptions } from './timeline-model.js';

export {
  addressText,
  eventsOf,
  peerKey,
  sideOf,
  type CapturePerspective,
  type ConnectionRecord,
  type IdentitySource,
  type KnownIrk,
  type Origin,
  type PacketRef,
  type PeerInfo,
  type Side,
  type Timeline,
  type TimelineEvent,
  type TimelineEventKind,
  type TimelineEventOf,
  type TimelineOptions,
} from './timeline-model.js';

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

/**
 * Builds a timeline one packet at a time. `push` returns the events that packet produced (live
 * use); `timeline()` the whole timeline so far.
 */
export class TimelineBuilder {
  private readonly conns: ConnectionTable;
  private readonly identities: PeerIdentityResolver;
  private readonly serviceChanged: ServiceChangedWatch;
  private readonly acl = new AclReassembler((at, handle, message) => this.add({ kind: 'decodeError', at, connId: this.conns.openOn(handle)?.id, message }));
  /** Per handle: an HCI Disconnect the capturing host sent. */
  private readonly pendingDisconnect = new Map<number, number>();
  private first: number | undefined;
  private last: number | undefined;
  private count = 0;
  private out: TimelineEvent[] = [];

  constructor(opts: TimelineOptions = {}) {
    this.conns = new ConnectionTable(opts);
    this.identities = new PeerIdentityResolver(opts);
    this.serviceChanged = new ServiceChangedWatch(opts.serviceChangedHandle);
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
      events: this.conns.events,
      connections: this.conns.connections,
      perspective: this.conns.perspective(),
      irks: this.identities.irks,
      serviceChangedHandle: this.serviceChanged.handle,
      firstTime: this.first,
      lastTime: this.last,
      packetCount: this.count,
    };
  }

  /** The connection currently using `handle`, if any. */
  connectionByHandle(handle: number): ConnectionRecord | undefined {
    return this.conns.openOn(handle);
  }

  /** Events not kept because of the retention bounds, over all connections. */
  get droppedEvents(): number {
    return this.conns.droppedEvents;
  }

  /** The connection record with this id, unless it was dropped. */
  connectionById(connId: number): ConnectionRecord | undefined {
    return this.conns.find(connId);
  }

  /**
   * Ends every open connection at `at` (live use: the host sent HCI Reset, which drops every link,
   * Core 5.4 Vol 4 Part E 7.3.2, and no Disconnection Complete will come for them). Returns their ids.
   */
  endOpenConnections(at: PacketRef): number[] {
    const ids = this.conns.endOpen(at);
    this.acl.clear();
    this.pendingDisconnect.clear();
    return ids;
  }

  /**
   * Removes an ended connection from the timeline entirely, with everything kept for it. Live use:
   * bounds memory over a long session (the diagnoser keeps a few ended connections for the rules
   * that look at earlier connections of the same peer, and drops older ones).
   */
  drop(connId: number): void {
    if (!this.conns.drop(connId)) return;
    this.identities.forgetConnection(connId);
    this.serviceChanged.forgetConnection(connId);
  }

  /**
   * Drops the ATT traffic of an ended connection, keeping what tells its security story (SMP, LTK,
   * encryption, ATT errors, ...). Live use: bounds memory over a long session.
   */
  forget(connId: number): void {
    this.conns.forget(connId);
  }

  /** Keeps an event: in this packet's result, the timeline and its connection. */
  private add(e: TimelineEvent): void {
    this.out.push(e);
    this.conns.record(e);
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
        const c = this.conns.forHandle((d.params as { handle: number }).handle);
        this.conns.inferRole(c, 'peripheral');
        this.add({ kind: 'ltkReply', at, connId: c.id, positive: d.name === 'LeLongTermKeyRequestReply' });
        return;
      }
      case 'LeEnableEncryption': {
        const p = d.params as { handle: number; rand: bigint; ediv: number };
        const c = this.conns.forHandle(p.handle);
        this.conns.inferRole(c, 'central');
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
        const c = this.conns.forHandle(p.handle);
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
        this.identities.resolvingListAdd(identity, p.peerIrk, at);
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
        const peer = this.identities.peerInfo(p.peerAddressType, p.peerAddress, ev.name === 'LeEnhancedConnectionComplete' ? ev.params.peerResolvablePrivateAddress : undefined);
        const prior = this.conns.openOn(p.handle);
        if (prior && prior.end === undefined) prior.end = at; // a lost Disconnection Complete
        const c = this.conns.open(p.handle, role, peer, at);
        c.params = { interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout };
        this.acl.dropHandle(p.handle);
        this.add({ kind: 'connection', at, connId: c.id, status: 0, localRole: role, peer, interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout });
        return;
      }
      case 'DisconnectionComplete': {
        const p = ev.params;
        const c = this.conns.forHandle(p.handle);
        if (p.status !== 0) {
          this.add({ kind: 'commandFailed', at, connId: c.id, opcode: 0x0406, name: 'Disconnect', status: p.status });
          return;
        }
        const requested = this.pendingDisconnect.get(p.handle);
        this.pendingDisconnect.delete(p.handle);
        this.conns.close(c, at, p.reason);
        this.acl.dropHandle(p.handle);
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
        const c = this.conns.forHandle(p.handle);
        const keySize = ev.name === 'EncryptionChangeV2' ? ev.params.keySize : undefined;
        this.add({ kind: 'encryptionChange', at, connId: c.id, status: p.status, enabled: p.status === 0 && p.enabled !== 0, keySize, refresh: false });
        return;
      }
      case 'EncryptionKeyRefreshComplete': {
        const c = this.conns.forHandle(ev.params.handle);
        this.add({ kind: 'encryptionChange', at, connId: c.id, status: ev.params.status, enabled: ev.params.status === 0, keySize: undefined, refresh: true });
        return;
      }
      case 'LeLongTermKeyRequest': {
        const c = this.conns.forHandle(ev.params.handle);
        this.conns.inferRole(c, 'peripheral');
        this.add({ kind: 'ltkRequest', at, connId: c.id, ediv: ev.params.ediv, rand: ev.params.rand });
        return;
      }
      case 'LeConnectionUpdateComplete': {
        const p = ev.params;
        const c = this.conns.forHandle(p.handle);
        if (p.status === 0) c.params = { interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout };
        this.add({ kind: 'connUpdate', at, connId: c.id, status: p.status, interval: p.connInterval, latency: p.connLatency, timeout: p.supervisionTimeout });
        return;
      }
      case 'LeRemoteConnectionParameterRequest': {
        const p = ev.params;
        const c = this.conns.forHandle(p.handle);
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
        const c = this.conns.forHandle(r.handle);
        this.add({ kind: 'keySize', at, connId: c.id, keySize: r.keySize });
      } catch {
        this.add({ kind: 'decodeError', at, connId: undefined, message: `Read Encryption Key Size return of ${ret.length} bytes` });
      }
      return;
    }
    if ((opcode === 0x201a || opcode === 0x201b) && status !== 0) {
      const handle = ret.length >= 3 ? (ret[1] as number) | ((ret[2] as number) << 8) : undefined;
      const c = handle === undefined ? undefined : this.conns.openOn(handle);
      this.add({ kind: 'commandFailed', at, connId: c?.id, opcode, name: opcode === 0x201a ? 'LeLongTermKeyRequestReply' : 'LeLongTermKeyRequestNegativeReply', status });
    }
  }

  // ---- ACL data, L2CAP ----

  private onAcl(body: Uint8Array, dir: HciDirection, at: PacketRef): void {
    const d = decodeAcl(body);
    if (!d.ok) {
      this.add({ kind: 'decodeError', at, connId: undefined, message: `ACL: ${d.error}` });
      return;
    }
    const { handle, boundary, data } = d.packet;
    const frame = this.acl.frame(handle, dir, boundary, data, at);
    if (!frame) return;
    const cid = (frame[2] as number) | ((frame[3] as number) << 8);
    const payload = frame.subarray(4);
    const c = this.conns.forHandle(handle);
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
    if (pdu.type === 'securityRequest') this.conns.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
    else if (pdu.type === 'pairingRequest') this.conns.inferRole(c, origin === 'local' ? 'central' : 'peripheral');
    else if (pdu.type === 'pairingResponse') this.conns.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
    if (origin === 'remote') {
      if (pdu.type === 'identityInformation') this.identities.identityInformation(c.id, pdu.irk, at);
      else if (pdu.type === 'identityAddressInformation') this.identities.identityAddressInformation(c, pdu.address);
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
    if (r.spec.kind === 'request') this.serviceChanged.request(c.id, pdu, from);
    else if (pdu.type === 'readByTypeResponse' || pdu.type === 'findInformationResponse') this.serviceChanged.discoveryResponse(c.id, pdu);
    if (pdu.type === 'handleValueIndication' && from !== 'phone') {
      const sc = this.serviceChanged.indication(c.id, pdu);
      if (sc) {
        this.add({ kind: 'serviceChanged', at, connId: c.id, origin, from, ...sc });
        return;
      }
    }
    if (KEPT_ATT.has(pdu.type) && this.conns.keepAtt(c, pdu.type === 'errorResponse')) {
      this.add({ kind: 'att', at, connId: c.id, origin, from, pdu });
    } else c.attCounted++;
  }

  private onSignaling(c: ConnectionRecord, origin: Origin, payload: Uint8Array, at: PacketRef): void {
    const r = decodeSignaling(payload);
    if (!r.ok) {
      if (r.reason === 'bad-length') this.add({ kind: 'decodeError', at, connId: c.id, message: `L2CAP signaling: ${r.detail}` });
      return;
    }
    const pdu = r.pdu;
    if (pdu.type === 'connectionParameterUpdateRequest') {
      this.conns.inferRole(c, origin === 'local' ? 'peripheral' : 'central');
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
