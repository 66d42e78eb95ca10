/**
 * Figures of a benchmark run: what was measured, in which unit, and min/median/max over the runs.
 */

export interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

export interface Figure extends Spread {
  /** Stable id (`hostPath.notify.ours.rate`): the smoke test and the README refer to it. */
  readonly id: string;
  /** Section number and name of the list (`1 host path`). */
  readonly section: string;
  readonly label: string;
  readonly unit: string;
  /** Number of runs the spread is over. */
  readonly runs: number;
  /** How to read the figure (what it includes, what bounds it). */
  readonly note?: string;
  /** Set when the figure could not be measured on this machine; min/median/max are then 0. */
  readonly skipped?: string;
}

/** min/median/max of `values` (the median of an even count is the mean of the two middle values). */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread() of no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { min: s[0] as number, median, max: s[s.length - 1] as number };
}

export function figure(
  id: string,
  section: string,
  label: string,
  unit: string,
  values: readonly number[],
  note?: string,
): Figure {
  return { id, section, label, unit, runs: values.length, ...spread(values), ...(note ? { note } : {}) };
}

export function skippedFigure(id: string, section: string, label: string, unit: string, reason: string): Figure {
  return { id, section, label, unit, runs: 0, min: 0, median: 0, max: 0, skipped: reason };
}

/** A number with about three significant digits and thousands separators. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The terminal table: one line per figure. */
export function formatTable(figures: readonly Figure[]): string {
  const rows: string[][] = [['section', 'figure', 'median', 'min .. max', 'unit', 'runs']];
  for (const f of figures) {
    if (f.skipped) {
      rows.push([f.section, f.label, 'skipped', f.skipped, '', '0']);
      continue;
    }
    rows.push([f.section, f.label, formatNumber(f.median), `${formatNumber(f.min)} .. ${formatNumber(f.max)}`, f.unit, String(f.runs)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const right = new Set([2, 3, 5]);
  const line = (r: string[]): string =>
    r.map((c, i) => (right.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  const out = [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  ')];
  let section = '';
  for (const r of rows.slice(1)) {
    if (r[0] !== section && section !== '') out.push('');
    section = r[0] as string;
    out.push(line(r));
  }
  return out.join('\n');
}

/** CPU time (user + system) in microseconds since `from` (a process.cpuUsage() result). */
export function cpuMicros(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return d.user + d.system;
}
