/**
 * `npm run fuzz -- [--count N] [--seed S] [--batch N]`: runs the fuzzer (fuzz/fuzzer.ts) and prints
 * PDUs sent per table, crashes, hangs, key violations, heap at start / end / peak, and time.
 * Exit status 0 when there were no crashes, hangs or key violations, 1 otherwise, 2 on bad options.
 */
import { runFuzz } from './fuzzer.js';

function parse(argv: readonly string[]): { count: number; seed: string; batch: number; json: boolean } {
  const o = { count: 100_000, seed: '1', batch: 200, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--count') o.count = Number(v());
    else if (a === '--seed') o.seed = v();
    else if (a === '--batch') o.batch = Number(v());
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a} (options: --count N, --seed S, --batch N, --json)`);
  }
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error('--count must be a whole number >= 1');
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new Error('--batch must be a whole number >= 1');
  return o;
}

async function main(): Promise<number> {
  let o: ReturnType<typeof parse>;
  try {
    o = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`wearable-host fuzz: ${(err as Error).message}`);
    return 2;
  }
  console.error(`wearable-host fuzz: ${o.count.toLocaleString('en-US')} PDUs, seed ${o.seed}, batches of ${o.batch}`);
  const r = await runFuzz({ count: o.count, seed: o.seed, batch: o.batch, progress: (l) => console.error(`  ${l}`) });
  if (o.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(`PDUs: ${r.pdus.toLocaleString('en-US')} in ${r.batches} batches (${Object.entries(r.byTable).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')})`);
    console.log(`crashes: ${r.crashes.length}; hangs: ${r.hangs.length}; key violations: ${r.keyViolations.length}`);
    console.log(`correct pairings by the attacker: ${r.honestPairings}; LTK replies by the wearable: ${r.ltkReplies}`);
    console.log(`heap: ${r.heapStartMiB.toFixed(1)} MiB at start, ${r.heapEndMiB.toFixed(1)} MiB at the end, ${r.heapMaxMiB.toFixed(1)} MiB peak (after GC)`);
    console.log(`time: ${(r.wallMs / 1000).toFixed(1)} s wall, ${(r.cpuMs / 1000).toFixed(1)} s CPU, ${(r.virtualMs / 3_600_000).toFixed(1)} h of virtual time`);
    for (const x of [...r.crashes, ...r.hangs, ...r.keyViolations].slice(0, 20)) console.log(`  ${x}`);
  }
  return r.crashes.length + r.hangs.length + r.keyViolations.length === 0 ? 0 : 1;
}

// The virtual air's real-time timers are unref'd; nothing else keeps the loop alive while awaiting.
const keepAlive = setInterval(() => undefined, 1000);
main().then(
  (code) => {
    clearInterval(keepAlive);
    process.exitCode = code;
  },
  (err: unknown) => {
    clearInterval(keepAlive);
    console.error(`wearable-host fuzz failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
