/**
 * Everything `wearable-host doctor` touches outside itself, behind one interface so every check
 * is a pure function of it and tests can hand in a fake machine: the file system (/dev, /proc,
 * /sys, /etc/group), the user's groups, the serial port opener and the controller session.
 */
import { access, constants as fsConstants, readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import type { Clock } from '../util/clock.js';
import { RealClock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { Transport } from '../hci/transport.js';
import type { ControllerInfo } from '../hci/controller-info.js';
import type { CommandName, CommandParams, CommandReturn } from '../hci/commands.js';
import { errnoCode } from '../hci/transport-errors.js';
import type { LinkSettings, PortCandidate } from './types.js';

/** The file-system operations the checks need; each resolves, never rejects, except where noted. */
export interface DoctorFs {
  /** Directory entries, or undefined when the directory cannot be read. */
  readdir(path: string): Promise<string[] | undefined>;
  /** File text, or undefined. */
  readFile(path: string): Promise<string | undefined>;
  /** Symbolic link target as stored, or undefined (not a link, gone, no permission). */
  readlink(path: string): Promise<string | undefined>;
  /** Canonical path, or undefined. */
  realpath(path: string): Promise<string | undefined>;
  /** Owner, group and mode bits, or undefined when the path does not exist. */
  stat(path: string): Promise<{ uid: number; gid: number; mode: number } | undefined>;
  /** Whether this process may open `path` for reading and writing. */
  access(path: string): Promise<'ok' | 'missing' | 'denied'>;
}

/** Who runs doctor. */
export interface DoctorUser {
  name: string | undefined;
  uid: number;
  /** Group ids this process has now (a group added with usermod appears only after a new login). */
  groups: number[];
}

/** What the doctor needs from a brought-up controller: its identity and a way to send commands. */
export interface ControllerSession {
  readonly info: ControllerInfo;
  /** Sends a command and resolves with its return parameters; rejects with an HciError. */
  command<N extends CommandName>(name: N, params: CommandParams<N>): Promise<CommandReturn<N>>;
  close(): Promise<void>;
}

export interface DoctorEnv {
  clock: Clock;
  /** `process.platform`: the /dev, /proc and udev checks only mean something on Linux. */
  platform: string;
  fs: DoctorFs;
  user(): DoctorUser;
  /**
   * Ports as `serialport` lists them (vendor ids, serial numbers). May throw: it needs udevadm on
   * Linux, which containers often lack; the doctor then scans /dev itself.
   */
  listPorts(): Promise<PortCandidate[]>;
  /** Opens a serial port (or `tcp://` URL) with these line settings; rejects with a TransportError. */
  openPort(path: string, settings: LinkSettings): Promise<Transport>;
  /** Brings the controller up over an open transport (HCI Reset, identity, buffers) through the Hci driver. */
  openController(transport: Transport, opts: { timeoutMs: number }): Promise<ControllerSession>;
  logger?: Logger;
}

/** The real machine's file system, read-only. */
export const nodeDoctorFs: DoctorFs = {
  async readdir(path) {
    try {
      return await readdir(path);
    } catch {
      return undefined;
    }
  },
  async readFile(path) {
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  async readlink(path) {
    try {
      return await readlink(path);
    } catch {
      return undefined;
    }
  },
  async realpath(path) {
    try {
      return await realpath(path);
    } catch {
      return undefined;
    }
  },
  async stat(path) {
    try {
      const s = await stat(path);
      return { uid: s.uid, gid: s.gid, mode: s.mode };
    } catch {
      return undefined;
    }
  },
  async access(path) {
    try {
      await access(path, fsConstants.R_OK | fsConstants.W_OK);
      return 'ok';
    } catch (err) {
      return errnoCode(err) === 'ENOENT' ? 'missing' : 'denied';
    }
  },
};

/** The current process's user and groups (POSIX; on Windows an empty group list). */
export function currentUser(): DoctorUser {
  const groups = typeof process.getgroups === 'function' ? process.getgroups() : [];
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const name = process.env['USER'] ?? process.env['LOGNAME'];
  return { name, uid, groups };
}

/** Pieces of {@link DoctorEnv} that need other layers (serial transport, Hci driver), supplied by the caller. */
export type DoctorEnvParts = Pick<DoctorEnv, 'openPort' | 'openController' | 'listPorts'> & Partial<Omit<DoctorEnv, 'openPort' | 'openController' | 'listPorts'>>;

/** A real-machine environment around the given port opener, controller opener and port lister. */
export function nodeDoctorEnv(parts: DoctorEnvParts): DoctorEnv {
  return {
    clock: parts.clock ?? new RealClock(),
    platform: parts.platform ?? process.platform,
    fs: parts.fs ?? nodeDoctorFs,
    user: parts.user ?? currentUser,
    listPorts: parts.listPorts,
    openPort: parts.openPort,
    openController: parts.openController,
    ...(parts.logger ? { logger: parts.logger } : {}),
  };
}
