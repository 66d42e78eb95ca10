import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BondStoreError } from '../../src/bonds/errors.js';
import { ioError } from '../../src/bonds/io-errors.js';
import { JsonFileBondStore, defaultBondsPath } from '../../src/bonds/json-store.js';
import { generateIrk, generateRpa } from '../../src/privacy/rpa.js';
import { SCHEMA_VERSION, encodeBondFile, locateJsonSyntaxError } from '../../src/bonds/schema.js';
import type { BondRecord } from '../../src/bonds/types.js';
import { seededRandom } from '../../src/util/random.js';
import type { Logger } from '../../src/util/log.js';
import { fullBond, minimalBond, peerAddress } from './fixtures/records.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wh-bonds-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function isBondError(code: string, ...patterns: RegExp[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BondStoreError, `expected BondStoreError, got ${String(e)}`);
    assert.equal(e.layer, 'bonds');
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  };
}

/** A pino logger whose lines are collected in `lines`. */
function captureLogger(): { logger: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { logger: pino<never>({ level: 'debug' }, stream), lines };
}

const LOCAL = { address: { type: 'random' as const, address: 'C3:11:22:33:44:55' }, irk: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i) };

test('every field of a bond and the local identity survive close and reopen', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const s = await JsonFileBondStore.open(path);
    await s.setLocalIdentity(LOCAL);
    const full = fullBond(1, { rand: 0xffffffffffffffffn, cccd: { 1: 0, 0x000c: 1, 0xffff: 0xffff } });
    const min = minimalBond(2);
    await s.put(full);
    await s.put(min);
    await s.close();

    const r = await JsonFileBondStore.open(path);
    assert.deepEqual(r.getLocalIdentity(), LOCAL);
    assert.deepEqual(r.get(full.peer), full);
    assert.deepEqual(r.get(min.peer), min);
    assert.equal(r.get(min.peer)?.peerIrk, undefined);
    assert.deepEqual(r.list().map((b) => b.peer.address), [full.peer.address, min.peer.address]);
    await r.close();

    // On disk: schemaVersion, keys as hex of the wire bytes, Rand as a decimal string.
    const doc = JSON.parse(await readFile(path, 'utf8')) as {
      schemaVersion: number;
      localIdentity: { irk: string };
      bonds: Record<string, unknown>[];
    };
    assert.equal(doc.schemaVersion, SCHEMA_VERSION);
    assert.equal(doc.localIdentity.irk, 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    const b0 = doc.bonds[0] as Record<string, unknown>;
    assert.equal(b0['rand'], '18446744073709551615');
    assert.equal(b0['ltk'], Buffer.from(full.ltk).toString('hex'));
    assert.deepEqual(b0['cccd'], { '1': 0, '12': 1, '65535': 65535 });
    assert.deepEqual(Object.keys(doc.bonds[1] as object).includes('peerIrk'), false);
  });
});

test('the bond file is written with mode 0600 and a new directory with mode 0700', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'state', 'wearable-host', 'bonds.json');
    const s = await JsonFileBondStore.open(path);
    await s.put(minimalBond(1));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'state', 'wearable-host'))).mode & 0o777, 0o700);
    await s.close();
  });
});

test('a group-readable bond file is warned about and rewritten with mode 0600', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await writeFile(path, encodeBondFile({ localIdentity: undefined, bonds: [minimalBond(1)] }), { mode: 0o644 });
    await chmod(path, 0o644);
    const { logger, lines } = captureLogger();
    const s = await JsonFileBondStore.open(path, { logger });
    assert.ok(lines.some((l) => l.level === 40 && /readable by other users/.test(l.msg)));
    await s.put(minimalBond(2));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await s.close();
  });
});

test('defaultBondsPath uses XDG_STATE_HOME when absolute, else ~/.local/state', () => {
  assert.equal(defaultBondsPath({ XDG_STATE_HOME: '/x/state' }, '/home/u'), '/x/state/wearable-host/bonds.json');
  assert.equal(defaultBondsPath({}, '/home/u'), '/home/u/.local/state/wearable-host/bonds.json');
  assert.equal(defaultBondsPath({ XDG_STATE_HOME: 'relative' }, '/home/u'), '/home/u/.local/state/wearable-host/bonds.json');
});

