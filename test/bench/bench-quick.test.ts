/**
 * Keeps the benchmark harness working: runs `node dist/bench/index.js --quick --out <tmp>` once
 * and checks the JSON it writes has every figure of issue 9 with sane numbers (present, finite,
 * positive, min <= median <= max), plus the machine description. No timing thresholds: the
 * figures themselves are for `npm run bench`, not for the test suite. The only bound checked is
 * a protocol one: pairing cannot use fewer connection events than its minimum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BENCH = new URL('../../bench/index.js', import.meta.url).pathname;
const hasSocat = spawnSync('sh', ['-c', 'command -v socat'], { stdio: 'ignore' }).status === 0;

interface FigureJson {
  id: string;
  section: string;
  label: string;
  unit: string;
  runs: number;
  min: number;
  median: number;
  max: number;
  skipped?: string;
}

interface ResultsJson {
  mode: string;
  date: string;
  node: string;
  machine: { cpu: string; cores: number; memoryMiB: number };
  figures: FigureJson[];
}

const EXPECTED: string[] = [
  ...['notify', 'write'].flatMap((k) => ['ours.rate', 'ours.cpu', 'bleHost.rate', 'bleHost.cpu', 'ratio'].map((f) => `hostPath.${k}.${f}`)),
  ...[23, 185, 247, 517].flatMap((m) => [`wire.mtu${m}.rate`, `wire.mtu${m}.fraction`]),
  'wire.mtu23.buffers20.fraction',
  ...[0, 30].flatMap((i) => ['wall', 'cpu', 'events', 'eventsOverMin'].map((f) => `pairing.interval${i}.${f}`)),
  'pairing.interval30.eventsElapsed',
  'bringUp.cli',
  'scale.rss.baseline',
  'scale.rss.idle',
  ...[1, 4, 16].flatMap((n) => [`scale.rss.conn${n}`, `scale.air.rate.conn${n}`, `scale.air.cpu.conn${n}`, `scale.sink.cpu.conn${n}`]),
  'diagnose.wall',
  'diagnose.throughput',
  'diagnose.rss.peak',
];

function runQuick(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BENCH, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

test('the quick benchmark run writes every figure of issue 9 with positive, finite min <= median <= max', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wearable-host-bench-test-'));
  try {
    const out = join(dir, 'results.quick.json');
    const { code, output } = await runQuick(out);
    assert.equal(code, 0, `bench --quick failed:\n${output}`);
    assert.ok(existsSync(out), 'the JSON file was written where --out said');
    const r = JSON.parse(readFileSync(out, 'utf8')) as ResultsJson;
    assert.equal(r.mode, 'quick');
    assert.match(r.node, /^v\d+\./);
    assert.ok(!Number.isNaN(Date.parse(r.date)), 'an ISO date');
    assert.ok(r.machine.cpu.length > 0 && r.machine.cores >= 1 && r.machine.memoryMiB > 0, 'machine described');

    const byId = new Map(r.figures.map((f) => [f.id, f]));
    const missing = EXPECTED.filter((id) => !byId.has(id));
    assert.deepEqual(missing, [], 'every figure is present');
    for (const id of EXPECTED) {
      const f = byId.get(id)!;
      assert.ok(f.unit.length > 0 && f.label.length > 0, `${id}: unit and label`);
      if (f.skipped) {
        assert.equal(id, 'bringUp.cli', `${id} may not be skipped`);
        assert.equal(hasSocat, false, 'bring-up is skipped only when socat is missing');
        assert.match(f.skipped, /socat/);
        continue;
      }
      assert.ok(f.runs >= 1, `${id}: at least one run`);
      for (const v of [f.min, f.median, f.max]) assert.ok(Number.isFinite(v) && v > 0, `${id}: ${v} is a positive finite number`);
      assert.ok(f.min <= f.median && f.median <= f.max, `${id}: min ${f.min} <= median ${f.median} <= max ${f.max}`);
    }
    // Protocol bound, not timing: LESC Just Works cannot take fewer than 12 connection events.
    for (const id of ['pairing.interval0.events', 'pairing.interval30.events', 'pairing.interval30.eventsElapsed']) {
      assert.ok(byId.get(id)!.min >= 12, `${id}: at least the protocol minimum of 12 events`);
    }
    // The terminal table names the sections.
    for (const s of ['1-2 host path', '3 wire 1 Mbaud', '4 pairing LESC JW', '5 bring-up', '6 memory and scale']) assert.ok(output.includes(s), `table has "${s}"`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
