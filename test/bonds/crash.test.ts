import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonFileBondStore } from '../../src/bonds/json-store.js';
import { encodeBondFile } from '../../src/bonds/schema.js';
import { randomInt, seededRandom } from '../../src/util/random.js';
import { CRASH_PEERS, stateFor } from './fixtures/crash-writer.js';

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.js', import.meta.url));
const KILLS = 30;

interface Round {
  acked: number;
  stderr: string;
}

/** Runs the writer, SIGKILLs it `delayMs` after its first durable state (or after spawn), returns the last state it acknowledged. */
function runAndKill(path: string, delayMs: number, fromSpawn: boolean, lastAcked: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = lastAcked;
    let out = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    };
    // A backstop so a hung child can never hang the test.
    const backstop = setTimeout(() => child.kill('SIGKILL'), 10_000);
    if (fromSpawn) arm();
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const l of lines) if (l) acked = Math.max(acked, Number(l));
      arm();
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(backstop);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited by itself (code ${code}): ${stderr}`));
      else resolve({ acked, stderr });
    });
  });
}

test('a writer SIGKILLed at random moments always leaves state N or N-1 wholly, never a torn file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wh-bonds-crash-'));
  const path = join(dir, 'bonds.json');
  const rng = seededRandom('bond-crash-test');
  let lastAcked = 0;
  let sawProgress = 0;
  try {
    for (let k = 0; k < KILLS; k++) {
      // Most kills land inside the write loop; every fifth one anywhere from start-up (open, lock, load).
      const fromSpawn = k % 5 === 4;
      const delay = fromSpawn ? randomInt(rng, 120) : randomInt(rng, 25);
      const round = await runAndKill(path, delay, fromSpawn, lastAcked);
      assert.ok(readdirSync(dir).filter((n) => n.includes('.tmp-')).length <= 1, 'at most the one temp file being written');
      let counter = 0;
      if (existsSync(path)) {
        const text = readFileSync(path, 'utf8');
        const doc = JSON.parse(text) as { bonds: { peerSignCounter: number }[] };
        assert.equal(doc.bonds.length, CRASH_PEERS);
        counter = doc.bonds[0]?.peerSignCounter ?? -1;
        assert.equal(text, encodeBondFile(stateFor(counter)), `file is exactly state ${counter}`);
      }
      assert.ok(counter === round.acked || counter === round.acked + 1, `state ${counter} after the writer acknowledged ${round.acked}`);
      if (counter > lastAcked) sawProgress++;
      lastAcked = counter;
      // The parent can open it: the dead writer's lock is stale and is taken over, temp files are removed.
      const store = await JsonFileBondStore.open(path);
      assert.equal(store.list().length, counter === 0 ? 0 : CRASH_PEERS);
      assert.equal(readdirSync(dir).filter((n) => n.includes('.tmp-')).length, 0);
      await store.close();
      assert.equal(existsSync(`${path}.lock`), false);
    }
    assert.ok(sawProgress >= KILLS / 2, `the writer made progress in most rounds (${sawProgress}/${KILLS})`);
    assert.ok(lastAcked > KILLS, `many states written (${lastAcked})`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
