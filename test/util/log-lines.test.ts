/**
 * Every log line of a full simulated session is strict JSON: valid, no repeated key, and pino's own
 * fields (`level`, `time`, `msg`, `pid`, `hostname`) hold pino's values, never one of ours.
 * Two sessions: the --sim scenarios (both phones, pairing then reconnection), and the CLI's
 * wearable (startWearable, as `--port` runs it) paired by a simulated phone over a served controller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { runSim } from '../../src/cli/sim-run.js';
import { serveSimulatedPhone } from '../cli/fixtures/served-phone.js';
import { parseWearableSettings, startWearable } from '../../src/lib/session.js';
import type { MainCliOptions } from '../../src/lib/options.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { createLogger } from '../../src/util/log.js';
import { duplicateKeys, parseStrict } from './strict-json.js';

const PINO_LEVELS = new Set([10, 20, 30, 40, 50, 60]);

function capture(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, lines: () => text.split('\n').filter((l) => l.length > 0) };
}

function checkLines(lines: string[]): void {
  assert.ok(lines.length > 100, `a full session logs at debug level (${lines.length} lines)`);
  const problems: string[] = [];
  for (const line of lines) {
    try {
      const v = parseStrict(line) as Record<string, unknown>;
      if (!PINO_LEVELS.has(v['level'] as number)) problems.push(`level ${JSON.stringify(v['level'])} is not pino's: ${line.slice(0, 200)}`);
      if (typeof v['time'] !== 'number') problems.push(`time is not pino's: ${line.slice(0, 200)}`);
      if (v['msg'] !== undefined && typeof v['msg'] !== 'string') problems.push(`msg is not a string: ${line.slice(0, 200)}`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} bad line(s)`);
}

test('the strict check finds a repeated key that JSON.parse lets through', () => {
  assert.deepEqual(duplicateKeys('{"a":1,"b":{"c":[{"d":1,"d":2}]},"a":"x"}'), ['b.c.d', 'a']);
  assert.deepEqual(duplicateKeys('{"a":"\\"a\\"","b":[1,{"a":1}]}'), []);
});

test('every log line of the --sim sessions (iOS and Android, pairing and reconnection) is strict JSON with pino\'s own fields', async () => {
  const c = capture();
  const log = createLogger({ level: 'debug', pretty: false, destination: c.stream });
  const code = await runSim({ scenario: 'reconnect', seed: 'log-lines' }, { out: { write: () => true }, err: { write: () => true }, log });
  assert.equal(code, 0);
  checkLines(c.lines());
});

test('every log line of the CLI\'s wearable while a phone pairs with it is strict JSON; the security level is not pino\'s level', async () => {
  const savedExit = process.exitCode;
  const phone = await serveSimulatedPhone(['--phone', 'android', '--seed', 'log-lines']);
  const c = capture();
  const log = createLogger({ level: 'debug', pretty: false, destination: c.stream });
  const settings = parseWearableSettings({
    baud: '1000000', rtscts: true, chunkSize: '64', name: 'Noira Band', logLevel: 'debug', maxBonds: '16', mtu: '517',
    securityRequest: 'never', securityRequestDelay: '0', repair: 'reject', minKeySize: '16', ioCapability: 'no-input-no-output',
    connParams: true, simulatedValues: true,
  } satisfies MainCliOptions);
  const transport = await TcpTransport.connect(phone.url);
  const session = await startWearable({ settings, transport, log, bonds: new MemoryBondStore(), simulateValues: true });
  try {
    await phone.verdict(30_000);
    assert.match(phone.out(), /verdict: PASS/);
  } finally {
    await session.close();
    await phone.stop();
    process.exitCode = savedExit;
  }
  const lines = c.lines();
  checkLines(lines);
  const paired = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((v) => typeof v['msg'] === 'string' && v['msg'].startsWith('paired with') && v['msg'].includes('security level L'));
  assert.ok(paired, 'the pairing is logged');
  assert.equal(paired['level'], 30, 'info level');
  assert.equal(paired['securityLevel'], 2, 'the security level has its own field');
});
