/**
 * `npm run bench` (= build, then `node dist/bench/index.js`): everything issue 9 asks to measure,
 * a table on the terminal and a JSON file of figures (min/median/max over runs).
 *
 *   node dist/bench/index.js             full run (a few minutes at most on 2 cores), writes bench/results.json
 *   node dist/bench/index.js --quick     small run (seconds), writes <tmpdir>/wearable-host-bench/results.quick.json
 *   --out FILE                           write the JSON there instead
 *   --only host,wire,pairing,bringup,scale,diagnose   run some sections (never overwrites bench/results.json unless --out says so)
 *
 * Sections (see each module's header for exactly what is measured and what it includes):
 *   1-2 host path     bench/host-path.ts   ours and ble-host through a controller that consumes instantly
 *   3   wire          bench/wire.ts        notification payload through a 1,000,000 baud 8N1 link
 *   4   pairing       bench/pairing.ts     LESC Just Works: wall, CPU, connection events vs the minimum
 *   5   bring-up      bench/bringup.ts     the CLI process to "is advertising" on a pty
 *   6   memory/scale  bench/scale.ts       RSS idle and with 1/4/16 links streaming; CPU per notification
 *   7   link cost     bench/conn-cost.ts   CPU per request and heap after 100,000 requests on one link (live diagnosis on)
 *   8   diagnose      bench/diagnose.ts    `diagnose` of a generated 200 MB capture: wall, MB/s, peak RSS
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// Sections are imported when they run, so the scale section's process loads only what it measures.
import type { HostPathOptions } from './host-path.js';
import type { WireOptions } from './wire.js';
import type { PairingOptions } from './pairing.js';
import type { BringUpOptions } from './bringup.js';
import type { ScaleOptions } from './scale.js';
import type { ConnCostOptions } from './conn-cost.js';
import type { DiagnoseBenchOptions } from './diagnose.js';
import { formatTable, type Figure } from './stats.js';

export const SECTIONS = ['host', 'wire', 'pairing', 'bringup', 'scale', 'linkcost', 'diagnose'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchSettings {
  host: HostPathOptions;
  wire: WireOptions;
  pairing: PairingOptions;
  bringup: BringUpOptions;
  scale: ScaleOptions;
  linkcost: ConnCostOptions;
  diagnose: DiagnoseBenchOptions;
}

export const FULL: BenchSettings = {
  host: { runs: 7, pdus: 100_000, window: 8, batch: 32 },
  wire: { mtus: [23, 185, 247, 517], zephyrMtus: [23, 185, 247], windows: 5, windowMs: 1000, warmupMs: 300, window: 8 },
  pairing: { intervalsMs: [0, 30], runs: 5 },
  bringup: { runs: 5 },
  scale: { counts: [1, 4, 16], windows: 5, windowMs: 1000, sinkRuns: 5, sinkPdus: 48_000, window: 4 },
  linkcost: { requests: 100_000 },
  diagnose: { megabytes: 200, runs: 3 },
};

export const QUICK: BenchSettings = {
  host: { runs: 3, pdus: 5000, window: 8, batch: 32 },
  wire: { mtus: [23, 185, 247, 517], zephyrMtus: [247], windows: 2, windowMs: 200, warmupMs: 100, window: 8 },
  pairing: { intervalsMs: [0, 30], runs: 1 },
  bringup: { runs: 1 },
  scale: { counts: [1, 4, 16], windows: 2, windowMs: 200, sinkRuns: 2, sinkPdus: 4800, window: 4 },
  linkcost: { requests: 10_000 },
  diagnose: { megabytes: 4, runs: 1 },
};

export interface BenchResults {
  readonly tool: 'wearable-host bench';
  readonly mode: 'full' | 'quick';
  readonly command: string;
  readonly date: string;
  readonly durationS: number;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly memoryMiB: number;
    readonly platform: string;
    readonly release: string;
    readonly arch: string;
  };
  readonly node: string;
  /** The checkout measured: HEAD and whether the work tree had changes. */
  readonly git: { readonly commit: string; readonly dirty: boolean } | undefined;
  readonly sections: readonly Section[];
  readonly figures: readonly Figure[];
}

const CHILD_MARK = 'WEARABLE_HOST_BENCH_CHILD ';
const THIS_FILE = fileURLToPath(import.meta.url);
/** bench/results.json in the checkout (this file is dist/bench/index.js). */
const RESULTS_JSON = resolve(dirname(THIS_FILE), '../../bench/results.json');

