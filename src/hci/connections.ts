/**
 * The connection table: the links the controller reported (LE Connection Complete until
 * Disconnection Complete), their ACL credits and send queues ({@link AclScheduler}) and reassembly
 * ({@link AclReassembler}), and the link events (parameters, data length, PHY, encryption, LTK
 * requests) as typed driver events. An event or ACL data for a handle the table does not hold means
 * the controller's links and ours differ; the driver ({@link Hci}) decides to reset it.
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { addressTypeFromByte } from '../util/address.js';
import { toHex } from '../util/bytes.js';
import { Commands, type CommandName, type CommandParams, type CommandReturn } from './commands.js';
import type { EventParams, HciEvent } from './events.js';
import { aclFormatError, aclHandleAndFlags } from './acl.js';
import { HciStatus, hciStatusName } from './status.js';
import { HciError } from './hci-error.js';
import { AclScheduler, type AclTxStats } from './acl-tx.js';
import { AclReassembler, type AclRxStats } from './acl-rx.js';
import { HciConnection } from './connection.js';
import type { ControllerInfo } from './controller-info.js';
import type { HciDriverEvents, HciOptions, HciState } from './driver.js';

export interface EncryptionChange {
  status: number;
  enabled: boolean;
}

export interface ConnectionParameterRequest {
  intervalMin: number;
  intervalMax: number;
  maxLatency: number;
  timeout: number;
}

export interface ConnectionFailure {
  status: number;
  statusName: string;
  role: 'central' | 'peripheral' | undefined;
}

/** What the table needs from its driver. */
export interface ConnectionTableHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly port: string;
  readonly opts: HciOptions;
  state(): HciState;
  info(): ControllerInfo | undefined;
  command<N extends CommandName>(name: N, params: CommandParams<N>): Promise<CommandReturn<N>>;
  emit<K extends keyof HciDriverEvents>(event: K, ...args: HciDriverEvents[K]): boolean;
  listenerCount(event: keyof HciDriverEvents): number;
  write(packet: Uint8Array): Promise<void>;
  /** The links differ from the controller's (`why`); true when the driver will reset it. */
  inDoubt(why: string): boolean;
}

const NO_ADDRESS = '00:00:00:00:00:00';

/**
 * ACL data can overtake the LE Connection Complete of its own link: a controller whose data and
 * event queues are drained separately, or a transport with separate endpoints for them (USB), can
 * deliver a phone's first PDU (an MTU request, a Pairing Request) first. Such data is held this long
 * and replayed once its link is announced; only then does data for an unknown handle mean that the
 * controller's links and ours differ. (Bumble and BlueZ hold early ACL data the same way.)
 */
export const EARLY_ACL_GRACE_MS = 100;
/** Bounds on held early data: packets per handle, handles at once. */
const EARLY_ACL_MAX_PACKETS = 8;
const EARLY_ACL_MAX_HANDLES = 4;

export class ConnectionTable {
  private readonly conns = new Map<number, HciConnection>();
  private readonly aclTx: AclScheduler;
  private readonly aclRx: AclReassembler;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** ACL packets (whole H:4 packets) for handles not announced yet, see {@link EARLY_ACL_GRACE_MS}. */
  private readonly early = new Map<number, { packets: Uint8Array[]; timer: TimerHandle }>();

  constructor(private readonly host: ConnectionTableHost) {
    this.clock = host.clock;
    this.log = host.log;
    this.aclTx = new AclScheduler({
      write: (pkt) => host.write(pkt),
      writeError: (handle, cause) =>
        new HciError(undefined, 0, {
          kind: 'transport',
          port: host.port,
          message: `ACL data for connection 0x${handle.toString(16).padStart(4, '0')} could not be written to ${host.port}: ${errorText(cause)}`,
          cause,
        }),
    });
    this.aclRx = new AclReassembler({
      ...(host.opts.maxRxFrame !== undefined ? { maxFrame: host.opts.maxRxFrame } : {}),
      onFrame: (handle, frame) => host.emit('acl', handle, frame),
      onProblem: (handle, problem, detail) =>
        this.log.warn({ handle, problem }, `ACL from the controller on connection 0x${handle.toString(16).padStart(4, '0')}: ${detail}`),
    });
  }

