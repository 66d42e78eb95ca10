/**
 * `wearable-host phone --port PATH --profile ios|android --target "Noira Band" [--scenario S]`:
 * the simulated phone on a second DK (or a virtual controller served on a pty / TCP port), so two
 * DKs reproduce a phone's behaviour over real radio against a real wearable. It runs the phone's
 * steps of a scenario (default `first-pairing`), prints the transcript and the verdict as far as
 * the phone can tell (the wearable's own bonds are not visible from here), and exits 0 on pass.
 *
 * Scenarios that change the wearable between connections (peripheral-lost-bond) cannot run here:
 * reproduce them by hand (`first-pairing`, then `wearable-host bonds clear` on the wearable, then
 * `reconnect`).
 */
import { Option, type Command } from 'commander';
import { openTransport } from '../hci/open-transport.js';
import type { Transport } from '../hci/transport.js';
import { BtsnoopWriter } from '../hci/btsnoop.js';
import type { PacketDirection } from '../hci/driver.js';
import { MemoryBondStore } from '../bonds/memory.js';
import { JsonFileBondStore } from '../bonds/json-store.js';
import type { BondStore } from '../bonds/types.js';
import { RealClock, type Clock } from '../util/clock.js';
import { osRandom, type RandomSource } from '../util/random.js';
import { createLogger, silentLogger, type Logger } from '../util/log.js';
import { WearableHostError } from '../util/errors.js';
import { SimulatedPhone } from '../phone/phone.js';
import { PHONE_NAMES, phoneProfile, isPhoneName } from '../phone/profiles.js';
import { SCENARIOS, SCENARIO_NAMES, isScenarioName, type JudgeState, type ScenarioEnv } from '../phone/scenarios.js';
import type { ScenarioEvent } from '../phone/events.js';
import { Transcript } from '../phone/transcript.js';
import { judgeScenario, printVerdict, type Verdict } from '../phone/runner.js';

export interface PhoneCommandOptions {
  port?: string;
  baud: string;
  rtscts: boolean;
  chunkSize: string;
  profile: string;
  target: string;
  scenario: string;
  bonds?: string;
  btsnoop?: string;
  logLevel: string;
}

/** What the command talks to; injectable for tests (a memory transport to a virtual controller, a VirtualClock). */
export interface PhoneCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  openTransport(port: string, o: { baudRate: number; rtscts: boolean; maxWriteChunk: number }): Promise<Transport>;
  clock: Clock;
  random: RandomSource;
  logger(level: string): Logger;
  /** Awaits a promise (tests drive a VirtualClock here). */
  run<T>(p: Promise<T>): Promise<T>;
  sleep(ms: number): Promise<void>;
  /** Each phone-side event as it happens (tests merge it with the wearable's to judge the whole session). */
  onEvent?(e: ScenarioEvent): void;
  /** The phone-side verdict and the state it was judged on. */
  onJudged?(v: Verdict, state: JudgeState): void;
  /** The phone's bonds and identity, instead of --bonds / a fresh memory store (sim-controller --phone presets its identity here). */
  bonds?: BondStore;
}

function defaultIo(): PhoneCommandIo {
  const clock = new RealClock();
  return {
    out: process.stdout,
    err: process.stderr,
    openTransport: (port, o) => openTransport(port, o),
    clock,
    random: osRandom,
    logger: (level) => (level === 'silent' ? silentLogger() : createLogger({ level: level as 'info' })),
    run: (p) => p,
    sleep: (ms) => new Promise((resolve) => clock.setTimeout(resolve, ms)),
  };
}

