import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypedEmitter } from '../../src/util/emitter.js';

type Events = { tick: [n: number] };

test('a listener added or removed during an emit takes effect from the next emit, with one listener or several', () => {
  for (const others of [0, 1]) {
    const e = new TypedEmitter<Events>();
    const calls: string[] = [];
    for (let i = 0; i < others; i++) e.on('tick', (n) => calls.push(`other${n}`));
    e.once('tick', (n) => {
      calls.push(`once${n}`);
      e.on('tick', (m) => calls.push(`late${m}`));
    });
    e.emit('tick', 1);
    e.emit('tick', 2);
    const expected = others ? ['other1', 'once1', 'other2', 'late2'] : ['once1', 'late2'];
    assert.deepEqual(calls, expected, `${others} other listener(s)`);
  }
});

test('a throwing listener goes to onListenerError and the emit reports that it had listeners', () => {
  for (const count of [1, 2]) {
    const e = new TypedEmitter<Events>();
    const errors: [string, string][] = [];
    e.onListenerError = (err, event) => errors.push([(err as Error).message, event]);
    for (let i = 0; i < count; i++) {
      e.on('tick', (n) => {
        throw new Error(`bad ${n}`);
      });
    }
    assert.equal(e.emit('tick', 7), true);
    assert.deepEqual(errors, Array(count).fill(['bad 7', 'tick']));
  }
  assert.equal(new TypedEmitter<Events>().emit('tick', 1), false);
});
