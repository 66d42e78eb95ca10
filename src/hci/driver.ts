/**
 * The HCI driver: the one object between a byte transport (H:4) and the layers above, and the facade
 * over three concerns in their own files:
 *
 * - command flow control: queue, Num_HCI_Command_Packets credits, timeouts, typed returns
 *   ({@link CommandFlow}, src/hci/command-flow.ts);
 * - bring-up and identity discovery: HCI Reset with retries, reads, event masks, identity address
 *   ({@link BringUp}, src/hci/bring-up.ts);
 * - the connection table with ACL credits, reassembly and link events ({@link ConnectionTable},
 *   src/hci/connections.ts).
 *
 * This file owns the driver's state, the receive path (framer, event dispatch) and the decision to
 * re-initialise the controller from HCI Reset: after Hardware Error or a Zephyr fatal-error vendor
 * event, a command timeout, a corrupted answer, an event for a link we do not know, or what the idle
 * watchdog (src/hci/watchdog.ts) notices. Bad bytes from the controller are logged and dropped;
 * nothing that arrives can throw out of here.
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { toHex } from '../util/bytes.js';
import { addressTypeFromByte, formatAddress, type Address } from '../util/address.js';
import type { RandomSource } from '../util/random.js';
import type { Transport } from './transport.js';
import { H4Framer, H4Type, type H4FramerError } from './h4.js';
import { Commands, formatOpcode, type CommandName, type CommandParams, type CommandReturn } from './commands.js';
import { decodeEvent, type EventParams, type HciEvent } from './events.js';
import { HciStatus, hciStatusName } from './status.js';
import { HciError } from './hci-error.js';
import type { AclTxStats } from './acl-tx.js';
import type { AclRxStats } from './acl-rx.js';
import type { HciConnection } from './connection.js';
import { decodeZephyrVendorEvent, type VendorEvent } from './vendor-events.js';
import type { ControllerInfo } from './controller-info.js';
import { CommandFlow, loggable, type PendingCommand } from './command-flow.js';
import { BringUp } from './bring-up.js';
import { ConnectionTable, type ConnectionFailure, type ConnectionParameterRequest, type EncryptionChange } from './connections.js';
import { IdleWatchdog } from './watchdog.js';

export { EventMaskBit, HOST_EVENT_MASK, HOST_LE_SUBEVENTS, HOST_LE_EVENT_MASK } from './bring-up.js';
export type { ConnectionFailure, ConnectionParameterRequest, EncryptionChange } from './connections.js';

export type PacketDirection = 'sent' | 'received';

export interface AdvertisingReport {
  eventType: number;
  address: Address;
  /** Address type 0x02/0x03: the controller resolved an RPA to this identity. */
  resolved: boolean;
  rssi: number;
  data: Uint8Array;
}

export type HciDriverEvents = {
  /** Every packet both ways, type byte included. */
  packet: [PacketDirection, Uint8Array];
  /** Bring-up finished (first time and every re-initialisation). */
  ready: [ControllerInfo];
  connected: [HciConnection];
  connectionFailed: [ConnectionFailure];
  /** The connection, the reason code and its name (`0x13 RemoteUserTerminatedConnection`). */
  disconnected: [HciConnection, number, string];
  connectionUpdated: [HciConnection, number];
  dataLengthChanged: [HciConnection];
  phyUpdated: [HciConnection, number];
  encryptionChanged: [HciConnection, EncryptionChange];
  encryptionKeyRefreshed: [HciConnection, number];
  /** LE Long Term Key Request: the listener must answer (reply or negative reply); with none, the driver answers negative. */
  longTermKeyRequest: [HciConnection, { rand: bigint; ediv: number }];
  /** A peer asked for new parameters; `accepted` says how the driver answered. */
  connectionParameterRequest: [HciConnection, ConnectionParameterRequest, boolean];
  remoteFeatures: [HciConnection, number, Uint8Array];
  remoteVersion: [HciConnection, EventParams<'ReadRemoteVersionInformationComplete'>];
  advertisingReport: [AdvertisingReport];
  /** A complete L2CAP frame (basic header included) on a connection. */
  acl: [number, Uint8Array];
  hardwareError: [number];
  /** A Zephyr fatal-error vendor event (assert, stack frame); a re-initialisation follows. */
  controllerFault: [VendorEvent];
  /** Any other vendor event. */
  vendorEvent: [VendorEvent];
  reinitialised: [ControllerInfo];
  reinitialisationFailed: [Error];
  /** The transport closed with an error (USB unplug, peer gone); the driver is closed. */
  transportLost: [Error];
};

