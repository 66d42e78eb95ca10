/**
 * An exclusive lock file next to the bond file, so two processes never share one bond file.
 *
 * The lock file (`<file>.lock`) names its owner beyond its pid, so a lock left by a crash or a power
 * loss never blocks a start, even when the pid is reused (PID 1 in a container, a deterministic
 * boot):
 *
 *     <pid>
 *     start <start time of that process, in clock ticks since boot: field 22 of /proc/<pid>/stat>
 *     boot <the kernel's boot id, /proc/sys/kernel/random/boot_id>
 *
 * (proc(5)). A lock is live only if its boot id is this boot's, its pid runs, and that process
 * started at the recorded time. Where /proc is missing, the pid alone decides.
 *
 * Exactly one owner under races: the file is written in full under a temporary name and then
 * hard-linked into place (link(2) fails with EEXIST atomically), so it is never seen empty or half
 * written; a stale lock is replaced only by the holder of `<file>.lock.takeover` (mkdir(2) is
 * atomic), which judges the lock again before it removes it.
 */
import { link, mkdir, open, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { BondStoreError } from './errors.js';
import { ioError } from './io-errors.js';

/** Whether process `pid` exists (EPERM: it exists but belongs to someone else). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What identifies a process across pid reuse and reboots. */
export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks after boot (proc(5), /proc/<pid>/stat field 22); undefined without /proc. */
  start: string | undefined;
  /** /proc/sys/kernel/random/boot_id; undefined without /proc. */
  boot: string | undefined;
}

/** The start time of `pid` from /proc/<pid>/stat, or undefined (no such process, no /proc). */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[19]; // field 22 of the line
    return start && /^[0-9]+$/.test(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

let bootIdCache: string | undefined | null = null;
/** This boot's id, or undefined where the kernel does not offer one. */
export function currentBootId(): string | undefined {
  if (bootIdCache === null) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootIdCache = undefined;
    }
  }
  return bootIdCache;
}

export function formatLock(id: ProcessIdentity): string {
  return `${id.pid}\n${id.start !== undefined ? `start ${id.start}\n` : ''}${id.boot !== undefined ? `boot ${id.boot}\n` : ''}`;
}

/** Parses a lock file; undefined when it names no pid (empty, garbage). */
export function parseLock(text: string): ProcessIdentity | undefined {
  const lines = text.split('\n').map((l) => l.trim());
  const m = /^([0-9]+)$/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const field = (name: string): string | undefined => lines.find((l) => l.startsWith(`${name} `))?.slice(name.length + 1).trim() || undefined;
  return { pid: Number(m[1]), start: field('start'), boot: field('boot') };
}

/** Why the owner recorded in a lock no longer holds it, or undefined while it does. */
export function whyStale(owner: ProcessIdentity | undefined, text: string): string | undefined {
  if (!owner) return text.trim() === '' ? 'it is empty (a crash while it was being created)' : 'it holds no pid';
  const boot = currentBootId();
  if (owner.boot !== undefined && boot !== undefined && owner.boot !== boot) return `it was made before the last reboot (process ${owner.pid} of an earlier boot)`;
  if (!isProcessAlive(owner.pid)) return `process ${owner.pid} is no longer running (it probably crashed)`;
  if (owner.start !== undefined) {
    const start = processStartTime(owner.pid);
    if (start !== undefined && start !== owner.start) return `process ${owner.pid} is another program that got the same pid (started at tick ${start}, the owner at ${owner.start})`;
  }
  return undefined;
}

async function readLock(lockPath: string): Promise<string | undefined> {
  try {
    return await readFile(lockPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface LockOptions {
  /** The bond file the lock protects, for messages. */
  target: string;
  logger: Logger;
  /** Kept for callers that inject one; the lock's short waits use Node's timers (they must keep the process alive). */
  clock?: Clock;
}

/** A takeover directory older than this was left by a process that died while taking over. */
const TAKEOVER_STALE_MS = 5000;
/** Attempts (about 20 ms apart) before giving up on a lock that keeps changing hands. */
const ATTEMPTS = 100;

/** A held lock file. */
export class FileLock {
  private released = false;

  private constructor(
    readonly lockPath: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the lock at `lockPath` or throws {@link BondStoreError} `locked` naming the file, the
   * holder's pid and what to do.
   */
  static async acquire(lockPath: string, opts: LockOptions): Promise<FileLock> {
    const { target, logger } = opts;
    const me: ProcessIdentity = { pid: process.pid, start: processStartTime(process.pid), boot: currentBootId() };
    const content = formatLock(me);
    const tmp = `${lockPath}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(content);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw ioError(err, target, `create the lock file ${lockPath}`);
    }
    try {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (attempt > 0) await sleep(10 + (attempt % 5) * 5);
        if (await tryLink(tmp, lockPath, target)) return new FileLock(lockPath, content);
        const text = await readLock(lockPath).catch((err: unknown) => {
          throw ioError(err, target, `read the lock file ${lockPath}`);
        });
        if (text === undefined) continue; // released meanwhile
        const owner = parseLock(text);
        const why = whyStale(owner, text);
        if (why === undefined && owner) {
          const who = owner.pid === process.pid ? 'this same process (it is already open)' : `process ${owner.pid}`;
          throw new BondStoreError(
            'locked',
            target,
            `${target} is in use by ${who}: lock file ${lockPath}. Only one wearable-host can use a bond file at a time. ` +
              `Stop the other one (kill ${owner.pid}) or give this one another file (--bonds FILE).`,
          );
        }
        if (await takeOver(lockPath, text, tmp, target)) {
          logger.warn(
            { lockFile: lockPath, stalePid: owner?.pid ?? null, content: owner ? undefined : text.slice(0, 40) },
            `taking over stale lock ${lockPath}: ${why}`,
          );
          return new FileLock(lockPath, content);
        }
      }
      throw new BondStoreError('locked', target, `could not take the lock ${lockPath} for ${target}: other processes keep taking it. Try again.`);
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const text = await readLock(this.lockPath).catch(() => undefined);
    if (text === this.content) await unlink(this.lockPath).catch(() => undefined);
  }
}

/** link(tmp, lockPath): true when it is ours now, false when a lock exists. */
async function tryLink(tmp: string, lockPath: string, target: string): Promise<boolean> {
  try {
    await link(tmp, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioError(err, target, `create the lock file ${lockPath}`);
  }
}

/**
 * Replaces the stale lock whose content was `staleText` with ours, under the takeover mutex:
 * true when we hold the lock now; false when someone else moved first (the caller looks again).
 */
async function takeOver(lockPath: string, staleText: string, tmp: string, target: string): Promise<boolean> {
  const mutex = `${lockPath}.takeover`;
  try {
    await mkdir(mutex, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, target, `create ${mutex}`);
    // Another process is taking over; a takeover directory left by a crash is cleared after a while.
    const st = await stat(mutex).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) await rmdir(mutex).catch(() => undefined);
    return false;
  }
  try {
    // Judge again under the mutex: the lock may have been replaced since we read it.
    const now = await readLock(lockPath);
    if (now !== undefined && now !== staleText) return false;
    if (now !== undefined) await unlink(lockPath).catch(() => undefined);
    return await tryLink(tmp, lockPath, target);
  } finally {
    await rmdir(mutex).catch(() => undefined);
  }
}