/** Writes `text`, checks open() fails as expected and leaves the file byte-identical and unlocked. */
async function expectRefused(dir: string, text: string, check: (e: unknown) => boolean): Promise<void> {
  const path = join(dir, 'bonds.json');
  await writeFile(path, text, { mode: 0o600 });
  const before = await readFile(path);
  await assert.rejects(JsonFileBondStore.open(path), check);
  assert.deepEqual(await readFile(path), before, 'file left byte-identical');
  const names = await readdir(dir);
  assert.deepEqual(names, ['bonds.json'], 'no lock or temp file left behind');
}

function validFileWith(mutate: (doc: { schemaVersion: unknown; localIdentity?: unknown; bonds: Record<string, unknown>[] }) => void): string {
  const doc = JSON.parse(encodeBondFile({ localIdentity: LOCAL, bonds: [fullBond(1), minimalBond(2)] })) as {
    schemaVersion: unknown;
    bonds: Record<string, unknown>[];
  };
  mutate(doc);
  return JSON.stringify(doc, null, 2);
}

test('validation errors name the failing field path, and the file is never overwritten', async () => {
  const cases: [string, (d: { schemaVersion: unknown; localIdentity?: unknown; bonds: Record<string, unknown>[] }) => void][] = [
    ['bonds\\[0\\]\\.ltk: expected 32 hex digits', (d) => ((d.bonds[0] as Record<string, unknown>)['ltk'] = 'abcd')],
    ['bonds\\[1\\]\\.keySize: expected an integer in 7\\.\\.16', (d) => ((d.bonds[1] as Record<string, unknown>)['keySize'] = 17)],
    ['bonds\\[0\\]\\.rand: expected a decimal string', (d) => ((d.bonds[0] as Record<string, unknown>)['rand'] = 5)],
    ['bonds\\[0\\]\\.rand', (d) => ((d.bonds[0] as Record<string, unknown>)['rand'] = '18446744073709551616')],
    ['bonds\\[1\\]\\.peer\\.address', (d) => ((d.bonds[1] as Record<string, unknown>)['peer'] = { type: 'public', address: '00:11' })],
    ['bonds\\[1\\]\\.peer\\.type', (d) => ((d.bonds[1] as Record<string, unknown>)['peer'] = { type: 'static', address: '00:11:22:33:44:55' })],
    ['bonds\\[0\\]\\.peerIrk', (d) => ((d.bonds[0] as Record<string, unknown>)['peerIrk'] = 'zz'.repeat(16))],
    ['bonds\\[0\\]\\.cccd\\.0', (d) => ((d.bonds[0] as Record<string, unknown>)['cccd'] = { '0': 1 })],
    ['bonds\\[0\\]\\.cccd\\.12: expected an integer', (d) => ((d.bonds[0] as Record<string, unknown>)['cccd'] = { '12': 'on' })],
    ['bonds\\[0\\]\\.gatt\\.databaseHash', (d) => ((d.bonds[0] as Record<string, unknown>)['gatt'] = { databaseHash: 'x', clientFeatures: 0, changeAware: true })],
    ['bonds\\[1\\]\\.gatt\\.changeAware', (d) => ((d.bonds[1] as Record<string, unknown>)['gatt'] = { clientFeatures: 0 })],
    ['bonds\\[1\\]\\.lastSeenAt: expected an ISO 8601', (d) => ((d.bonds[1] as Record<string, unknown>)['lastSeenAt'] = 'yesterday')],
    ['bonds\\[0\\]\\.authenticated', (d) => delete (d.bonds[0] as Record<string, unknown>)['authenticated']],
    ['bonds\\[0\\]\\.colour: unknown field', (d) => ((d.bonds[0] as Record<string, unknown>)['colour'] = 'red')],
    ['bonds\\[1\\]\\.peer: a second bond', (d) => ((d.bonds[1] as Record<string, unknown>)['peer'] = (d.bonds[0] as Record<string, unknown>)['peer'])],
    ['localIdentity\\.irk', (d) => (d.localIdentity = { address: { type: 'random', address: 'C3:11:22:33:44:55' }, irk: '00' })],
    ['field bonds: expected an array', (d) => ((d as Record<string, unknown>)['bonds'] = {})],
    ['schemaVersion: expected a positive integer', (d) => (d.schemaVersion = '1')],
  ];
  for (const [pattern, mutate] of cases) {
    await withDir(async (dir) => {
      await expectRefused(dir, validFileWith(mutate), isBondError('invalid', new RegExp(pattern), /bonds\.json/, /move it aside/, /forget this device/i));
    });
  }
});

