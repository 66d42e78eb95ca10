/**
 * `wearable-host doctor`: runs the checks in order (ports, path, permission, ModemManager,
 * exclusive access, link settings, controller) and collects the findings into one report.
 * Later checks are skipped, with a reason, when an earlier one makes them pointless.
 */
import type { DoctorEnv } from './env.js';
import { checkPortList, dkCandidates, listCandidatePorts, preferredName } from './ports.js';
import { checkHolders, checkModemManager, checkPermission, checkPortPath, isTcpPort, serialPath } from './system.js';
import { checkLink, probeWith } from './link.js';
import { checkController } from './controller.js';
import { errorMessage } from '../hci/transport-errors.js';
import { CheckId, DK_LINK, Severity, type DoctorReport, type Finding } from './types.js';

export interface DoctorOptions {
  /** The port to examine; chosen from the DK-like ports when absent. */
  port?: string;
  /** Per-attempt HCI Reset timeout. Default 1000 ms. */
  probeTimeoutMs?: number;
  /** Timeout for each command during controller bring-up. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Baud rates to try after the DK's own fails. */
  baudRates?: readonly number[];
  /** Most DK-like ports to try when no port is given. Default 4. */
  maxAutoPorts?: number;
}

function skipped(check: Finding['check'], why: string): Finding {
  return { check, severity: Severity.Skipped, title: why };
}

export async function runDoctor(env: DoctorEnv, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const findings: Finding[] = [];
  const report: DoctorReport = {
    port: opts.port,
    portChosen: false,
    candidates: [],
    findings,
    probes: [],
    working: undefined,
    controller: undefined,
    usable: false,
  };
  const finish = (): DoctorReport => {
    report.usable = report.working !== undefined && findings.every((f) => f.severity !== Severity.Fail);
    return report;
  };
  const probeTimeoutMs = opts.probeTimeoutMs ?? 1000;

  const listing = await listCandidatePorts(env);
  report.candidates = listing.candidates;
  findings.push(checkPortList(listing, opts.port !== undefined));

  let port = opts.port;
  if (port === undefined) {
    const dk = dkCandidates(listing).slice(0, opts.maxAutoPorts ?? 4);
    if (dk.length === 0) return finish();
    // The network core's UART is usually the J-Link's first port, but ask each: the one that answers wins.
    let chosen: string | undefined;
    const tried: string[] = [];
    if (dk.length > 1) {
      for (const c of dk) {
        const name = preferredName(c);
        const p = await probeWith(env, name, DK_LINK, { timeoutMs: probeTimeoutMs });
        report.probes.push(p);
        tried.push(`${name}: ${p.outcome}`);
        if (p.outcome === 'ok') {
          chosen = name;
          break;
        }
      }
    }
    port = chosen ?? preferredName(dk[0] as (typeof dk)[number]);
    report.port = port;
    report.portChosen = true;
    findings.push({
      check: CheckId.PortPath,
      severity: Severity.Info,
      title: `no --port given: examining ${port}${chosen ? ' (it answered HCI Reset)' : ''}`,
      ...(tried.length ? { details: tried } : {}),
      fix: `pass --port ${port} to wearable-host`,
    });
  }

  const tcp = isTcpPort(port);
  let blocked = false;
  if (tcp) {
    findings.push(skipped(CheckId.Permission, `${port} is a TCP address: no device node to check`));
  } else if (env.platform === 'win32') {
    findings.push(skipped(CheckId.Permission, 'device node checks are for Linux and macOS'));
  } else {
    const pathFinding = await checkPortPath(env, port, listing.candidates);
    findings.push(pathFinding);
    if (pathFinding.severity === Severity.Fail) blocked = true;
    if (!blocked) {
      const perm = await checkPermission(env, port);
      findings.push(perm);
      if (perm.severity === Severity.Fail) blocked = true;
    }
  }
  if (env.platform === 'linux' && !tcp) {
    const real = (await env.fs.realpath(serialPath(port))) ?? serialPath(port);
    const cand = listing.candidates.find((c) => c.path === real);
    findings.push(await checkModemManager(env, cand?.vendorId));
    if (!blocked) {
      const holders = await checkHolders(env, port);
      findings.push(holders);
      if (holders.severity === Severity.Fail) blocked = true;
    }
  }
  if (blocked) {
    findings.push(skipped(CheckId.Link, 'HCI Reset not tried: the port cannot be opened (see above)'));
    return finish();
  }

  const link = await checkLink(env, port, {
    probeTimeoutMs,
    ...(opts.baudRates ? { baudRates: opts.baudRates } : {}),
    ...(tcp ? { quick: true } : {}),
  });
  report.probes.push(...link.probes);
  findings.push(...link.findings);
  report.working = link.working;
  if (!link.working) {
    findings.push(skipped(CheckId.Identity, 'controller not examined: it did not answer HCI Reset'));
    return finish();
  }

  let transport;
  try {
    transport = await env.openPort(port, link.working);
  } catch (err) {
    findings.push({
      check: CheckId.Identity,
      severity: Severity.Fail,
      title: `could not reopen ${port}: ${errorMessage(err)}`,
      fix: 'replug the DK and run doctor again',
    });
    return finish();
  }
  try {
    const session = await env.openController(transport, { timeoutMs: opts.commandTimeoutMs ?? 2000 });
    try {
      const c = await checkController(session);
      findings.push(...c.findings);
      report.controller = c.summary;
    } finally {
      await session.close().catch(() => {});
    }
  } catch (err) {
    findings.push({
      check: CheckId.Identity,
      severity: Severity.Fail,
      title: `the controller answers HCI Reset but bring-up failed: ${errorMessage(err)}`,
      fix: 'press the DK\'s RESET button and run doctor again; if it fails the same way, reflash hci_uart with firmware/hci_uart.conf',
    });
  } finally {
    await transport.close().catch(() => {});
  }
  return finish();
}
