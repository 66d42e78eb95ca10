/**
 * Which serial ports might be the DK. `serialport`'s list needs udevadm on Linux and fails without
 * it (containers), so the list is also built from /dev/serial/by-id, /dev/ttyACM* / ttyUSB* and
 * the USB attributes in /sys. SEGGER (0x1366) is the DK's on-board J-Link; Nordic (0x1915) is a
 * Nordic USB device (the nRF5340's own USB, a dongle).
 */
import type { DoctorEnv } from './env.js';
import { CheckId, Severity, type Finding, type PortCandidate, type PortKind } from './types.js';

export const SEGGER_VENDOR_ID = '1366';
export const NORDIC_VENDOR_ID = '1915';

const BY_ID_DIR = '/dev/serial/by-id';
/** USB serial device nodes worth listing (CDC ACM, USB-serial adapters). */
const TTY_RE = /^tty(ACM|USB)\d+$/;

function hex4(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().toLowerCase().replace(/^0x/, '');
  return /^[0-9a-f]{1,4}$/.test(t) ? t.padStart(4, '0') : undefined;
}

/** What a port is, from its USB vendor id or, failing that, its manufacturer string or by-id name. */
export function classifyPort(c: PortCandidate): PortKind {
  const vid = hex4(c.vendorId);
  if (vid === SEGGER_VENDOR_ID) return 'segger-jlink';
  if (vid === NORDIC_VENDOR_ID) return 'nordic';
  const text = `${c.manufacturer ?? ''} ${c.byId ?? ''}`;
  if (/segger|j-link/i.test(text)) return 'segger-jlink';
  if (/nordic/i.test(text)) return 'nordic';
  return 'other';
}

export function portKindText(kind: PortKind): string {
  switch (kind) {
    case 'segger-jlink':
      return 'SEGGER J-Link (DK debugger, USB 1366)';
    case 'nordic':
      return 'Nordic Semiconductor USB (1915)';
    case 'other':
      return 'other serial device';
  }
}

/** `usb-SEGGER_J-Link_001050012345-if00` -> interface `00`. */
function interfaceFromById(byId: string | undefined): string | undefined {
  const m = byId ? /-if(\d+)(?:-port\d+)?$/.exec(byId) : null;
  return m ? (m[1] as string) : undefined;
}

async function sysfsAttributes(env: DoctorEnv, ttyName: string): Promise<Partial<PortCandidate>> {
  // /sys/class/tty/ttyACM0/device -> .../usb1/1-2/1-2:1.0 (the USB interface); its parent is the device.
  const iface = await env.fs.realpath(`/sys/class/tty/${ttyName}/device`);
  if (!iface) return {};
  const dev = iface.slice(0, iface.lastIndexOf('/'));
  const read = async (p: string): Promise<string | undefined> => (await env.fs.readFile(p))?.trim() || undefined;
  const out: Partial<PortCandidate> = {};
  const vid = hex4(await read(`${dev}/idVendor`));
  const pid = hex4(await read(`${dev}/idProduct`));
  const man = await read(`${dev}/manufacturer`);
  const serial = await read(`${dev}/serial`);
  const ifn = await read(`${iface}/bInterfaceNumber`);
  if (vid) out.vendorId = vid;
  if (pid) out.productId = pid;
  if (man) out.manufacturer = man;
  if (serial) out.serialNumber = serial;
  if (ifn) out.interfaceNumber = ifn.padStart(2, '0');
  return out;
}

export interface PortListing {
  candidates: (PortCandidate & { kind: PortKind })[];
  /** Why `serialport`'s list failed, when it did. */
  listError?: string;
}

/**
 * Every serial port that could be the DK, DK-like ones first (J-Link before Nordic, lower USB
 * interface first: the network core's UART is usually the J-Link's first port).
 */