test('a JSON syntax error is reported with line, column and character offset, and the file is never overwritten', async () => {
  await withDir(async (dir) => {
    const text = '{\n  "schemaVersion": 1,\n  "bonds": [ }\n';
    await expectRefused(dir, text, isBondError('syntax', /not valid JSON at line 3 column 14 \(character 37\)/, /mv '.*bonds\.json' '.*bonds\.json\.broken'/));
  });
  await withDir(async (dir) => {
    // A file cut short (what a non-atomic writer leaves after a crash).
    const full = encodeBondFile({ localIdentity: LOCAL, bonds: [fullBond(1)] });
    await expectRefused(dir, full.slice(0, 100), isBondError('syntax', /not valid JSON at line \d+ column \d+/));
  });
  await withDir(async (dir) => {
    await expectRefused(dir, '', isBondError('syntax', /line 1 column 1 \(character 0\)/));
  });
});

test('locateJsonSyntaxError finds the offset of the first error and accepts valid JSON', () => {
  assert.deepEqual(locateJsonSyntaxError('{"a": }'), { offset: 6, line: 1, column: 7 });
  assert.deepEqual(locateJsonSyntaxError('[1,\n 2,,3]'), { offset: 7, line: 2, column: 4 });
  assert.deepEqual(locateJsonSyntaxError('{"a": "x\u0001"}'), { offset: 8, line: 1, column: 9 });
  assert.deepEqual(locateJsonSyntaxError('{} x'), { offset: 3, line: 1, column: 4 });
  assert.deepEqual(locateJsonSyntaxError('tru'), { offset: 3, line: 1, column: 4 });
  assert.equal(locateJsonSyntaxError('{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"], "b": {}}'), undefined);
});

test('a newer schemaVersion is refused (no silent downgrade) and the file is kept intact', async () => {
  await withDir(async (dir) => {
    const text = validFileWith((d) => (d.schemaVersion = SCHEMA_VERSION + 1));
    await expectRefused(dir, text, isBondError('unsupportedVersion', /schema version 2/, /reads versions up to 1/, /newer wearable-host/));
  });
});

test('a lock held by a live process is refused with its pid, and that lock file is left alone', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const pid = sleeper.pid as number;
      await writeFile(`${path}.lock`, `${pid}\n`);
      await assert.rejects(
        JsonFileBondStore.open(path),
        isBondError('locked', new RegExp(`in use by process ${pid}`), new RegExp(`lock file .*bonds\\.json\\.lock`), /kill \d+/, /--bonds FILE/),
      );
      assert.equal(await readFile(`${path}.lock`, 'utf8'), `${pid}\n`, 'a live lock is left alone');
    } finally {
      sleeper.kill('SIGKILL');
      await once(sleeper, 'exit');
    }
  });
});

test('the same file opened twice in one process is refused until the first is closed', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const a = await JsonFileBondStore.open(path);
    await assert.rejects(JsonFileBondStore.open(path), isBondError('locked', /this same process/));
    await a.close();
    const b = await JsonFileBondStore.open(path);
    await b.close();
  });
});

