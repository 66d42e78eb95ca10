/**
 * A strict JSON check for log lines: JSON.parse's grammar, plus no object may repeat a key (RFC 8259
 * 4 says names SHOULD be unique; JSON.parse silently keeps the last one, so a log consumer sees a
 * different value than the line holds). Test-only, so a short scanner here rather than a dependency.
 */

/** Returns the duplicated keys (as `path.key`) in `text`, which must already be valid JSON. */
export function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        const key = str();
        if (seen.has(key)) dups.push(`${path}${key}`);
        seen.add(key);
        ws();
        i++; // colon
        value(`${path}${key}.`);
        ws();
        if (text[i++] === '}') return;
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(path);
        ws();
        if (text[i++] === ']') return;
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !',}] \t\r\n'.includes(text[i]!)) i++;
    }
  };
  value('');
  return dups;
}

/** Parses one line strictly: throws on invalid JSON or a repeated key. */
export function parseStrict(line: string): unknown {
  const v: unknown = JSON.parse(line);
  const d = duplicateKeys(line);
  if (d.length > 0) throw new Error(`repeated key(s) ${d.join(', ')} in ${line.slice(0, 300)}`);
  return v;
}