export async function listCandidatePorts(env: DoctorEnv): Promise<PortListing> {
  const byPath = new Map<string, PortCandidate>();
  let listError: string | undefined;
  try {
    for (const p of await env.listPorts()) byPath.set(p.path, { ...p });
  } catch (err) {
    listError = err instanceof Error ? err.message : String(err);
  }
  if (env.platform === 'linux') {
    // Drop on-board UARTs serialport also lists (ttyS*): never a USB DK.
    for (const path of [...byPath.keys()]) {
      const c = byPath.get(path) as PortCandidate;
      if (/^\/dev\/ttyS\d+$/.test(path) && !c.vendorId) byPath.delete(path);
    }
    for (const name of (await env.fs.readdir('/dev')) ?? []) {
      if (TTY_RE.test(name) && !byPath.has(`/dev/${name}`)) byPath.set(`/dev/${name}`, { path: `/dev/${name}` });
    }
    for (const link of ((await env.fs.readdir(BY_ID_DIR)) ?? []).sort()) {
      const full = `${BY_ID_DIR}/${link}`;
      const target = await env.fs.realpath(full);
      if (!target) continue;
      const c = byPath.get(target) ?? { path: target };
      c.byId ??= full;
      byPath.set(target, c);
    }
    for (const c of byPath.values()) {
      const name = c.path.slice(c.path.lastIndexOf('/') + 1);
      if (!c.vendorId || !c.interfaceNumber) {
        const sys = await sysfsAttributes(env, name);
        for (const k of ['vendorId', 'productId', 'manufacturer', 'serialNumber', 'interfaceNumber'] as const) {
          if (c[k] === undefined && sys[k] !== undefined) c[k] = sys[k];
        }
      }
      c.interfaceNumber ??= interfaceFromById(c.byId);
      const vid = hex4(c.vendorId);
      if (vid) c.vendorId = vid;
    }
  }
  const rank: Record<PortKind, number> = { 'segger-jlink': 0, nordic: 1, other: 2 };
  const candidates = [...byPath.values()]
    .map((c) => ({ ...c, kind: classifyPort(c) }))
    .sort(
      (a, b) =>
        rank[a.kind] - rank[b.kind] ||
        (a.serialNumber ?? '').localeCompare(b.serialNumber ?? '') ||
        Number(a.interfaceNumber ?? 99) - Number(b.interfaceNumber ?? 99) ||
        a.path.localeCompare(b.path, undefined, { numeric: true }),
    );
  return listError === undefined ? { candidates } : { candidates, listError };
}

/** The name to show and pass on: the by-id link when there is one. */
export function preferredName(c: PortCandidate): string {
  return c.byId ?? c.path;
}

/** One line per candidate: `/dev/serial/by-id/... -> /dev/ttyACM0: SEGGER J-Link ..., interface 00, serial 1050...`. */
export function describeCandidate(c: PortCandidate & { kind: PortKind }): string {
  const parts = [portKindText(c.kind)];
  if (c.interfaceNumber !== undefined) parts.push(`interface ${c.interfaceNumber}`);
  if (c.serialNumber) parts.push(`serial ${c.serialNumber}`);
  return `${c.byId ? `${c.byId} -> ${c.path}` : c.path}: ${parts.join(', ')}`;
}

/** DK-like candidates (J-Link or Nordic USB), in preference order. */
export function dkCandidates(list: PortListing): (PortCandidate & { kind: PortKind })[] {
  return list.candidates.filter((c) => c.kind !== 'other');
}

/** The finding about what ports exist. */
export function checkPortList(list: PortListing, portGiven: boolean): Finding {
  const details = list.candidates.map(describeCandidate);
  if (list.listError) details.push(`(serialport could not list ports: ${list.listError}; read /dev, /dev/serial/by-id and /sys instead)`);
  const dk = dkCandidates(list);
  if (list.candidates.length === 0) {
    return {
      check: CheckId.Ports,
      severity: portGiven ? Severity.Info : Severity.Fail,
      title: 'no USB serial ports found',
      details,
      fix: "plug the DK into the USB connector of its on-board J-Link debugger, set its power switch to ON, and check `ls /dev/serial/by-id/`",
    };
  }
  if (dk.length === 0) {
    return {
      check: CheckId.Ports,
      severity: portGiven ? Severity.Info : Severity.Fail,
      title: `${list.candidates.length} serial port(s), none from a SEGGER J-Link (1366) or Nordic (1915) USB device`,
      details,
      fix: 'connect the nRF5340-DK through its J-Link USB connector; if it is connected through something else, pass its port with --port',
    };
  }
  const jlinks = new Set(dk.filter((c) => c.kind === 'segger-jlink').map((c) => c.serialNumber ?? c.path));
  return {
    check: CheckId.Ports,
    severity: Severity.Ok,
    title: `${dk.length} DK-like serial port(s)${jlinks.size > 1 ? ` on ${jlinks.size} J-Link probes` : ''}`,
    details,
  };
}
