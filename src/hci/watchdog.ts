/**
 * The idle watchdog: notices a controller that hung or rebooted silently while the host had nothing
 * to say to it. Every period, when no command is in flight or queued, it sends one cheap command:
 *
 * - No answer: the command times out and the driver re-initialises the controller from HCI Reset
 *   (a hung controller; Core 5.4 Vol 4 Part E 4.4 leaves a lost command to the host's timer).
 * - LE Read Suggested Default Data Length answering another value than the first probe after
 *   bring-up read: the value bring-up wrote (LE Write Suggested Default Data Length) is gone, so the
 *   controller went back to its power-up state (Core 5.4 Vol 4 Part E 7.8.34/7.8.35): it rebooted
 *   with the serial port kept. The driver re-initialises it.
 * - With links up, Read RSSI on each: 0x02 Unknown Connection Identifier means its Disconnection
 *   Complete was lost, and the link is dropped here too (its slot freed, advertising resumed).
 * - A Command Complete for the No Operation opcode 0x0000 while the controller is up makes the
 *   next probe run at once: Zephyr's hci_uart sends one after it booted when built with
 *   CONFIG_BT_WAIT_NOP (samples/bluetooth/hci_uart/src/main.c), but the spec also allows it as a
 *   plain credit update (Core 5.4 Vol 4 Part E 7.7.14), so it is checked, not believed.
 * After a re-initialisation that failed (a controller still hung), bring-up is tried again at the
 * same pace, backing off to once a minute, so a DK that comes back (RESET pressed, a hang that
 * ended) is used again without restarting the process. docs/controller-watchdog.md explains the
 * choices.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { CommandName, CommandParams, CommandReturn } from './commands.js';
import type { ControllerInfo } from './controller-info.js';
import { HciError } from './hci-error.js';

/** The probe period the CLI and the library use. */
export const DEFAULT_IDLE_CHECK_MS = 5000;

/** Longest wait between two bring-up attempts of a controller that stays silent. */
const MAX_RETRY_MS = 60_000;

/** The data length a controller uses before the host writes one. Core 5.4 Vol 6 Part B 4.5.10. */
const POWER_UP_DATA_LENGTH = { maxTxOctets: 27, maxTxTime: 328 } as const;

type DataLength = { maxTxOctets: number; maxTxTime: number };

export interface IdleWatchdogLower {
  /** 'ready', 'failed', ... as the driver says. */
  state(): string;
  /** No command in flight or queued. */
  idle(): boolean;
  /** The controller has been up at least once (a failed first bring-up is the caller's to report). */
  wasUp(): boolean;
  info(): ControllerInfo | undefined;
  command<N extends CommandName>(name: N, params: CommandParams<N>): Promise<CommandReturn<N>>;
  reinitialise(why: string): void;
  /** Asks the controller about each tracked connection; drops those it no longer knows. */
  checkConnections(why: string): Promise<void>;
}

export class IdleWatchdog {
  private timer: TimerHandle | undefined;
  private probing = false;
  private stopped = false;
  /** Read back by the first probe after a bring-up; undefined: not read yet. */
  private baseline: DataLength | undefined;
  /** The data-length read-back tells a reboot (false once it proved useless on this controller). */
  private readBack = true;
  private failures = 0;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly port: string,
    readonly periodMs: number,
    private readonly lower: IdleWatchdogLower,
  ) {}

  /** A bring-up finished: forget what the previous controller state said, probe a period from now. */
  controllerUp(): void {
    this.baseline = undefined;
    this.readBack = true;
    this.failures = 0;
    this.arm(this.periodMs);
  }

  /** A re-initialisation failed: try bring-up again later. */
  controllerDown(): void {
    this.failures++;
    this.arm(Math.min(MAX_RETRY_MS, this.periodMs * 2 ** (this.failures - 1)));
  }

  /** Something suggests a reboot (an unsolicited NOP): probe now rather than at the next tick. */
  checkSoon(): void {
    if (this.lower.state() === 'ready') this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.tick(), ms);
  }

  private tick(): void {
    this.timer = undefined;
    const state = this.lower.state();
    if (state === 'closed' || this.stopped) return;
    if (state === 'failed' && this.lower.wasUp()) {
      this.log.warn({ attempt: this.failures + 1 }, `trying to bring the controller on ${this.port} up again`);
      this.lower.reinitialise('a failed re-initialisation');
      return; // 'reinitialised' or 'reinitialisationFailed' arms the next tick.
    }
    if (state !== 'ready' || this.probing || !this.lower.idle()) {
      this.arm(this.periodMs);
      return;
    }
    this.probing = true;
    this.probe().finally(() => {
      this.probing = false;
      if (this.lower.state() === 'ready' && !this.timer) this.arm(this.periodMs);
    });
  }

  private async probe(): Promise<void> {
    await this.probeController();
    // A link whose Disconnection Complete was lost would hold its slot (and keep advertising off) forever.
    if (this.lower.state() === 'ready') await this.lower.checkConnections('an idle check');
  }

  private async probeController(): Promise<void> {
    const info = this.lower.info();
    const wrote = info?.suggestedDataLength;
    try {
      if (!this.readBack || !wrote || !info.supports('LeReadSuggestedDefaultDataLength')) {
        // Only a hang can be told: whatever the answer says, it came.
        await this.lower.command('ReadLocalVersionInformation', {});
        return;
      }
      const r = await this.lower.command('LeReadSuggestedDefaultDataLength', {});
      const now = { maxTxOctets: r.maxTxOctets, maxTxTime: r.maxTxTime };
      if (!this.baseline) {
        this.baseline = now;
        if (same(now, POWER_UP_DATA_LENGTH) && !same(wrote, POWER_UP_DATA_LENGTH)) {
          this.readBack = false;
          this.log.info(
            { wrote: text(wrote), readBack: text(now) },
            `the controller on ${this.port} reads back its power-up data length after bring-up wrote another: a silent reboot can only be noticed when it also loses a link or a command`,
          );
        }
        return;
      }
      if (!same(now, this.baseline)) {
        this.log.error(
          { expected: text(this.baseline), readBack: text(now) },
          `the controller on ${this.port} forgot the data length bring-up set (LE Read Suggested Default Data Length: ${text(now)}, was ${text(this.baseline)}): it rebooted`,
        );
        this.lower.reinitialise('a silent controller reboot');
      }
    } catch (err) {
      // A timeout already re-initialises the controller (driver); a refusal means the read-back is no use here.
      if (err instanceof HciError && err.kind === 'status') {
        this.readBack = false;
        this.log.warn({ status: err.statusName }, `the controller on ${this.port} refused the idle check (${err.message}); only a hang will be noticed`);
      } else {
        this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'idle check ended without an answer');
      }
    }
  }
}

function same(a: DataLength, b: DataLength): boolean {
  return a.maxTxOctets === b.maxTxOctets && a.maxTxTime === b.maxTxTime;
}

function text(d: DataLength): string {
  return `${d.maxTxOctets} bytes / ${d.maxTxTime} us`;
}
