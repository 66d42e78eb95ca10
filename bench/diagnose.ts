/**
 * Section 7, diagnose: `wearable-host diagnose` on a large capture, as the CLI runs it (stream the
 * file, decode into the timeline, run every rule, build the report). Figures: wall time and
 * throughput (MB of capture per second), and the peak RSS of the process doing it.
 *
 * The capture is generated: a session as an accessory records it (connection, MTU exchange, a read
 * rejected with Insufficient Authentication, LESC pairing with key distribution, then 2,000
 * notifications of 244 bytes with Number Of Completed Packets, disconnection), repeated with
 * shifted times until the file has the asked size. Each run is a fresh process (`--child diagnose`),
 * so its peak RSS (getrusage maxrss) is the diagnosis alone plus Node itself.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, rmSync, statSync, writeSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { figure, type Figure } from './stats.js';
import { Scenario } from '../test/diagnose/builders.js';

export interface DiagnoseBenchOptions {
  /** Size of the generated capture. */
  readonly megabytes: number;
  readonly runs: number;
}

const SECTION = '8 diagnose';

/** One session as btsnoop records (no file header) and how long it lasts. */
function session(): { records: Uint8Array; spanMs: number } {
  const s = new Scenario('accessory');
  s.connect();
  s.mtu(185);
  s.protectedRead(0x05);
  s.pair();
  const value = new Uint8Array(244).fill(0x5a);
  for (let i = 0; i < 2000; i++) {
    s.wait(7.5);
    s.att('accessory', { type: 'handleValueNotification', handle: 0x0012, value });
    if (i % 4 === 3) s.event('NumberOfCompletedPackets', { handles: [{ handle: 0x0040, count: 4 }] });
  }
  s.wait(100);
  s.disconnect(0x13);
  s.wait(1000);
  const file = s.btsnoop();
  const packets = s.packets();
  const span = (packets[packets.length - 1]?.time ?? 0) - (packets[0]?.time ?? 0) + 1000;
  return { records: file.subarray(16), spanMs: span };
}

/** Writes a btsnoop file of about `megabytes` MB: the session repeated with shifted times. */
export function writeLargeCapture(path: string, megabytes: number): { bytes: number; sessions: number } {
  const { records, spanMs } = session();
  const header = Uint8Array.of(0x62, 0x74, 0x73, 0x6e, 0x6f, 0x6f, 0x70, 0x00, 0, 0, 0, 1, 0, 0, 0x03, 0xea);
  const fd = openSync(path, 'w', 0o600);
  try {
    writeSync(fd, header);
    let written = header.length;
    let sessions = 0;
    const target = megabytes * 1e6;
    const copy = new Uint8Array(records.length);
    const dv = new DataView(copy.buffer);
    while (written < target) {
      copy.set(records);
      const shiftUs = BigInt(Math.round(sessions * spanMs * 1000));
      for (let off = 0; off < copy.length; ) {
        const included = dv.getUint32(off + 4);
        dv.setBigInt64(off + 16, dv.getBigInt64(off + 16) + shiftUs);
        off += 24 + included;
      }
      writeSync(fd, copy);
      written += copy.length;
      sessions++;
    }
    return { bytes: written, sessions };
  } finally {
    closeSync(fd);
  }
}

/** The child's measurement: what `wearable-host diagnose FILE` does, timed. */
export async function measureDiagnose(path: string): Promise<{ wallS: number; peakRssMiB: number; packets: number; connections: number; findings: number }> {
  const { forEachCapture, diagnoseInput } = await import('../src/diagnose/inputs.js');
  const { renderReport } = await import('../src/diagnose/diagnose.js');
  const t0 = performance.now();
  let packets = 0;
  let connections = 0;
  let findings = 0;
  await forEachCapture(path, {}, async (input) => {
    const d = await diagnoseInput(input);
    renderReport(d.report);
    packets += d.report.packets;
    connections += d.report.connections.length;
    findings += d.report.findings.length;
  });
  const wallS = (performance.now() - t0) / 1000;
  return { wallS, peakRssMiB: (process.resourceUsage().maxRSS * 1024) / (1024 * 1024), packets, connections, findings };
}

function runChild(script: string, path: string): Promise<Awaited<ReturnType<typeof measureDiagnose>>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--child', 'diagnose', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`diagnose benchmark process ended with ${code ?? signal}:\n${err || out}`));
      else resolve(JSON.parse(line) as Awaited<ReturnType<typeof measureDiagnose>>);
    });
  });
}

export async function runDiagnoseBench(opts: DiagnoseBenchOptions, script: string): Promise<Figure[]> {
  const dir = mkdtempSync(join(os.tmpdir(), 'wearable-host-bench-diagnose-'));
  try {
    const path = join(dir, 'large.btsnoop');
    const { sessions } = writeLargeCapture(path, opts.megabytes);
    const mb = statSync(path).size / 1e6;
    const walls: number[] = [];
    const rss: number[] = [];
    let last: Awaited<ReturnType<typeof measureDiagnose>> | undefined;
    for (let i = 0; i < opts.runs; i++) {
      last = await runChild(script, path);
      walls.push(last.wallS);
      rss.push(last.peakRssMiB);
    }
    const what = `${mb.toFixed(0)} MB btsnoop, ${last?.packets ?? 0} packets, ${sessions} sessions (connections ${last?.connections ?? 0}, findings ${last?.findings ?? 0}); ${opts.runs} run(s), each a fresh process`;
    return [
      figure('diagnose.wall', SECTION, `diagnose of a ${mb.toFixed(0)} MB capture, wall time`, 's', walls, what),
      figure('diagnose.throughput', SECTION, `diagnose of a ${mb.toFixed(0)} MB capture, throughput`, 'MB/s', walls.map((w) => mb / w)),
      figure('diagnose.rss.peak', SECTION, `diagnose of a ${mb.toFixed(0)} MB capture, peak RSS of the process`, 'MiB', rss, 'getrusage maxrss, Node itself included'),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