function intOption(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new WearableHostError('cli', `${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** Runs the command; resolves with the exit code (0 pass, 1 fail, 2 bad options). */
export async function runPhoneCommand(o: PhoneCommandOptions, ioOverrides: Partial<PhoneCommandIo> = {}): Promise<number> {
  const io: PhoneCommandIo = { ...defaultIo(), ...ioOverrides };
  if (!o.port) {
    io.err.write('wearable-host phone: --port is required: the serial port of the DK acting as the phone (or tcp://host:port)\n');
    return 2;
  }
  if (!isPhoneName(o.profile)) {
    io.err.write(`wearable-host phone: --profile must be ios or android, got ${JSON.stringify(o.profile)}\n`);
    return 2;
  }
  if (!isScenarioName(o.scenario)) {
    io.err.write(`wearable-host phone: unknown scenario ${JSON.stringify(o.scenario)}; one of ${SCENARIO_NAMES.join(', ')}\n`);
    return 2;
  }
  const def = SCENARIOS[o.scenario];
  if (def.needsWearable) {
    io.err.write(
      `wearable-host phone: ${def.name} changes the wearable between connections, which this command cannot do. ` +
        'Reproduce it by hand: run --scenario first-pairing, then clear the bonds on the wearable (wearable-host bonds clear), then run --scenario reconnect.\n',
    );
    return 2;
  }
  const log = io.logger(o.logLevel);
  const profile = phoneProfile(o.profile, def.profileOverrides?.(o.profile) ?? {});
  const transport = await io.openTransport(o.port, {
    baudRate: intOption('--baud', o.baud, 1200, 12_000_000),
    rtscts: o.rtscts,
    maxWriteChunk: intOption('--chunk-size', o.chunkSize, 1, 4096),
  });
  const bonds: BondStore = io.bonds ?? (o.bonds ? await JsonFileBondStore.open(o.bonds, { logger: log.child({ layer: 'bonds' }) }) : new MemoryBondStore());
  const trace = o.btsnoop ? BtsnoopWriter.open(o.btsnoop, { clock: io.clock }) : undefined;
  const t0 = io.clock.now();
  const events: ScenarioEvent[] = [];
  const print = (line: string): void => void io.out.write(`${line}\n`);
  const phone = new SimulatedPhone({
    profile,
    transport,
    clock: io.clock,
    random: io.random,
    log,
    bonds,
    ...(def.user ? { user: { answer: def.user } } : {}),
    ...(def.legacyOnly ? { legacyOnly: true } : {}),
    ...(trace ? { trace: (dir: PacketDirection, h4: Uint8Array) => trace.write(dir, h4) } : {}),
  });
  const transcript = new Transcript(t0, profile.label, print);
  phone.on('event', (e) => {
    events.push(e);
    transcript.add(e);
    io.onEvent?.(e);
  });
  print(`phone: ${profile.label} profile on ${transport.description}, scenario ${def.name}, target "${o.target}"`);
  print(`expected: ${def.expected(profile)}`);
  const env: ScenarioEnv = {
    profile,
    phone,
    target: { name: o.target },
    wearable: undefined,
    run: (p) => io.run(p),
    sleep: (ms) => io.sleep(ms),
    note: (text) => phone.record({ kind: 'note', text }),
  };
  let error: string | undefined;
  try {
    await io.run(phone.start());
    await def.run(env);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    print(`scenario stopped early: ${error}`);
  } finally {
    await io.run(phone.stop()).catch(() => undefined);
    await transport.close().catch(() => undefined);
    await trace?.close();
  }
  const state: JudgeState = { phoneIdentity: phone.central.identity?.address, phoneBonds: bonds.list().length, wearableBonds: undefined };
  await bonds.close();
  const v = judgeScenario(def, profile, events, state, error);
  io.onJudged?.(v, state);
  printVerdict(v, profile, print);
  print("(judged from the phone's side only: the wearable's bonds are not visible from here)");
  return v.verdict === 'pass' ? 0 : 1;
}

/** Adds `phone` to the CLI. */
export function registerPhoneCommand(program: Command, io: Partial<PhoneCommandIo> = {}): Command {
  return program
    .command('phone')
    .description('act as a simulated iPhone or Android phone on a second DK, against a real wearable')
    .option('--port <path>', "the phone DK's serial port (/dev/serial/by-id/...) or tcp://host:port")
    .option('--baud <n>', 'UART baud rate', '1000000')
    .option('--no-rtscts', 'turn RTS/CTS hardware flow control off')
    .option('--chunk-size <bytes>', 'largest single write to the port', '64')
    .addOption(new Option('--profile <phone>', 'which phone to behave like').choices([...PHONE_NAMES]).default('ios'))
    .option('--target <name>', 'the advertised name of the wearable', 'Noira Band')
    .addOption(new Option('--scenario <name>', 'phone steps to run').choices(SCENARIO_NAMES.filter((n) => !SCENARIOS[n].needsWearable)).default('first-pairing'))
    .option('--bonds <file>', "keep the phone's bonds in this JSON file (default: memory, forgotten at exit)")
    .option('--btsnoop <file>', "record the phone DK's HCI traffic")
    .option('--log-level <level>', 'layer logs on stderr (silent, error, warn, info, debug, trace)', 'silent')
    .action(async (opts: PhoneCommandOptions) => {
      process.exitCode = await runPhoneCommand(opts, io);
    });
}
