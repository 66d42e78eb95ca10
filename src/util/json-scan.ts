/**
 * A JSON scanner for what JSON.parse does not tell: where the first syntax error is (its message
 * does not always say), and which object keys repeat (RFC 8259 4: names SHOULD be unique; JSON.parse
 * silently keeps the last one). The grammar is RFC 8259's.
 */

export interface JsonScan {
  /** The first syntax error, or undefined when `text` is valid JSON (or nests too deep to scan). */
  readonly error: { offset: number; line: number; column: number } | undefined;
  /** Keys repeated within one object, as `path.key` (arrays add nothing to the path), in text order. */
  readonly duplicateKeys: readonly string[];
}

export function scanJson(text: string): JsonScan {
  const duplicateKeys: string[] = [];
  let i = 0;
  const n = text.length;
  const fail = (): never => {
    throw i;
  };
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const literal = (word: string): void => {
    for (let k = 0; k < word.length; k++, i++) if (text[i] !== word[k]) fail();
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= n) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail();
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail();
      }
      i++;
    }
  };
  const numberRe = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      const seen = new Set<string>();
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const keyStart = i;
        str();
        const key = JSON.parse(text.slice(keyStart, i)) as string;
        if (seen.has(key)) duplicateKeys.push(`${path}${key}`);
        seen.add(key);
        ws();
        if (text[i] !== ':') fail();
        i++;
        value(`${path}${key}.`);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail();
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
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail();
      }
    } else if (c === '"') str();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      numberRe.lastIndex = i;
      const m = numberRe.exec(text);
      if (!m || m[0].length === 0) fail();
      else i += m[0].length;
    }
  };
  try {
    value('');
    ws();
    if (i < n) fail();
    return { error: undefined, duplicateKeys };
  } catch (e) {
    if (typeof e !== 'number') return { error: undefined, duplicateKeys }; // nesting too deep for this scanner: no position
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < e && k < n; k++) {
      if (text.charCodeAt(k) === 0x0a) {
        line++;
        lineStart = k + 1;
      }
    }
    return { error: { offset: e, line, column: e - lineStart + 1 }, duplicateKeys };
  }
}

/** Where the first JSON syntax error in `text` is, or undefined when it is valid JSON (RFC 8259). */
export function locateJsonSyntaxError(text: string): JsonScan['error'] {
  return scanJson(text).error;
}