export type HciState = 'idle' | 'initialising' | 'ready' | 'failed' | 'closed';

export interface HciOptions {
  clock: Clock;
  log: Logger;
  /** Sees every packet both ways (btsnoop writer, diagnosis timeline). */
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
  /** Default per-command timeout. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Timeout of each HCI Reset attempt at bring-up. Default 1000 ms. */
  resetTimeoutMs?: number;
  /** HCI Reset attempts before bring-up gives up. Default 3. */
  resetAttempts?: number;
  /**
   * Whole bring-ups (from HCI Reset) tried when the controller answered Reset but a later bring-up
   * command was lost, garbled or failed. Default 3.
   */
  bringUpAttempts?: number;
  /**
   * After a command times out once the controller is up, re-initialise it from HCI Reset (its state
   * is in doubt: the command may or may not have run). Default true.
   */
  resetOnCommandTimeout?: boolean;
  /**
   * Zero bytes written before each Reset retry, so a controller stuck in the middle of a packet
   * completes it and hci_uart discards the rest as invalid type bytes (docs/field-notes.md). Default 260; 0 disables.
   */
  resyncBytes?: number;
  /** Largest incoming L2CAP frame (header included) on any connection. Default 65535 + 4. */
  maxRxFrame?: number;
  /** Use this identity address instead of the controller's. */
  identityAddress?: Address;
  /** Randomness for a generated static address when the controller has none. Default: the OS CSPRNG. */
  random?: RandomSource;
  /** Zephyr vendor commands: 'auto' for Nordic / Zephyr controllers (default), 'always', 'never'. */
  vendorCommands?: 'auto' | 'always' | 'never';
  /** Data length asked for (default controller data length at bring-up, LE Set Data Length after connecting); false: leave the controller's. */
  dataLength?: { txOctets: number; txTime: number } | false;
  /** Decides on a peer's connection parameter request; default accepts. */
  acceptConnectionParameters?: (conn: HciConnection, req: ConnectionParameterRequest) => boolean;
  /**
   * Idle watchdog period: while no command is in flight, one cheap command this often tells a hung
   * controller (no answer) or a silently rebooted one (the data length bring-up set is gone), and
   * the controller is re-initialised (src/hci/watchdog.ts). Default off here; the CLI and the
   * library use DEFAULT_IDLE_CHECK_MS (5000 ms). false or 0: off.
   */
  idleCheckMs?: number | false;
}

/** Quiet time before the reset a doubtful event asks for (a garbled burst ends in one reset). */
const DOUBT_SETTLE_MS = 20;

/** Disconnection Complete event code. Core 5.4 Vol 4 Part E 7.7.5. */
const DISCONNECTION_COMPLETE_CODE = 0x05;

export class Hci extends TypedEmitter<HciDriverEvents> {
  readonly transport: Transport;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly traceFn: ((dir: PacketDirection, h4Packet: Uint8Array) => void) | undefined;
  private readonly resetOnCommandTimeout: boolean;
  private readonly framer: H4Framer;
  private readonly flow: CommandFlow;
  private readonly bringUp: BringUp;
  private readonly table: ConnectionTable;
  private readonly watchdog: IdleWatchdog | undefined;

  private stateValue: HciState = 'idle';
  private infoValue: ControllerInfo | undefined;
  private initPromise: Promise<ControllerInfo> | undefined;
  private reinitRunning = false;
  /** Disconnection reason reported for connections dropped by the next bring-up (a fault: 0x03). */
  private faultReason: number | undefined;
  /** A re-initialisation asked for by a doubtful event, waiting for the line to go quiet. */
  private doubtTimer: TimerHandle | undefined;

