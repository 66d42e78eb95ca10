/**
 * One-paragraph text of a live diagnosis finding, for the running host's log.
 */
import type { Finding } from '../diagnose/diagnose.js';

export function renderFinding(f: Finding): string {
  const evidence = f.evidence
    .slice(0, 3)
    .map((e) => `#${e.number} +${(e.sinceStartMs / 1000).toFixed(1)} s ${e.what}`)
    .join('; ');
  const fixes = f.fixes.map((x) => `[${x.where}] ${x.text}`).join(' ');
  return `diagnosis: ${f.title}. ${f.detail ?? f.cause}${evidence ? ` Evidence: ${evidence}.` : ''}${fixes ? ` Fix: ${fixes}` : ''}`;
}
