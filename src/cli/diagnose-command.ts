/**
 * `wearable-host diagnose FILE [FILE2] [--json] [--format btsnoop|pklg|json] [--lenient]`: why did the phone
 * not pair? Reads a capture (our btsnoop, Android's btsnoop_hci.log, Apple PacketLogger .pklg, or
 * wearable-host's JSON debug log), and prints every connection with what happened to security and
 * the findings, with evidence, likely cause and fix.
 *
 * Exit code: 0 when the report was produced (findings or not), 2 when the file cannot be read or
 * is not a capture (the message names the byte offset or line).
 */
import { Command, Option } from 'commander';
import { CaptureFormatError, type CaptureFormat } from '../diagnose/capture.js';
import { CAPTURE_FORMATS, readCaptureFile } from '../diagnose/formats/index.js';
import { buildTimeline } from '../diagnose/timeline.js';
import { diagnose, renderReport, reportToJson } from '../diagnose/diagnose.js';
import { runCompare } from './diagnose-compare.js';

/** Exit code for an unreadable or malformed capture. */
export const EXIT_UNREADABLE = 2;

export interface DiagnoseCommandOptions {
  json?: boolean;
  format?: CaptureFormat;
  lenient?: boolean;
}

export interface DiagnoseIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** Runs the command; resolves to the exit code. Never rejects for a bad file. */
export async function runDiagnose(file: string, opts: DiagnoseCommandOptions, io: DiagnoseIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let capture;
  try {
    capture = await readCaptureFile(file, { ...(opts.format ? { format: opts.format } : {}), ...(opts.lenient ? { lenient: true } : {}) });
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
    .description('explain why a phone did not pair, from a capture file (btsnoop, Apple PacketLogger .pklg, or wearable-host JSON log); with two files, compare the sessions phase by phase and say where they diverge')
    .argument('<files...>', 'capture file, or two capture files to compare (e.g. the iPhone\'s .pklg and the Android btsnoop_hci.log)')
    .option('--json', 'print the report as JSON')
    .addOption(new Option('--format <format>', 'capture format (default: detected)').choices(CAPTURE_FORMATS))
    .option('--lenient', 'diagnose the packets before a cut-short last record instead of failing')
    .action(async (files: string[], opts: DiagnoseCommandOptions) => {
      if (files.length > 2) {
        (io ?? process).stderr.write(`wearable-host diagnose: give one capture file, or two to compare (got ${files.length})\n`);
        process.exitCode = 1;
        return;
      }
      const code = files.length === 2 ? await runCompare(files[0] as string, files[1] as string, opts, io ?? process) : await runDiagnose(files[0] as string, opts, io);
      if (code !== 0) process.exitCode = code;
    });
}
