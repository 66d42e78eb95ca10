/**
 * Finds line settings under which the controller answers HCI Reset: first the DK's own (1 Mbaud,
 * RTS/CTS), then the same after flushing a half-received packet, then the other common baud rates
 * with and without flow control. Says which worked and what that means.
 */
import type { DoctorEnv } from './env.js';
import { probeReset } from './probe.js';
import { errorMessage } from '../hci/transport-errors.js';
import { TransportError } from '../hci/transport-errors.js';
import { COMMON_BAUD_RATES, CheckId, DK_LINK, Severity, type Finding, type LinkSettings, type ProbeResult } from './types.js';

export interface LinkCheckOptions {
  /** Per-attempt answer timeout. Default 1000 ms. */
  probeTimeoutMs?: number;
  /** Baud rates to try (default {@link COMMON_BAUD_RATES}). */
  baudRates?: readonly number[];
  /** Stop after the DK's own settings (with resync) instead of trying the others. */
  quick?: boolean;
}

export interface LinkCheckResult {
  probes: ProbeResult[];
  working: LinkSettings | undefined;
  findings: Finding[];
}

export function settingsText(s: LinkSettings): string {
  return `${s.baudRate} baud, RTS/CTS ${s.rtscts ? 'on' : 'off'}`;
}

function probeLine(p: ProbeResult): string {
  const what = ((): string => {
    switch (p.outcome) {
      case 'ok':
        return 'HCI Reset answered';
      case 'refused':
        return `HCI Reset refused with status 0x${(p.status ?? 0).toString(16).padStart(2, '0')}`;
      case 'silent':
        return 'no byte came back';
      case 'garbled':
        return `${p.bytesReceived} byte(s) came back but no Reset answer (${p.framingErrors} framing error(s))${p.firstBytes ? `: ${p.firstBytes}` : ''}`;
      case 'crashed':
        return `controller crash report: ${p.error ?? ''}`;
      case 'open-failed':
        return `could not open: ${p.error ?? ''}`;
    }
  })();
  return `${settingsText(p.settings)}${p.resynced ? ' after 300 zero bytes' : ''}: ${what}`;
}

/** Opens the port with `settings`, probes, closes. Never throws. */
export async function probeWith(env: DoctorEnv, port: string, settings: LinkSettings, opts: { timeoutMs: number; resync?: boolean }): Promise<ProbeResult> {
  let transport;
  try {
    transport = await env.openPort(port, settings);
  } catch (err) {
    const r: ProbeResult = { settings, outcome: 'open-failed', bytesReceived: 0, framingErrors: 0, packets: 0, error: errorMessage(err) };
    if (err instanceof TransportError) r.errorKind = err.kind;
    return r;
  }
  try {
    return await probeReset(transport, settings, { clock: env.clock, timeoutMs: opts.timeoutMs, ...(opts.resync ? { resync: true } : {}) });
  } finally {
    await transport.close().catch(() => {});
  }
}

function openFailureFinding(port: string, p: ProbeResult): Finding {
  const kind = p.errorKind ?? 'io';
  const fix: Record<string, string> = {
    'not-found': 'check `ls /dev/serial/by-id/` and pass the DK\'s port with --port',
    permission: 'sudo usermod -aG dialout $USER, then log out and back in',
    busy: `close the other program using ${port} (\`fuser -v ${port}\`); keep ModemManager away with the udev rule ATTRS{idVendor}=="1366", ENV{ID_MM_DEVICE_IGNORE}="1"`,
    lost: 'the port disappeared: replug the DK and try again',
  };
  return {
    check: kind === 'busy' ? CheckId.Exclusive : CheckId.Link,
    severity: Severity.Fail,
    title: `cannot open ${port} (${kind})`,
    details: [p.error ?? ''],
    fix: fix[kind] ?? 'replug the DK and try again; if it persists, check `dmesg | tail` for USB errors',
  };
}

/** What a working but non-default setting means for the user. */
function nonDefaultFinding(port: string, w: LinkSettings, details: string[]): Finding {
  if (w.baudRate === DK_LINK.baudRate && !w.rtscts) {
    return {
      check: CheckId.Link,
      severity: Severity.Warn,
      title: `the controller on ${port} answers only with RTS/CTS flow control off`,
      details,
      fix:
        'the firmware or the J-Link VCOM does not drive CTS (its RTS/CTS handling has been reported unreliable, zephyr #83046): ' +
        'run wearable-host with flow control off (--no-rtscts), or rebuild hci_uart with the sample\'s board overlay (hw-flow-control on uart0)',
    };
  }
  return {
    check: CheckId.Link,
    severity: Severity.Warn,
    title: `the controller on ${port} answers at ${settingsText(w)}, not at the DK's ${settingsText(DK_LINK)}`,
    details,
    fix:
      `run wearable-host with --baud ${w.baudRate}${w.rtscts ? '' : ' --no-rtscts'}, or rebuild hci_uart for nrf5340dk/nrf5340/cpunet so the sample's board overlay ` +
      '(current-speed 1000000, hw-flow-control) applies',
  };
}

