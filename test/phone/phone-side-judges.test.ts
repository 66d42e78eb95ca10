/**
 * The hardware judges: `wearable-host phone` on a second DK sees only the phone's side of a session
 * and judges it with the scenario's phone-side checks. Here each scenario the command can run is
 * played once, the command's own verdict is kept, and the same session (the phone's events and the
 * wearable's, and both bond stores) is judged again by the full judge, as `--sim` does: the two
 * verdicts must agree.
 *
 * Every scenario, both phones, both controller firmwares, in virtual time through the command's
 * transport hook; and the reported case (phone-forgot-device-replace against `--repair replace` on
 * upstream Zephyr controllers) in real time over a pty pair of virtual controllers, the way a second
 * DK is used (needs socat).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runPhoneCommand, type PhoneCommandIo, type PhoneCommandOptions } from '../../src/cli/phone-command.js';
import { Peripheral } from '../../src/host.js';
import type { Transport } from '../../src/hci/transport.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { openTransport } from '../../src/hci/open-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { SimulatedFeeder, WearableProfile } from '../../src/gatt/profile.js';
import { VirtualAir } from '../../src/sim/air.js';
import { serveControllers } from '../../src/sim/serve.js';
import { FIRMWARE_NAMES, type FirmwareName } from '../../src/sim/firmware.js';
import { judgeScenario, wireWearableEvents, type Verdict } from '../../src/phone/runner.js';
import { SCENARIOS, SCENARIO_NAMES, type JudgeState, type ScenarioName } from '../../src/phone/scenarios.js';
import { phoneProfile, type PhoneName } from '../../src/phone/profiles.js';
import type { ScenarioEvent } from '../../src/phone/events.js';
import { RealClock, VirtualClock, type Clock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';

const log = silentLogger();
const hasSocat = spawnSync('sh', ['-c', 'command -v socat']).status === 0;
const PHONE_SCENARIOS = SCENARIO_NAMES.filter((n) => !SCENARIOS[n].needsWearable);

function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 120_000): Promise<T> {
  return clock.drive(p, maxMs);
}

interface Judged {
  phone: Verdict;
  full: Verdict;
  out: string;
}

/** The wearable as `--sim` runs it for this scenario (its policy, simulated values, a long health record). */
function startWearable(scenario: ScenarioName, transport: Transport, clock: Clock, events: ScenarioEvent[]) {
  const def = SCENARIOS[scenario];
  const app = new WearableProfile({ deviceName: 'Noira Band' });
  const bonds = new MemoryBondStore();
  const peripheral = new Peripheral({
    transport,
    clock,
    random: seededRandom(`judges/${scenario}/wearable`),
    log,
    bonds,
    db: app.db,
    name: 'Noira Band',
    ...(def.wearablePolicy ? { policy: def.wearablePolicy } : {}),
  });
  wireWearableEvents(peripheral, (e) => events.push({ ...e, at: clock.now() } as ScenarioEvent));
  const feeder = new SimulatedFeeder(app, clock, { heartRateIntervalMs: 1000, random: seededRandom('judges/feeder') });
  return {
    peripheral,
    bonds,
    start(): void {
      void app.appendHealthRecord({ t: new Date(0).toISOString(), hr: 72, steps: 5230, note: 'resting; '.repeat(24) }).catch(() => undefined);
      feeder.start();
    },
    stop(): void {
      feeder.stop();
    },
  };
}

/** The full judge over the same session: the phone's events and the wearable's, both bond stores. */
function fullVerdict(scenario: ScenarioName, profile: PhoneName, events: readonly ScenarioEvent[], phone: { v: Verdict; state: JudgeState }, wearableBonds: number): Verdict {
  const def = SCENARIOS[scenario];
  const p = phoneProfile(profile, def.profileOverrides?.(profile) ?? {});
  const error = phone.v.checks.find((c) => c.what === 'the scenario ran to its end')?.detail;
  return judgeScenario(def, p, events, { ...phone.state, wearableBonds }, error);
}

const BASE: Omit<PhoneCommandOptions, 'profile' | 'scenario'> = { port: '/dev/ttyACM1', baud: '1000000', rtscts: true, chunkSize: '64', target: 'Noira Band', logLevel: 'silent' };