  get(handle: number): HciConnection | undefined {
    return this.conns.get(handle);
  }

  get size(): number {
    return this.conns.size;
  }

  all(): HciConnection[] {
    return [...this.conns.values()];
  }

  aclTxStats(): AclTxStats {
    return this.aclTx.stats();
  }

  aclRxStats(): AclRxStats {
    return { ...this.aclRx.stats };
  }

  setRxFrameLimit(handle: number, maxFrame: number): void {
    this.aclRx.setLimit(handle, maxFrame);
  }

  /** Buffer sizes from a bring-up. */
  configure(packetLength: number, packetCount: number): void {
    this.aclTx.configure(packetLength, packetCount);
    this.aclRx.reset();
  }

  /** Empties the table (controller reset or driver closed): ACL sends fail with `err`. Returns the links, still to be reported. */
  takeAll(err: HciError): HciConnection[] {
    this.dropEarly();
    const conns = [...this.conns.values()];
    this.conns.clear();
    this.aclTx.reset(err);
    this.aclRx.reset();
    for (const conn of conns) conn.open = false;
    return conns;
  }

  private connFor(handle: number, what: string): HciConnection | undefined {
    const c = this.conns.get(handle);
    if (!c) this.unknownConnection(handle, what);
    return c;
  }

  /**
   * An event or ACL data for a connection handle this host does not have. A controller reports a
   * connection only after its LE Connection Complete and never after its Disconnection Complete
   * (Core 5.4 Vol 4 Part E 7.7.5, 7.7.65.1), so either one of those was lost or garbled (the controller
   * holds a link we do not know, and stopped advertising for it) or this packet was garbled (one of
   * our links may have ended unseen). The connection table is in doubt: once up, the controller is
   * re-initialised, as after a command timeout. During bring-up such packets are stale and dropped.
   */
  private unknownConnection(handle: number, what: string): void {
    const h = `0x${handle.toString(16).padStart(4, '0')}`;
    if (!this.host.inDoubt(`${what} for unknown connection ${h}`)) {
      this.log.warn({ handle }, `${what} for unknown connection ${h}; dropped`);
      return;
    }
    this.log.warn({ handle }, `${what} for unknown connection ${h} on ${this.host.port}: the controller's connections no longer match this host's (a lost or garbled event); re-initialising it`);
  }

  /**
   * Asks the controller about every connection this host tracks (Read RSSI, Core 5.4 Vol 4 Part E
   * 7.5.4). 0x02 Unknown Connection Identifier: the link ended and its Disconnection Complete never
   * arrived (lost or garbled): it is dropped here too, with that status as the reason.
   */
  async checkConnections(why: string): Promise<void> {
    if (this.host.state() !== 'ready' || !this.host.info()?.supports('ReadRssi')) return;
    for (const conn of [...this.conns.values()]) {
      try {
        await this.host.command('ReadRssi', { handle: conn.handle });
      } catch (err) {
        if (err instanceof HciError && err.status === HciStatus.UnknownConnectionIdentifier && this.conns.get(conn.handle) === conn) {
          this.log.warn({ handle: conn.handle }, `the controller on ${this.host.port} no longer knows ${conn} (checked after ${why}): its Disconnection Complete was lost; dropping it`);
          this.connectionGone(conn, HciStatus.UnknownConnectionIdentifier);
        }
      }
    }
  }

