/**
 * `wearable-host phone`: the simulated phone on "a second DK" (here a virtual controller reached
 * through the command's openTransport hook) against our wearable on the same virtual air.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { runPhoneCommand, registerPhoneCommand, type PhoneCommandIo, type PhoneCommandOptions } from '../../src/cli/phone-command.js';
import { Peripheral } from '../../src/host.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { SimulatedFeeder, WearableProfile } from '../../src/gatt/profile.js';
import { VirtualAir } from '../../src/sim/air.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';

const log = silentLogger();

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 120_000): Promise<T> {
  return clock.drive(p, maxMs);
}

async function rig() {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: 'phone-cmd', log });
  const [wh, wc] = createMemoryTransportPair('wearable', 'wearable-ctrl');
  air.createController({ name: 'wearable', seed: 'w' }).attach(wc);
  const app = new WearableProfile({ deviceName: 'Noira Band' });
  const bonds = new MemoryBondStore();
  const peripheral = new Peripheral({ transport: wh, clock, random: seededRandom('w'), log, bonds, db: app.db, name: 'Noira Band', connectionParameters: false });
  await drive(clock, peripheral.start());
  const feeder = new SimulatedFeeder(app, clock, { random: seededRandom('f') });
  feeder.start();
  const out: string[] = [];
  const err: string[] = [];
  const opened: string[] = [];
  const io: Partial<PhoneCommandIo> = {
    out: { write: (s) => out.push(s) },
    err: { write: (s) => err.push(s) },
    openTransport: async (port, o) => {
      opened.push(`${port} ${o.baudRate} ${o.rtscts}`);
      const [h, c] = createMemoryTransportPair(port, 'phone-ctrl');
      air.createController({ name: 'phone-dk', seed: 'p' }).attach(c);
      return h;
    },
    clock,
    random: seededRandom('phone'),
    logger: () => log,
    run: (p) => drive(clock, p),
    sleep: (ms) => clock.advance(ms),
  };
  return {
    io,
    bonds,
    opened,
    out: () => out.join(''),
    err: () => err.join(''),
    async close() {
      feeder.stop();
      await drive(clock, peripheral.stop()).catch(() => undefined);
      air.close();
    },
  };
}

const base: PhoneCommandOptions = { port: '/dev/ttyACM1', baud: '1000000', rtscts: true, chunkSize: '64', profile: 'ios', target: 'Noira Band', scenario: 'first-pairing', logLevel: 'silent' };

test('phone --profile ios against a wearable on another controller: first pairing passes (exit 0), judged from the phone side', async () => {
  const r = await rig();
  assert.equal(await runPhoneCommand(base, r.io), 0, r.out());
  assert.deepEqual(r.opened, ['/dev/ttyACM1 1000000 true']);
  assert.match(r.out(), /phone: iOS profile on memory:\/dev\/ttyACM1, scenario first-pairing, target "Noira Band"/);
  assert.match(r.out(), /verdict: PASS/);
  assert.match(r.out(), /judged from the phone's side only/);
  assert.equal(r.bonds.list().length, 1, 'the wearable bonded with the phone');
  await r.close();
});

test('phone --scenario reconnect with android re-encrypts without pairing on the second connection', async () => {
  const r = await rig();
  assert.equal(await runPhoneCommand({ ...base, profile: 'android', scenario: 'reconnect' }, r.io), 0, r.out());
  assert.match(r.out(), /Android starts encryption with its stored key \(on connecting\)/);
  await r.close();
});

test('a scenario that must change the wearable is refused with the manual steps (exit 2); a wrong target fails the verdict (exit 1)', async () => {
  const r = await rig();
  assert.equal(await runPhoneCommand({ ...base, scenario: 'peripheral-lost-bond' }, r.io), 2);
  assert.match(r.err(), /wearable-host bonds clear/);
  assert.equal(await runPhoneCommand({ ...base, port: undefined } as PhoneCommandOptions, r.io), 2);
  assert.equal(await runPhoneCommand({ ...base, target: 'Other Band' }, r.io), 1);
  assert.match(r.out(), /"Other Band" was not seen advertising/);
  await r.close();
});

test('registerPhoneCommand adds `phone` with its options', () => {
  const program = new Command();
  registerPhoneCommand(program);
  const cmd = program.commands.find((c) => c.name() === 'phone');
  assert.ok(cmd);
  assert.deepEqual(
    cmd.options.map((o) => o.long).sort(),
    ['--baud', '--bonds', '--btsnoop', '--chunk-size', '--log-level', '--no-rtscts', '--port', '--profile', '--scenario', '--target'],
  );
});
