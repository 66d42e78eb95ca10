/**
 * The timeline's model: the typed events, the connection records and the timeline itself that
 * every diagnosis rule reads, with the small helpers over them. No decoding here; the builder
 * (timeline.ts) fills this model from HCI traffic.
 *
 * Core 5.4 references: HCI events and commands Vol 4 Part E 7; SMP Vol 3 Part H 3; ATT Vol 3 Part F
 * 3.4; Service Changed Vol 3 Part G 7.1; resolvable private addresses Vol 6 Part B 1.3.2.2.
 */
import { isResolvablePrivateAddress, type Address } from '../util/address.js';
import type { ConnectionParameters } from '../l2cap/conn-params.js';
import type { SmpPdu } from '../smp/pdu.js';
import type { AttPdu } from '../att/pdu.js';

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

/** Events of one kind on one connection. */
export function eventsOf<K extends TimelineEventKind>(conn: ConnectionRecord, kind: K): TimelineEventOf<K>[] {
  return conn.events.filter((e): e is TimelineEventOf<K> => e.kind === kind);
}

/** Short text of an address for messages. */
export function addressText(a: Address): string {
  return `${a.address} (${a.type}${isResolvablePrivateAddress(a) ? ', resolvable private' : ''})`;
}
