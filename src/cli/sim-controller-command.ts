/**
 * `wearable-host sim-controller --pty | --tcp PORT [--count N] [--seed S] [--log-level L]`:
 * serves N virtual nRF5340 `hci_uart` controllers on one virtual air, prints one line per
 * controller (`PTY /dev/pts/N` or `TCP 127.0.0.1:PORT`) and serves until SIGINT/SIGTERM. Any host
 * that speaks H:4 (this CLI with --port, or another stack) attaches to them as if they were DKs.
 */
import type { Command } from 'commander';
import { WearableHostError } from '../util/errors.js';
import { createLogger, type LogLevel, type Logger } from '../util/log.js';
import { serveControllers, type ServeControllersOptions, type ServedControllers } from '../sim/serve.js';

/** Where the command writes and how it learns to stop; injectable for tests. */
export interface SimControllerIo {
  /** Normal output (stdout): the controller lines. */
  out(text: string): void;
  logger(level: LogLevel): Logger;
  /** Resolves with the signal name when the process is asked to stop. */
  waitForStop(): Promise<string>;
  /** Called once everything is served (tests use it to reach the running servers). */
  onServing?(served: ServedControllers): void;
}

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

function defaultIo(): SimControllerIo {
  return {
    out: (text) => void process.stdout.write(text),
    logger: (level) => createLogger({ level, name: 'sim-controller' }),
    waitForStop: waitForSignal,
  };
}

interface Options {
  pty?: boolean;
  tcp?: string;
  count: string;
  seed?: string;
  logLevel: string;
}

function parseOptions(o: Options): { serve: Omit<ServeControllersOptions, 'log'>; level: LogLevel } {
  if (!o.pty && o.tcp === undefined) {
    throw new WearableHostError('cli', 'say where to serve the controllers: --pty (pseudo-terminals, needs socat) or --tcp PORT');
  }
  const count = Number(o.count);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new WearableHostError('cli', `--count must be a whole number from 1 to 64, got ${JSON.stringify(o.count)}`);
  }
  let tcp: number | undefined;
  if (o.tcp !== undefined) {
    tcp = Number(o.tcp);
    if (!Number.isInteger(tcp) || tcp < 0 || tcp + count - 1 > 65535) {
      throw new WearableHostError('cli', `--tcp needs a port number (0 picks free ports; controller i listens on PORT+i), got ${JSON.stringify(o.tcp)}`);
    }
  }
  const level = o.logLevel as LogLevel;
  if (!LEVELS.includes(level)) throw new WearableHostError('cli', `--log-level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(o.logLevel)}`);
  return {
    serve: { count, ...(tcp !== undefined ? { tcp } : {}), ...(o.pty ? { pty: true } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}) },
    level,
  };
}

export function registerSimControllerCommand(program: Command, ioOverrides: Partial<SimControllerIo> = {}): Command {
  const io: SimControllerIo = { ...defaultIo(), ...ioOverrides };
  return program
    .command('sim-controller')
    .description('serve virtual nRF5340 hci_uart controllers on one virtual air, on pseudo-terminals or TCP ports')
    .option('--pty', 'one pseudo-terminal per controller (needs socat)')
    .option('--tcp <port>', 'one TCP port per controller on 127.0.0.1, from PORT up (0: free ports)')
    .option('--count <n>', 'number of controllers', '1')
    .option('--seed <seed>', 'deterministic identities and radio randomness')
    .option('--log-level <level>', `log level (${LEVELS.join(', ')})`, 'info')
    .action(async (o: Options) => {
      const { serve, level } = parseOptions(o);
      const log = io.logger(level);
      const served = await serveControllers({ ...serve, log });
      try {
        io.out(served.lines.map((l) => `${l}\n`).join(''));
        log.info({ controllers: served.lines.length }, 'serving virtual controllers; stop with Ctrl-C');
        io.onServing?.(served);
        const sig = await io.waitForStop();
        log.info({ signal: sig }, 'stopping virtual controllers');
      } finally {
        await served.close();
      }
    });
}