  private framerErrors = 0;
  private readonly onData = (chunk: Uint8Array): void => this.receive(chunk);
  private readonly onClose = (err: Error | undefined): void => this.transportClosed(err);

  constructor(transport: Transport, opts: HciOptions) {
    super();
    this.transport = transport;
    this.clock = opts.clock;
    this.log = opts.log;
    this.traceFn = opts.trace;
    this.resetOnCommandTimeout = opts.resetOnCommandTimeout ?? true;
    const port = transport.description;
    const state = (): HciState => this.stateValue;
    const write = (pkt: Uint8Array): Promise<void> => this.writePacket(pkt);
    this.framer = new H4Framer({
      direction: 'host',
      onPacket: (p) => this.onPacket(p),
      onError: (e) => this.onFramerError(e),
    });
    this.flow = new CommandFlow({
      clock: this.clock,
      log: this.log,
      port,
      commandTimeoutMs: opts.commandTimeoutMs ?? 2000,
      state,
      write,
      timedOut: (opcode, timeoutMs) => {
        // A stray byte may have made the framer wait for a packet that will never complete.
        this.framer.abandonPartial();
        if (this.canReset()) this.reinitialise(`no answer to HCI command ${formatOpcode(opcode)} within ${timeoutMs} ms`);
      },
      corrupted: (opcode) => {
        if (this.canReset()) queueMicrotask(() => this.reinitialise(`a corrupted answer to ${formatOpcode(opcode)}`));
      },
      noOperation: () => this.noOperation(),
    });
    this.bringUp = new BringUp({
      transport,
      log: this.log,
      port,
      opts,
      internal: (name, params, timeoutMs) => this.flow.enqueue(name, params, true, timeoutMs) as Promise<never>,
      resetFramer: () => this.framer.reset(),
      abandonAttempt: (err) => {
        this.flow.failInFlight(() => err);
        this.flow.resetCredits();
      },
      closed: () => this.stateValue === 'closed',
    });
    this.table = new ConnectionTable({
      clock: this.clock,
      log: this.log,
      port,
      opts,
      state,
      info: () => this.infoValue,
      command: (name, params) => this.command(name, params),
      emit: (event, ...args) => this.emit(event, ...args),
      listenerCount: (event) => this.listenerCount(event),
      write,
      inDoubt: (why) => this.inDoubt(why),
    });
    if (opts.idleCheckMs) {
      this.watchdog = new IdleWatchdog(this.clock, this.log, port, opts.idleCheckMs, {
        state,
        idle: () => this.flow.idle,
        wasUp: () => this.infoValue !== undefined,
        info: () => this.infoValue,
        command: (name, params) => this.command(name, params),
        reinitialise: (why) => this.reinitialise(why),
        checkConnections: (why) => this.table.checkConnections(why),
      });
    }
    transport.on('data', this.onData);
    transport.on('close', this.onClose);
  }

  /** The transport's description, naming the port. */
  get port(): string {
    return this.transport.description;
  }

  get state(): HciState {
    return this.stateValue;
  }

  /** Bring-up finished and no re-initialisation is running. */
  get ready(): boolean {
    return this.stateValue === 'ready';
  }

  /** What the last bring-up learned; undefined before the first one finished. */
  get info(): ControllerInfo | undefined {
    return this.infoValue;
  }

  connection(handle: number): HciConnection | undefined {
    return this.table.get(handle);
  }

  get connections(): HciConnection[] {
    return this.table.all();
  }

  /** Credits and queues of the ACL path (benchmarks, diagnostics). */
  aclStats(): AclTxStats & { rx: AclRxStats; commandCredits: number; commandsQueued: number } {
    return {
      ...this.table.aclTxStats(),
      rx: this.table.aclRxStats(),
      commandCredits: this.flow.commandCredits,
      commandsQueued: this.flow.queued,
    };
  }

  /** Bounds incoming L2CAP frames on one connection (for example to the negotiated MTU + header). */
  setRxFrameLimit(handle: number, maxFrame: number): void {
    this.table.setRxFrameLimit(handle, maxFrame);
  }

