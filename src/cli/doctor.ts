/**
 * `wearable-host doctor [--port PATH] [--json]`: finds out why the DK does not answer, or shows
 * that it does. Lists candidate ports, checks permissions, exclusive access and ModemManager,
 * tries HCI Reset at the DK's settings and then others, reads the controller's identity and
 * features and runs the LE Encrypt self-test. Each finding comes with a fix.
 */
import type { Command } from 'commander';
import { RealClock } from '../util/clock.js';
import { WearableHostError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { DoctorEnv } from '../doctor/env.js';
import { defaultDoctorEnv } from '../doctor/session.js';
import { runDoctor, type DoctorOptions } from '../doctor/run.js';
import { formatReport } from '../doctor/format.js';
import { Severity, type DoctorReport } from '../doctor/types.js';

/** Where the command writes and what machine it examines, injectable for tests. */
export interface DoctorCommandIo {
  out(text: string): void;
  /** The environment to examine; default: this machine. */
  env(): DoctorEnv;
  logger?: Logger;
}

/** Thrown after the report was printed when the DK is not usable; the caller sets a non-zero exit code. */
export class DoctorFailure extends WearableHostError {
  readonly exitCode = 1;
  constructor(readonly report: DoctorReport) {
    const first = report.findings.find((f) => f.severity === Severity.Fail);
    super('cli', `doctor: the DK is not usable${first ? `: ${first.title}` : ': no controller answered'}${first?.fix ? `. Fix: ${first.fix}` : ''}`);
    this.name = 'DoctorFailure';
  }
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new WearableHostError('cli', `${name} must be a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * Adds `doctor` to `program`. Prints the report (text, or JSON with --json) and throws
 * {@link DoctorFailure} when the DK is not usable, so the exit code is non-zero.
 */
export function registerDoctorCommand(program: Command, ioOverrides: Partial<DoctorCommandIo> = {}): Command {
  const io: DoctorCommandIo = {
    out: (text) => void process.stdout.write(text),
    env: () => defaultDoctorEnv({ clock: new RealClock(), ...(ioOverrides.logger ? { logger: ioOverrides.logger } : {}) }),
    ...ioOverrides,
  };
  return program
    .command('doctor')
    .description('check the DK, its serial port and this machine, and say what to fix')
    .option('--port <path>', 'serial port of the DK (/dev/serial/by-id/...) or tcp://host:port; default: the DK-like port that answers')
    .option('--json', 'machine-readable report')
    .option('--verbose', 'show the evidence of passing checks too')
    .option('--probe-timeout <ms>', 'how long to wait for each HCI Reset answer', '1000')
    .action(async (opts: { port?: string; json?: boolean; verbose?: boolean; probeTimeout: string }) => {
      const options: DoctorOptions = { probeTimeoutMs: positiveInt('--probe-timeout', opts.probeTimeout) };
      if (opts.port !== undefined) options.port = opts.port;
      const report = await runDoctor(io.env(), options);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report, { verbose: opts.verbose ?? false }));
      if (!report.usable) throw new DoctorFailure(report);
    });
}