test('a stale lock (its pid no longer runs) is taken over with a warning, and released on close', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await once(dead, 'exit');
    await writeFile(`${path}.lock`, `${dead.pid as number}\n`);
    const { logger, lines } = captureLogger();
    const s = await JsonFileBondStore.open(path, { logger });
    assert.equal((await readFile(`${path}.lock`, 'utf8')).split('\n')[0], `${process.pid}`);
    const warn = lines.find((l) => l.level === 40 && /stale lock/.test(l.msg));
    assert.ok(warn, 'a warning was logged');
    assert.match(warn.msg, new RegExp(`process ${dead.pid as number} is no longer running`));
    await s.close();
    await assert.rejects(stat(`${path}.lock`), { code: 'ENOENT' });
  });
});

test('a lock file holding garbage counts as stale', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await writeFile(`${path}.lock`, 'not a pid');
    const { logger, lines } = captureLogger();
    const s = await JsonFileBondStore.open(path, { logger });
    assert.ok(lines.some((l) => /holds no pid/.test(l.msg)));
    await s.close();
  });
});

test('an empty lock file (a crash while an older version created it) is stale at once and taken over', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await writeFile(`${path}.lock`, '');
    const { logger, lines } = captureLogger();
    const s = await JsonFileBondStore.open(path, { logger });
    assert.ok(lines.some((l) => /it is empty/.test(l.msg)));
    assert.equal((await readFile(`${path}.lock`, 'utf8')).split('\n')[0], `${process.pid}`);
    await s.close();
  });
});

test('read-only open ignores the lock and refuses writes', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const w = await JsonFileBondStore.open(path);
    await w.put(fullBond(1));
    const r = await JsonFileBondStore.open(path, { readOnly: true });
    assert.deepEqual(r.get(peerAddress(1)), fullBond(1));
    await assert.rejects(r.put(minimalBond(2)), isBondError('readOnly'));
    await r.close();
    await w.close();
  });
});

test('concurrent writes are serialised and coalesced; each resolves once its change is on disk', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const s = await JsonFileBondStore.open(path, { maxBonds: 32 });
    const onDisk: number[] = [];
    const pending = Array.from({ length: 20 }, (_, i) =>
      s.put(minimalBond(i + 1)).then(async () => {
        const doc = JSON.parse(await readFile(path, 'utf8')) as { bonds: { peer: { address: string } }[] };
        // When put i resolves, the file holds bond i.
        assert.ok(doc.bonds.some((b) => b.peer.address === peerAddress(i + 1).address));
        onDisk.push(i);
      }),
    );
    await Promise.all(pending);
    assert.equal(onDisk.length, 20);
    assert.ok(s.writes >= 1 && s.writes < 20, `writes coalesced (${s.writes})`);
    // Interleaved: a write in flight, then more changes: they go in the next write, in order.
    const p1 = s.update(peerAddress(1), { keySize: 7 });
    await Promise.resolve();
    const p2 = s.remove(peerAddress(2));
    const p3 = s.update(peerAddress(1), { keySize: 8 });
    assert.equal(await p2, true);
    await Promise.all([p1, p3]);
    await s.close();
    const r = await JsonFileBondStore.open(path, { maxBonds: 32 });
    assert.equal(r.get(peerAddress(1))?.keySize, 8);
    assert.equal(r.get(peerAddress(2)), undefined);
    assert.equal(r.list().length, 19);
    await r.close();
    assert.deepEqual((await readdir(dir)).sort(), ['bonds.json']);
  });
});

test('update of an unknown peer and remove of an unknown peer write nothing', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const s = await JsonFileBondStore.open(path);
    await s.update(peerAddress(5), { keySize: 7 });
    assert.equal(await s.remove(peerAddress(5)), false);
    assert.equal(s.writes, 0);
    await assert.rejects(stat(path), { code: 'ENOENT' });
    await s.close();
  });
});

