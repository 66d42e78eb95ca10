/**
 * Host-side checks around the serial port: does it exist, may we open it, who else holds it,
 * and is ModemManager around to probe it. Pure functions over {@link DoctorEnv}; Linux paths
 * (/proc, /etc/group, udev rules), skipped elsewhere.
 */
import type { DoctorEnv } from './env.js';
import { CheckId, Severity, type Finding, type PortCandidate } from './types.js';

export interface ProcessInfo {
  pid: number;
  /** /proc/<pid>/comm. */
  name: string;
}

/** Processes from /proc (pid directories with a readable comm). */
export async function listProcesses(env: DoctorEnv): Promise<ProcessInfo[]> {
  const out: ProcessInfo[] = [];
  for (const e of (await env.fs.readdir('/proc')) ?? []) {
    if (!/^\d+$/.test(e)) continue;
    const comm = await env.fs.readFile(`/proc/${e}/comm`);
    if (comm !== undefined) out.push({ pid: Number(e), name: comm.trim() });
  }
  return out;
}

/** Processes with `path` open (file descriptors in /proc/<pid>/fd pointing at it), like `fuser`. */
export async function portHolders(env: DoctorEnv, path: string, selfPid = process.pid): Promise<ProcessInfo[]> {
  const real = (await env.fs.realpath(path)) ?? path;
  const holders: ProcessInfo[] = [];
  for (const p of await listProcesses(env)) {
    if (p.pid === selfPid) continue;
    const fds = await env.fs.readdir(`/proc/${p.pid}/fd`);
    if (!fds) continue;
    for (const fd of fds) {
      const target = await env.fs.readlink(`/proc/${p.pid}/fd/${fd}`);
      if (target === real || target === path) {
        holders.push(p);
        break;
      }
    }
  }
  return holders;
}

/** Group name for a gid from /etc/group, and its listed members. */
export async function groupEntry(env: DoctorEnv, gid: number): Promise<{ name: string; members: string[] } | undefined> {
  const text = await env.fs.readFile('/etc/group');
  if (!text) return undefined;
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && Number(f[2]) === gid) {
      return { name: f[0] as string, members: (f[3] as string).split(',').map((s) => s.trim()).filter(Boolean) };
    }
  }
  return undefined;
}

export function isTcpPort(port: string): boolean {
  return /^tcp:\/\//i.test(port.trim());
}

/** Strips an optional `serial:` prefix. */
export function serialPath(port: string): string {
  const s = port.trim();
  return /^serial:/i.test(s) ? s.slice(7) : s;
}

/** Does the port exist; is there a stabler by-id name for it. */
export async function checkPortPath(env: DoctorEnv, port: string, candidates: PortCandidate[]): Promise<Finding> {
  const path = serialPath(port);
  const a = await env.fs.access(path);
  if (a === 'missing') {
    const present = candidates.map((c) => c.byId ?? c.path);
    return {
      check: CheckId.PortPath,
      severity: Severity.Fail,
      title: `${path} does not exist`,
      details: present.length ? [`ports present: ${present.join(', ')}`] : ['no serial ports present'],
      fix: 'unplug and replug the DK, then pass one of `ls /dev/serial/by-id/` with --port',
    };
  }
  const real = (await env.fs.realpath(path)) ?? path;
  const c = candidates.find((x) => x.path === real);
  if (c?.byId && !path.startsWith('/dev/serial/by-id/')) {
    return {
      check: CheckId.PortPath,
      severity: Severity.Info,
      title: `${path} exists; its stable name is ${c.byId}`,
      fix: `use --port ${c.byId}: /dev/ttyACM numbers change with plug order`,
    };
  }
  return { check: CheckId.PortPath, severity: Severity.Ok, title: real === path ? `${path} exists` : `${path} exists (-> ${real})` };
}

