/**
 * Structured logging on pino. Decoded PDUs go out at debug level; user-facing messages at info
 * and above name the port or peer and say what to try next.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };
export type LogLevel = LevelWithSilent;

export interface LoggerOptions {
  level?: LogLevel;
  /** Human-readable output (pino-pretty). Defaults to true when stderr is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go when not pretty; defaults to stderr. */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty && !opts.destination) {
    return pino({
      level,
      name: opts.name ?? 'wearable-host',
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' },
      },
    });
  }
  const dest = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ level, name: opts.name ?? 'wearable-host' }, dest);
}

/** A logger that writes nothing (tests, library use without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
