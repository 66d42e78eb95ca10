/**
 * The HCI driver: one object between a byte transport (H:4) and the layers above.
 *
 * - Commands: FIFO queue with flow control on Num_HCI_Command_Packets (Core 5.4 Vol 4 Part E 4.4),
 *   Command Complete vs Command Status per the command table, a timeout per command, typed returns,
 *   `HciError(status, opcode)` for a refusal.
 * - Bring-up for the nRF5340 `hci_uart` SoftDevice Controller (docs/field-notes.md): no start-up event,
 *   so flush, HCI Reset with retries, then the reads and masks the host needs.
 * - ACL: fragmentation and credits ({@link AclScheduler}), reassembly ({@link AclReassembler}).
 * - Connections and link events as typed events; Hardware Error and Zephyr fatal-error vendor
 *   events lead to a clean re-initialisation.
 * Bad bytes from the controller are logged and dropped; nothing that arrives can throw out of here.
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { toHex } from '../util/bytes.js';
import { addressTypeFromByte, formatAddress, randomAddressKind, type Address } from '../util/address.js';
import { osRandom, type RandomSource } from '../util/random.js';
import type { Transport } from './transport.js';
import { H4Framer, H4Type, type H4FramerError } from './h4.js';
import {
  Commands,
  decodeReturn,
  encodeCommand,
  formatOpcode,
  isCommandSupported,
  type CommandName,
  type CommandParams,
  type CommandReply,
  type CommandReturn,
} from './commands.js';
import { decodeEvent, leEventMaskFor, type EventParams, type HciEvent } from './events.js';
import { decodeAcl } from './acl.js';
import { HciStatus, hciStatusName } from './status.js';
import { HciError, SILENT_CONTROLLER_CHECKS } from './hci-error.js';
import type { Codec } from './codec.js';
import { AclScheduler, type AclTxStats } from './acl-tx.js';
import { AclReassembler, type AclRxStats } from './acl-rx.js';
import { HciConnection } from './connection.js';
import { decodeZephyrVendorEvent, type VendorEvent } from './vendor-events.js';
import { IdleWatchdog } from './watchdog.js';
import {
  ControllerInfo,
  coreVersionName,
  companyName,
  decodeLeFeatures,
  decodeVendorVersion,
  type BufferSizes,
  type IdentitySource,
  type VendorVersion,
} from './controller-info.js';

export type PacketDirection = 'sent' | 'received';

/** Event mask bits. Core 5.4 Vol 4 Part E 7.3.1. */
export const EventMaskBit = {
  DisconnectionComplete: 4,
  EncryptionChange: 7,
  ReadRemoteVersionInformationComplete: 11,
  HardwareError: 15,
  DataBufferOverflow: 25,
  EncryptionKeyRefreshComplete: 47,
  LeMeta: 61,
} as const;

/** The event mask bring-up sets: the events this host handles. */
export const HOST_EVENT_MASK: bigint = Object.values(EventMaskBit).reduce((m, b) => m | (1n << BigInt(b)), 0n);

/** LE subevents bring-up unmasks. Core 5.4 Vol 4 Part E 7.8.1. */
export const HOST_LE_SUBEVENTS = [
  0x01, // LE Connection Complete
  0x02, // LE Advertising Report
  0x03, // LE Connection Update Complete
  0x04, // LE Read Remote Features Complete
  0x05, // LE Long Term Key Request
  0x06, // LE Remote Connection Parameter Request
  0x07, // LE Data Length Change
  0x0a, // LE Enhanced Connection Complete
  0x0c, // LE PHY Update Complete
] as const;
export const HOST_LE_EVENT_MASK: bigint = leEventMaskFor(HOST_LE_SUBEVENTS);

/** Company identifiers of controllers that run Zephyr's HCI and answer its vendor commands. */
const ZEPHYR_COMPANIES = new Set([0x0059 /* Nordic */, 0x05f1 /* The Linux Foundation */]);

/** Zephyr vendor supported-commands bit for Read Static Addresses (Zephyr hci_vs.h BT_VS_CMD_BIT_READ_STATIC_ADDRS). */
const VS_CMD_BIT_READ_STATIC_ADDRS = 8;

export interface EncryptionChange {
  status: number;
  enabled: boolean;
  /** Present for Encryption Change v2. */
  keySize: number | undefined;
}

export interface ConnectionParameterRequest {
  intervalMin: number;
  intervalMax: number;
  maxLatency: number;
  timeout: number;
}

export interface AdvertisingReport {
  eventType: number;
  address: Address;
  /** Address type 0x02/0x03: the controller resolved an RPA to this identity. */
  resolved: boolean;
  rssi: number;
  data: Uint8Array;
}

export interface ConnectionFailure {
  status: number;
  statusName: string;
  role: 'central' | 'peripheral' | undefined;
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

interface PendingCommand {
  name: CommandName;
  opcode: number;
  reply: CommandReply;
  packet: Uint8Array;
  timeoutMs: number;
  internal: boolean;
  timer: TimerHandle | undefined;
  settled: boolean;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Value safe for a structured log line: bytes as hex, bigints as hex strings. */
function loggable(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (Array.isArray(v)) return v.map(loggable);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = loggable(x);
    return out;
  }
  return v;
}

const NO_ADDRESS = '00:00:00:00:00:00';

/** Quiet time before the reset a doubtful event asks for (a garbled burst ends in one reset). */
const DOUBT_SETTLE_MS = 20;

/** Disconnection Complete event code. Core 5.4 Vol 4 Part E 7.7.5. */
const DISCONNECTION_COMPLETE_CODE = 0x05;

export class Hci extends TypedEmitter<HciDriverEvents> {
  readonly transport: Transport;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly traceFn: ((dir: PacketDirection, h4Packet: Uint8Array) => void) | undefined;
  private readonly commandTimeoutMs: number;
  private readonly resetTimeoutMs: number;
  private readonly bringUpAttempts: number;
  private readonly resetOnCommandTimeout: boolean;
  private readonly resetAttempts: number;
  private readonly resyncBytes: number;
  private readonly opts: HciOptions;
  private readonly framer: H4Framer;