test('writes after close are refused', async () => {
  await withDir(async (dir) => {
    const s = await JsonFileBondStore.open(join(dir, 'bonds.json'));
    await s.close();
    await assert.rejects(s.put(minimalBond(1)), isBondError('closed', /open it again/));
  });
});

test('a full store refuses a new peer by default: BondStoreError full naming the file and the way out, nothing written', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const s = await JsonFileBondStore.open(path, { maxBonds: 2 });
    await s.put(minimalBond(1));
    await s.put(minimalBond(2));
    const writes = s.writes;
    await assert.rejects(s.put(minimalBond(3)), isBondError('full', /is full \(2 of 2 bonds\).*--evict-oldest-bond/));
    assert.equal(s.writes, writes);
    assert.deepEqual(s.capacity(), { stored: 2, max: 2, whenFull: 'refuse' });
    await s.close();
  });
});

test("eviction (whenFull 'evict-oldest'): a new peer in a full store evicts the least recently seen bond; updates never evict", async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const { logger, lines } = captureLogger();
    const s = await JsonFileBondStore.open(path, { maxBonds: 3, logger, whenFull: 'evict-oldest' });
    assert.equal(s.maxBonds, 3);
    const at = (d: number): string => new Date(Date.UTC(2026, 0, d)).toISOString();
    await s.put(minimalBond(1, { lastSeenAt: at(10) }));
    await s.put(minimalBond(2, { lastSeenAt: at(5) }));
    await s.put(minimalBond(3, { lastSeenAt: at(7) }));
    // Updating and replacing existing peers when full: nothing evicted.
    await s.update(peerAddress(2), { lastSeenAt: at(12) });
    await s.put(minimalBond(3, { lastSeenAt: at(8), keySize: 16 }));
    assert.equal(s.list().length, 3);
    // New peer: peer 3 (seen day 8) is now the least recently seen.
    await s.put(minimalBond(4, { lastSeenAt: at(1) }));
    assert.deepEqual(s.list().map((b) => b.peer.address).sort(), [1, 2, 4].map((n) => peerAddress(n).address).sort());
    assert.ok(lines.some((l) => l.level === 40 && l.msg.includes(peerAddress(3).address)));
    await s.close();
    const r = await JsonFileBondStore.open(path, { maxBonds: 3 });
    assert.equal(r.get(peerAddress(3)), undefined);
    assert.equal(r.list().length, 3);
    await r.close();
  });
});

test('eviction ties on lastSeenAt go to the oldest createdAt', async () => {
  await withDir(async (dir) => {
    const s = await JsonFileBondStore.open(join(dir, 'bonds.json'), { maxBonds: 2, whenFull: 'evict-oldest' });
    const same = '2026-02-01T00:00:00.000Z';
    await s.put(minimalBond(1, { lastSeenAt: same, createdAt: '2026-01-02T00:00:00.000Z' }));
    await s.put(minimalBond(2, { lastSeenAt: same, createdAt: '2026-01-01T00:00:00.000Z' }));
    await s.put(minimalBond(3));
    assert.equal(s.get(peerAddress(2)), undefined);
    assert.ok(s.get(peerAddress(1)));
    await s.close();
  });
});

