/**
 * `diagnose(capture)`: the pairing diagnosis of `wearable-host diagnose FILE` as a function, over a
 * file path or the capture's bytes (btsnoop, Apple PacketLogger .pklg, our JSON log).
 */
import { readCapture, readCaptureFile } from '../diagnose/formats/index.js';
import type { CaptureFormat } from '../diagnose/capture.js';
import { buildTimeline } from '../diagnose/timeline.js';
import { diagnose as diagnoseTimeline, type Report } from '../diagnose/diagnose.js';

export interface DiagnoseCaptureOptions {
  /** The capture format; detected from the content (and the file name) by default. */
  format?: CaptureFormat;
  /** Skip damaged records instead of failing. */
  lenient?: boolean;
}

/** Diagnoses a capture file (a path) or a capture's bytes; resolves with the report and its typed findings. */
export async function diagnose(capture: string | Uint8Array, o: DiagnoseCaptureOptions = {}): Promise<Report> {
  const opts = { ...(o.format ? { format: o.format } : {}), ...(o.lenient ? { lenient: true } : {}) };
  const c = typeof capture === 'string' ? await readCaptureFile(capture, opts) : readCapture(capture, opts);
  return diagnoseTimeline(buildTimeline(c.packets), {
    source: { ...(typeof capture === 'string' ? { file: capture } : {}), format: c.format, description: c.description, skipped: c.skipped, warnings: c.warnings },
  });
}
