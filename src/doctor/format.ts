/** The doctor's report for a terminal: one line per finding, evidence indented, the fix after `fix:`. */
import { settingsText } from './link.js';
import { Severity, type DoctorReport, type Finding } from './types.js';

const MARK: Record<Severity, string> = {
  ok: '[ ok ]',
  info: '[info]',
  warn: '[warn]',
  fail: '[FAIL]',
  skipped: '[skip]',
};

function findingLines(f: Finding, verbose: boolean): string[] {
  const lines = [`${MARK[f.severity]} ${f.check.padEnd(12)} ${f.title}`];
  const showDetails = verbose || f.severity === Severity.Fail || f.severity === Severity.Warn || f.check === 'ports';
  if (showDetails) for (const d of f.details ?? []) lines.push(`${' '.repeat(20)}${d}`);
  if (f.fix && f.severity !== Severity.Ok) lines.push(`${' '.repeat(20)}fix: ${f.fix}`);
  return lines;
}

export function formatReport(r: DoctorReport, opts: { verbose?: boolean } = {}): string {
  const lines = [`wearable-host doctor${r.port ? `: ${r.port}` : ''}`, ''];
  for (const f of r.findings) lines.push(...findingLines(f, opts.verbose ?? false));
  lines.push('');
  const fails = r.findings.filter((f) => f.severity === Severity.Fail).length;
  const warns = r.findings.filter((f) => f.severity === Severity.Warn).length;
  if (r.usable && r.working) {
    lines.push(
      `Result: usable. The controller answers at ${settingsText(r.working)}` +
        (warns ? `; ${warns} warning(s) above.` : '.') +
        (r.port ? ` Run: wearable-host --port ${r.port}` : ''),
    );
  } else {
    const why = fails ? `${fails} problem(s)` : 'no controller answered';
    lines.push(`Result: NOT usable (${why}). Fix the first [FAIL] above and run doctor again.`);
  }
  return lines.join('\n') + '\n';
}
