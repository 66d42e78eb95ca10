/**
 * A BondStore in a JSON file (format: ./schema.ts), for the real device: bonds survive restarts.
 *
 * - Reads are served from memory; every write rewrites the whole file crash-safely: a temp file in
 *   the same directory is written, fsynced, renamed over the target, and the directory fsynced.
 *   After a crash at any instant the file holds either the previous or the new complete state.
 * - Writes are serialised (never two renames racing) and coalesced; each put/update/remove/clear/
 *   setLocalIdentity resolves once a write containing its change is durable.
 * - One process per file: `<file>.lock` (see ./lock.ts: pid, process start time, boot id); a stale lock (its owner is not
 *   running) is taken over with a warning; a live one is refused with a message naming the pid.
 * - A file that cannot be read, is not JSON, fails validation or has a newer schema is NEVER
 *   overwritten: open() throws a BondStoreError naming the path, the problem and how to recover.
 * - At most `maxBonds` (default 16) bonds: a NEW peer in a full store is refused (BondStoreError
 *   'full'; the default) or, with `whenFull: 'evict-oldest'`, evicts the least recently seen bond
 *   (smallest lastSeenAt); replacing or updating a stored peer never evicts.
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { formatAddress, type Address } from '../util/address.js';
import { RealClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { BondStoreError } from './errors.js';
import { ioError } from './io-errors.js';
import { FileLock } from './lock.js';
import { checkLocalIdentity } from './record.js';
import { decodeBondFile, encodeBondFile } from './schema.js';
import { BondTable, DEFAULT_MAX_BONDS } from './table.js';
import type { BondRecord, BondStore, BondStoreCapacity, LocalIdentity, WhenBondStoreFull } from './types.js';

/**
 * Where bonds live by default: `$XDG_STATE_HOME/wearable-host/bonds.json`, or
 * `~/.local/state/wearable-host/bonds.json` when XDG_STATE_HOME is unset or not absolute
 * (XDG Base Directory Specification 0.8).
 */
export function defaultBondsPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env['XDG_STATE_HOME'];
  const base = xdg && isAbsolute(xdg) ? xdg : join(home, '.local', 'state');
  return join(base, 'wearable-host', 'bonds.json');
}

export interface JsonFileBondStoreOptions {
  /**
   * Most bonds kept (default 16). Adding a NEW peer to a full store is refused, or (`whenFull`
   * 'evict-oldest') evicts the least recently seen bond (by lastSeenAt, ties: oldest createdAt);
   * updating or replacing a stored peer never evicts. A file holding more bonds than this is loaded
   * whole; no new peer is stored until it holds fewer (or eviction brings it down).
   */
  maxBonds?: number;
  /** What a full store does with a new peer (default 'refuse': the owner's bonds are never evicted by a stranger). */
  whenFull?: WhenBondStoreFull;
  logger?: Logger;
  /** Open without the lock and refuse every write (`bonds list` while wearable-host runs). */
  readOnly?: boolean;
  /** Clock for the short wait on a lock file that has no pid yet. */
  clock?: Clock;
}

/** The JSON file {@link BondStore}. Create with {@link JsonFileBondStore.open}. */
export class JsonFileBondStore implements BondStore {
  readonly description: string;
  private readonly table: BondTable;
  private identity: LocalIdentity | undefined;
  private closed = false;
  /** The last scheduled write; each new write starts after it settles. */
  private chain: Promise<void> = Promise.resolve();
  /** A write scheduled but not started yet: later changes ride on it. */
  private queued: Promise<void> | undefined;
  private tmpCounter = 0;
  /** Completed durable writes (for tests and diagnostics). */
  writes = 0;

  private constructor(
    readonly path: string,
    private readonly lock: FileLock | undefined,
    private readonly log: Logger,
    maxBonds: number,
    whenFull: WhenBondStoreFull,
  ) {
    this.description = path;
    this.table = new BondTable(maxBonds, whenFull);
  }