  private stateValue: HciState = 'idle';
  private infoValue: ControllerInfo | undefined;
  private initPromise: Promise<ControllerInfo> | undefined;
  private reinitRunning = false;
  /** Disconnection reason reported for connections dropped by the next bring-up (a fault: 0x03). */
  private faultReason: number | undefined;

  // Commands
  private credits = 1;
  private queue: PendingCommand[] = [];
  private queueHead = 0;
  private initQueue: PendingCommand[] = [];
  private readonly inFlight = new Map<number, PendingCommand[]>();
  private stallTimer: TimerHandle | undefined;

  // Connections and data
  private readonly conns = new Map<number, HciConnection>();
  private readonly aclTx: AclScheduler;
  private readonly aclRx: AclReassembler;

  private readonly watchdog: IdleWatchdog | undefined;
  /** A re-initialisation asked for by a doubtful event, waiting for the line to go quiet. */
  private doubtTimer: TimerHandle | undefined;

  private framerErrors = 0;
  private readonly onData = (chunk: Uint8Array): void => this.receive(chunk);
  private readonly onClose = (err: Error | undefined): void => this.transportClosed(err);

  constructor(transport: Transport, opts: HciOptions) {
    super();
    this.transport = transport;
    this.opts = opts;
    this.clock = opts.clock;
    this.log = opts.log;
    this.traceFn = opts.trace;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 2000;
    this.resetTimeoutMs = opts.resetTimeoutMs ?? 1000;
    this.bringUpAttempts = Math.max(1, opts.bringUpAttempts ?? 3);
    this.resetOnCommandTimeout = opts.resetOnCommandTimeout ?? true;
    this.resetAttempts = Math.max(1, opts.resetAttempts ?? 3);
    this.resyncBytes = opts.resyncBytes ?? 260;
    this.framer = new H4Framer({
      direction: 'host',
      onPacket: (p) => this.onPacket(p),
      onError: (e) => this.onFramerError(e),
    });
    this.aclTx = new AclScheduler({
      write: (pkt) => this.writePacket(pkt),
      writeError: (handle, cause) =>
        new HciError(undefined, 0, {
          kind: 'transport',
          port: this.port,
          message: `ACL data for connection 0x${handle.toString(16).padStart(4, '0')} could not be written to ${this.port}: ${errorText(cause)}`,
          cause,
        }),
    });
    this.aclRx = new AclReassembler({
      ...(opts.maxRxFrame !== undefined ? { maxFrame: opts.maxRxFrame } : {}),
      onFrame: (handle, frame) => this.emit('acl', handle, frame),
      onProblem: (handle, problem, detail) =>
        this.log.warn({ handle, problem }, `ACL from the controller on connection 0x${handle.toString(16).padStart(4, '0')}: ${detail}`),
    });
    if (opts.idleCheckMs) {
      this.watchdog = new IdleWatchdog(this.clock, this.log, this.port, opts.idleCheckMs, {
        state: () => this.stateValue,
        idle: () => this.inFlight.size === 0 && this.initQueue.length === 0 && this.queueHead >= this.queue.length,
        wasUp: () => this.infoValue !== undefined,
        info: () => this.infoValue,
        command: (name, params) => this.command(name, params),
        reinitialise: (why) => this.reinitialise(why),
        checkConnections: (why) => this.checkConnections(why),
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
    return this.conns.get(handle);
  }

  get connections(): HciConnection[] {
    return [...this.conns.values()];
  }

  /** Credits and queues of the ACL path (benchmarks, diagnostics). */
  aclStats(): AclTxStats & { rx: AclRxStats; commandCredits: number; commandsQueued: number } {
    return {
      ...this.aclTx.stats(),
      rx: { ...this.aclRx.stats },
      commandCredits: this.credits,
      commandsQueued: this.queue.length - this.queueHead + this.initQueue.length,
    };
  }

  /** Bounds incoming L2CAP frames on one connection (for example to the negotiated MTU + header). */
  setRxFrameLimit(handle: number, maxFrame: number): void {
    this.aclRx.setLimit(handle, maxFrame);
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /**
   * Sends a command and resolves with its decoded return parameters (Command Complete) or `{}`
   * (Command Status). Rejects with {@link HciError}: non-zero status, timeout, transport loss.
   * Commands go out in call order, no more at a time than the controller allows.
   */
  command<N extends CommandName>(name: N, params: CommandParams<N>, opts: { timeoutMs?: number } = {}): Promise<CommandReturn<N>> {
    return this.enqueue(name, params, false, opts.timeoutMs) as Promise<CommandReturn<N>>;
  }

  private enqueue<N extends CommandName>(name: N, params: CommandParams<N>, internal: boolean, timeoutMs?: number): Promise<unknown> {
    const def = Commands[name];
    if (this.stateValue === 'closed') {
      return Promise.reject(new HciError(undefined, def.opcode, { kind: 'closed', port: this.port }));
    }
    let body: Uint8Array;
    try {
      body = encodeCommand(name, params);
    } catch (err) {
      return Promise.reject(err);
    }
    const packet = new Uint8Array(body.length + 1);
    packet[0] = H4Type.Command;
    packet.set(body, 1);
    return new Promise<unknown>((resolve, reject) => {
      const cmd: PendingCommand = {
        name,
        opcode: def.opcode,
        reply: def.reply,
        packet,
        timeoutMs: timeoutMs ?? this.commandTimeoutMs,
        internal,
        timer: undefined,
        settled: false,
        resolve,
        reject,
      };
      if (this.log.isLevelEnabled('debug')) this.log.debug({ command: name, params: loggable(params) }, `HCI command ${formatOpcode(def.opcode)}`);
      if (internal) this.initQueue.push(cmd);
      else this.queue.push(cmd);
      this.pumpCommands();
    });
  }

  private nextCommand(): PendingCommand | undefined {
    if (this.initQueue.length > 0) return this.initQueue.shift();
    // Commands from the layers above wait for bring-up (and for a re-initialisation to finish).
    if (this.stateValue === 'idle' || this.stateValue === 'initialising' || this.queueHead >= this.queue.length) return undefined;
    const cmd = this.queue[this.queueHead] as PendingCommand;
    this.queue[this.queueHead] = undefined as unknown as PendingCommand;
    this.queueHead++;
    if (this.queueHead >= this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return cmd;
  }

  private pumpCommands(): void {
    this.pumpCommandsNow();
    // No credit, nothing in flight to bring one back, yet commands wait: a controller that said
    // "Num_HCI_Command_Packets = 0" and went quiet. After a command timeout, assume one credit.
    const waiting = this.initQueue.length > 0 || this.queueHead < this.queue.length;
    if (this.credits === 0 && this.inFlight.size === 0 && waiting && this.stateValue !== 'closed') {
      this.stallTimer ??= this.clock.setTimeout(() => {
        this.stallTimer = undefined;
        if (this.credits === 0 && this.inFlight.size === 0) {
          this.log.warn(`the controller on ${this.port} granted no command credits for ${this.commandTimeoutMs} ms; sending the next command anyway`);
          this.credits = 1;
          this.pumpCommands();
        }
      }, this.commandTimeoutMs);
    } else if (this.stallTimer && (this.credits > 0 || this.inFlight.size > 0)) {
      this.clock.clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
  }

  private pumpCommandsNow(): void {
    while (this.credits > 0 && this.stateValue !== 'closed') {
      const cmd = this.nextCommand();
      if (!cmd) return;
      this.credits--;
      let list = this.inFlight.get(cmd.opcode);
      if (!list) this.inFlight.set(cmd.opcode, (list = []));
      list.push(cmd);
      cmd.timer = this.clock.setTimeout(() => this.commandTimedOut(cmd), cmd.timeoutMs);
      this.writePacket(cmd.packet).catch((err: unknown) => {
        this.removeInFlight(cmd);
        this.credits = Math.max(this.credits, 1);
        this.settleCommand(
          cmd,
          new HciError(undefined, cmd.opcode, {
            kind: 'transport',
            port: this.port,
            message: `HCI command ${formatOpcode(cmd.opcode)} could not be written to ${this.port}: ${errorText(err)}`,
            cause: err,
          }),
        );
        this.pumpCommands();
      });
    }
  }

  private removeInFlight(cmd: PendingCommand): void {
    const list = this.inFlight.get(cmd.opcode);
    if (!list) return;
    const i = list.indexOf(cmd);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.inFlight.delete(cmd.opcode);
  }

  private takeInFlight(opcode: number): PendingCommand | undefined {
    const list = this.inFlight.get(opcode);
    if (!list) return undefined;
    const cmd = list.shift();
    if (list.length === 0) this.inFlight.delete(opcode);
    return cmd;
  }

  private settleCommand(cmd: PendingCommand, err: Error | undefined, value?: unknown): void {
    if (cmd.settled) return;
    cmd.settled = true;
    this.clock.clearTimeout(cmd.timer);
    cmd.timer = undefined;
    if (err) cmd.reject(err);
    else cmd.resolve(value);
  }

  /**
   * A status that is no HCI error code (Core 5.4 Vol 1 Part F 1.3 lists them all) did not come from
   * a working controller: the line corrupted the answer, so whether the command ran is unknown.
   * The command fails as malformed and, once up, the controller is re-initialised from HCI Reset.
   */
  private undefinedStatus(cmd: PendingCommand, status: number): boolean {
    if (!hciStatusName(status).endsWith('(unknown)')) return false;
    const hex = `0x${status.toString(16).padStart(2, '0')}`;
    this.log.warn({ command: cmd.name, hciStatus: hex }, `the controller on ${this.port} answered ${formatOpcode(cmd.opcode)} with ${hex}, which is no HCI error code: the answer was corrupted`);
    this.settleCommand(cmd, new HciError(undefined, cmd.opcode, { kind: 'malformed', port: this.port, message: `the controller on ${this.port} answered ${formatOpcode(cmd.opcode)} with status ${hex}, which is no HCI error code (a corrupted answer)` }));
    if (this.resetOnCommandTimeout && this.stateValue === 'ready' && !this.reinitRunning) {
      queueMicrotask(() => this.reinitialise(`a corrupted answer to ${formatOpcode(cmd.opcode)}`));
    }
    return true;
  }

  private commandTimedOut(cmd: PendingCommand): void {
    cmd.timer = undefined;
    if (cmd.settled) return;
    this.removeInFlight(cmd);
    // The controller never answered, so its credit never came back: assume one (as BlueZ does) so
    // the queue does not stall behind a lost command.
    this.credits = Math.max(this.credits, 1);
    // A stray byte may have made the framer wait for a packet that will never complete.
    this.framer.abandonPartial();
    this.log.warn({ command: cmd.name, timeoutMs: cmd.timeoutMs }, `HCI command ${formatOpcode(cmd.opcode)} timed out on ${this.port}`);
    this.settleCommand(cmd, HciError.timeout(cmd.opcode, this.port, cmd.timeoutMs));
    this.pumpCommands();
    if (this.resetOnCommandTimeout && this.stateValue === 'ready' && !this.reinitRunning) {
      this.reinitialise(`no answer to HCI command ${formatOpcode(cmd.opcode)} within ${cmd.timeoutMs} ms`);
    }
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

  private onCommandComplete(p: EventParams<'CommandComplete'>): void {
    const { numHciCommandPackets: n, opcode, returnParameters: rp } = p;
    if (opcode === 0x0000) {
      this.credits = n;
      this.noOperation();
      this.pumpCommands();
      return;
    }
    const cmd = this.takeInFlight(opcode);
    if (!cmd) {
      this.log.warn({ opcode: formatOpcode(opcode), returnParameters: toHex(rp) }, `Command Complete for ${formatOpcode(opcode)}, which is not waiting for an answer; dropped`);
      return;
    }
    this.credits = n;
    if (rp.length < 1) {
      this.settleCommand(cmd, new HciError(undefined, opcode, { kind: 'malformed', port: this.port, message: `Command Complete for ${formatOpcode(opcode)} on ${this.port} has no status byte` }));
    } else {
      const status = rp[0] as number;
      if (status !== HciStatus.Success && this.undefinedStatus(cmd, status)) {
        // handled
      } else if (status !== HciStatus.Success) {
        this.settleCommand(cmd, new HciError(status, opcode, { port: this.port }));
      } else if (cmd.reply === 'status') {
        this.settleCommand(cmd, undefined, {});
      } else {
        const after = rp.subarray(1);
        const codec = Commands[cmd.name].returns as Codec<unknown>;
        let value: unknown;
        let error: string | undefined;
        if (after.length < codec.minLength) {
          error = `${after.length} return byte(s) after the status, ${cmd.name} needs ${codec.minLength}`;
        } else {
          try {
            value = decodeReturn(cmd.name, after);
          } catch (err) {
            error = errorText(err);
          }
        }
        if (error !== undefined) {
          this.log.warn({ command: cmd.name, returnParameters: toHex(rp) }, `malformed Command Complete for ${formatOpcode(opcode)}: ${error}`);
          this.settleCommand(cmd, new HciError(undefined, opcode, { kind: 'malformed', port: this.port, message: `the controller on ${this.port} answered ${formatOpcode(opcode)} with malformed return parameters: ${error}` }));
        } else {
          this.settleCommand(cmd, undefined, value);
        }
      }
    }
    this.pumpCommands();
  }

  private onCommandStatus(p: EventParams<'CommandStatus'>): void {
    const { status, numHciCommandPackets: n, opcode } = p;
    if (opcode === 0x0000) {
      this.credits = n;
      this.noOperation();
      this.pumpCommands();
      return;
    }
    const cmd = this.takeInFlight(opcode);
    if (!cmd) {
      this.log.warn({ opcode: formatOpcode(opcode), status: hciStatusName(status) }, `Command Status for ${formatOpcode(opcode)}, which is not waiting for an answer; dropped`);
      return;
    }
    this.credits = n;
    if (status !== HciStatus.Success && this.undefinedStatus(cmd, status)) {
      // handled
    } else if (status !== HciStatus.Success) {
      this.settleCommand(cmd, new HciError(status, opcode, { port: this.port }));
    } else if (cmd.reply === 'status') {
      this.settleCommand(cmd, undefined, {});
    } else {
      // A command answered by Command Complete got a successful Command Status: keep waiting.
      this.log.warn(`Command Status (success) for ${formatOpcode(opcode)}, which completes with Command Complete; still waiting`);
      const list = this.inFlight.get(opcode);
      if (list) list.unshift(cmd);
      else this.inFlight.set(opcode, [cmd]);
    }
    this.pumpCommands();
  }

  // ---------------------------------------------------------------------------------------------
  // Bring-up

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

  private internal<N extends CommandName>(name: N, params: CommandParams<N>, timeoutMs?: number): Promise<CommandReturn<N>> {
    return this.enqueue(name, params, true, timeoutMs) as Promise<CommandReturn<N>>;
  }

  /** Runs an internal command whose failure with a status (or a timeout) is tolerated: resolves undefined. */
  private async optional<N extends CommandName>(name: N, params: CommandParams<N>, why: string): Promise<CommandReturn<N> | undefined> {
    try {
      return await this.internal(name, params);
    } catch (err) {
      if (err instanceof HciError && (err.kind === 'status' || err.kind === 'timeout' || err.kind === 'malformed')) {
        const level = err.status === HciStatus.UnknownHciCommand ? 'info' : 'warn';
        this.log[level]({ command: name, status: err.statusName }, `${formatOpcode(Commands[name].opcode)} not available on ${this.port} (${err.statusName ?? err.kind}); ${why}`);
        return undefined;
      }
      throw err;
    }
  }

  private async runInit(): Promise<ControllerInfo> {
    if (this.stateValue === 'closed') throw new HciError(undefined, Commands.Reset.opcode, { kind: 'closed', port: this.port });
    const reinit = this.infoValue !== undefined || this.conns.size > 0;
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
      const info = await this.bringUp();
      this.infoValue = info;
      this.aclTx.configure(info.buffers.aclPacketLength, info.buffers.aclPacketCount);
      this.aclRx.reset();
      this.stateValue = 'ready';
      this.log.info(
        { controller: info.description, identity: formatAddress(info.identityAddress), acl: `${info.buffers.aclPacketCount}x${info.buffers.aclPacketLength}` },
        `controller ready on ${this.port}`,
      );
      this.emit('ready', info);
      this.watchdog?.controllerUp();
      this.pumpCommands();
      return info;
    } catch (err) {
      if ((this.stateValue as HciState) !== 'closed') {
        this.stateValue = 'failed';
        // Commands queued by the layers above would never run: fail them with the cause.
        const e = err instanceof Error ? err : new Error(String(err));
        this.rejectQueued(e);
      }
      throw err;
    }
  }

  /**
   * HCI Reset, then the reads and settings of bring-up. When the controller answered Reset but a
   * later step failed (a lost, garbled or inserted packet makes a command time out or fail), the
   * whole sequence starts again from HCI Reset, up to `bringUpAttempts` times: Reset puts the
   * controller back in its default state (Core 5.4 Vol 4 Part E 7.3.2), so a retry starts clean.
   */
  private async bringUp(): Promise<ControllerInfo> {
    for (let attempt = 1; ; attempt++) {
      await this.transport.flushInput();
      this.framer.reset();
      try {
        await this.resetWithRetries();
        return await this.readController();
      } catch (err) {
        if (!(err instanceof HciError) || err.kind === 'closed' || err.kind === 'transport' || (this.stateValue as HciState) === 'closed') throw err;
        // A controller that never answered Reset is reported at once (resetWithRetries has its own retries).
        if (err.kind === 'timeout' && err.opcode === Commands.Reset.opcode) throw err;
        // Commands of the failed attempt still in flight would take the credits of the next one.
        for (const list of this.inFlight.values()) for (const cmd of list) this.settleCommand(cmd, err);
        this.inFlight.clear();
        this.credits = 1;
        if (attempt >= this.bringUpAttempts) {
          throw new HciError(err.status, err.opcode, {
            kind: err.kind,
            port: this.port,
            message:
              `Bring-up of the controller on ${this.port} failed ${attempt} times (each from HCI Reset); last failure: ${err.message}. ` +
              `Check the serial line (cable, baud rate, flow control), then press the DK's RESET button and start again.`,
            cause: err,
          });
        }
        this.log.warn({ attempt, attempts: this.bringUpAttempts, err: err.message }, `bring-up of the controller on ${this.port} failed (attempt ${attempt} of ${this.bringUpAttempts}); starting again from HCI Reset`);
      }
    }
  }

  private async resetWithRetries(): Promise<void> {
    for (let attempt = 1; attempt <= this.resetAttempts; attempt++) {
      if (attempt > 1 && this.resyncBytes > 0) {
        this.log.debug({ bytes: this.resyncBytes }, 'writing zero bytes to resynchronise the controller before retrying HCI Reset');
        try {
          await this.transport.write(new Uint8Array(this.resyncBytes));
        } catch (err) {
          throw new HciError(undefined, Commands.Reset.opcode, { kind: 'transport', port: this.port, message: `cannot write to ${this.port}: ${errorText(err)}`, cause: err });
        }
      }
      try {
        await this.internal('Reset', {}, this.resetTimeoutMs);
        return;
      } catch (err) {
        if (err instanceof HciError && err.kind === 'timeout') {
          this.log.warn(`no answer to HCI Reset on ${this.port} (attempt ${attempt} of ${this.resetAttempts}, ${this.resetTimeoutMs} ms)`);
          continue;
        }
        throw err;
      }
    }
    throw new HciError(undefined, Commands.Reset.opcode, {
      kind: 'timeout',
      port: this.port,
      message:
        `The controller on ${this.port} did not answer HCI Reset (${this.resetAttempts} attempts, ${this.resetTimeoutMs} ms each). ${SILENT_CONTROLLER_CHECKS}`,
    });
  }

  private async readController(): Promise<ControllerInfo> {
    const v = await this.internal('ReadLocalVersionInformation', {});
    const sc = await this.internal('ReadLocalSupportedCommands', {});
    const lmp = await this.internal('ReadLocalSupportedFeatures', {});
    const lef = await this.internal('LeReadLocalSupportedFeatures', {});
    const buffers = await this.readBuffers(sc.commands);
    await this.internal('SetEventMask', { mask: HOST_EVENT_MASK });
    await this.internal('LeSetEventMask', { mask: HOST_LE_EVENT_MASK });

    let vendor: VendorVersion | undefined;
    let vendorCommands: Uint8Array | undefined;
    const staticAddresses: string[] = [];
    const mode = this.opts.vendorCommands ?? 'auto';
    if (mode === 'always' || (mode === 'auto' && ZEPHYR_COMPANIES.has(v.companyId))) {
      const vv = await this.optional('ZephyrReadVersionInfo', {}, 'no Zephyr vendor extensions');
      if (vv) {
        vendor = decodeVendorVersion(vv);
        const vc = await this.optional('ZephyrReadSupportedCommands', {}, 'trying Read Static Addresses anyway');
        vendorCommands = vc?.commands;
        const hasStatic = !vc || ((((vc.commands[VS_CMD_BIT_READ_STATIC_ADDRS >> 3] ?? 0) >> (VS_CMD_BIT_READ_STATIC_ADDRS & 7)) & 1) as number) === 1;
        if (hasStatic) {
          const sa = await this.optional('ZephyrReadStaticAddresses', {}, 'no static address from the controller');
          for (const a of sa?.addresses ?? []) {
            if (randomAddressKind(a.address) === 'static' && a.address !== 'FF:FF:FF:FF:FF:FF') staticAddresses.push(a.address);
            else this.log.warn(`Zephyr Read Static Addresses returned ${a.address}, not a static random address; ignored`);
          }
        }
      }
    }

    let identity: Address;
    let identitySource: IdentitySource;
    let publicAddress: string | undefined;
    if (this.opts.identityAddress) {
      identity = this.opts.identityAddress;
      identitySource = 'configured';
    } else if (staticAddresses.length > 0) {
      identity = { type: 'random', address: staticAddresses[0] as string };
      identitySource = 'zephyr-static';
    } else {
      const bd = await this.optional('ReadBdAddr', {}, 'no public address');
      if (bd && bd.address !== NO_ADDRESS) publicAddress = bd.address;
      if (publicAddress) {
        identity = { type: 'public', address: publicAddress };
        identitySource = 'public';
      } else {
        identity = { type: 'random', address: this.generateStaticAddress() };
        identitySource = 'generated';
        this.log.warn(
          `the controller on ${this.port} has neither a static nor a public address: using the generated static address ${identity.address} for this run only (bonds will not survive a restart; pass an identity address to keep one)`,
        );
      }
    }
    if (identity.type === 'random') await this.internal('LeSetRandomAddress', { address: identity.address });

    let suggestedDataLength: { maxTxOctets: number; maxTxTime: number } | undefined;
    const dl = this.opts.dataLength ?? { txOctets: 251, txTime: 2120 };
    if (dl !== false && isCommandSupported(sc.commands, 'LeWriteSuggestedDefaultDataLength')) {
      const ok = await this.optional('LeWriteSuggestedDefaultDataLength', { maxTxOctets: dl.txOctets, maxTxTime: dl.txTime }, 'connections keep the controller default data length');
      if (ok) suggestedDataLength = { maxTxOctets: dl.txOctets, maxTxTime: dl.txTime };
    }

    return new ControllerInfo({
      port: this.port,
      version: {
        hciVersion: v.hciVersion,
        hciVersionName: coreVersionName(v.hciVersion),
        hciSubversion: v.hciSubversion,
        lmpVersion: v.lmpVersion,
        lmpVersionName: coreVersionName(v.lmpVersion),
        lmpSubversion: v.lmpSubversion,
        companyId: v.companyId,
        companyName: companyName(v.companyId),
      },
      vendor,
      identityAddress: identity,
      identitySource,
      staticAddresses,
      publicAddress,
      buffers,
      features: decodeLeFeatures(lef.features),
      leFeatures: lef.features,
      lmpFeatures: lmp.features,
      supportedCommands: sc.commands,
      vendorCommands,
      suggestedDataLength,
    });
  }

  /** LE Read Buffer Size v2 when listed, else v1; Read Buffer Size when the LE figures are zero (shared buffers). */
  private async readBuffers(commands: Uint8Array): Promise<BufferSizes> {
    let b: BufferSizes;
    if (isCommandSupported(commands, 'LeReadBufferSizeV2')) {
      const r = await this.internal('LeReadBufferSizeV2', {});
      b = {
        aclPacketLength: r.leAclDataPacketLength,
        aclPacketCount: r.totalNumLeAclDataPackets,
        source: 'LeReadBufferSizeV2',
        isoPacketLength: r.isoDataPacketLength,
        isoPacketCount: r.totalNumIsoDataPackets,
      };
    } else {
      const r = await this.internal('LeReadBufferSize', {});
      b = { aclPacketLength: r.leAclDataPacketLength, aclPacketCount: r.totalNumLeAclDataPackets, source: 'LeReadBufferSize' };
    }
    if (b.aclPacketCount === 0 || b.aclPacketLength === 0) {
      // Core 5.4 Vol 4 Part E 7.8.2: zero means LE shares the BR/EDR buffers; ask Read Buffer Size.
      const r = await this.internal('ReadBufferSize', {});
      b = { ...b, aclPacketLength: r.aclDataPacketLength, aclPacketCount: r.totalNumAclDataPackets, source: 'ReadBufferSize' };
      if (b.aclPacketCount === 0 || b.aclPacketLength === 0) {
        throw new HciError(undefined, Commands.ReadBufferSize.opcode, {
          kind: 'malformed',
          port: this.port,
          message: `the controller on ${this.port} reports no ACL buffers (LE Read Buffer Size and Read Buffer Size both gave 0): it cannot carry data`,
        });
      }
    }
    return b;
  }

  /** A static random address: two top bits set, the rest random, neither all zeros nor all ones. Core 5.4 Vol 6 Part B 1.3.2.1. */
  private generateStaticAddress(): string {
    const rng = this.opts.random ?? osRandom;
    for (;;) {
      const b = rng.bytes(6);
      b[5] = ((b[5] as number) | 0xc0) & 0xff;
      let ones = true;
      let zeros = true;
      for (let i = 0; i < 6; i++) {
        const v = i === 5 ? (b[i] as number) & 0x3f : (b[i] as number);
        if (v !== (i === 5 ? 0x3f : 0xff)) ones = false;
        if (v !== 0) zeros = false;
      }
      if (ones || zeros) continue;
      let s = '';
      for (let i = 5; i >= 0; i--) s += (i < 5 ? ':' : '') + (b[i] as number).toString(16).padStart(2, '0');
      return s.toUpperCase();
    }
  }

  /**
   * Drops connections (each with a 'disconnected' event), ACL state and in-flight commands.
   * `rejectQueued`: also fail commands queued by the layers above (they were meant for the old state).
   */
  private dropEverything(rejectQueued: boolean, reason: number, err: HciError): void {
    const conns = [...this.conns.values()];
    this.conns.clear();
    this.aclTx.reset(err);
    this.aclRx.reset();
    for (const list of this.inFlight.values()) for (const cmd of list) this.settleCommand(cmd, new HciError(undefined, cmd.opcode, { kind: err.kind, port: this.port, message: `HCI command ${formatOpcode(cmd.opcode)} ${err.message}` }));
    this.inFlight.clear();
    for (const cmd of this.initQueue) this.settleCommand(cmd, err);
    this.initQueue = [];
    if (rejectQueued) this.rejectQueued(err);
    this.credits = 1;
    for (const conn of conns) {
      conn.open = false;
      this.emit('disconnected', conn, reason, hciStatusName(reason));
    }
  }

  private rejectQueued(err: Error): void {
    const q = this.queue;
    const head = this.queueHead;
    this.queue = [];
    this.queueHead = 0;
    for (let i = head; i < q.length; i++) {
      const cmd = q[i] as PendingCommand;
      this.settleCommand(cmd, err instanceof HciError ? new HciError(err.status, cmd.opcode, { kind: err.kind, port: this.port, message: `HCI command ${formatOpcode(cmd.opcode)} not sent: ${err.message}`, cause: err }) : err);
    }
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

  // ---------------------------------------------------------------------------------------------
  // ACL

  /**
   * Sends an L2CAP frame (basic header included) on a connection; resolves once the last fragment
   * was written. The frame is taken over (a single-fragment frame with headroom goes out in place):
   * do not modify it after the call.
   */
  sendAcl(handle: number, l2capFrame: Uint8Array): Promise<void> {
    return this.aclTx.send(handle, l2capFrame, () => new HciError(undefined, 0, {
      kind: 'disconnected',
      port: this.port,
      message: `cannot send ACL data: connection 0x${handle.toString(16).padStart(4, '0')} does not exist (disconnected?)`,
    }));
  }

  /** Asks the controller to end a connection; resolves on its Command Status ('disconnected' follows). */
  async disconnect(handle: number, reason: number = HciStatus.RemoteUserTerminatedConnection): Promise<void> {
    if (!this.conns.has(handle)) {
      throw new HciError(undefined, Commands.Disconnect.opcode, {
        kind: 'disconnected',
        port: this.port,
        message: `cannot disconnect 0x${handle.toString(16).padStart(4, '0')}: no such connection`,
      });
    }
    await this.command('Disconnect', { handle, reason });
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
    const body = pkt.subarray(1);
    if (type === H4Type.Event) this.onEventPacket(body);
    else if (type === H4Type.Acl) this.onAclPacket(body);
    else this.log.debug({ type }, `H:4 packet type ${type} from ${this.port} ignored`);
  }

  private onAclPacket(body: Uint8Array): void {
    const d = decodeAcl(body);
    if (!d.ok) {
      this.log.warn({ bytes: toHex(body.subarray(0, 16)) }, `malformed ACL packet from ${this.port}: ${d.error}; dropped`);
      return;
    }
    const { handle, boundary, data } = d.packet;
    if (!this.conns.has(handle)) {
      this.unknownConnection(handle, 'ACL data');
      return;
    }
    this.aclRx.push(handle, boundary, data);
  }

  private onEventPacket(body: Uint8Array): void {
    const d = decodeEvent(body);
    if (!d.ok) {
      this.log.warn({ code: d.code, subevent: d.subevent, bytes: toHex(body.subarray(0, 32)) }, `malformed HCI event from ${this.port}: ${d.error}; dropped`);
      if (d.code === DISCONNECTION_COMPLETE_CODE && this.conns.size > 0) void this.checkConnections('a malformed Disconnection Complete');
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
    if (this.stateValue !== 'ready' || this.reinitRunning || !this.resetOnCommandTimeout) {
      this.log.warn({ handle }, `${what} for unknown connection ${h}; dropped`);
      return;
    }
    this.log.warn({ handle }, `${what} for unknown connection ${h} on ${this.port}: the controller's connections no longer match this host's (a lost or garbled event); re-initialising it`);
    // A burst of nonsense (a garbled stretch of the line) makes one reset, once the burst is over.
    this.doubtTimer ??= this.clock.setTimeout(() => {
      this.doubtTimer = undefined;
      this.reinitialise(`${what} for unknown connection ${h}`);
    }, DOUBT_SETTLE_MS);
  }

  /**
   * Asks the controller about every connection this host tracks (Read RSSI, Core 5.4 Vol 4 Part E
   * 7.5.4). 0x02 Unknown Connection Identifier: the link ended and its Disconnection Complete never
   * arrived (lost or garbled): it is dropped here too, with that status as the reason.
   */
  async checkConnections(why: string): Promise<void> {
    if (this.stateValue !== 'ready' || !this.infoValue?.supports('ReadRssi')) return;
    for (const conn of [...this.conns.values()]) {
      try {
        await this.command('ReadRssi', { handle: conn.handle });
      } catch (err) {
        if (err instanceof HciError && err.status === HciStatus.UnknownConnectionIdentifier && this.conns.get(conn.handle) === conn) {
          this.log.warn({ handle: conn.handle }, `the controller on ${this.port} no longer knows ${conn} (checked after ${why}): its Disconnection Complete was lost; dropping it`);
          this.connectionGone(conn, HciStatus.UnknownConnectionIdentifier);
        }
      }
    }
  }

  private dispatch(ev: HciEvent): void {
    switch (ev.name) {
      case 'CommandComplete':
        return this.onCommandComplete(ev.params);
      case 'CommandStatus':
        return this.onCommandStatus(ev.params);
      case 'NumberOfCompletedPackets':
        for (const { handle, count } of ev.params.handles) {
          if (!this.aclTx.hasLink(handle)) this.log.debug({ handle, count }, 'Number Of Completed Packets for a connection that is gone; ignored');
          else this.aclTx.completed(handle, count);
        }
        return;
      case 'DisconnectionComplete':
        return this.onDisconnectionComplete(ev.params);
      case 'LeConnectionComplete': {
        const p = ev.params;
        return this.onConnectionComplete({ ...p, localResolvablePrivateAddress: NO_ADDRESS, peerResolvablePrivateAddress: NO_ADDRESS });
      }
      case 'LeEnhancedConnectionComplete':
        return this.onConnectionComplete(ev.params);
      case 'LeConnectionUpdateComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'Connection Update Complete');
        if (!c) return;
        if (p.status === HciStatus.Success) {
          c.interval = p.connInterval;
          c.latency = p.connLatency;
          c.supervisionTimeout = p.supervisionTimeout;
        }
        this.emit('connectionUpdated', c, p.status);
        return;
      }
      case 'LeDataLengthChange': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'Data Length Change');
        if (!c) return;
        c.dataLength = { maxTxOctets: p.maxTxOctets, maxTxTime: p.maxTxTime, maxRxOctets: p.maxRxOctets, maxRxTime: p.maxRxTime };
        this.emit('dataLengthChanged', c);
        return;
      }
      case 'LePhyUpdateComplete': {
        const p = ev.params;
        const c = this.connFor(p.handle, 'PHY Update Complete');
        if (!c) return;
        if (p.status === HciStatus.Success) {
          c.txPhy = p.txPhy;
          c.rxPhy = p.rxPhy;
        }
        this.emit('phyUpdated', c, p.status);
        return;
      }
      case 'EncryptionChange':
      case 'EncryptionChangeV2': {
        const p = ev.params;
        const c = this.connFor(p.handle, ev.name);
        if (!c) return;
        const keySize = 'keySize' in p ? p.keySize : undefined;
        const enabled = p.enabled !== 0;
        if (p.status === HciStatus.Success) {
          c.encrypted = enabled;
          c.keySize = enabled ? (keySize ?? c.keySize) : undefined;
        }
        this.emit('encryptionChanged', c, { status: p.status, enabled, keySize });
        return;
      }
      case 'EncryptionKeyRefreshComplete': {
        const c = this.connFor(ev.params.handle, 'Encryption Key Refresh Complete');
        if (c) this.emit('encryptionKeyRefreshed', c, ev.params.status);
        return;
      }
      case 'LeLongTermKeyRequest': {
        const p = ev.params;
        const c = this.conns.get(p.handle);
        if (!c) {
          // The controller waits for an answer (Core 5.4 Vol 4 Part E 7.7.65.5): no key for a link we do not know.
          if (this.stateValue === 'ready') {
            this.command('LeLongTermKeyRequestNegativeReply', { handle: p.handle }).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'LTK negative reply failed'));
          }
          this.unknownConnection(p.handle, 'LE Long Term Key Request');
          return;
        }
        if (this.listenerCount('longTermKeyRequest') === 0) {
          this.log.warn(`LE Long Term Key Request on ${c} with nobody to answer it: negative reply`);
          this.command('LeLongTermKeyRequestNegativeReply', { handle: p.handle }).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'LTK negative reply failed'));
          return;
        }
        this.emit('longTermKeyRequest', c, { rand: p.rand, ediv: p.ediv });
        return;
      }
      case 'LeRemoteConnectionParameterRequest':
        return this.onConnectionParameterRequest(ev.params);
      case 'LeReadRemoteFeaturesComplete': {
        const c = this.connFor(ev.params.handle, 'Read Remote Features Complete');
        if (c) this.emit('remoteFeatures', c, ev.params.status, ev.params.features);
        return;
      }
      case 'ReadRemoteVersionInformationComplete': {
        const c = this.connFor(ev.params.handle, 'Read Remote Version Information Complete');
        if (c) this.emit('remoteVersion', c, ev.params);
        return;
      }
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
    }
  }

  private onConnectionComplete(p: EventParams<'LeEnhancedConnectionComplete'>): void {
    const role = p.role === 0 ? 'central' : 'peripheral';
    if (this.stateValue === 'initialising') {
      // A controller being reset has no connections, and bring-up neither advertises nor connects:
      // this one is stale (sent before the Reset) or made up. Kept, it would hold a link slot forever.
      this.log.warn({ handle: p.handle, status: p.status }, `LE Connection Complete during bring-up on ${this.port}: ignored (a controller being reset has no connections)`);
      return;
    }
    if (p.status !== HciStatus.Success) {
      this.log.info({ status: hciStatusName(p.status) }, `connection attempt ended: ${hciStatusName(p.status)}`);
      this.emit('connectionFailed', { status: p.status, statusName: hciStatusName(p.status), role });
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
    this.emit('connected', conn);
    const dl = this.opts.dataLength ?? { txOctets: 251, txTime: 2120 };
    const info = this.infoValue;
    if (dl !== false && conn.open && info && info.features.dataLengthExtension && info.supports('LeSetDataLength')) {
      this.command('LeSetDataLength', { handle: p.handle, txOctets: dl.txOctets, txTime: dl.txTime }).catch((err: unknown) =>
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
        port: this.port,
        message: `ACL data not sent: connection ${conn} ended (${hciStatusName(reason)})`,
      }),
    );
    this.aclRx.remove(conn.handle);
    this.log.info({ handle: conn.handle, reason: hciStatusName(reason) }, `disconnected: ${conn} (${hciStatusName(reason)})`);
    this.emit('disconnected', conn, reason, hciStatusName(reason));
  }

  private onConnectionParameterRequest(p: EventParams<'LeRemoteConnectionParameterRequest'>): void {
    const c = this.connFor(p.handle, 'Remote Connection Parameter Request');
    if (!c) return;
    const req: ConnectionParameterRequest = { intervalMin: p.intervalMin, intervalMax: p.intervalMax, maxLatency: p.maxLatency, timeout: p.timeout };
    let accept = true;
    try {
      accept = this.opts.acceptConnectionParameters ? this.opts.acceptConnectionParameters(c, req) : true;
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'acceptConnectionParameters threw; accepting');
    }
    const done = (err: unknown): void => this.log.warn({ err: errorText(err) }, `answering the connection parameter request on ${c} failed`);
    if (accept) {
      this.command('LeRemoteConnectionParameterRequestReply', {
        handle: p.handle,
        intervalMin: p.intervalMin,
        intervalMax: p.intervalMax,
        maxLatency: p.maxLatency,
        timeout: p.timeout,
        minCeLength: 0,
        maxCeLength: 0,
      }).catch(done);
    } else {
      this.command('LeRemoteConnectionParameterRequestNegativeReply', { handle: p.handle, reason: HciStatus.UnacceptableConnectionParameters }).catch(done);
    }
    this.emit('connectionParameterRequest', c, req, accept);
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
    this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.transport.off('data', this.onData);
    this.transport.off('close', this.onClose);
    const conns = [...this.conns.values()];
    this.conns.clear();
    this.aclTx.reset(err);
    this.aclRx.reset();
    for (const list of this.inFlight.values()) for (const cmd of list) this.settleCommand(cmd, commandError(cmd, err, this.port));
    this.inFlight.clear();
    for (const cmd of this.initQueue) this.settleCommand(cmd, commandError(cmd, err, this.port));
    this.initQueue = [];
    for (let i = this.queueHead; i < this.queue.length; i++) this.settleCommand(this.queue[i] as PendingCommand, commandError(this.queue[i] as PendingCommand, err, this.port));
    this.queue = [];
    this.queueHead = 0;
    for (const conn of conns) {
      conn.open = false;
      this.emit('disconnected', conn, reason, hciStatusName(reason));
    }
  }
}

function commandError(cmd: PendingCommand, err: HciError, port: string): HciError {
  return new HciError(undefined, cmd.opcode, { kind: err.kind, port, message: `HCI command ${formatOpcode(cmd.opcode)} abandoned: ${err.message}`, cause: err });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
