/** `wearable-host --sim` scenario runs: default run, one scenario, list, bad options, btsnoop files, option registration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { runSim, registerSimOptions, EXIT_USAGE } from '../../src/cli/sim-run.js';
import { readBtsnoop } from '../../src/hci/btsnoop.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } }, out: () => out.join(''), err: () => err.join('') };
}

test('with no options it plays the headline story: both phones bonded, the wearable loses its bonds, Android re-pairs, the iPhone gives up, the diagnosis and the fix', async () => {
  const c = capture();
  assert.equal(await runSim({}, c.io), 0);
  const text = c.out();
  assert.match(text, /iOS encryption failed: 0x06 PinOrKeyMissing/);
  assert.match(text, /iOS reports: "Peer removed pairing information"/);
  assert.match(text, /Android encryption failed: 0x06 PinOrKeyMissing[\s\S]*Android -> wearable: SMP Pairing Request[\s\S]*Android paired: level 2, 16-byte key, bonded/);
  assert.match(text, /ERROR: The phone holds a bond the accessory lost \[phone-kept-stale-bond\]/);
  assert.match(text, /#\d+ \+\d+\.\d+ s LE Long Term Key Request Negative Reply/);
  assert.match(text, /verdict: PASS/);
  assert.match(text, /--scenario list/);
  // Between the reflash and the fix, the iPhone sent no Pairing Request and saw no prompt.
  const back = text.slice(text.indexOf('3. Both phones come back'), text.indexOf('4. What'));
  assert.doesNotMatch(back.split('\n').filter((l) => l.includes('iOS')).join('\n'), /Pairing Request|prompt/);
  assert.ok(text.split('\n').length < 100, `a screen or two, got ${text.split('\n').length} lines`);
  assert.equal(c.err(), '');
});

test('--profile alone runs the reconnect scenario with that phone', async () => {
  const c = capture();
  assert.equal(await runSim({ profile: 'android' }, c.io), 0);
  assert.match(c.out(), /scenario reconnect with the Android profile/);
  assert.match(c.out(), /SMP Pairing Request IO KeyboardDisplay, AuthReq 0x2d/);
});

test('--profile ios --scenario peripheral-lost-bond passes and prints the advice to forget the device', async () => {
  const c = capture();
  assert.equal(await runSim({ profile: 'ios', scenario: 'peripheral-lost-bond', seed: '1' }, c.io), 0);
  assert.match(c.out(), /verdict: PASS/);
  assert.match(c.out(), /Peer removed pairing information/);
  assert.match(c.out(), /advice: On the phone: Settings > Bluetooth > "Noira Band" > \(i\) > Forget This Device/);
  assert.ok(!c.out().includes('summary:'), 'one run, no summary');
});

test('--scenario list prints every scenario and the phone rule table with sources', async () => {
  const c = capture();
  assert.equal(await runSim({ scenario: 'list' }, c.io), 0);
  for (const s of ['first-pairing', 'reconnect', 'peripheral-lost-bond', 'phone-forgot-device', 'security-request-ignored', 'user-cancelled', 'legacy-only-central', 'rpa-rotated']) {
    assert.ok(c.out().includes(`  ${s}`), s);
  }
  assert.match(c.out(), /source: .*noble #243/);
});

test('an unknown scenario or profile is a usage error (exit 2) that names the choices', async () => {
  const c = capture();
  assert.equal(await runSim({ scenario: 'nope' }, c.io), EXIT_USAGE);
  assert.match(c.err(), /unknown scenario "nope"; one of two-phones-lost-bond, first-pairing, reconnect/);
  assert.equal(await runSim({ profile: 'windows' }, c.io), EXIT_USAGE);
  assert.match(c.err(), /--profile must be ios or android/);
});

test("--btsnoop writes the wearable's side: one file for one run, one per run (suffixed) for several", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-sim-'));
  try {
    const c = capture();
    const one = join(dir, 'one.btsnoop');
    assert.equal(await runSim({ profile: 'android', scenario: 'legacy-only-central', btsnoop: one }, c.io), 0);
    const file = readBtsnoop(new Uint8Array(readFileSync(one)));
    assert.ok(file.records.length > 20);
    // The legacy Pairing Request arrives at the wearable: ACL with L2CAP CID 0x0006, code 0x01, AuthReq without SC.
    const smp = file.records.map((r) => r.packet).filter((p) => p[0] === 0x02 && p[7] === 0x06 && p[8] === 0x00);
    assert.ok(smp.some((p) => p[9] === 0x01 && ((p[12] as number) & 0x08) === 0), 'legacy Pairing Request received');
    assert.ok(smp.some((p) => p[9] === 0x05 && p[10] === 0x03), 'Pairing Failed 0x03 sent');
    const c2 = capture();
    assert.equal(await runSim({ scenario: 'first-pairing', btsnoop: join(dir, 'run.log') }, c2.io), 0);
    assert.deepEqual(readdirSync(dir).sort(), ['one.btsnoop', 'run-android-first-pairing.log', 'run-ios-first-pairing.log']);
    // The exact names are printed, and the one asked for is said not to exist.
    assert.ok(c2.out().includes(`btsnoop files written (one per run; ${join(dir, 'run.log')} itself was not written):\n  ${join(dir, 'run-ios-first-pairing.log')}\n  ${join(dir, 'run-android-first-pairing.log')}\n`));
    // The default run (the story) is one run: it writes the file it was given.
    const story = join(dir, 'story.btsnoop');
    assert.equal(await runSim({ btsnoop: story }, capture().io), 0);
    assert.ok(readBtsnoop(new Uint8Array(readFileSync(story))).records.length > 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('registerSimOptions adds the missing options only', () => {
  const fresh = registerSimOptions(new Command());
  assert.deepEqual(fresh.options.map((o) => o.long).sort(), ['--btsnoop', '--profile', '--scenario', '--seed']);
  const main = new Command().option('--profile <p>').option('--btsnoop <f>');
  registerSimOptions(main);
  assert.deepEqual(main.options.map((o) => o.long).sort(), ['--btsnoop', '--profile', '--scenario', '--seed']);
});
