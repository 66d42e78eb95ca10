/**
 * `wearable-host --sim [--profile ios|android] [--scenario NAME|list] [--seed S] [--btsnoop FILE]`:
 * the wearable and a simulated phone in one process on the virtual air, a readable transcript of
 * each session and a verdict. With no option it plays the headline story (story.ts: an iPhone and
 * an Android phone bonded to the wearable, which loses its bonds): the README's "run it" command.
 * With --profile alone it runs `reconnect` with that profile. Exit code 0 when every verdict is pass.
 *
 * The integrator wires it into the main command: `registerSimOptions(program)` adds the options
 * that are not there yet, and `runSim(opts)` runs what they ask for.
 */
import { extname } from 'node:path';
import { Option, type Command } from 'commander';
import { WearableHostError } from '../util/errors.js';
import { createLogger, silentLogger, type Logger } from '../util/log.js';
import { runScenario, type ScenarioResult } from '../phone/runner.js';
import { PHONE_NAMES, describeRules, isPhoneName, type PhoneName } from '../phone/profiles.js';
import { SCENARIOS, SCENARIO_NAMES, isScenarioName, type ScenarioName } from '../phone/scenarios.js';
import { FIRMWARE_NAMES, isFirmwareName, type FirmwareName } from '../sim/firmware.js';
import { STORY_NAME, STORY_TITLE, runStory } from '../phone/story.js';

/** The options `runSim` reads (a subset of the main command's). */
export interface SimRunOptions {
  profile?: string;
  /** A scenario name, or `list`. */
  scenario?: string;
  seed?: string;
  /** One file for one run (written as named); with several runs `-<profile>-<scenario>` goes before the extension, and the names written are listed at the end. */
  btsnoop?: string;
  /** Layer logs on stderr only at debug or trace (the transcript is the output otherwise). */
  logLevel?: string;
  /** Firmware of the virtual controllers: `ncs` (default) or `zephyr`. */
  controller?: string;
}

export interface SimRunIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  /** Logger for the layers; default: silent unless logLevel is debug/trace. */
  log?: Logger;
}

/** Exit code when a verdict is fail. */
export const EXIT_VERDICT_FAIL = 1;
/** Exit code for bad options. */
export const EXIT_USAGE = 2;

function has(cmd: Command, long: string): boolean {
  return cmd.options.some((o) => o.long === long);
}

/** Adds --profile, --scenario, --seed and --btsnoop to `cmd` where they are missing. */
export function registerSimOptions(cmd: Command): Command {
  if (!has(cmd, '--profile')) cmd.addOption(new Option('--profile <phone>', 'with --sim: the simulated phone').choices([...PHONE_NAMES]));
  if (!has(cmd, '--scenario')) cmd.option('--scenario <name>', `with --sim: one scenario (${[STORY_NAME, ...SCENARIO_NAMES].join(', ')}), or "list"; default ${STORY_NAME}`);
  if (!has(cmd, '--seed')) cmd.option('--seed <seed>', 'with --sim: seed for a reproducible run');
  if (!has(cmd, '--btsnoop')) cmd.option('--btsnoop <file>', "write the wearable's HCI traffic to a btsnoop file");
  return cmd;
}

