import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanJson } from '../../src/util/json-scan.js';

test('scanJson reports repeated keys per object (escapes decoded, sibling objects apart) and the first syntax error', () => {
  assert.deepEqual(scanJson('[{"a":1},{"a":2,"\\u0061":3}]'), { error: undefined, duplicateKeys: ['a'] });
  assert.deepEqual(scanJson('{"x":{"k":1},"y":{"k":2}}'), { error: undefined, duplicateKeys: [] });
  assert.deepEqual(scanJson('{"a":1,"a":2,'), { error: { offset: 13, line: 1, column: 14 }, duplicateKeys: ['a'] });
});
