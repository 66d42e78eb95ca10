/**
 * The `wearable-host` command line (commander). `bin/wearable-host` calls {@link main}.
 */
import { readFileSync } from 'node:fs';
import { Command, Option, CommanderError } from 'commander';
import { WearableHostError } from '../util/errors.js';
import { registerBondsCommand } from './bonds-command.js';
import { registerSimControllerCommand } from './sim-controller-command.js';
import { registerDoctorCommand } from './doctor.js';
import { registerDiagnoseCommand } from './diagnose-command.js';
import { registerInfoCommand } from './info-command.js';
import { LOG_LEVELS, IO_CAPABILITY_NAMES, controllerOption, parseIntOption, type MainCliOptions } from './options.js';
import { addPortOptions, makeLogger } from './common.js';
import { openBondStore, openPort, parseWearableSettings, startWearable, type WearableSession } from '../lib/session.js';
import { registerSimOptions, runSim } from './sim-run.js';
import { registerPhoneCommand } from './phone-command.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Main-command options a --sim run reads; any other one given with --sim is refused as ignored. */
const SIM_RUN_OPTIONS: ReadonlySet<string> = new Set(['sim', 'profile', 'scenario', 'seed', 'btsnoop', 'logLevel', 'controller']);

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('wearable-host')
    .description(
      'Bluetooth LE host for a displayless wearable on an nRF5340-DK running Zephyr hci_uart. ' +
        'With --port it runs the wearable on the DK; with --sim (the default without --port) it runs against ' +
        'an in-process virtual controller with simulated iOS and Android phones.',
    )
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  addPortOptions(program, 'the DK\'s serial port (/dev/serial/by-id/..., /dev/ttyACM0) or tcp://host:port');
  program
    .option('--sim', 'run the wearable and a simulated phone on the embedded virtual air and print the session (default without --port); each scenario sets its own wearable options, the ones below apply to --port runs')
    .option('--name <name>', 'complete local name advertised and in the GAP Device Name', 'Noira Band')
    .option('--btsnoop <file>', 'record every HCI packet to a btsnoop file (Wireshark, tshark, btmon -r)')
    .option('--bonds <file>', 'bond store (JSON); default $XDG_STATE_HOME/wearable-host/bonds.json')
    .option('--max-bonds <n>', 'bonds kept; when full, a new peer\'s pairing is refused (Pairing Failed 0x08) so no bonded phone is evicted', '16')
    .option('--evict-oldest-bond', 'when the bond store is full, let a new peer\'s pairing evict the least recently seen bond (a stranger in radio range can then evict the owner\'s bond)')
    .option('--gatt <file>', 'serve the GATT database described in this JSON file instead of the wearable profile')
    .option('--mtu <n>', 'largest ATT_MTU offered (23..517)', '517')
    .addOption(
      new Option('--security-request <mode>', 'when to send an SMP Security Request: never (Apple\'s guidance), on-connect, after-att-rejection')
        .choices(['never', 'on-connect', 'after-att-rejection'])
        .default('never'),
    )
    .option('--security-request-delay <ms>', 'delay before the Security Request', '0')
    .addOption(new Option('--repair <policy>', 'a bonded peer pairs again (phone forgot us): reject (0x03) or replace after success').choices(['reject', 'replace']).default('reject'))
    .option('--pairing-window <seconds>', 'accept new pairings only during the first N seconds after start')
    .option('--min-key-size <n>', 'shortest encryption key accepted (7..16)', '16')
    .addOption(new Option('--io-capability <cap>', 'SMP IO capability (no-input-no-output gives Just Works, level 2)').choices(IO_CAPABILITY_NAMES).default('no-input-no-output'))
    .option('--allow-debug-keys', 'accept peers using the spec\'s debug P-256 key (sniffable pairing; never in the field)')
    .option('--privacy [seconds]', 'advertise and connect from resolvable private addresses, rotated every N seconds (default 900)')
    .option('--resolving-list', 'also load bonded phones\' IRKs into the controller\'s resolving list (LL privacy), when it has one')
    .option('--mix-controller-rng', 'mix the controller\'s LE Rand (TRNG) output into the OS CSPRNG')
    .option('--no-simulated-values', 'do not feed the profile simulated heart rate, battery and health records (the host has no sensors)')
    .option('--no-conn-params', 'do not ask the central for new connection parameters after connecting')
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--log-json', 'JSON log lines even on a terminal (for `wearable-host diagnose`)')
    .addOption(controllerOption('with --sim: the firmware the virtual controllers run'));
  registerSimOptions(program);
  // Extra words are checked here, so an unknown command is named as such (not "too many arguments").
  program.allowExcessArguments(true);
  program.action(async (opts: MainCliOptions) => {
    const extra = program.args;
    if (extra.length > 0) {
      const commands = program.commands.map((c) => c.name());
      throw new WearableHostError(
        'cli',
        `unknown command ${JSON.stringify(extra[0])}. Commands: ${commands.join(', ')}; without a command it runs the wearable (--port PATH, or --sim). See wearable-host --help.`,
      );
    }
    if (opts.port === undefined || opts.sim) {
      if (opts.port !== undefined) throw new WearableHostError('cli', '--sim and --port exclude each other: pick the virtual controller or the DK');
      const ignored = program.options
        .map((o) => o.attributeName())
        .filter((name) => !SIM_RUN_OPTIONS.has(name) && program.getOptionValueSource(name) === 'cli')
        .map((name) => program.options.find((o) => o.attributeName() === name)?.long ?? name);
      if (ignored.length > 0) {
        throw new WearableHostError(
          'cli',
          `${ignored.join(', ')} ${ignored.length === 1 ? 'applies' : 'apply'} to the wearable on a DK (--port) and would be ignored with --sim: ` +
            `each scenario sets its own wearable options. With --sim use ${[...SIM_RUN_OPTIONS].filter((n) => n !== 'sim').map((n) => `--${n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}; ` +
            `to run the wearable with these options on a virtual controller, serve one with \`wearable-host sim-controller --tcp 0\` and pass --port tcp://127.0.0.1:PORT.`,
        );
      }
      process.exitCode = await runSim({
        ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
        ...(opts.scenario !== undefined ? { scenario: opts.scenario } : {}),
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        ...(opts.btsnoop !== undefined ? { btsnoop: opts.btsnoop } : {}),
        ...(opts.controller !== undefined ? { controller: opts.controller } : {}),
        logLevel: opts.logLevel,
      });
      return;
    }
    await runOnPort(opts);
  });
  registerInfoCommand(program);
  registerBondsCommand(program);
  registerDiagnoseCommand(program);
  registerDoctorCommand(program);
  registerSimControllerCommand(program);
  registerPhoneCommand(program);
  return program;
}

