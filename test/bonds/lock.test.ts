/**
 * The bond file's lock: a lock left by a crash never blocks a start, even when its pid now belongs
 * to another program or was recorded before a reboot; a live owner is refused; and processes that
 * start together on a stale lock (dead pid, empty, garbage) end with exactly one owner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonFileBondStore } from '../../src/bonds/json-store.js';
import { BondStoreError } from '../../src/bonds/errors.js';
import { currentBootId, formatLock, processStartTime } from '../../src/bonds/lock.js';
import { createLogger } from '../../src/util/log.js';
import { Writable } from 'node:stream';
import { startCli } from '../cli/fixtures/cli-process.js';

const STORE = new URL('../../src/bonds/json-store.js', import.meta.url).href;
const hasProc = processStartTime(process.pid) !== undefined && currentBootId() !== undefined;
const NO_PROC = hasProc ? false : 'needs /proc (process start times and the boot id)';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wh-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function logLines(): { logger: ReturnType<typeof createLogger>; msgs: string[] } {
  const msgs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) msgs.push((JSON.parse(l) as { msg: string }).msg);
      cb();
    },
  });
  return { logger: createLogger({ level: 'warn', pretty: false, destination: stream }), msgs };
}

async function withSleeper(fn: (pid: number) => Promise<void>): Promise<void> {
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    await fn(sleeper.pid as number);
  } finally {
    sleeper.kill('SIGKILL');
    await once(sleeper, 'exit');
  }
}

test('a lock whose pid now belongs to another program (pid reused after a crash) is taken over', { skip: NO_PROC }, async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await withSleeper(async (pid) => {
      const realStart = processStartTime(pid)!;
      await writeFile(`${path}.lock`, formatLock({ pid, start: String(Number(realStart) + 12345), boot: currentBootId() }));
      const { logger, msgs } = logLines();
      const s = await JsonFileBondStore.open(path, { logger });
      assert.ok(msgs.some((m) => m.includes(`process ${pid} is another program that got the same pid`)), msgs.join('\n'));
      assert.equal((await readFile(`${path}.lock`, 'utf8')).split('\n')[0], String(process.pid));
      await s.close();
    });
  });
});

test('a lock made before the last reboot is taken over even if its pid runs now (PID 1 in a container, a deterministic boot)', { skip: NO_PROC }, async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await withSleeper(async (pid) => {
      await writeFile(`${path}.lock`, formatLock({ pid, start: processStartTime(pid), boot: '00000000-0000-4000-8000-000000000000' }));
      const { logger, msgs } = logLines();
      const s = await JsonFileBondStore.open(path, { logger });
      assert.ok(msgs.some((m) => m.includes('made before the last reboot')), msgs.join('\n'));
      await s.close();
    });
  });
});

test('a lock whose owner runs (same pid, start time and boot) is refused with its pid and left alone', { skip: NO_PROC }, async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await withSleeper(async (pid) => {
      const text = formatLock({ pid, start: processStartTime(pid), boot: currentBootId() });
      await writeFile(`${path}.lock`, text);
      await assert.rejects(JsonFileBondStore.open(path), (e: unknown) => e instanceof BondStoreError && e.code === 'locked' && e.message.includes(`in use by process ${pid}`));
      assert.equal(await readFile(`${path}.lock`, 'utf8'), text);
    });
  });
});

/** A process that opens the store, prints OWNER or LOCKED, and holds the store open for a while. */
const RACER = `
const { JsonFileBondStore } = await import(process.argv[1]);
const path = process.argv[2];
await new Promise((r) => setTimeout(r, Math.max(0, Number(process.argv[3]) - Date.now())));
try {
  const s = await JsonFileBondStore.open(path);
  process.stdout.write('OWNER\\n');
  await new Promise((r) => setTimeout(r, 1500));
  await s.close();
} catch (e) {
  process.stdout.write(e.code === 'locked' ? 'LOCKED\\n' : 'ERROR ' + e.message + '\\n');
}
`;

for (const [what, content] of [
  ['a dead pid', '999999\n'],
  ['an empty lock file', ''],
  ['garbage', 'garbage\u0000\u0001'],
] as const) {
  test(`8 processes starting together on a stale lock (${what}): exactly one owner, every other one told it is locked`, async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'bonds.json');
      for (let round = 0; round < 3; round++) {
        await writeFile(`${path}.lock`, content);
        const at = Date.now() + 600;
        const procs = Array.from({ length: 8 }, () => {
          const p = spawn(process.execPath, ['--input-type=module', '-e', RACER, STORE, path, String(at)], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          p.stdout.on('data', (d: Buffer) => (out += d.toString()));
          return once(p, 'exit').then(() => out.trim());
        });
        const results = await Promise.all(procs);
        assert.equal(results.filter((r) => r === 'OWNER').length, 1, `round ${round}: ${JSON.stringify(results)}`);
        assert.equal(results.filter((r) => r === 'LOCKED').length, 7, `round ${round}: ${JSON.stringify(results)}`);
      }
    });
  });
}

test('`bonds clear` and `bonds remove` after a crash that left an empty lock file: they proceed and say so', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await writeFile(`${path}.lock`, '');
    const clear = startCli(['bonds', 'clear', '--yes', '--bonds', path]);
    const r = await clear.exited;
    assert.equal(r.code, 0, clear.output());
    assert.match(clear.output(), /No bonds in .*nothing to clear/);
    await writeFile(`${path}.lock`, '');
    const remove = startCli(['bonds', 'remove', 'C4:12:34:56:78:9A', '--yes', '--bonds', path]);
    const r2 = await remove.exited;
    assert.notEqual(r2.code, 13, `exit 13 is Node's unsettled top-level await: ${remove.output()}`);
    assert.match(remove.output(), /C4:12:34:56:78:9A/, 'it says what it did not find');
  });
});
