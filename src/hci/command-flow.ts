/**
 * HCI command flow control: the FIFO queue (bring-up's own commands first), Num_HCI_Command_Packets
 * credits (Core 5.4 Vol 4 Part E 4.4), a timeout per command, and matching each Command Complete or
 * Command Status to the command it answers (by opcode, oldest first). An answer nobody waits for is
 * dropped without taking its credits. The driver ({@link Hci}) owns this object and decides what a
 * timeout or a corrupted answer means for the controller (src/hci/driver.ts).
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { toHex } from '../util/bytes.js';
import { Fifo } from '../util/fifo.js';
import { H4Type } from './h4.js';
import { Commands, decodeReturn, encodeCommand, formatOpcode, type CommandName, type CommandParams, type CommandReply } from './commands.js';
import type { EventParams } from './events.js';
import { HciStatus, hciStatusName } from './status.js';
import { HciError } from './hci-error.js';
import type { Codec } from './codec.js';

/** What the flow needs from its driver. */
export interface CommandFlowHost {
  readonly clock: Clock;
  readonly log: Logger;
  /** The port's description, for messages. */
  readonly port: string;
  /** Default per-command timeout (also the wait before a stalled queue assumes one credit). */
  readonly commandTimeoutMs: number;
  /** 'idle' and 'initialising' hold the commands of the layers above; 'closed' refuses all. */
  state(): 'idle' | 'initialising' | 'ready' | 'failed' | 'closed';
  write(packet: Uint8Array): Promise<void>;
  /** A command got no answer in time (already rejected). */
  timedOut(opcode: number, timeoutMs: number): void;
  /** An answer carried a status that is no HCI error code (already rejected). */
  corrupted(opcode: number): void;
  /** A Command Complete/Status for the No Operation opcode 0x0000 arrived. */
  noOperation(): void;
}

export interface PendingCommand {
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
export function loggable(v: unknown): unknown {
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

export class CommandFlow {
  private credits = 1;
  private readonly queue = new Fifo<PendingCommand>();
  private initQueue: PendingCommand[] = [];
  private readonly inFlight = new Map<number, PendingCommand[]>();
  private stallTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly commandTimeoutMs: number;

  constructor(private readonly host: CommandFlowHost) {
    this.clock = host.clock;
    this.log = host.log;
    this.commandTimeoutMs = host.commandTimeoutMs;
  }

  /** Credits the controller granted and not yet used. */
  get commandCredits(): number {
    return this.credits;
  }

  /** Commands waiting to be sent. */
  get queued(): number {
    return this.queue.length + this.initQueue.length;
  }

  /** Nothing in flight and nothing queued. */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.initQueue.length === 0 && this.queue.length === 0;
  }

  /** Queues a command; `internal` ones (bring-up) go first and do not wait for bring-up. */
  enqueue<N extends CommandName>(name: N, params: CommandParams<N>, internal: boolean, timeoutMs?: number): Promise<unknown> {
    const def = Commands[name];
    if (this.host.state() === 'closed') {
      return Promise.reject(new HciError(undefined, def.opcode, { kind: 'closed', port: this.host.port }));
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
      this.pump();
    });
  }

  private nextCommand(): PendingCommand | undefined {
    if (this.initQueue.length > 0) return this.initQueue.shift();
    // Commands from the layers above wait for bring-up (and for a re-initialisation to finish).
    const state = this.host.state();
    if (state === 'idle' || state === 'initialising') return undefined;
    return this.queue.shift();
  }