/** May this process open the port read/write; if not, which group to join (or re-login for). */
export async function checkPermission(env: DoctorEnv, port: string): Promise<Finding> {
  const path = serialPath(port);
  const a = await env.fs.access(path);
  if (a === 'ok') return { check: CheckId.Permission, severity: Severity.Ok, title: `read/write access to ${path}` };
  if (a === 'missing') return { check: CheckId.Permission, severity: Severity.Skipped, title: `${path} does not exist` };
  const st = await env.fs.stat(path);
  const user = env.user();
  const group = st ? await groupEntry(env, st.gid) : undefined;
  const groupName = group?.name ?? (st ? `gid ${st.gid}` : 'dialout');
  const details: string[] = [];
  if (st) details.push(`${path}: owner uid ${st.uid}, group ${groupName}, mode ${(st.mode & 0o777).toString(8)}`);
  details.push(`this process: uid ${user.uid}${user.name ? ` (${user.name})` : ''}, groups ${user.groups.join(',') || 'none'}`);
  const listed = user.name !== undefined && group !== undefined && group.members.includes(user.name);
  const inGroupNow = st !== undefined && user.groups.includes(st.gid);
  if (listed && !inGroupNow) {
    return {
      check: CheckId.Permission,
      severity: Severity.Fail,
      title: `no read/write access to ${path}: you were added to group ${groupName}, but this login session predates it`,
      details,
      fix: `log out and back in (or run \`newgrp ${groupName}\` in this shell), then try again`,
    };
  }
  return {
    check: CheckId.Permission,
    severity: Severity.Fail,
    title: `no read/write access to ${path} (group ${groupName})`,
    details,
    fix: `sudo usermod -aG ${group?.name ?? 'dialout'} $USER, then log out and back in`,
  };
}

/** Udev rules that tell ModemManager to ignore a USB vendor: (file, line) pairs. */
async function modemManagerIgnoreRules(env: DoctorEnv, vendorId: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of ['/etc/udev/rules.d', '/run/udev/rules.d', '/lib/udev/rules.d', '/usr/lib/udev/rules.d']) {
    for (const f of ((await env.fs.readdir(dir)) ?? []).filter((n) => n.endsWith('.rules')).sort()) {
      const text = await env.fs.readFile(`${dir}/${f}`);
      if (!text) continue;
      for (const line of text.split('\n')) {
        const l = line.trim();
        if (l.startsWith('#')) continue;
        if (/ID_MM_DEVICE_IGNORE\}?\s*=\s*"1"/.test(l) && new RegExp(`idVendor\\}?\\s*==\\s*"${vendorId}"`, 'i').test(l)) {
          found.push(`${dir}/${f}`);
          break;
        }
      }
    }
  }
  return found;
}

/** Is ModemManager running, and if so, is it told to keep off the DK's USB vendor. */
export async function checkModemManager(env: DoctorEnv, vendorId: string | undefined): Promise<Finding> {
  const procs = (await listProcesses(env)).filter((p) => p.name === 'ModemManager');
  if (procs.length === 0) return { check: CheckId.ModemManager, severity: Severity.Ok, title: 'ModemManager is not running' };
  const vid = vendorId ?? '1366';
  const rules = await modemManagerIgnoreRules(env, vid);
  const pids = procs.map((p) => p.pid).join(', ');
  if (rules.length > 0) {
    return {
      check: CheckId.ModemManager,
      severity: Severity.Ok,
      title: `ModemManager is running (pid ${pids}) and told to ignore USB vendor ${vid}`,
      details: rules.map((r) => `rule in ${r}`),
    };
  }
  return {
    check: CheckId.ModemManager,
    severity: Severity.Warn,
    title: `ModemManager is running (pid ${pids}) and may probe the DK's port with AT commands`,
    details: ['its probes arrive at the controller as garbage and can hold the port while wearable-host opens it'],
    fix: `echo 'ATTRS{idVendor}=="${vid}", ENV{ID_MM_DEVICE_IGNORE}="1"' | sudo tee /etc/udev/rules.d/99-wearable-host-jlink.rules && sudo udevadm control --reload-rules && sudo udevadm trigger, then replug the DK (or stop ModemManager if you have no modem)`,
  };
}

/** Does another process hold the port open. */
export async function checkHolders(env: DoctorEnv, port: string): Promise<Finding> {
  const path = serialPath(port);
  const holders = await portHolders(env, path);
  if (holders.length === 0) return { check: CheckId.Exclusive, severity: Severity.Ok, title: `no other process has ${path} open` };
  const list = holders.map((h) => `${h.name} (pid ${h.pid})`).join(', ');
  const real = (await env.fs.realpath(path)) ?? path;
  if (/^\/dev\/pts\/\d+$/.test(real) && holders.every((h) => h.name === 'socat')) {
    // A pseudo-terminal's other end is held by the program behind it: `wearable-host sim-controller --pty` bridges with socat.
    return { check: CheckId.Exclusive, severity: Severity.Info, title: `${path} is a pseudo-terminal bridged by ${list} (the simulator's --pty mode does this)` };
  }
  const mm = holders.some((h) => h.name === 'ModemManager');
  return {
    check: CheckId.Exclusive,
    severity: Severity.Fail,
    title: `${path} is open in another process: ${list}`,
    fix: mm
      ? 'ModemManager is probing it: add the udev rule (see the modemmanager finding) and replug the DK'
      : `close it (another wearable-host, screen, minicom, a Wireshark capture on the port?); \`fuser -v ${path}\` shows the same`,
  };
}
