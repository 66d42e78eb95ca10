/**
 * `wearable-host diagnose FILE [--json] [--format btsnoop|pklg|json] [--strict]`: why did the phone
 * not pair? Reads a capture (our btsnoop, Android's btsnoop_hci.log, Apple PacketLogger .pklg, or
 * wearable-host's JSON debug log), and prints every connection with what happened to security and
 * the findings, with evidence, likely cause and fix.
 *
 * Exit code: 0 when the report was produced (findings or not; a capture cut short mid-record, as an
 * Android log copied while Bluetooth is on always is, gives a warning), 2 when the file cannot be
 * read or is not a capture (the message names the byte offset or line), or with --strict is cut short.
 */
import { Command, Option } from 'commander';
import { CaptureFormatError, type CaptureFormat } from '../diagnose/capture.js';
import { CAPTURE_FORMATS, readCaptureFile } from '../diagnose/formats/index.js';
import { buildTimeline } from '../diagnose/timeline.js';
import { diagnose, renderReport, reportToJson } from '../diagnose/diagnose.js';

/** Exit code for an unreadable or malformed capture. */
export const EXIT_UNREADABLE = 2;

export interface DiagnoseCommandOptions {
  json?: boolean;
  format?: CaptureFormat;
  /** A capture cut short mid-record is an error (exit 2) instead of a warning. */
  strict?: boolean;
}

export interface DiagnoseIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** Runs the command; resolves to the exit code. Never rejects for a bad file. */
export async function runDiagnose(file: string, opts: DiagnoseCommandOptions, io: DiagnoseIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let capture;
  try {
    capture = await readCaptureFile(file, { ...(opts.format ? { format: opts.format } : {}), ...(opts.strict ? { strict: true } : {}) });
  } catch (err) {
    if (err instanceof CaptureFormatError) {
      io.stderr.write(`wearable-host diagnose: ${err.message}\n`);
      return EXIT_UNREADABLE;
    }
    throw err;
  }
  const timeline = buildTimeline(capture.packets);
  const report = diagnose(timeline, {
    source: { file, format: capture.format, description: capture.description, skipped: capture.skipped, warnings: capture.warnings },
  });
  io.stdout.write(opts.json ? reportToJson(report) + '\n' : renderReport(report));
  return 0;
}

/** Adds `diagnose` to the CLI. */
export function registerDiagnoseCommand(program: Command, io?: DiagnoseIo): Command {
  return program
    .command('diagnose')
    .description('explain why a phone did not pair, from a capture file (btsnoop, Apple PacketLogger .pklg, or wearable-host JSON log)')
    .argument('<file>', 'capture file')
    .option('--json', 'print the report as JSON')
    .addOption(new Option('--format <format>', 'capture format (default: detected)').choices(CAPTURE_FORMATS))
    .option('--strict', 'fail (exit 2) on a capture that ends mid-record instead of diagnosing the packets before it with a warning')
    .addOption(new Option('--lenient', 'the default now: a cut-short last record is a warning').hideHelp())
    .action(async (file: string, opts: DiagnoseCommandOptions) => {
      const code = await runDiagnose(file, opts, io);
      if (code !== 0) process.exitCode = code;
    });
}