async function virtualSession(scenario: ScenarioName, profile: PhoneName, firmware: FirmwareName): Promise<Judged> {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: `judges/${firmware}/${scenario}/${profile}`, log, firmware });
  const events: ScenarioEvent[] = [];
  const [wh, wc] = createMemoryTransportPair('wearable', 'wearable-ctrl');
  air.createController({ name: 'wearable-dk', seed: 'w' }).attach(wc);
  const w = startWearable(scenario, wh, clock, events);
  let judged: { v: Verdict; state: JudgeState } | undefined;
  const out: string[] = [];
  const io: Partial<PhoneCommandIo> = {
    out: { write: (s) => out.push(s) },
    err: { write: (s) => out.push(s) },
    openTransport: async (port) => {
      const [h, c] = createMemoryTransportPair(port, 'phone-ctrl');
      air.createController({ name: 'phone-dk', seed: 'p' }).attach(c);
      return h;
    },
    clock,
    random: seededRandom(`judges/${scenario}/phone`),
    logger: () => log,
    run: (p) => drive(clock, p),
    sleep: (ms) => clock.advance(ms),
    onEvent: (e) => events.push(e),
    onJudged: (v, state) => void (judged = { v, state }),
  };
  try {
    await drive(clock, w.peripheral.start());
    w.start();
    await runPhoneCommand({ ...BASE, profile, scenario }, io);
  } finally {
    w.stop();
    await drive(clock, w.peripheral.stop()).catch(() => undefined);
    air.close();
  }
  assert.ok(judged, `the phone command judged the session:\n${out.join('')}`);
  return { phone: judged.v, full: fullVerdict(scenario, profile, events, judged, w.bonds.list().length), out: out.join('') };
}

function assertAgree(r: Judged, what: string): void {
  assert.equal(r.full.verdict, 'pass', `${what}: the full judge passes the session\n${r.full.observed}\n${r.out}`);
  assert.equal(r.phone.verdict, r.full.verdict, `${what}: the phone-side judge agrees with the full judge\nphone side:\n${r.phone.observed}\nfull:\n${r.full.observed}`);
}

for (const firmware of FIRMWARE_NAMES) {
  for (const scenario of PHONE_SCENARIOS) {
    test(`${scenario} (${firmware} controllers): the phone-side verdict of \`wearable-host phone\` equals the full judge's on the same session, for iOS and Android`, async () => {
      for (const profile of ['ios', 'android'] as const) assertAgree(await virtualSession(scenario, profile, firmware), `${profile}`);
    });
  }
}

test(
  'phone-forgot-device-replace over a pty pair of virtual Zephyr-LL controllers (the second-DK set-up), real time: the phone-side verdict is PASS, as the full judge says',
  { skip: hasSocat ? false : 'socat not installed: apt-get install socat', timeout: 120_000 },
  async () => {
    const scenario: ScenarioName = 'phone-forgot-device-replace';
    const served = await serveControllers({ count: 2, pty: true, seed: 'judges-pty', log, air: { firmware: 'zephyr' } });
    const clock = new RealClock();
    const events: ScenarioEvent[] = [];
    const [wearablePty, phonePty] = served.controllers.map((c) => c.pty as string);
    assert.ok(wearablePty && phonePty, served.lines.join(', '));
    const wt = await openTransport(wearablePty, { baudRate: 1_000_000, rtscts: false });
    const w = startWearable(scenario, wt, clock, events);
    let judged: { v: Verdict; state: JudgeState } | undefined;
    const out: string[] = [];
    try {
      await w.peripheral.start();
      w.start();
      const code = await runPhoneCommand(
        { ...BASE, port: phonePty, rtscts: false, profile: 'ios', scenario },
        {
          out: { write: (s) => out.push(s) },
          err: { write: (s) => out.push(s) },
          clock,
          logger: () => log,
          onEvent: (e) => events.push(e),
          onJudged: (v, state) => void (judged = { v, state }),
        },
      );
      assert.ok(judged, out.join(''));
      const full = fullVerdict(scenario, 'ios', events, judged, w.bonds.list().length);
      assertAgree({ phone: judged.v, full, out: out.join('') }, 'pty');
      assert.equal(code, 0, out.join(''));
      assert.match(out.join(''), /ok\s+both sides saved the new bond/);
    } finally {
      w.stop();
      await w.peripheral.stop().catch(() => undefined);
      await served.close();
    }
  },
);
