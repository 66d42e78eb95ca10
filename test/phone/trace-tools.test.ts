/**
 * The wearable's btsnoop of a whole simulated session (connection, MTU, ATT 0x05, LESC pairing,
 * encryption, key distribution, encrypted read, notifications) opens in the tools users reach
 * for: tshark (Wireshark's decoder) and BlueZ's btmon -r. Each check skips with the reason when
 * the tool is not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScenario } from '../../src/phone/runner.js';

const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

async function sessionTrace(dir: string): Promise<string> {
  const path = join(dir, 'first-pairing.btsnoop');
  const r = await runScenario({ profile: 'android', scenario: 'first-pairing', seed: 'trace-tools', btsnoopPath: path, diagnosis: false });
  assert.equal(r.verdict, 'pass');
  return path;
}

test('tshark decodes the whole pairing session in the wearable\'s btsnoop without malformed packets', { skip: has('tshark') ? false : 'tshark not installed: apt-get install tshark' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trace-tools-'));
  try {
    const file = await sessionTrace(dir);
    const text = execFileSync('tshark', ['-r', file, '-V'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.doesNotMatch(text, /Malformed Packet|Expert Info \(Error/);
    for (const needle of ['Pairing Request', 'Pairing Response', 'Pairing Public Key', 'Pairing DHKey Check', 'LE Long Term Key Request', 'Encryption Change', 'Identity Information', 'Insufficient Authentication', 'Exchange MTU Request']) {
      assert.ok(text.includes(needle), `tshark shows ${needle}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('btmon -r decodes the whole pairing session in the wearable\'s btsnoop', { skip: has('btmon') ? false : 'btmon not installed: apt-get install bluez' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trace-tools-'));
  try {
    const file = await sessionTrace(dir);
    const text = execFileSync('btmon', ['-r', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, COLUMNS: '200' } });
    assert.doesNotMatch(text, /invalid packet|malformed|Unknown packet/i);
    for (const needle of ['Pairing Request', 'Pairing Response', 'Pairing Public Key', 'Pairing DHKey Check', 'LE Long Term Key Request', 'Encryption Change', 'Identity Information', 'Insufficient Authentication']) {
      assert.ok(text.includes(needle), `btmon shows ${needle}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