  /**
   * Opens (or prepares to create) the bond file at `path`: creates its directory with mode 0700 if
   * missing, takes the lock, removes temp files left by a crashed writer, and loads and validates
   * the file. A missing file means no bonds yet; it is first written on the first change.
   */
  static async open(path: string = defaultBondsPath(), opts: JsonFileBondStoreOptions = {}): Promise<JsonFileBondStore> {
    const file = resolvePath(path);
    const log = opts.logger ?? silentLogger();
    const dir = dirname(file);
    let lock: FileLock | undefined;
    if (!opts.readOnly) {
      await ensureDirectory(dir, file);
      lock = await FileLock.acquire(`${file}.lock`, { target: file, logger: log, clock: opts.clock ?? new RealClock() });
    }
    try {
      const store = new JsonFileBondStore(file, lock, log, opts.maxBonds ?? DEFAULT_MAX_BONDS, opts.whenFull ?? 'refuse');
      if (lock) await store.removeStaleTempFiles();
      await store.load();
      return store;
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  /** Bound on the number of bonds. */
  get maxBonds(): number {
    return this.table.maxBonds;
  }

  capacity(): BondStoreCapacity {
    return this.table.capacity();
  }

  /** ah() evaluations done by resolve() so far (the RPA cache avoids repeating them). */
  get ahCalls(): number {
    return this.table.ahCalls;
  }

  getLocalIdentity(): LocalIdentity | undefined {
    return this.identity;
  }

  async setLocalIdentity(id: LocalIdentity): Promise<void> {
    this.assertWritable();
    this.identity = checkLocalIdentity(id);
    return this.persist();
  }

  get(peer: Address): BondRecord | undefined {
    return this.table.get(peer);
  }

  list(): readonly BondRecord[] {
    return this.table.list();
  }

  resolve(address: Address): BondRecord | undefined {
    return this.table.resolve(address);
  }

  async put(record: BondRecord): Promise<void> {
    this.assertWritable();
    const cap = this.table.capacity();
    if (cap.whenFull === 'refuse' && cap.stored >= cap.max && !this.table.get(record.peer)) {
      throw new BondStoreError(
        'full',
        this.path,
        `bond store ${this.path} is full (${cap.stored} of ${cap.max} bonds): the bond of ${formatAddress(record.peer)} was not stored; remove one (wearable-host bonds remove ADDRESS), raise --max-bonds, or run with --evict-oldest-bond`,
      );
    }
    for (const e of this.table.put(record)) {
      this.log.warn(
        { file: this.path, evicted: formatAddress(e.peer), lastSeenAt: e.lastSeenAt, maxBonds: this.maxBonds },
        `bond store full (${this.maxBonds}): evicted the least recently seen bond ${formatAddress(e.peer)}; that phone will need to forget this device to pair again`,
      );
    }
    return this.persist();
  }

  async update(peer: Address, patch: Partial<Omit<BondRecord, 'peer'>>): Promise<void> {
    this.assertWritable();
    if (!this.table.update(peer, patch)) return;
    return this.persist();
  }

  async remove(peer: Address): Promise<boolean> {
    this.assertWritable();
    if (!this.table.remove(peer)) return false;
    await this.persist();
    return true;
  }

  async clear(): Promise<void> {
    this.assertWritable();
    this.table.clear();
    return this.persist();
  }

  /** Waits for pending writes, then releases the lock. Further writes reject; reads keep working. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.lock?.release();
  }

  // -------------------------------------------------------------------------------------------

  private assertWritable(): void {
    if (this.closed) throw new BondStoreError('closed', this.path, `the bond store ${this.path} was closed; open it again to change bonds`);
    if (!this.lock) throw new BondStoreError('readOnly', this.path, `the bond store ${this.path} was opened read-only; open it without readOnly to change bonds`);
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      // A FIFO or device would block the read forever; a directory cannot hold bonds.
      const st = await stat(this.path);
      if (!st.isFile()) {
        throw new BondStoreError(
          'io',
          this.path,
          `${this.path} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}, not a bond file. Give a file path with --bonds FILE (it is created on the first bond).`,
        );
      }
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw ioError(err, this.path, 'read');
    }
    const content = decodeBondFile(text, this.path);
    this.identity = content.localIdentity;
    this.table.load(content.bonds);
    if (content.bonds.length > this.maxBonds) {
      this.log.warn(
        { file: this.path, bonds: content.bonds.length, maxBonds: this.maxBonds },
        'bond file holds more bonds than maxBonds; new peers are refused until bonds are removed (or, with --evict-oldest-bond, the least recently seen ones are evicted as new peers bond)',
      );
    }
    try {
      const st = await stat(this.path);
      if ((st.mode & 0o077) !== 0) {
        this.log.warn(
          { file: this.path, mode: (st.mode & 0o777).toString(8) },
          `bond file ${this.path} holds keys but is readable by other users; it will be rewritten with mode 600 (or run chmod 600 on it)`,
        );
      }
    } catch {
      // The mode check is advice only.
    }
  }

  private tempPrefix(): string {
    return `${basename(this.path)}.tmp-`;
  }

  private async removeStaleTempFiles(): Promise<void> {
    const dir = dirname(this.path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    const prefix = this.tempPrefix();
    for (const name of names) {
      if (name.startsWith(prefix)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }

  /** Schedules a write of the current state; resolves once a write that includes it is durable. */
  private persist(): Promise<void> {
    if (this.queued) return this.queued;
    const run = this.chain.then(() => {
      this.queued = undefined;
      return this.writeNow();
    });
    this.queued = run;
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writeNow(): Promise<void> {
    const text = encodeBondFile({ localIdentity: this.identity, bonds: this.table.list() });
    const dir = dirname(this.path);
    const tmp = join(dir, `${this.tempPrefix()}${process.pid}-${this.tmpCounter++}`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.chmod(0o600);
        await fh.writeFile(text, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw ioError(err, this.path, 'write');
    }
    await syncDirectory(dir);
    this.writes++;
  }
}

/**
 * `mkdir -p` with mode 0700, one level at a time. Node's own recursive mkdir never returns on a
 * path under /proc (it retries forever on a file system that refuses new entries), so each level
 * is created at most once and a refusal becomes a {@link BondStoreError} naming the directory.
 */
async function ensureDirectory(dir: string, file: string, depth = 0): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      const st = await stat(dir).catch(() => undefined);
      if (st?.isDirectory()) return;
      throw new BondStoreError('io', file, `cannot use ${file} as a bond file: ${dir} is not a directory (ENOTDIR). Give another path with --bonds FILE.`);
    }
    if (code !== 'ENOENT' || dirname(dir) === dir || depth > 64) throw ioError(err, file, `create the directory ${dir}`);
  }
  await ensureDirectory(dirname(dir), file, depth + 1);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code === 'ENOENT') {
      throw new BondStoreError(
        'io',
        file,
        `cannot create the directory ${dir} for bond file ${file}: its file system refuses new directories (a virtual file system such as /proc?). Give a path on a writable disk with --bonds FILE.`,
        { cause: err },
      );
    }
    throw ioError(err, file, `create the directory ${dir}`);
  }
}

/** fsync a directory so a rename in it is durable. Platforms that cannot (Windows) are skipped. */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw ioError(err, dir, 'fsync the directory');
  } finally {
    await fh.close();
  }
}
