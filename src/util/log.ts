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

/** Fields pino writes itself; a field of ours with one of these names is moved to `our<Name>`. */
const PINO_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/**
 * Makes one serialised pino line hold each top-level key once. pino appends a child's bindings and
 * each call's fields after its own, so a layer bound twice (`layer`), a field bound by a child and
 * given again on the line (`peer`), or a field named like pino's (`level`, `name`) repeats a key:
 * JSON.parse then keeps the last value, so `level` became our security level. Here pino's own
 * fields keep pino's value (ours moves to `ourLevel`, `ourName`...), and for any other repeated key
 * the line's latest (most specific) value wins, at the first one's place. Lines without a repeated
 * key are returned as they are.
 */
export function uniqueKeys(line: string): string {
  const fields = topLevelFields(line);
  if (!fields) return line;
  const seen = new Map<string, number>();
  let repeated = false;
  for (const [k] of fields) {
    if (seen.has(k)) repeated = true;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  if (!repeated) return line;
  const out = new Map<string, string>();
  for (const [k, raw] of fields) {
    if (!out.has(k)) out.set(k, raw);
    else if (PINO_FIELDS.has(k)) out.set(`our${k[0]!.toUpperCase()}${k.slice(1)}`, raw);
    else out.set(k, raw);
  }
  const nl = line.endsWith('\n') ? '\n' : '';
  return `{${[...out].map(([k, raw]) => `${JSON.stringify(k)}:${raw}`).join(',')}}${nl}`;
}

/** The top-level keys and raw JSON values of a serialised object, in order; undefined if it is not one. */
function topLevelFields(line: string): [string, string][] | undefined {
  const text = line.trimEnd();
  if (text[0] !== '{' || text[text.length - 1] !== '}') return undefined;
  const fields: [string, string][] = [];
  let i = 1;
  const skipString = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  while (i < text.length - 1) {
    if (text[i] === ',' || text[i] === ' ') {
      i++;
      continue;
    }
    if (text[i] !== '"') return undefined;
    const ks = i;
    skipString();
    const key = JSON.parse(text.slice(ks, i)) as string;
    if (text[i] !== ':') return undefined;
    i++;
    const vs = i;
    let depth = 0;
    while (i < text.length - 1 || depth > 0) {
      const c = text[i];
      if (c === '"') {
        skipString();
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') depth--;
      else if (c === ',' && depth === 0) break;
      i++;
    }
    fields.push([key, text.slice(vs, i)]);
  }
  return fields;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  const hooks = { streamWrite: uniqueKeys };
  if (pretty && !opts.destination) {
    return pino({
      level,
      hooks,
      name: opts.name ?? 'wearable-host',
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' },
      },
    });
  }
  const dest = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ level, hooks, name: opts.name ?? 'wearable-host' }, dest);
}

/** A logger that writes nothing (tests, library use without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
