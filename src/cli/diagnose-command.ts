/**
 * `wearable-host diagnose FILE [FILE2 ...] [--json] [--format btsnoop|pklg|json] [--strict] [--html FILE]`: why did the phone
 * not pair? Reads a capture (our btsnoop, Android's btsnoop_hci.log, Apple PacketLogger .pklg, or
 * wearable-host's JSON debug log), an Android bug report (.zip, or its text with the btsnooz
 * summary) or an iOS sysdiagnose (.tar.gz), streamed, and prints for every capture every
 * connection with what happened to security and the findings, with evidence, likely cause and fix.
 * Two files (say the iPhone's .pklg and the Android btsnoop_hci.log) are lined up phase by phase
 * and the first phase where they diverge is named (diagnose-compare.ts).
 *
 * Exit code: 0 when the report was produced (findings or not; a capture cut short mid-record, as an
 * Android log copied while Bluetooth is on always is, gives a warning), 2 when the file cannot be
 * read or is not a capture (the message names the byte offset or line), or with --strict is cut short.
 */
import { writeFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { CaptureFormatError, type CaptureFormat } from '../diagnose/capture.js';
import { CAPTURE_FORMATS } from '../diagnose/formats/index.js';
import { diagnoseInput, forEachCapture, type DiagnosedCapture } from '../diagnose/inputs.js';
import { renderReport, reportToJson } from '../diagnose/diagnose.js';
import { renderHtml } from '../diagnose/html.js';
import { renderCompare } from './diagnose-compare.js';

/** Exit code for an unreadable or malformed capture. */
export const EXIT_UNREADABLE = 2;

export interface DiagnoseCommandOptions {
  json?: boolean;
  format?: CaptureFormat;
  /** A capture cut short mid-record is an error (exit 2) instead of a warning. */
  strict?: boolean;
  /** Also write the session as a self-contained HTML page (ladder diagram, findings pinned). */
  html?: string;
}

export interface DiagnoseIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** Runs the command; resolves to the exit code. Never rejects for a bad file. */
export async function runDiagnose(
  fileOrFiles: string | readonly string[],
  opts: DiagnoseCommandOptions,
  io: DiagnoseIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const files = typeof fileOrFiles === 'string' ? [fileOrFiles] : fileOrFiles;
  const done: DiagnosedCapture[] = [];
  const perFile: DiagnosedCapture[][] = [];
  let kind;
  try {
    for (const file of files) {
      const mine: DiagnosedCapture[] = [];
      perFile.push(mine);
      ({ kind } = await forEachCapture(file, { ...(opts.format ? { format: opts.format } : {}), ...(opts.strict ? { strict: true } : {}) }, async (input) => {
        const d = await diagnoseInput(input);
        done.push(d);
        mine.push(d);
      }));
    }
  } catch (err) {
    if (err instanceof CaptureFormatError) {
      io.stderr.write(`wearable-host diagnose: ${err.message}\n`);
      return EXIT_UNREADABLE;
    }
    throw err;
  }
  const reports = done.map((d) => d.report);
  if (opts.html) {
    try {
      await writeFile(opts.html, renderHtml(done));
    } catch (err) {
      io.stderr.write(`wearable-host diagnose: cannot write the HTML report ${opts.html}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (files.length === 2 && perFile.every((list) => list.length > 0)) {
    // Two inputs: the user's literal question, "why does this one pair and that one not?". An archive
    // holding several captures is compared by its first (the current log); the others are listed.
    const [a, b] = perFile.map((list) => list[0] as DiagnosedCapture) as [DiagnosedCapture, DiagnosedCapture];
    const extra = done.filter((d) => d !== a && d !== b).map((d) => d.name);
    io.stdout.write(renderCompare(a, b, extra, opts) + (opts.html && !opts.json ? `HTML report: ${opts.html}\n` : ''));
    return 0;
  }
  if (opts.json) {
    // A capture file gives its report; an archive, a bug report text or several files every capture found.
    const one = files.length === 1 && kind === 'capture' ? reports[0] : undefined;
    const input = files.length === 1 ? { input: files[0] } : { inputs: files };
    io.stdout.write((one ? reportToJson(one) : JSON.stringify({ ...input, reports: reports.map((r) => JSON.parse(reportToJson(r)) as unknown) }, null, 2)) + '\n');
  } else {
    io.stdout.write(reports.map((r) => renderReport(r)).join('\n') + (opts.html ? `HTML report: ${opts.html}\n` : ''));
  }
  return 0;
}

/** Adds `diagnose` to the CLI. */
export function registerDiagnoseCommand(program: Command, io?: DiagnoseIo): Command {
  return program
    .command('diagnose')
    .description(
      'explain why a phone did not pair, from a capture file (btsnoop, Apple PacketLogger .pklg, wearable-host JSON log), ' +
        'an Android bug report (.zip, or its .txt with the BTSNOOP_LOG_SUMMARY) or an iOS sysdiagnose (.tar.gz)',
    )
    .argument('<files...>', 'capture file, bugreport-*.zip / .txt, or sysdiagnose_*.tar.gz (several: each is diagnosed; --html draws them side by side)')
    .option('--json', 'print the report as JSON (an archive: {input, reports: [...]}, one per capture found)')
    .addOption(new Option('--format <format>', 'capture format (default: detected)').choices(CAPTURE_FORMATS))
    .option('--html <file>', 'also write the session as one self-contained HTML page: a ladder diagram phone <-> accessory with each finding pinned at its packets')
    .option('--strict', 'fail (exit 2) on a capture that ends mid-record instead of diagnosing the packets before it with a warning')
    .addOption(new Option('--lenient', 'the default now: a cut-short last record is a warning').hideHelp())
    .action(async (files: string[], opts: DiagnoseCommandOptions) => {
      const code = await runDiagnose(files, opts, io);
      if (code !== 0) process.exitCode = code;
    });
}