  /** Handles a connection event; false when `ev` is not one. */
  handleEvent(ev: HciEvent): boolean {
    switch (ev.name) {
      case 'NumberOfCompletedPackets':
        for (const { handle, count } of ev.params.handles) {
          if (!this.aclTx.hasLink(handle)) this.log.debug({ handle, count }, 'Number Of Completed Packets for a connection that is gone; ignored');
          else this.aclTx.completed(handle, count);
        }
        return true;
      case 'DisconnectionComplete':
        this.onDisconnectionComplete(ev.params);
        return true;
      case 'LeConnectionComplete': {
        const p = ev.params;
        this.onConnectionComplete({ ...p, localResolvablePrivateAddress: NO_ADDRESS, peerResolvablePrivateAddress: NO_ADDRESS });
        return true;
      }
      case 'LeEnhancedConnectionComplete':
        this.onConnectionComplete(ev.params);
        return true;
      case 'LeConnectionUpdateComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'Connection Update Complete');
        if (!c) return true;
        if (p.status === HciStatus.Success) {
          c.interval = p.connInterval;
          c.latency = p.connLatency;
          c.supervisionTimeout = p.supervisionTimeout;
        }
        this.host.emit('connectionUpdated', c, p.status);
        return true;
      }
      case 'LeDataLengthChange': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'Data Length Change');
        if (!c) return true;
        c.dataLength = { maxTxOctets: p.maxTxOctets, maxTxTime: p.maxTxTime, maxRxOctets: p.maxRxOctets, maxRxTime: p.maxRxTime };
        this.host.emit('dataLengthChanged', c);
        return true;
      }
      case 'LePhyUpdateComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'PHY Update Complete');
        if (!c) return true;
        if (p.status === HciStatus.Success) {
          c.txPhy = p.txPhy;
          c.rxPhy = p.rxPhy;
        }
        this.host.emit('phyUpdated', c, p.status);
        return true;
      }
      // Encryption Change v2 (0x59) is masked (page 2 of the event mask stays at its default, 0):
      // the key size comes from Read Encryption Key Size where the controller lists it, else from pairing.
      case 'EncryptionChange': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'Encryption Change');
        if (!c) return true;
        const enabled = p.enabled !== 0;
        if (p.status === HciStatus.Success) c.encrypted = enabled;
        this.host.emit('encryptionChanged', c, { status: p.status, enabled });
        return true;
      }
      case 'EncryptionKeyRefreshComplete': {
        const c = this.connFor(ev.params.handle, 'Encryption Key Refresh Complete');
        if (c) this.host.emit('encryptionKeyRefreshed', c, ev.params.status);
        return true;
      }
      case 'LeLongTermKeyRequest': {
        const p = ev.params;
        const c = this.conns.get(p.handle);
        if (!c) {
          // The controller waits for an answer (Core 5.4 Vol 4 Part E 7.7.65.5): no key for a link we do not know.
          if (this.host.state() === 'ready') {
            this.host.command('LeLongTermKeyRequestNegativeReply', { handle: p.handle }).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'LTK negative reply failed'));
          }
          this.unknownConnection(p.handle, 'LE Long Term Key Request');
          return true;
        }
        if (this.host.listenerCount('longTermKeyRequest') === 0) {
          this.log.warn(`LE Long Term Key Request on ${c} with nobody to answer it: negative reply`);
          this.host.command('LeLongTermKeyRequestNegativeReply', { handle: p.handle }).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'LTK negative reply failed'));
          return true;
        }
        this.host.emit('longTermKeyRequest', c, { rand: p.rand, ediv: p.ediv });
        return true;
      }
      case 'LeRemoteConnectionParameterRequest':
        this.onConnectionParameterRequest(ev.params);
        return true;
      case 'LeReadRemoteFeaturesComplete': {
        const c = this.connFor(ev.params.handle, 'Read Remote Features Complete');
        if (c) this.host.emit('remoteFeatures', c, ev.params.status, ev.params.features);
        return true;
      }
      case 'ReadRemoteVersionInformationComplete': {
        const c = this.connFor(ev.params.handle, 'Read Remote Version Information Complete');
        if (c) this.host.emit('remoteVersion', c, ev.params);
        return true;
      }
      default:
        return false;
    }
  }

  private onConnectionComplete(p: EventParams<'LeEnhancedConnectionComplete'>): void {
    const role = p.role === 0 ? 'central' : 'peripheral';
    if (this.host.state() === 'initialising') {
      // A controller being reset has no connections, and bring-up neither advertises nor connects:
      // this one is stale (sent before the Reset) or made up. Kept, it would hold a link slot forever.
      this.log.warn({ handle: p.handle, status: p.status }, `LE Connection Complete during bring-up on ${this.host.port}: ignored (a controller being reset has no connections)`);
      return;
    }
    if (p.status !== HciStatus.Success) {
      this.log.info({ status: hciStatusName(p.status) }, `connection attempt ended: ${hciStatusName(p.status)}`);
      this.host.emit('connectionFailed', { status: p.status, statusName: hciStatusName(p.status), role });
      return;
    }
    if (p.handle > 0x0eff) {
      this.log.warn({ handle: p.handle }, 'Connection Complete with an invalid handle (> 0x0EFF); dropped');
      return;
    }
    const old = this.conns.get(p.handle);
    if (old) {
      this.log.warn(`Connection Complete for handle 0x${p.handle.toString(16)} that is still open; the old connection is dropped`);
      this.connectionGone(old, HciStatus.UnspecifiedError);
    }
    const conn = new HciConnection({
      handle: p.handle,
      role,
      peer: { type: addressTypeFromByte(p.peerAddressType), address: p.peerAddress },
      peerResolved: p.peerAddressType >= 2,
      peerRpa: p.peerResolvablePrivateAddress !== NO_ADDRESS ? p.peerResolvablePrivateAddress : undefined,
      localRpa: p.localResolvablePrivateAddress !== NO_ADDRESS ? p.localResolvablePrivateAddress : undefined,
      interval: p.connInterval,
      latency: p.connLatency,
      supervisionTimeout: p.supervisionTimeout,
      centralClockAccuracy: p.centralClockAccuracy,
      connectedAt: this.clock.now(),
    });
    this.conns.set(p.handle, conn);
    this.aclTx.addLink(p.handle);
    this.log.info({ connection: conn.toJSON() }, `connected: ${conn}`);
    this.host.emit('connected', conn);
    this.replayEarly(p.handle);
    const dl = this.host.opts.dataLength ?? { txOctets: 251, txTime: 2120 };
    const info = this.host.info();
    if (dl !== false && conn.open && info && info.features.dataLengthExtension && info.supports('LeSetDataLength')) {
      this.host.command('LeSetDataLength', { handle: p.handle, txOctets: dl.txOctets, txTime: dl.txTime }).catch((err: unknown) =>
        this.log.warn({ err: errorText(err) }, `LE Set Data Length on ${conn} failed; the link keeps its data length`),
      );
    }
  }

  private onDisconnectionComplete(p: EventParams<'DisconnectionComplete'>): void {
    if (p.status !== HciStatus.Success) {
      this.log.warn({ handle: p.handle, status: hciStatusName(p.status) }, `Disconnection Complete with status ${hciStatusName(p.status)}: the connection stays up`);
      return;
    }
    const conn = this.connFor(p.handle, 'Disconnection Complete');
    if (!conn) return;
    this.connectionGone(conn, p.reason);
  }

  private connectionGone(conn: HciConnection, reason: number): void {
    this.conns.delete(conn.handle);
    conn.open = false;
    this.aclTx.removeLink(
      conn.handle,
      new HciError(undefined, 0, {
        kind: 'disconnected',
        port: this.host.port,
        message: `ACL data not sent: connection ${conn} ended (${hciStatusName(reason)})`,
      }),
    );
    this.aclRx.remove(conn.handle);
    this.log.info({ handle: conn.handle, reason: hciStatusName(reason) }, `disconnected: ${conn} (${hciStatusName(reason)})`);
    this.host.emit('disconnected', conn, reason, hciStatusName(reason));
  }

  private onConnectionParameterRequest(p: EventParams<'LeRemoteConnectionParameterRequest'>): void {
    const c = this.connFor(p.handle, 'Remote Connection Parameter Request');
    if (!c) return;
    const req: ConnectionParameterRequest = { intervalMin: p.intervalMin, intervalMax: p.intervalMax, maxLatency: p.maxLatency, timeout: p.timeout };
    let accept = true;
    try {
      accept = this.host.opts.acceptConnectionParameters ? this.host.opts.acceptConnectionParameters(c, req) : true;
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'acceptConnectionParameters threw; accepting');
    }
    const done = (err: unknown): void => this.log.warn({ err: errorText(err) }, `answering the connection parameter request on ${c} failed`);
    if (accept) {
      this.host.command('LeRemoteConnectionParameterRequestReply', {
        handle: p.handle,
        intervalMin: p.intervalMin,
        intervalMax: p.intervalMax,
        maxLatency: p.maxLatency,
        timeout: p.timeout,
        minCeLength: 0,
        maxCeLength: 0,
      }).catch(done);
    } else {
      this.host.command('LeRemoteConnectionParameterRequestNegativeReply', { handle: p.handle, reason: HciStatus.UnacceptableConnectionParameters }).catch(done);
    }
    this.host.emit('connectionParameterRequest', c, req, accept);
  }

  /**
   * Sends an L2CAP frame (basic header included) on a connection; resolves once the last fragment
   * was written. The frame is taken over (a single-fragment frame with headroom goes out in place):
   * do not modify it after the call.
   */
  sendAcl(handle: number, l2capFrame: Uint8Array): Promise<void> {
    return this.aclTx.send(handle, l2capFrame, () => new HciError(undefined, 0, {
      kind: 'disconnected',
      port: this.host.port,
      message: `cannot send ACL data: connection 0x${handle.toString(16).padStart(4, '0')} does not exist (disconnected?)`,
    }));
  }

  /** Asks the controller to end a connection; resolves on its Command Status ('disconnected' follows). */
  async disconnect(handle: number, reason: number = HciStatus.RemoteUserTerminatedConnection): Promise<void> {
    if (!this.conns.has(handle)) {
      throw new HciError(undefined, Commands.Disconnect.opcode, {
        kind: 'disconnected',
        port: this.host.port,
        message: `cannot disconnect 0x${handle.toString(16).padStart(4, '0')}: no such connection`,
      });
    }
    await this.host.command('Disconnect', { handle, reason });
  }

  /** An ACL packet from the controller: reassembled per connection; one for an unknown handle puts the table in doubt. */
  /** `pkt` is the whole H:4 packet: its ACL header is checked and read in place, after the type byte (Core 5.4 Vol 4 Part E 5.4.2). */
  onAclPacket(pkt: Uint8Array): void {
    const error = aclFormatError(pkt, 1);
    if (error !== undefined) {
      this.log.warn({ bytes: toHex(pkt.subarray(1, 17)) }, `malformed ACL packet from ${this.host.port}: ${error}; dropped`);
      return;
    }
    const hf = aclHandleAndFlags(pkt, 1);
    const handle = hf & 0x0fff;
    if (!this.conns.has(handle)) {
      this.holdEarly(handle, pkt);
      return;
    }
    this.aclRx.push(handle, (hf >> 12) & 0x3, pkt.subarray(5));
  }

  /** ACL data for a handle not announced (yet): held for {@link EARLY_ACL_GRACE_MS}, then taken as a sign the links differ. */
  private holdEarly(handle: number, pkt: Uint8Array): void {
    let held = this.early.get(handle);
    if (!held) {
      if (this.early.size >= EARLY_ACL_MAX_HANDLES) {
        this.unknownConnection(handle, 'ACL data');
        return;
      }
      const timer = this.clock.setTimeout(() => {
        this.early.delete(handle);
        this.unknownConnection(handle, 'ACL data');
      }, EARLY_ACL_GRACE_MS);
      held = { packets: [], timer };
      this.early.set(handle, held);
      this.log.debug({ handle }, `ACL data for connection 0x${handle.toString(16).padStart(4, '0')} before its Connection Complete; held for ${EARLY_ACL_GRACE_MS} ms`);
    }
    if (held.packets.length < EARLY_ACL_MAX_PACKETS) held.packets.push(pkt);
  }

  /** The link was announced: its early data goes in now, in the order it came. */
  private replayEarly(handle: number): void {
    const held = this.early.get(handle);
    if (!held) return;
    this.early.delete(handle);
    this.clock.clearTimeout(held.timer);
    this.log.debug({ handle, packets: held.packets.length }, `ACL data that came before the Connection Complete of 0x${handle.toString(16).padStart(4, '0')} delivered`);
    for (const pkt of held.packets) this.onAclPacket(pkt);
  }

  private dropEarly(): void {
    for (const held of this.early.values()) this.clock.clearTimeout(held.timer);
    this.early.clear();
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