/** Tries line settings until HCI Reset is answered. */
export async function checkLink(env: DoctorEnv, port: string, opts: LinkCheckOptions = {}): Promise<LinkCheckResult> {
  const timeoutMs = opts.probeTimeoutMs ?? 1000;
  const probes: ProbeResult[] = [];
  const findings: Finding[] = [];
  const attempt = async (s: LinkSettings, resync = false): Promise<ProbeResult> => {
    const r = await probeWith(env, port, s, { timeoutMs, resync });
    probes.push(r);
    env.logger?.debug({ port, settings: s, resync, outcome: r.outcome, bytes: r.bytesReceived }, 'doctor: HCI Reset probe');
    return r;
  };
  const details = (): string[] => probes.map(probeLine);

  let r = await attempt(DK_LINK);
  if (r.outcome === 'open-failed') {
    findings.push(openFailureFinding(port, r));
    return { probes, working: undefined, findings };
  }
  if (r.outcome === 'silent' || r.outcome === 'garbled') r = await attempt(DK_LINK, true);
  if (r.outcome === 'ok') {
    findings.push(
      r.resynced
        ? {
            check: CheckId.Link,
            severity: Severity.Warn,
            title: `HCI Reset answered at ${settingsText(DK_LINK)} only after flushing: the controller was out of step`,
            details: details(),
            fix: 'a previous run left half a packet in the controller (or something else wrote to the port); wearable-host resynchronises at start-up, but if it keeps happening press the DK\'s RESET button and keep other programs off the port',
          }
        : { check: CheckId.Link, severity: Severity.Ok, title: `HCI Reset answered at ${settingsText(DK_LINK)}`, details: details() },
    );
    return { probes, working: DK_LINK, findings };
  }
  if (r.outcome === 'crashed') {
    findings.push({
      check: CheckId.Link,
      severity: Severity.Fail,
      title: 'the controller reported an assert and is hung',
      details: details(),
      fix: 'press the DK\'s RESET button (or power-cycle it) and run doctor again; if it recurs, attach this report to an issue',
    });
    return { probes, working: undefined, findings };
  }
  if (r.outcome === 'refused') {
    findings.push({
      check: CheckId.Link,
      severity: Severity.Fail,
      title: `the controller refused HCI Reset (status 0x${(r.status ?? 0).toString(16).padStart(2, '0')})`,
      details: details(),
      fix: 'press the DK\'s RESET button and try again; a controller that refuses Reset is not usable',
    });
    return { probes, working: undefined, findings };
  }

  if (!opts.quick) {
    for (const baudRate of opts.baudRates ?? COMMON_BAUD_RATES) {
      for (const rtscts of [true, false]) {
        if (baudRate === DK_LINK.baudRate && rtscts === DK_LINK.rtscts) continue;
        const s = { baudRate, rtscts };
        const p = await attempt(s);
        if (p.outcome === 'ok') {
          findings.push(nonDefaultFinding(port, s, details()));
          return { probes, working: s, findings };
        }
        if (p.outcome === 'open-failed' && p.errorKind !== undefined && p.errorKind !== 'io') {
          findings.push(openFailureFinding(port, p));
          return { probes, working: undefined, findings };
        }
      }
    }
  }

  const anyBytes = probes.some((p) => p.bytesReceived > 0);
  findings.push({
    check: CheckId.Link,
    severity: Severity.Fail,
    title: anyBytes
      ? `no HCI Reset answer on ${port}: bytes came back but never a Reset answer`
      : `no HCI Reset answer on ${port}: the controller is silent${opts.quick ? '' : ' at every baud rate, with and without flow control'}`,
    details: details(),
    fix: anyBytes
      ? 'something other than hci_uart is talking on this port (another firmware, a console): flash hci_uart on the network core (firmware/README.md), and check this is the DK\'s first J-Link port'
      : 'check that hci_uart runs on the network core and the empty app-core image was flashed with it (build/empty_app_core), that this is the DK\'s first J-Link port, then press RESET; see firmware/README.md "When wearable-host info gets no answer"',
  });
  return { probes, working: undefined, findings };
}
