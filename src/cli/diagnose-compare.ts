/**
 * `wearable-host diagnose A B`: two captures (say the iPhone's .pklg and the Android phone's
 * btsnoop_hci.log, or two accessory btsnoops) lined up phase by phase, with the first phase where
 * they diverge and what that means. `--json` prints the comparison and both reports.
 */
import type { DiagnosedCapture } from '../diagnose/inputs.js';
import { reportToJson } from '../diagnose/diagnose.js';
import { compareSessions, renderComparison } from '../diagnose/compare.js';
import type { DiagnoseCommandOptions } from './diagnose-command.js';

/**
 * The comparison of two diagnosed captures, as text or JSON. `others` names captures found in the
 * same archives that were not compared (an Android bug report holds the current and the last log).
 */
export function renderCompare(a: DiagnosedCapture, b: DiagnosedCapture, others: readonly string[], opts: DiagnoseCommandOptions): string {
  const comparison = compareSessions(a, b);
  if (opts.json) {
    // The reports' JSON (bigints, byte arrays) goes through the report serialiser.
    return `{"comparison":${JSON.stringify(comparison)},"reports":[${reportToJson(a.report)},${reportToJson(b.report)}]${
      others.length > 0 ? `,"notCompared":${JSON.stringify(others)}` : ''
    }}\n`;
  }
  const note = others.length > 0 ? `\nCompared the first capture of each input (${a.name} and ${b.name}); also found, not compared: ${others.join(', ')}\n` : '';
  return renderComparison(comparison) + note;
}
