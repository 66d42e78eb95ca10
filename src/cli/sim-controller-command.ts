/**
 * `wearable-host sim-controller --pty | --tcp PORT [--count N] [--seed S] [--log-level L]`:
 * serves N virtual nRF5340 `hci_uart` controllers on one virtual air, prints one line per
 * controller (`PTY /dev/pts/N` or `TCP 127.0.0.1:PORT`) and serves until SIGINT/SIGTERM. Any host
 * that speaks H:4 (this CLI with --port, or another stack) attaches to them as if they were DKs.
 *
 * With `--phone ios|android`, one more controller on the same air carries a simulated phone that
 * looks for the wearable (`--target`, default "Noira Band") and plays `--phone-scenario`
 * (default first-pairing) against whatever host runs on the served controllers; its transcript and
 * verdict go to stdout, and the exit code after Ctrl-C is the verdict's.
 *
 * The phone's identity (its controller's static address and its IRK) is a fresh phone on every
 * run, so running the recipe again against a wearable that kept its bond file pairs a new phone
 * instead of claiming a bonded identity with another IRK in its Identity Information (Core 5.4 Vol 3
 * Part H 3.6.4, 3.6.5), which the wearable refuses under its default `--repair reject`. With `--seed`, address and IRK both derive from the seed: the same
 * phone every run, holding no bond (to the wearable that kept its bond, the phone forgot the device).
 */
import type { Command } from 'commander';
import { WearableHostError } from '../util/errors.js';
import { createLogger, type LogLevel, type Logger } from '../util/log.js';
import { serveControllers, type ServeControllersOptions, type ServedControllers } from '../sim/serve.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import { PHONE_NAMES } from '../phone/profiles.js';
import { SCENARIOS, SCENARIO_NAMES } from '../phone/scenarios.js';
import { runPhoneCommand } from './phone-command.js';
import { controllerOption } from './options.js';
import { isFirmwareName } from '../sim/firmware.js';
import { Option } from 'commander';
import { MemoryBondStore } from '../bonds/memory.js';
import { generateIrk } from '../privacy/rpa.js';
import { osRandom, seededRandom } from '../util/random.js';
import { toHex } from '../util/bytes.js';
import type { LocalIdentity } from '../bonds/types.js';
import type { VirtualAir } from '../sim/air.js';
import type { VirtualController } from '../sim/controller.js';

/** Where the command writes and how it learns to stop; injectable for tests. */
export interface SimControllerIo {
  /** Normal output (stdout): the controller lines. */
  out(text: string): void;
  logger(level: LogLevel): Logger;
  /** Resolves with the signal name when the process is asked to stop. */
  waitForStop(): Promise<string>;
  /** Called once everything is served (tests use it to reach the running servers). */
  onServing?(served: ServedControllers): void;
}

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

function defaultIo(): SimControllerIo {
  return {
    out: (text) => void process.stdout.write(text),
    logger: (level) => createLogger({ level, name: 'sim-controller' }),
    waitForStop: waitForSignal,
  };
}

interface Options {
  pty?: boolean;
  tcp?: string;
  count: string;
  seed?: string;
  logLevel: string;
  phone?: string;
  phoneScenario: string;
  target: string;
  controller: string;
}

function parseOptions(o: Options): { serve: Omit<ServeControllersOptions, 'log'>; level: LogLevel } {
  if (!o.pty && o.tcp === undefined) {
    throw new WearableHostError('cli', 'say where to serve the controllers: --pty (pseudo-terminals, needs socat) or --tcp PORT');
  }
  const count = Number(o.count);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new WearableHostError('cli', `--count must be a whole number from 1 to 64, got ${JSON.stringify(o.count)}`);
  }
  let tcp: number | undefined;
  if (o.tcp !== undefined) {
    tcp = Number(o.tcp);
    if (!Number.isInteger(tcp) || tcp < 0 || tcp + count - 1 > 65535) {
      throw new WearableHostError('cli', `--tcp needs a port number (0 picks free ports; controller i listens on PORT+i), got ${JSON.stringify(o.tcp)}`);
    }
  }
  const level = o.logLevel as LogLevel;
  if (!LEVELS.includes(level)) throw new WearableHostError('cli', `--log-level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(o.logLevel)}`);
  return {
    serve: {
      count,
      ...(tcp !== undefined ? { tcp } : {}),
      ...(o.pty ? { pty: true } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      ...(isFirmwareName(o.controller) ? { air: { firmware: o.controller } } : {}),
    },
    level,
  };
}

