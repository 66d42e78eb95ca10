/**
 * The timeline's per-connection store: connection records by id and by HCI connection handle, the
 * events kept for each, and the retention bounds that keep a long capture or a flooding peer from
 * growing memory (ATT requests and errors per connection, other events per connection, the global
 * event list). Also the capturing host's role on each link, set from LE Connection Complete or
 * inferred later, which decides who sent each PDU.
 *
 * Core 5.4 references: LE Connection Complete Role Vol 4 Part E 7.7.65.1; HCI Reset drops every
 * connection Vol 4 Part E 7.3.2.
 */
import { sideOf, type CapturePerspective, type ConnectionRecord, type PacketRef, type PeerInfo, type TimelineEvent, type TimelineOptions } from './timeline-model.js';

/** Connection records and the events kept for them. */
export class ConnectionTable {
  /** Every event, when the options keep the global list. */
  readonly events: TimelineEvent[] = [];
  readonly connections: ConnectionRecord[] = [];
  /** Connections by id (ids are never reused; {@link drop} removes a record from both). */
  private readonly byId = new Map<number, ConnectionRecord>();
  private nextId = 1;
  /** Per connection id: ATT Error Responses kept, and events of other kinds kept (retention bounds). */
  private readonly kept = new Map<number, { errors: number; other: number }>();
  /** Events not kept because of the bounds, over all connections. */
  droppedEvents = 0;
  /** Open connections by handle. */
  private readonly byHandle = new Map<number, ConnectionRecord>();

  constructor(private readonly opts: Pick<TimelineOptions, 'keepGlobalEvents' | 'maxAttEventsPerConnection' | 'maxEventsPerConnection'>) {}

  /** Records an event in the global list and on its connection, within the bounds. */
  record(e: TimelineEvent): void {
    if (this.opts.keepGlobalEvents !== false) this.events.push(e);
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

  /**
   * Whether an ATT PDU of a kept type is kept on `c` as an event (and counts it as kept), or only
   * counted: ATT requests and ATT Error Responses each have their bound.
   */
  keepAtt(c: ConnectionRecord, isErrorResponse: boolean): boolean {
    const maxAtt = this.opts.maxAttEventsPerConnection ?? 2000;
    if (isErrorResponse) {
      const k = this.keptOf(c.id);
      if (k.errors >= maxAtt) return false;
      k.errors++;
      return true;
    }
    if (c.attKept >= maxAtt) return false;
    c.attKept++;
    return true;
  }

  private keptOf(connId: number): { errors: number; other: number } {
    let k = this.kept.get(connId);
    if (!k) {
      k = { errors: 0, other: 0 };
      this.kept.set(connId, k);
    }
    return k;
  }

  /** The connection currently using `handle`, if any. */
  openOn(handle: number): ConnectionRecord | undefined {
    return this.byHandle.get(handle);
  }

  /** The connection record with this id, unless it was dropped. */
  find(connId: number): ConnectionRecord | undefined {
    return this.byId.get(connId);
  }

  /** The connection on `handle`; traffic on a handle whose LE Connection Complete was not captured opens one. */
  forHandle(handle: number): ConnectionRecord {
    return this.byHandle.get(handle) ?? this.open(handle, undefined, undefined, undefined);
  }

  /** A new connection on `handle` (it becomes the one traffic on that handle belongs to). */
  open(handle: number, localRole: 'central' | 'peripheral' | undefined, peer: PeerInfo | undefined, start: PacketRef | undefined): ConnectionRecord {
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

  /** Ends `c` (Disconnection Complete): its handle is free again. */
  close(c: ConnectionRecord, at: PacketRef, reason: number): void {
    c.end = at;
    c.disconnectReason = reason;
    this.byHandle.delete(c.handle);
  }

  /** Sets the capturing host's role on a connection whose LE Connection Complete was not captured. */
  inferRole(c: ConnectionRecord, role: 'central' | 'peripheral'): void {
    if (c.localRole !== undefined) return;
    c.localRole = role;
    c.roleSource = 'inferred';
    for (const e of c.events) if ('origin' in e) e.from = sideOf(e.origin, role);
  }

  /** Ends every open connection at `at`; returns their ids. */
  endOpen(at: PacketRef): number[] {
    const ids: number[] = [];
    for (const c of this.byHandle.values()) {
      if (c.end === undefined) c.end = at;
      ids.push(c.id);
    }
    this.byHandle.clear();
    return ids;
  }

  /** Removes an ended connection with everything kept for it; false when it is unknown or still open. */
  drop(connId: number): boolean {
    const c = this.byId.get(connId);
    if (!c || c.end === undefined) return false;
    this.byId.delete(connId);
    const i = this.connections.indexOf(c);
    if (i >= 0) this.connections.splice(i, 1);
    this.kept.delete(connId);
    return true;
  }

  /** Drops the ATT traffic of an ended connection, keeping what tells its security story. */
  forget(connId: number): void {
    const c = this.byId.get(connId);
    if (!c || c.end === undefined) return;
    const kept = c.events.filter((e) => e.kind !== 'att' || e.pdu.type === 'errorResponse' || e.pdu.type === 'exchangeMtuRequest' || e.pdu.type === 'exchangeMtuResponse');
    c.events.length = 0;
    c.events.push(...kept);
  }

  /** The device the capture was taken on, by the majority of connection roles. */
  perspective(): CapturePerspective {
    let acc = 0;
    let phone = 0;
    for (const c of this.connections) {
      if (c.localRole === 'peripheral') acc++;
      else if (c.localRole === 'central') phone++;
    }
    if (acc === 0 && phone === 0) return 'unknown';
    return acc >= phone ? 'accessory' : 'phone';
  }
}
