/**
 * Serves N virtual controllers on one virtual air to hosts in other processes: one TCP port per
 * controller on 127.0.0.1, and optionally a pseudo-terminal per controller bridged to that port
 * by socat, so a host opens `/dev/pts/N` exactly as it would open a DK's `/dev/ttyACM0`.
 *
 * A new host connection on a controller's port resets nothing by itself (the host sends HCI
 * Reset, as with a real DK); a second host connecting replaces the first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveTcp, type TcpServer } from '../hci/tcp-transport.js';
import type { Transport } from '../hci/transport.js';
import { RealClock, type Clock } from '../util/clock.js';
import { WearableHostError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import { VirtualAir, type VirtualAirOptions } from './air.js';
import type { VirtualController, VirtualControllerOptions } from './controller.js';

export interface ServeControllersOptions {
  /** Number of controllers, >= 1. */
  count: number;
  /** First TCP port (controller i listens on tcp + i); 0 picks free ports. Default 0. */
  tcp?: number;
  /** Also bridge each controller to a pseudo-terminal with socat. */
  pty?: boolean;
  /** Deterministic identities and air randomness. */
  seed?: string | number;
  log?: Logger;
  /** Default: real time. */
  clock?: Clock;
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /** socat executable. Default `socat` from PATH. */
  socatPath?: string;
  /** Options given to every controller. */
  controller?: Omit<VirtualControllerOptions, 'name' | 'seed'>;
  /** Air options (connection event model). */
  air?: Pick<VirtualAirOptions, 'connectionEventIntervalMs' | 'maxPdusPerEvent' | 'connectionEventLengthUs' | 'firmware'>;
}

export interface ServedController {
  readonly index: number;
  readonly controller: VirtualController;
  readonly host: string;
  readonly port: number;
  /** Real pty path (`/dev/pts/N`) when served on a pty. */
  readonly pty?: string;
  /** The stable symlink socat keeps pointing at the pty. */
  readonly ptyLink?: string;
  /** `PTY /dev/pts/N` or `TCP 127.0.0.1:PORT`. */
  readonly line: string;
}

export interface ServedControllers {
  readonly air: VirtualAir;
  readonly controllers: readonly ServedController[];
  /** One line per controller, as the CLI prints them. */
  readonly lines: readonly string[];
  /** Stops socat, the TCP servers and the air. */
  close(): Promise<void>;
}

function waitFor(clock: Clock, cond: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  return new Promise((resolve) => {
    const start = clock.now();
    const poll = (): void => {
      if (cond()) return resolve(true);
      if (clock.now() - start >= timeoutMs) return resolve(false);
      clock.setTimeout(poll, stepMs);
    };
    poll();
  });
}

/** Starts `socat PTY,... TCP:host:port` and resolves with the pty's real path. */
async function startSocat(
  socatPath: string,
  link: string,
  host: string,
  port: number,
  clock: Clock,
  log: Logger,
): Promise<{ child: ChildProcess; pty: string }> {
  // raw,echo=0: a byte-transparent line; ignoreeof: a host closing the pty does not end the
  // bridge, so the same path can be opened again.
  const child = spawn(socatPath, [`PTY,raw,echo=0,link=${link},ignoreeof`, `TCP:${host}:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let failure: Error | undefined;
  let exited = false;
  child.once('error', (err: NodeJS.ErrnoException) => {
    failure =
      err.code === 'ENOENT'
        ? new WearableHostError('sim', `socat is not installed (needed for --pty): install it with \`apt-get install socat\`, or serve on TCP with --tcp PORT`, { cause: err })
        : new WearableHostError('sim', `cannot start socat for ${link}: ${err.message}`, { cause: err });
  });
  child.once('exit', () => {
    exited = true;
  });
  const ok = await waitFor(clock, () => failure !== undefined || exited || existsSync(link), 5000);
  if (failure) throw failure;
  if (!ok || exited || !existsSync(link)) {
    if (!exited) child.kill('SIGTERM');
    throw new WearableHostError('sim', `socat did not create the pty ${link}${stderr ? `: ${stderr.trim()}` : ''}; try --tcp PORT instead`);
  }
  const pty = realpathSync(link);
  log.debug({ link, pty, pid: child.pid }, 'socat bridge up');
  return { child, pty };
}

/**
 * Serves `count` controllers on one air. Resolves once every port (and pty) is ready; the caller
 * prints `lines` and later calls `close()`.
 */
export async function serveControllers(opts: ServeControllersOptions): Promise<ServedControllers> {
  if (!Number.isInteger(opts.count) || opts.count < 1) throw new WearableHostError('sim', `--count must be a whole number >= 1, got ${opts.count}`);
  const log = opts.log ?? silentLogger();
  const clock = opts.clock ?? new RealClock();
  const host = opts.host ?? '127.0.0.1';
  const air = new VirtualAir({ clock, log, ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...(opts.air ?? {}) });
  const servers: TcpServer[] = [];
  const children: ChildProcess[] = [];
  let dir: string | undefined;
  const served: ServedController[] = [];

  const close = async (): Promise<void> => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
        c.kill('SIGTERM');
        await Promise.race([gone, new Promise<void>((resolve) => clock.setTimeout(resolve, 2000))]);
      }
    }
    children.length = 0;
    await Promise.all(servers.map((s) => s.close()));
    servers.length = 0;
    air.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  };

  try {
    for (let i = 0; i < opts.count; i++) {
      const controller = air.createController({ ...(opts.controller ?? {}), name: `ctrl${i}` });
      let hostConnections = 0;
      const onConnection = (t: Transport): void => {
        hostConnections++;
        const previous = controller.attachedTransport;
        if (previous && previous !== t) {
          log.info({ controller: controller.name }, 'a new host connected; the previous connection is closed');
          void previous.close();
        }
        controller.attach(t);
      };
      const basePort = opts.tcp ?? 0;
      const server = await serveTcp(basePort === 0 ? 0 : basePort + i, host, onConnection);
      servers.push(server);
      if (opts.pty) {
        dir ??= mkdtempSync(join(tmpdir(), 'wearable-host-sim-'));
        const link = join(dir, `ctrl${i}`);
        const { child, pty } = await startSocat(opts.socatPath ?? 'socat', link, host, server.port, clock, log);
        children.push(child);
        // socat connects to the TCP port only after it made the pty: wait for that connection, or a
        // host connecting over TCP right after this resolves could be displaced by it.
        if (!(await waitFor(clock, () => hostConnections > 0 || child.exitCode !== null, 5000)) || hostConnections === 0) {
          throw new WearableHostError('sim', `socat made ${pty} but did not connect it to ${host}:${server.port}; try --tcp PORT instead`);
        }
        child.once('exit', (code, signal) => {
          if (servers.length > 0) log.warn({ controller: controller.name, code, signal }, `socat bridging ${pty} exited`);
        });
        served.push({ index: i, controller, host, port: server.port, pty, ptyLink: link, line: `PTY ${pty}` });
      } else {
        served.push({ index: i, controller, host, port: server.port, line: `TCP ${host}:${server.port}` });
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { air, controllers: served, lines: served.map((s) => s.line), close };
}
