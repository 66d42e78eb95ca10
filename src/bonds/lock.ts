/**
 * An exclusive lock file next to the bond file, so two processes never share one bond file.
 * The lock file (`<file>.lock`) is created with O_CREAT|O_EXCL and holds the owner's pid. A lock
 * whose pid is no longer running is stale and is taken over with a warning; a live one is refused.
 */
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
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

function parsePid(text: string): number | undefined {
  const m = /^\s*([0-9]+)\s*$/.exec(text);
  return m ? Number(m[1]) : undefined;
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
  clock: Clock;
}

/** How long a lock file with no pid yet is given to get one before it counts as stale. */
const EMPTY_LOCK_GRACE_MS = 200;

/** A held lock file. */
export class FileLock {
  private released = false;

  private constructor(readonly lockPath: string) {}

  /**
   * Takes the lock at `lockPath` or throws {@link BondStoreError} `locked` naming the file, the
   * holder's pid and what to do.
   */
  static async acquire(lockPath: string, opts: LockOptions): Promise<FileLock> {
    const { target, logger, clock } = opts;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fh = await open(lockPath, 'wx', 0o600);
        try {
          await fh.writeFile(`${process.pid}\n`);
          await fh.sync();
        } finally {
          await fh.close();
        }
        return new FileLock(lockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, target, `create the lock file ${lockPath}`);
      }
      let text = await readLock(lockPath).catch((err: unknown) => {
        throw ioError(err, target, `read the lock file ${lockPath}`);
      });
      if (text === undefined) continue; // released meanwhile
      if (text.trim() === '') {
        // Another process may be between creating the file and writing its pid.
        await new Promise<void>((resolve) => clock.setTimeout(resolve, EMPTY_LOCK_GRACE_MS));
        text = await readLock(lockPath);
        if (text === undefined) continue;
      }
      const pid = parsePid(text);
      if (pid !== undefined && isProcessAlive(pid)) {
        const who = pid === process.pid ? 'this same process (it is already open)' : `process ${pid}`;
        throw new BondStoreError(
          'locked',
          target,
          `${target} is in use by ${who}: lock file ${lockPath}. Only one wearable-host can use a bond file at a time. ` +
            `Stop the other one (kill ${pid}) or give this one another file (--bonds FILE). ` +
            `If process ${pid} is not wearable-host (pid reused after a crash), delete ${lockPath} and try again.`,
        );
      }
      // Stale: move it aside, check we moved the lock we judged stale (not a fresh one someone just
      // created), then create ours.
      const aside = `${lockPath}.stale-${process.pid}-${attempt}`;
      try {
        await rename(lockPath, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError(err, target, `take over the stale lock file ${lockPath}`);
      }
      const moved = (await readLock(aside)) ?? '';
      const movedPid = parsePid(moved);
      if (movedPid !== pid && movedPid !== undefined && isProcessAlive(movedPid)) {
        // We moved someone's fresh lock: put it back (unless yet another lock appeared) and retry.
        await link(aside, lockPath).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
        continue;
      }
      await unlink(aside).catch(() => undefined);
      logger.warn(
        { lockFile: lockPath, stalePid: pid ?? null, content: pid === undefined ? text.slice(0, 40) : undefined },
        `taking over stale lock ${lockPath}: ${pid === undefined ? 'it holds no pid' : `process ${pid} is no longer running`} (it probably crashed)`,
      );
    }
    throw new BondStoreError('locked', target, `could not take the lock ${lockPath} for ${target}: other processes keep taking it. Try again.`);
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const text = await readLock(this.lockPath).catch(() => undefined);
    if (text !== undefined && parsePid(text) === process.pid) await unlink(this.lockPath).catch(() => undefined);
  }
}