  /**
   * Sends a command and resolves with its decoded return parameters (Command Complete) or `{}`
   * (Command Status). Rejects with {@link HciError}: non-zero status, timeout, transport loss.
   * Commands go out in call order, no more at a time than the controller allows.
   */
  command<N extends CommandName>(name: N, params: CommandParams<N>, opts: { timeoutMs?: number } = {}): Promise<CommandReturn<N>> {
    return this.flow.enqueue(name, params, false, opts.timeoutMs) as Promise<CommandReturn<N>>;
  }

  /**
   * Sends an L2CAP frame (basic header included) on a connection; resolves once the last fragment
   * was written. The frame is taken over (a single-fragment frame with headroom goes out in place):
   * do not modify it after the call.
   */
  sendAcl(handle: number, l2capFrame: Uint8Array): Promise<void> {
    return this.table.sendAcl(handle, l2capFrame);
  }

  /** Asks the controller to end a connection; resolves on its Command Status ('disconnected' follows). */
  disconnect(handle: number, reason: number = HciStatus.RemoteUserTerminatedConnection): Promise<void> {
    return this.table.disconnect(handle, reason);
  }

  // ---------------------------------------------------------------------------------------------
  // Bring-up and re-initialisation

  /**
   * Brings the controller up and resolves with what it learned. Concurrent calls share one run.
   * Running it again re-initialises: connections are dropped (with 'disconnected' events, reason
   * 0x16 for a re-initialisation asked for, 0x03 Hardware Failure after a controller fault), pending
   * commands and ACL sends rejected.
   */
  init(): Promise<ControllerInfo> {
    if (this.initPromise) return this.initPromise;
    const p = this.runInit().finally(() => {
      if (this.initPromise === p) this.initPromise = undefined;
    });
    this.initPromise = p;
    return p;
  }

  private async runInit(): Promise<ControllerInfo> {
    if (this.stateValue === 'closed') throw new HciError(undefined, Commands.Reset.opcode, { kind: 'closed', port: this.port });
    const reinit = this.infoValue !== undefined || this.table.size > 0;
    this.clock.clearTimeout(this.doubtTimer);
    this.doubtTimer = undefined;
    const dropReason = this.faultReason ?? HciStatus.ConnectionTerminatedByLocalHost;
    this.faultReason = undefined;
    this.stateValue = 'initialising';
    this.dropEverything(
      reinit,
      dropReason,
      new HciError(undefined, 0, { kind: 'reset', port: this.port, message: `abandoned: the controller on ${this.port} is being re-initialised` }),
    );
    try {
      const info = await this.bringUp.run();
      this.infoValue = info;
      this.table.configure(info.buffers.aclPacketLength, info.buffers.aclPacketCount);
      this.stateValue = 'ready';
      this.log.info(
        { controller: info.description, identity: formatAddress(info.identityAddress), acl: `${info.buffers.aclPacketCount}x${info.buffers.aclPacketLength}` },
        `controller ready on ${this.port}`,
      );
      this.emit('ready', info);
      this.watchdog?.controllerUp();
      this.flow.pump();
      return info;
    } catch (err) {
      if ((this.stateValue as HciState) !== 'closed') {
        this.stateValue = 'failed';
        // Commands queued by the layers above would never run: fail them with the cause.
        const e = err instanceof Error ? err : new Error(String(err));
        this.flow.rejectQueued(e);
      }
      throw err;
    }
  }

  /**
   * Drops connections (each with a 'disconnected' event), ACL state and in-flight commands.
   * `rejectQueued`: also fail commands queued by the layers above (they were meant for the old state).
   */
  private dropEverything(rejectQueued: boolean, reason: number, err: HciError): void {
    const conns = this.table.takeAll(err);
    this.flow.failInFlight((cmd) => new HciError(undefined, cmd.opcode, { kind: err.kind, port: this.port, message: `HCI command ${formatOpcode(cmd.opcode)} ${err.message}` }));
    this.flow.failInternal(() => err);
    if (rejectQueued) this.flow.rejectQueued(err);
    this.flow.resetCredits();
    for (const conn of conns) this.emit('disconnected', conn, reason, hciStatusName(reason));
  }

