/**
 * A strict JSON check for log lines: JSON.parse's grammar, plus no object may repeat a key (RFC 8259
 * 4 says names SHOULD be unique; JSON.parse silently keeps the last one, so a log consumer sees a
 * different value than the line holds). The scanner is the one the bond file uses to locate a
 * syntax error (src/util/json-scan.ts).
 */
import { scanJson } from '../../src/util/json-scan.js';

/** Returns the duplicated keys (as `path.key`) in `text`, which must already be valid JSON. */
export function duplicateKeys(text: string): string[] {
  return [...scanJson(text).duplicateKeys];
}

/** Parses one line strictly: throws on invalid JSON or a repeated key. */
export function parseStrict(line: string): unknown {
  const v: unknown = JSON.parse(line);
  const d = duplicateKeys(line);
  if (d.length > 0) throw new Error(`repeated key(s) ${d.join(', ')} in ${line.slice(0, 300)}`);
  return v;
}