  /** Sends what the credits allow; arms the stall timer when the controller granted none. */
  pump(): void {
    this.pumpCommandsNow();
    // No credit, nothing in flight to bring one back, yet commands wait: a controller that said
    // "Num_HCI_Command_Packets = 0" and went quiet. After a command timeout, assume one credit.
    const waiting = this.initQueue.length > 0 || this.queue.length > 0;
    if (this.credits === 0 && this.inFlight.size === 0 && waiting && this.host.state() !== 'closed') {
      this.stallTimer ??= this.clock.setTimeout(() => {
        this.stallTimer = undefined;
        if (this.credits === 0 && this.inFlight.size === 0) {
          this.log.warn(`the controller on ${this.host.port} granted no command credits for ${this.commandTimeoutMs} ms; sending the next command anyway`);
          this.credits = 1;
          this.pump();
        }
      }, this.commandTimeoutMs);
    } else if (this.stallTimer && (this.credits > 0 || this.inFlight.size > 0)) {
      this.clock.clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
  }

  private pumpCommandsNow(): void {
    while (this.credits > 0 && this.host.state() !== 'closed') {
      const cmd = this.nextCommand();
      if (!cmd) return;
      this.credits--;
      let list = this.inFlight.get(cmd.opcode);
      if (!list) this.inFlight.set(cmd.opcode, (list = []));
      list.push(cmd);
      cmd.timer = this.clock.setTimeout(() => this.commandTimedOut(cmd), cmd.timeoutMs);
      this.host.write(cmd.packet).catch((err: unknown) => {
        this.removeInFlight(cmd);
        this.credits = Math.max(this.credits, 1);
        this.settle(
          cmd,
          new HciError(undefined, cmd.opcode, {
            kind: 'transport',
            port: this.host.port,
            message: `HCI command ${formatOpcode(cmd.opcode)} could not be written to ${this.host.port}: ${errorText(err)}`,
            cause: err,
          }),
        );
        this.pump();
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

  settle(cmd: PendingCommand, err: Error | undefined, value?: unknown): void {
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
    this.log.warn({ command: cmd.name, hciStatus: hex }, `the controller on ${this.host.port} answered ${formatOpcode(cmd.opcode)} with ${hex}, which is no HCI error code: the answer was corrupted`);
    this.settle(cmd, new HciError(undefined, cmd.opcode, { kind: 'malformed', port: this.host.port, message: `the controller on ${this.host.port} answered ${formatOpcode(cmd.opcode)} with status ${hex}, which is no HCI error code (a corrupted answer)` }));
    this.host.corrupted(cmd.opcode);
    return true;
  }

  private commandTimedOut(cmd: PendingCommand): void {
    cmd.timer = undefined;
    if (cmd.settled) return;
    this.removeInFlight(cmd);
    // The controller never answered, so its credit never came back: assume one (as BlueZ does) so
    // the queue does not stall behind a lost command.
    this.credits = Math.max(this.credits, 1);
    this.log.warn({ command: cmd.name, timeoutMs: cmd.timeoutMs }, `HCI command ${formatOpcode(cmd.opcode)} timed out on ${this.host.port}`);
    this.settle(cmd, HciError.timeout(cmd.opcode, this.host.port, cmd.timeoutMs));
    this.pump();
    this.host.timedOut(cmd.opcode, cmd.timeoutMs);
  }

  /**
   * A Command Complete or Command Status for the No Operation opcode 0x0000: only a credit update
   * (Core 5.4 Vol 4 Part E 7.7.14), which the driver is told of (a controller announcing it booted
   * sends one).
   */
  private onNoOperation(credits: number): void {
    this.credits = credits;
    this.host.noOperation();
    this.pump();
  }

  /** Command Complete: settles the command it answers and takes its credits; any other is dropped. */
  onCommandComplete(p: EventParams<'CommandComplete'>): void {
    const { numHciCommandPackets: n, opcode, returnParameters: rp } = p;
    if (opcode === 0x0000) return this.onNoOperation(n);
    const cmd = this.takeInFlight(opcode);
    if (!cmd) {
      this.log.warn({ opcode: formatOpcode(opcode), returnParameters: toHex(rp) }, `Command Complete for ${formatOpcode(opcode)}, which is not waiting for an answer; dropped`);
      return;
    }
    this.credits = n;
    if (rp.length < 1) {
      this.settle(cmd, new HciError(undefined, opcode, { kind: 'malformed', port: this.host.port, message: `Command Complete for ${formatOpcode(opcode)} on ${this.host.port} has no status byte` }));
    } else {
      const status = rp[0] as number;
      if (status !== HciStatus.Success && this.undefinedStatus(cmd, status)) {
        // handled
      } else if (status !== HciStatus.Success) {
        this.settle(cmd, new HciError(status, opcode, { port: this.host.port }));
      } else if (cmd.reply === 'status') {
        this.settle(cmd, undefined, {});
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
          this.settle(cmd, new HciError(undefined, opcode, { kind: 'malformed', port: this.host.port, message: `the controller on ${this.host.port} answered ${formatOpcode(opcode)} with malformed return parameters: ${error}` }));
        } else {
          this.settle(cmd, undefined, value);
        }
      }
    }
    this.pump();
  }

  /** Command Status: the same for commands answered by a status. */
  onCommandStatus(p: EventParams<'CommandStatus'>): void {
    const { status, numHciCommandPackets: n, opcode } = p;
    if (opcode === 0x0000) return this.onNoOperation(n);
    const cmd = this.takeInFlight(opcode);
    if (!cmd) {
      this.log.warn({ opcode: formatOpcode(opcode), status: hciStatusName(status) }, `Command Status for ${formatOpcode(opcode)}, which is not waiting for an answer; dropped`);
      return;
    }
    this.credits = n;
    if (status !== HciStatus.Success && this.undefinedStatus(cmd, status)) {
      // handled
    } else if (status !== HciStatus.Success) {
      this.settle(cmd, new HciError(status, opcode, { port: this.host.port }));
    } else if (cmd.reply === 'status') {
      this.settle(cmd, undefined, {});
    } else {
      // A command answered by Command Complete got a successful Command Status: keep waiting.
      this.log.warn(`Command Status (success) for ${formatOpcode(opcode)}, which completes with Command Complete; still waiting`);
      const list = this.inFlight.get(opcode);
      if (list) list.unshift(cmd);
      else this.inFlight.set(opcode, [cmd]);
    }
    this.pump();
  }

  /** Fails every command in flight with `err(cmd)` (bring-up attempt abandoned, reset, shutdown). */
  failInFlight(err: (cmd: PendingCommand) => Error): void {
    for (const list of this.inFlight.values()) for (const cmd of list) this.settle(cmd, err(cmd));
    this.inFlight.clear();
  }

  /** Fails bring-up's own queued commands. */
  failInternal(err: (cmd: PendingCommand) => Error): void {
    const q = this.initQueue;
    this.initQueue = [];
    for (const cmd of q) this.settle(cmd, err(cmd));
  }

  /** Fails the queued commands of the layers above (they were meant for the old controller state). */
  rejectQueued(err: Error): void {
    for (const cmd of this.queue.drain()) {
      this.settle(cmd, err instanceof HciError ? new HciError(err.status, cmd.opcode, { kind: err.kind, port: this.host.port, message: `HCI command ${formatOpcode(cmd.opcode)} not sent: ${err.message}`, cause: err }) : err);
    }
  }

  /** A controller fresh from HCI Reset (or one that never answered): one credit. */
  resetCredits(): void {
    this.credits = 1;
  }

  /** Stops the stall timer and fails everything (the driver is closing). */
  shutdown(err: (cmd: PendingCommand) => Error): void {
    this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.failInFlight(err);
    this.failInternal(err);
    for (const cmd of this.queue.drain()) this.settle(cmd, err(cmd));
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