/** Signals that stop the wearable like Ctrl-C: a service manager sends SIGTERM, a closed terminal SIGHUP. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const satisfies readonly NodeJS.Signals[];

/**
 * Runs the wearable on a DK until a stop signal or the port is lost. The bond file is opened (and
 * locked) before the port, so a bond file that cannot be used never holds the DK; any start-up
 * failure closes what was opened before it is reported.
 */
async function runOnPort(opts: MainCliOptions): Promise<void> {
  const log = makeLogger(opts.logLevel, opts.logJson);
  const settings = parseWearableSettings(opts);
  const port = opts.port as string;
  const serial = {
    baud: parseIntOption('--baud', opts.baud, 1200, 12_000_000),
    rtscts: opts.rtscts,
    chunkSize: parseIntOption('--chunk-size', opts.chunkSize, 1, 4096),
    log,
  };
  const bonds = await openBondStore(settings, log);
  let session: WearableSession;
  try {
    const transport = await openPort(port, serial);
    session = await startWearable({ settings, transport, log, bonds, simulateValues: opts.simulatedValues });
  } catch (err) {
    await bonds.close().catch(() => undefined);
    throw err;
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${why}: stopping (advertising off, disconnecting, closing ${port})`);
      session
        .close()
        .catch((err: unknown) => log.warn({ err }, 'shutdown was not clean'))
        .finally(() => {
          for (const [sig, fn] of handlers) process.off(sig, fn);
          if (code) process.exitCode = code;
          resolve();
        });
    };
    const handlers = STOP_SIGNALS.map((sig) => {
      const fn = (): void => {
        // A second signal while stopping: the user does not want to wait.
        if (stopping) {
          log.warn(`${sig} again: exiting without waiting for the controller`);
          process.exit(130);
        }
        stop(sig === 'SIGINT' ? 'Ctrl-C' : sig, 0);
      };
      process.on(sig, fn);
      return [sig, fn] as const;
    });
    session.peripheral.on('fatal', () => stop('controller lost', 1));
  });
}

/**
 * Runs the CLI with `argv` (as process.argv). Returns the exit code; errors are printed as one
 * message that names what failed and what to try.
 */
export async function main(argv: string[]): Promise<number> {
  // `wearable-host ... | head`: a closed pipe ends output quietly, like other command-line tools.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const code = err instanceof WearableHostError && 'exitCode' in err && typeof err.exitCode === 'number' ? err.exitCode : 1;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`wearable-host: ${message}\n`);
    if (process.env['WEARABLE_HOST_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return code;
  }
}