interface Args {
  quick: boolean;
  out: string | undefined;
  only: Section[] | undefined;
  child: string | undefined;
  /** The child's argument (the capture file of --child diagnose). */
  childArg: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { quick: false, out: undefined, only: undefined, child: undefined, childArg: undefined };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${x} needs a value`);
      return v;
    };
    if (x === '--quick') a.quick = true;
    else if (x === '--out') a.out = resolve(value());
    else if (x === '--child') {
      a.child = value();
      if (a.child === 'diagnose') a.childArg = value();
    }
    else if (x === '--only') {
      const names = value().split(',').map((s) => s.trim());
      for (const n of names) if (!(SECTIONS as readonly string[]).includes(n)) throw new Error(`--only: unknown section "${n}" (sections: ${SECTIONS.join(', ')})`);
      a.only = names as Section[];
    } else throw new Error(`unknown option ${x} (options: --quick, --out FILE, --only ${SECTIONS.join(',')})`);
  }
  return a;
}

/** Section 6 in a fresh process with --expose-gc, so its memory figures start clean. */
function runScaleInChild(quick: boolean): Promise<Figure[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', THIS_FILE, '--child', 'scale', ...(quick ? ['--quick'] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 5 * 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith(CHILD_MARK));
      if (code !== 0 || !line) {
        reject(new Error(`benchmark: the scale section's process ended with ${code ?? signal}:\n${err || out}`));
        return;
      }
      resolvePromise(JSON.parse(line.slice(CHILD_MARK.length)) as Figure[]);
    });
  });
}

function gitState(): BenchResults['git'] {
  const repo = resolve(dirname(THIS_FILE), '../..');
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repo, encoding: 'utf8' });
  if (head.status !== 0) return undefined;
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repo, encoding: 'utf8' });
  return { commit: head.stdout.trim(), dirty: status.status === 0 && status.stdout.trim().length > 0 };
}

function machine(): BenchResults['machine'] {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryMiB: Math.round(os.totalmem() / (1024 * 1024)),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
  };
}

/** Runs the benchmarks; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`wearable-host bench: ${(err as Error).message}`);
    return 2;
  }
  const settings = args.quick ? QUICK : FULL;
  // The virtual air's real-time timers are unref'd: keep the process alive while we await them.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    if (args.child === 'scale') {
      // Node itself, before any of the stack is loaded.
      globalThis.gc?.();
      const baselineMiB = process.memoryUsage().rss / (1024 * 1024);
      const { runScale } = await import('./scale.js');
      const figures = await runScale(settings.scale, baselineMiB);
      process.stdout.write(`${CHILD_MARK}${JSON.stringify(figures)}\n`);
      return 0;
    }
    if (args.child === 'diagnose') {
      const { measureDiagnose } = await import('./diagnose.js');
      process.stdout.write(`${JSON.stringify(await measureDiagnose(args.childArg ?? ''))}\n`);
      return 0;
    }
    if (args.child !== undefined) throw new Error(`unknown --child ${args.child}`);

    const sections = args.only ?? [...SECTIONS];
    const out =
      args.out ?? (args.quick || args.only ? join(os.tmpdir(), 'wearable-host-bench', args.quick ? 'results.quick.json' : 'results.partial.json') : RESULTS_JSON);
    const started = performance.now();
    const figures: Figure[] = [];
    const say = (s: string): void => void process.stderr.write(`${s}\n`);
    say(`wearable-host bench (${args.quick ? 'quick' : 'full'}): ${sections.join(', ')}`);
    for (const s of sections) {
      const t0 = performance.now();
      say(`  ${s} ...`);
      if (s === 'host') {
        const { runHostPath } = await import('./host-path.js');
        figures.push(...(await withScratchCwd(() => runHostPath(settings.host))));
      } else if (s === 'wire') {
        const { runWire } = await import('./wire.js');
        figures.push(...(await runWire(settings.wire)));
      } else if (s === 'pairing') {
        const { runPairing } = await import('./pairing.js');
        figures.push(...(await runPairing(settings.pairing)));
      } else if (s === 'bringup') {
        const { runBringUp } = await import('./bringup.js');
        figures.push(...(await runBringUp(settings.bringup)));
      } else if (s === 'linkcost') {
        const { runConnCost } = await import('./conn-cost.js');
        figures.push(...(await runConnCost(settings.linkcost)));
      } else if (s === 'diagnose') {
        const { runDiagnoseBench } = await import('./diagnose.js');
        figures.push(...(await runDiagnoseBench(settings.diagnose, THIS_FILE)));
      } else {
        figures.push(...(await runScaleInChild(args.quick)));
      }
      say(`  ${s} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const results: BenchResults = {
      tool: 'wearable-host bench',
      mode: args.quick ? 'quick' : 'full',
      command: `node dist/bench/index.js${argv.length ? ` ${argv.join(' ')}` : ''}`,
      date: new Date().toISOString(),
      durationS: Math.round((performance.now() - started) / 100) / 10,
      machine: machine(),
      node: process.version,
      git: gitState(),
      sections,
      figures,
    };
    console.log(formatTable(figures));
    console.log('');
    for (const f of figures) if (f.note) console.log(`${f.id}: ${f.note}`);
    console.log('');
    const m = results.machine;
    console.log(`${m.cpu}, ${m.cores} cores, ${m.memoryMiB} MiB; Node ${results.node}; ${results.durationS} s`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`results: ${out}`);
    return 0;
  } catch (err) {
    console.error(`wearable-host bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    clearInterval(keepAlive);
  }
}

/** ble-host writes NodeBleLib-storage-dir into the working directory: run it from a scratch one. */
async function withScratchCwd<T>(fn: () => Promise<T>): Promise<T> {
  const cwd = process.cwd();
  const dir = mkdtempSync(join(os.tmpdir(), 'wearable-host-bench-ble-host-'));
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Nothing should be left running; if something is, do not hang the caller.
  setTimeout(() => process.exit(code), 2000).unref();
}