export function registerSimControllerCommand(program: Command, ioOverrides: Partial<SimControllerIo> = {}): Command {
  const io: SimControllerIo = { ...defaultIo(), ...ioOverrides };
  return program
    .command('sim-controller')
    .description('serve virtual nRF5340 hci_uart controllers on one virtual air, on pseudo-terminals or TCP ports')
    .option('--pty', 'one pseudo-terminal per controller (needs socat)')
    .option('--tcp <port>', 'one TCP port per controller on 127.0.0.1, from PORT up (0: free ports)')
    .option('--count <n>', 'number of controllers', '1')
    .option('--seed <seed>', 'deterministic identities and radio randomness (with --phone: the same phone address and IRK every run; default a new phone each run)')
    .option('--log-level <level>', `log level (${LEVELS.join(', ')})`, 'info')
    .addOption(controllerOption('firmware the virtual controllers (and the --phone one) run'))
    .addOption(new Option('--phone <profile>', 'add a simulated phone on the same air that pairs with the wearable (a new phone, address and IRK, each run)').choices([...PHONE_NAMES]))
    .addOption(
      new Option('--phone-scenario <name>', 'what the simulated phone does')
        .choices(SCENARIO_NAMES.filter((n) => !SCENARIOS[n].needsWearable))
        .default('first-pairing'),
    )
    .option('--target <name>', 'advertised name of the wearable the phone looks for', 'Noira Band')
    .action(async (o: Options) => {
      const { serve, level } = parseOptions(o);
      const log = io.logger(level);
      const served = await serveControllers({ ...serve, log });
      let phoneRun: Promise<number> | undefined;
      try {
        io.out(served.lines.map((l) => `${l}\n`).join(''));
        log.info({ controllers: served.lines.length, firmware: o.controller }, 'serving virtual controllers; stop with Ctrl-C');
        io.onServing?.(served);
        if (o.phone) phoneRun = startPhone(served, o, io, log);
        const sig = await io.waitForStop();
        log.info({ signal: sig }, 'stopping virtual controllers');
      } finally {
        await served.close();
      }
      if (phoneRun) process.exitCode = await phoneRun;
    });
}

/**
 * The simulated phone's controller on `air` and its identity (the controller's static address and
 * the IRK it distributes, Core 5.4 Vol 3 Part H 3.6.4, 3.6.5). Both come from the same source so
 * they always match: `seed` (the same phone on every run) or the OS random source (a new phone).
 */
export function simulatedPhoneController(air: VirtualAir, name: string, seed: string | undefined): { controller: VirtualController; identity: LocalIdentity } {
  const idSeed = seed !== undefined ? `${seed}-phone` : `phone-${toHex(osRandom.bytes(16))}`;
  const controller = air.createController({ name, seed: idSeed });
  const irk = generateIrk(seed !== undefined ? seededRandom(`${idSeed}/irk`) : osRandom);
  return { controller, identity: { address: { type: 'random', address: controller.staticAddress }, irk } };
}

/**
 * One more controller on the served air, driven in-process by a simulated phone. It scans for the
 * wearable, so it waits until a host brings one of the served controllers up and advertises.
 */
function startPhone(served: ServedControllers, o: Options, io: SimControllerIo, log: Logger): Promise<number> {
  const { controller, identity } = simulatedPhoneController(served.air, `phone-${o.phone ?? 'ios'}`, o.seed);
  const [host, far] = createMemoryTransportPair('simulated-phone', 'phone-controller');
  controller.attach(far);
  io.out(`PHONE ${o.phone} on the same air, looking for "${o.target}" (scenario ${o.phoneScenario})\n`);
  const out = { write: (t: string) => io.out(t) };
  const bonds = new MemoryBondStore();
  const run = async (): Promise<number> => {
    await bonds.setLocalIdentity(identity);
    return runPhoneCommand(
      {
        port: 'virtual',
        baud: '1000000',
        rtscts: true,
        chunkSize: '64',
        profile: o.phone ?? 'ios',
        target: o.target,
        scenario: o.phoneScenario,
        logLevel: o.logLevel === 'info' ? 'silent' : o.logLevel,
      },
      { openTransport: () => Promise.resolve(host), out, err: out, bonds },
    );
  };
  return run().catch((err: unknown) => {
    log.error({ err }, 'the simulated phone stopped');
    return 1;
  });
}
