/**
 * `wearable-host diagnose A B`: two captures (say the iPhone's .pklg and the Android phone's
 * btsnoop_hci.log, or two accessory btsnoops) lined up phase by phase, with the first phase where
 * they diverge and what that means. `--json` prints the comparison and both reports.
 */
import { CaptureFormatError } from '../diagnose/capture.js';
import { readCaptureFile } from '../diagnose/formats/index.js';
import { buildTimeline, type Timeline } from '../diagnose/timeline.js';
import { diagnose, reportToJson, type Report } from '../diagnose/diagnose.js';
import { compareSessions, renderComparison } from '../diagnose/compare.js';
import type { DiagnoseCommandOptions, DiagnoseIo } from './diagnose-command.js';

/** Exit code for an unreadable or malformed capture (as for one file). */
const EXIT_UNREADABLE = 2;

async function load(file: string, opts: DiagnoseCommandOptions): Promise<{ timeline: Timeline; report: Report }> {
  const capture = await readCaptureFile(file, { ...(opts.format ? { format: opts.format } : {}), ...(opts.lenient ? { lenient: true } : {}) });
  const timeline = buildTimeline(capture.packets);
  const report = diagnose(timeline, { source: { file, format: capture.format, description: capture.description, skipped: capture.skipped, warnings: capture.warnings } });
  return { timeline, report };
}

/** Compares two captures; resolves to the exit code. Never rejects for a bad file. */
export async function runCompare(fileA: string, fileB: string, opts: DiagnoseCommandOptions, io: DiagnoseIo): Promise<number> {
  let a, b;
  try {
    a = await load(fileA, opts);
    b = await load(fileB, opts);
  } catch (err) {
    if (err instanceof CaptureFormatError) {
      io.stderr.write(`wearable-host diagnose: ${err.message}\n`);
      return EXIT_UNREADABLE;
    }
    throw err;
  }
  const comparison = compareSessions(a, b);
  if (opts.json) {
    // The reports' JSON (bigints, byte arrays) goes through the report serialiser.
    io.stdout.write(`{"comparison":${JSON.stringify(comparison)},"reports":[${reportToJson(a.report)},${reportToJson(b.report)}]}\n`);
  } else io.stdout.write(renderComparison(comparison));
  return 0;
}
