/**
 * Section 5: bring-up. The real CLI as a child process,
 * `node bin/wearable-host --port PTY --no-rtscts --bonds <tmp>/bonds.json`, against a virtual
 * controller served on a pseudo-terminal (serveControllers with socat, real time). Measured from
 * just before spawn() to the line saying it "is advertising" on its stdout/stderr: Node start-up,
 * module loading, opening the serial port, HCI Reset and the whole bring-up, identity, advertising.
 * Each run is a new process and a new bond file; the controller is reused (the CLI resets it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveControllers } from '../src/sim/serve.js';
import { silentLogger } from '../src/util/log.js';
import { figure, skippedFigure, type Figure } from './stats.js';

const SECTION = '5 bring-up';
const BIN = new URL('../../bin/wearable-host', import.meta.url).pathname;

export interface BringUpOptions {
  runs: number;
}

export function socatMissing(): string | undefined {
  return spawnSync('sh', ['-c', 'command -v socat'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'socat is not installed (apt-get install socat): the virtual controller cannot be served on a pty';
}

/** Spawns the CLI and resolves with ms until it logs "is advertising"; then stops it with SIGINT. */
function onceToAdvertising(port: string, dir: string, run: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = [BIN, '--port', port, '--no-rtscts', '--bonds', join(dir, `bonds-${run}.json`), '--log-level', 'info'];
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir } });
    let out = '';
    let ms: number | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`benchmark: the CLI did not advertise within 20 s:\n${out}`));
    }, 20_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (ms === undefined && /is advertising/.test(out)) {
        ms = performance.now() - t0;
        clearTimeout(timer);
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (ms !== undefined) resolve(ms);
      else reject(new Error(`benchmark: the CLI exited (${code ?? signal}) before advertising:\n${out}`));
    });
  });
}

export async function runBringUp(o: BringUpOptions): Promise<Figure[]> {
  const label = 'CLI start to "is advertising" (virtual controller on a pty)';
  const missing = socatMissing();
  if (missing) return [skippedFigure('bringUp.cli', SECTION, label, 'ms', missing)];
  const served = await serveControllers({ count: 1, pty: true, seed: 'bench-bring-up', log: silentLogger() });
  const dir = mkdtempSync(join(tmpdir(), 'wearable-host-bench-'));
  try {
    const port = served.controllers[0]!.pty!;
    const times: number[] = [];
    for (let i = 0; i < o.runs; i++) times.push(await onceToAdvertising(port, dir, i));
    return [figure('bringUp.cli', SECTION, label, 'ms', times, `${o.runs} processes; node start-up and module loading included`)];
  } finally {
    await served.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