function btsnoopFor(path: string | undefined, many: boolean, profile: PhoneName, scenario: ScenarioName): string | undefined {
  if (!path || !many) return path;
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}-${profile}-${scenario}${ext || '.btsnoop'}`;
}

/** Lists the scenarios and the phone rule table. */
function listScenarios(out: SimRunIo['out']): void {
  out.write(`The default run (wearable-host --sim): ${STORY_NAME}\n  ${STORY_TITLE}\n\n`);
  out.write('Scenarios (wearable-host --sim --profile ios|android --scenario NAME):\n');
  for (const name of SCENARIO_NAMES) out.write(`  ${name.padEnd(26)} ${SCENARIOS[name].title}\n`);
  out.write('\nPhone behaviour (src/phone/profiles.ts; correct a row when a capture disagrees):\n');
  for (const line of describeRules()) out.write(`  ${line}\n`);
}

/** Runs what the options ask for; resolves with the exit code. */
export async function runSim(opts: SimRunOptions, ioOverrides: Partial<SimRunIo> = {}): Promise<number> {
  const io: SimRunIo = { out: process.stdout, err: process.stderr, ...ioOverrides };
  if (opts.scenario === 'list') {
    listScenarios(io.out);
    return 0;
  }
  if (opts.profile !== undefined && !isPhoneName(opts.profile)) {
    io.err.write(`wearable-host: --profile must be ios or android, got ${JSON.stringify(opts.profile)}\n`);
    return EXIT_USAGE;
  }
  if (opts.scenario !== undefined && opts.scenario !== STORY_NAME && !isScenarioName(opts.scenario)) {
    io.err.write(`wearable-host: unknown scenario ${JSON.stringify(opts.scenario)}; one of ${[STORY_NAME, ...SCENARIO_NAMES].join(', ')} (or --scenario list)\n`);
    return EXIT_USAGE;
  }
  if (opts.controller !== undefined && !isFirmwareName(opts.controller)) {
    io.err.write(`wearable-host: --controller must be ${FIRMWARE_NAMES.join(' or ')}, got ${JSON.stringify(opts.controller)}\n`);
    return EXIT_USAGE;
  }
  const level0 = opts.logLevel ?? 'info';
  if (opts.scenario === STORY_NAME || (opts.scenario === undefined && opts.profile === undefined)) {
    if (opts.profile !== undefined) {
      io.err.write(`wearable-host: ${STORY_NAME} plays both phones; drop --profile, or pick a one-phone scenario (--scenario list)\n`);
      return EXIT_USAGE;
    }
    const r = await runStory({
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      ...(opts.btsnoop ? { btsnoopPath: opts.btsnoop } : {}),
      ...(opts.controller !== undefined ? { firmware: opts.controller as FirmwareName } : {}),
      log: io.log ?? (level0 === 'debug' || level0 === 'trace' ? createLogger({ level: level0, pretty: false }) : silentLogger()),
      out: io.out,
    });
    return r.verdict === 'pass' ? 0 : EXIT_VERDICT_FAIL;
  }
  const profiles: PhoneName[] = opts.profile ? [opts.profile as PhoneName] : [...PHONE_NAMES];
  const scenarios: ScenarioName[] = opts.scenario ? [opts.scenario as ScenarioName] : ['reconnect'];
  const level = level0;
  const log = io.log ?? (level === 'debug' || level === 'trace' ? createLogger({ level, pretty: false }) : silentLogger());
  const many = profiles.length * scenarios.length > 1;
  const results: ScenarioResult[] = [];
  const written: string[] = [];
  for (const scenario of scenarios) {
    for (const profile of profiles) {
      if (results.length > 0) io.out.write('\n');
      const btsnoopPath = btsnoopFor(opts.btsnoop, many, profile, scenario);
      if (btsnoopPath) written.push(btsnoopPath);
      try {
        results.push(
          await runScenario({
            profile,
            scenario,
            ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
            ...(btsnoopPath ? { btsnoopPath } : {}),
            ...(opts.controller !== undefined ? { firmware: opts.controller as FirmwareName } : {}),
            log,
            out: io.out,
          }),
        );
      } catch (err) {
        if (err instanceof WearableHostError) {
          io.err.write(`wearable-host: ${err.message}\n`);
          return EXIT_USAGE;
        }
        throw err;
      }
    }
  }
  if (many) {
    io.out.write('\nsummary:\n');
    for (const r of results) io.out.write(`  ${r.verdict === 'pass' ? 'PASS' : 'FAIL'}  ${r.profile.padEnd(8)} ${r.scenario}\n`);
    if (written.length > 0) {
      io.out.write(`\nbtsnoop files written (one per run; ${opts.btsnoop} itself was not written):\n`);
      for (const f of written) io.out.write(`  ${f}\n`);
      io.out.write(`diagnose one with: wearable-host diagnose ${written[0]}\n`);
    }
  }
  return results.every((r) => r.verdict === 'pass') ? 0 : EXIT_VERDICT_FAIL;
}