test('resolve: identity addresses match directly, RPAs through the peer IRK, with a per-address cache invalidated by put and remove', async () => {
  await withDir(async (dir) => {
    const rng = seededRandom('resolve');
    const irks = [generateIrk(rng), generateIrk(rng), generateIrk(rng)];
    const s = await JsonFileBondStore.open(join(dir, 'bonds.json'));
    await s.put(minimalBond(1, { peerIrk: irks[0] }));
    await s.put(minimalBond(2, { peerIrk: irks[1] }));
    await s.put(minimalBond(3)); // no IRK
    await s.put(minimalBond(4, { peerIrk: new Uint8Array(16) })); // all-zero IRK: skipped

    assert.equal(s.resolve(peerAddress(3))?.peer.address, peerAddress(3).address);
    assert.equal(s.ahCalls, 0, 'an identity address needs no ah()');

    const rpa2 = generateRpa(irks[1] as Uint8Array, rng);
    assert.equal(s.resolve(rpa2)?.peer.address, peerAddress(2).address);
    const afterFirst = s.ahCalls;
    assert.ok(afterFirst >= 1 && afterFirst <= 2);
    assert.equal(s.resolve({ type: 'random', address: rpa2.address.toLowerCase() })?.peer.address, peerAddress(2).address);
    assert.equal(s.ahCalls, afterFirst, 'second resolution served from the cache');

    // An RPA nobody resolves: ah() against both usable IRKs once, then cached as unknown.
    const stranger = generateRpa(irks[2] as Uint8Array, rng);
    assert.equal(s.resolve(stranger), undefined);
    assert.equal(s.ahCalls, afterFirst + 2);
    assert.equal(s.resolve(stranger), undefined);
    assert.equal(s.ahCalls, afterFirst + 2);

    // A static random or public unknown address never goes through ah().
    assert.equal(s.resolve({ type: 'random', address: 'C0:00:00:00:00:01' }), undefined);
    assert.equal(s.resolve({ type: 'public', address: stranger.address }), undefined);
    assert.equal(s.ahCalls, afterFirst + 2);

    // put of the stranger's bond invalidates the cached "unknown".
    await s.put(minimalBond(5, { peerIrk: irks[2] }));
    assert.equal(s.resolve(stranger)?.peer.address, peerAddress(5).address);
    // remove invalidates the cached match.
    await s.remove(peerAddress(2));
    assert.equal(s.resolve(rpa2), undefined);
    await s.close();

    // Resolution works the same after a reload (IRKs come back from the file).
    const r = await JsonFileBondStore.open(join(dir, 'bonds.json'));
    assert.equal(r.resolve(stranger)?.peer.address, peerAddress(5).address);
    await r.close();
  });
});

test('an update that changes the peer IRK invalidates the RPA cache', async () => {
  await withDir(async (dir) => {
    const rng = seededRandom('irk-update');
    const oldIrk = generateIrk(rng);
    const newIrk = generateIrk(rng);
    const s = await JsonFileBondStore.open(join(dir, 'bonds.json'));
    await s.put(minimalBond(1, { peerIrk: oldIrk }));
    const rpa = generateRpa(newIrk, rng);
    assert.equal(s.resolve(rpa), undefined);
    await s.update(peerAddress(1), { peerIrk: newIrk });
    assert.equal(s.resolve(rpa)?.peer.address, peerAddress(1).address);
    await s.close();
  });
});

test('put of a malformed record is refused before anything is written', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    const s = await JsonFileBondStore.open(path);
    await s.put(minimalBond(1));
    const before = await readFile(path);
    const bad = { ...minimalBond(2), rand: 1 } as unknown as BondRecord;
    await assert.rejects(s.put(bad), isBondError('invalidRecord', /rand/));
    await assert.rejects(s.setLocalIdentity({ address: LOCAL.address, irk: new Uint8Array(8) }), isBondError('invalidRecord', /irk/));
    assert.deepEqual(await readFile(path), before);
    assert.equal(s.list().length, 1);
    await s.close();
  });
});

test('permission errors say permission denied, name the file and how to fix it', async (t) => {
  const mapped = ioError(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }), '/x/bonds.json', 'read');
  assert.equal(mapped.code, 'permission');
  assert.match(mapped.message, /cannot read for bond file \/x\/bonds\.json: permission denied \(EACCES\)/);
  assert.match(mapped.message, /chmod 600/);
  if (process.getuid?.() === 0) {
    t.diagnostic('running as root: file permissions are not enforced, real EACCES case skipped');
    return;
  }
  await withDir(async (dir) => {
    const path = join(dir, 'bonds.json');
    await writeFile(path, encodeBondFile({ localIdentity: undefined, bonds: [] }), { mode: 0o000 });
    await assert.rejects(JsonFileBondStore.open(path), isBondError('permission', /permission denied/));
    await chmod(path, 0o600);
  });
});