  /** Once up, the controller's state in doubt makes it re-initialised (unless the options say not to). */
  private canReset(): boolean {
    return this.resetOnCommandTimeout && this.stateValue === 'ready' && !this.reinitRunning;
  }

  /** The links differ from the controller's: reset it once the burst of doubtful packets is over. */
  private inDoubt(why: string): boolean {
    if (!this.canReset()) return false;
    this.doubtTimer ??= this.clock.setTimeout(() => {
      this.doubtTimer = undefined;
      this.reinitialise(why);
    }, DOUBT_SETTLE_MS);
    return true;
  }

  private reinitialise(why: string): void {
    if (this.stateValue === 'closed') return;
    if (this.reinitRunning || this.stateValue === 'initialising') {
      this.log.warn(`${why} during bring-up on ${this.port}; the running bring-up continues`);
      return;
    }
    this.reinitRunning = true;
    this.faultReason = HciStatus.HardwareFailure;
    this.log.warn(`re-initialising the controller on ${this.port} after ${why}`);
    this.init().then(
      (info) => {
        this.reinitRunning = false;
        this.emit('reinitialised', info);
      },
      (err: unknown) => {
        this.reinitRunning = false;
        const e = err instanceof Error ? err : new Error(String(err));
        this.log.error(
          { err: e.message },
          `re-initialisation of the controller on ${this.port} failed after ${why}; a pin reset of the DK (RESET button) may be needed` +
            (this.watchdog ? ' (bring-up is tried again while the process runs)' : ''),
        );
        this.watchdog?.controllerDown();
        this.emit('reinitialisationFailed', e);
      },
    );
  }


  /**
   * Command Complete/Status for the No Operation opcode 0x0000: a credit update (Core 5.4 Vol 4
   * Part E 7.7.14), and what Zephyr's hci_uart sends once booted with CONFIG_BT_WAIT_NOP. While the
   * controller is up, the watchdog checks at once whether it rebooted.
   */
  private noOperation(): void {
    if (this.stateValue !== 'ready' || !this.watchdog) return;
    this.log.info(`the controller on ${this.port} sent a No Operation Command Complete while up (a controller that just booted sends one): checking it`);
    this.watchdog.checkSoon();
  }

  // ---------------------------------------------------------------------------------------------
  // Receive path

  private receive(chunk: Uint8Array): void {
    if (this.stateValue === 'closed') return;
    try {
      this.framer.push(chunk);
    } catch (err) {
      // A listener threw inside a packet handler: keep the driver alive, say what happened.
      this.log.error({ err: errorText(err) }, `error while handling input from ${this.port}`);
    }
  }

  private writePacket(pkt: Uint8Array): Promise<void> {
    this.tracePacket('sent', pkt);
    try {
      return this.transport.write(pkt);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private tracePacket(dir: PacketDirection, pkt: Uint8Array): void {
    if (this.traceFn) {
      try {
        this.traceFn(dir, pkt);
      } catch (err) {
        this.log.warn({ err: errorText(err) }, 'packet trace hook failed');
      }
    }
    this.emit('packet', dir, pkt);
  }

  private onFramerError(e: H4FramerError): void {
    this.framerErrors++;
    if (this.framerErrors <= 10 || this.framerErrors % 100 === 0) {
      this.log.warn({ kind: e.kind, count: this.framerErrors }, `H:4 from ${this.port}: ${e.message}`);
    }
  }

  private onPacket(pkt: Uint8Array): void {
    this.tracePacket('received', pkt);
    const type = pkt[0];
    if (type === H4Type.Event) this.onEventPacket(pkt.subarray(1));
    else if (type === H4Type.Acl) this.table.onAclPacket(pkt);
    else this.log.debug({ type }, `H:4 packet type ${type} from ${this.port} ignored`);
  }

  private onEventPacket(body: Uint8Array): void {
    const d = decodeEvent(body);
    if (!d.ok) {
      this.log.warn({ code: d.code, subevent: d.subevent, bytes: toHex(body.subarray(0, 32)) }, `malformed HCI event from ${this.port}: ${d.error}; dropped`);
      if (d.code === DISCONNECTION_COMPLETE_CODE && this.table.size > 0) void this.table.checkConnections('a malformed Disconnection Complete');
      return;
    }
    if (d.event === undefined) {
      this.log.debug({ code: d.code, subevent: d.subevent }, `unhandled HCI event 0x${d.code.toString(16)}${d.subevent !== undefined ? `/0x${d.subevent.toString(16)}` : ''}`);
      return;
    }
    const ev = d.event;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ event: ev.name, params: loggable(ev.params) }, `HCI event ${ev.name}`);
    try {
      this.dispatch(ev);
    } catch (err) {
      this.log.error({ event: ev.name, err: errorText(err) }, `error handling ${ev.name} from ${this.port}`);
    }
  }

