/**
 * Pairing diagnosis: why did the phone not pair? From capture files (btsnoop, PacketLogger, our JSON
 * log) and live from the running host.
 *
 *   readCaptureFile(path) -> Capture -> buildTimeline(capture.packets) -> diagnose(timeline) -> Report
 *   forEachCapture(path, opts, input => diagnoseInput(input))   streamed; zip, tar.gz, bug report text
 *   renderHtml([{ name, timeline, report }])                    the ladder-diagram page
 *   renderReport(report) / reportToJson(report)
 *   compareSessions({ timeline, report }, { timeline, report }) -> SessionComparison (two captures, phase by phase)
 *   new LiveDiagnoser({ clock }) .feed(direction, h4) -> 'finding' events
 */
export { CaptureFormatError, type Capture, type CaptureFormat, type CapturedPacket, type HciDirection } from './capture.js';
export { readCapture, readCaptureFile, detectFormat, CAPTURE_FORMATS, encodePklg, hciLogFields, HCI_LOG_MSG, type ReadCaptureOptions } from './formats/index.js';
export { buildTimeline, TimelineBuilder, type Timeline, type TimelineEvent, type TimelineOptions, type ConnectionRecord, type Side } from './timeline.js';
export { diagnose, evaluateConnection, renderReport, reportToJson, type Report, type Finding, type ConnectionReport, type DiagnoseOptions } from './diagnose.js';
export { RULES, RULE_TIMING, OPTION, ruleById, type RuleDef, type RuleHit, type RuleContext, type Severity, type Fix } from './rules.js';
export { LiveDiagnoser, type LiveDiagnoserOptions } from './live.js';
export { guessPhone, type PhoneGuess } from './fingerprint.js';
export { compareSessions, summarizeSession, renderComparison, COMPARE_PHASES, type SessionComparison, type SessionSummary, type PhaseComparison, type PhaseView, type ComparePhase, type Divergence } from './compare.js';
export { readCaptureStream, createReader, type CaptureSummary } from './formats/index.js';
export { forEachCapture, diagnoseInput, type CaptureInput, type DiagnosedCapture, type InputKind } from './inputs.js';
export { decodeBtsnooz } from './formats/btsnooz.js';
export { renderHtml } from './html.js';