  private dispatch(ev: HciEvent): void {
    switch (ev.name) {
      case 'CommandComplete':
        return this.flow.onCommandComplete(ev.params);
      case 'CommandStatus':
        return this.flow.onCommandStatus(ev.params);
      case 'LeAdvertisingReport':
        for (const r of ev.params.reports) {
          this.emit('advertisingReport', {
            eventType: r.eventType,
            address: { type: addressTypeFromByte(r.addressType), address: r.address },
            resolved: r.addressType >= 2,
            rssi: r.rssi,
            data: r.data,
          });
        }
        return;
      case 'HardwareError': {
        const code = ev.params.hardwareCode;
        this.log.error({ hardwareCode: code }, `the controller on ${this.port} reported Hardware Error 0x${code.toString(16).padStart(2, '0')}`);
        this.emit('hardwareError', code);
        this.reinitialise(`Hardware Error 0x${code.toString(16).padStart(2, '0')}`);
        return;
      }
      case 'DataBufferOverflow':
        this.log.warn({ linkType: ev.params.linkType }, `the controller on ${this.port} reported Data Buffer Overflow (more ACL packets than credits were sent)`);
        return;
      case 'VendorSpecific': {
        const v = decodeZephyrVendorEvent(ev.params.data);
        if (v.fatal) {
          this.log.error({ fault: { ...v } }, `the controller on ${this.port} crashed: ${v.summary}`);
          this.emit('controllerFault', v);
          this.reinitialise(v.summary);
        } else {
          this.log.debug({ vendor: { ...v } }, v.summary);
          this.emit('vendorEvent', v);
        }
        return;
      }
      default:
        if (!this.table.handleEvent(ev)) this.log.debug({ event: ev.name }, `HCI event ${ev.name} not expected (masked by bring-up); ignored`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Shutdown

  private transportClosed(err: Error | undefined): void {
    if (this.stateValue === 'closed') return;
    const message = err
      ? `lost the connection to the controller on ${this.port}: ${err.message}. Check the USB cable and that the DK is powered, then start again.`
      : `the transport ${this.port} was closed`;
    const e = new HciError(undefined, 0, { kind: 'transport', port: this.port, message, ...(err ? { cause: err } : {}) });
    this.shutdown(e, HciStatus.UnspecifiedError);
    if (err) {
      this.log.error(message);
      this.emit('transportLost', e);
    }
  }

  /**
   * Detaches from the transport (which stays open: its owner closes it), rejects everything
   * pending and stops all timers. Connections are reported as 'disconnected'.
   */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.shutdown(new HciError(undefined, 0, { kind: 'closed', port: this.port }), HciStatus.ConnectionTerminatedByLocalHost);
  }

  private shutdown(err: HciError, reason: number): void {
    this.stateValue = 'closed';
    this.watchdog?.stop();
    this.clock.clearTimeout(this.doubtTimer);
    this.doubtTimer = undefined;
    this.transport.off('data', this.onData);
    this.transport.off('close', this.onClose);
    const conns = this.table.takeAll(err);
    this.flow.shutdown((cmd) => commandError(cmd, err, this.port));
    for (const conn of conns) this.emit('disconnected', conn, reason, hciStatusName(reason));
  }
}

function commandError(cmd: PendingCommand, err: HciError, port: string): HciError {
  return new HciError(undefined, cmd.opcode, { kind: err.kind, port, message: `HCI command ${formatOpcode(cmd.opcode)} abandoned: ${err.message}`, cause: err });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
