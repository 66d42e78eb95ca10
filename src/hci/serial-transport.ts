/**
 * H:4 over a serial port (the nRF5340-DK's VCOM running Zephyr `hci_uart`), on `serialport` 13.
 *
 * Defaults follow the controller: 1,000,000 baud, 8N1, RTS/CTS on (the sample's overlay enables
 * hardware flow control), exclusive open. Writes are cut into chunks of at most 64 bytes, each
 * handed to the OS only after the previous one completed: single writes over 64 bytes have been
 * reported truncated through the J-Link VCOM at 1 Mbaud (docs/field-notes.md, zephyr #83046).
 *
 * Unplug detection: on Linux a vanished tty often reads as end-of-file (0 bytes), which
 * `@serialport/bindings-cpp` 13 retries forever instead of reporting (serialport/bindings-cpp
 * #162; PR #164 was not merged), so no 'close' ever comes. A presence check therefore stats the
 * port path every `presenceCheckMs` and declares the port lost when the node is gone or is a
 * different device (unplugged and plugged back in).
 */
import { readFile, readdir, realpath, stat, access, constants as fsConstants } from 'node:fs/promises';
import type { SerialPort } from 'serialport';
import { TypedEmitter } from '../util/emitter.js';
import { RealClock, type Clock, type TimerHandle } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { Fifo } from '../util/fifo.js';
import type { Transport, TransportEvents } from './transport.js';
import { TransportError, errnoCode, errorMessage } from './transport-errors.js';

export interface SerialTransportOptions {
  /** Default 1,000,000 (Zephyr `hci_uart` on the nRF5340-DK). */
  baudRate?: number;
  /** RTS/CTS hardware flow control. Default true; turn off for ptys or a VCOM with broken CTS. */
  rtscts?: boolean;
  /** Exclusive open (flock). Default true. */
  lock?: boolean;
  /** Largest single write handed to the OS. Default 64 (J-Link VCOM truncation). */
  maxWriteChunk?: number;
  /** Wait for each chunk to leave the UART (tcdrain) before the next one. Default false. */
  drainEachChunk?: boolean;
  logger?: Logger;
  /** Times the presence check (and {@link listSerialPorts}'s limit). Default RealClock (unref'd timers). */
  clock?: Clock;
  /** How often to check that the port's device node still exists; 0 turns it off. Default 1000 ms. */
  presenceCheckMs?: number;
}

export interface SerialTransportStats {
  bytesWritten: number;
  bytesReceived: number;
  /** Number of separate OS writes (each at most `maxWriteChunk` bytes). */
  chunksWritten: number;
  /** Largest chunk handed to the OS so far. */
  largestChunk: number;
}

interface PendingWrite {
  data: Uint8Array;
  off: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

type SerialPortModule = typeof import('serialport');
let serialportModule: Promise<SerialPortModule> | undefined;

/** Loads `serialport` (and its native binding) on first use, so TCP and memory users never need it. */
async function loadSerialport(port: string): Promise<SerialPortModule> {
  serialportModule ??= import('serialport');
  try {
    return await serialportModule;
  } catch (err) {
    serialportModule = undefined;
    throw new TransportError(
      'io',
      port,
      `cannot load the serialport native module (${errorMessage(err)}): reinstall with \`npm ci\` on this machine, or use --port tcp://host:port`,
      { cause: err },
    );
  }
}

/**
 * A regular file or a directory is never a serial port: say so (the serial library would report a
 * raw ioctl or EISDIR error). Character devices, and paths stat() cannot see (COM3), go through.
 */
async function refuseNonDevice(path: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return; // the open reports a missing path with its own advice
  }
  if (!st.isFile() && !st.isDirectory()) return;
  const what = st.isDirectory() ? 'a directory' : 'a regular file';
  throw new TransportError(
    'not-found',
    path,
    `--port ${path} is ${what}, not a serial port. Give the DK's port (ls -l /dev/serial/by-id/, or /dev/ttyACM0), ` +
      `a pseudo-terminal from \`wearable-host sim-controller --pty\`, or tcp://host:port; \`wearable-host doctor\` lists the ports it finds.`,
  );
}

export class SerialTransport extends TypedEmitter<TransportEvents> implements Transport {
  readonly description: string;
  readonly stats: SerialTransportStats = { bytesWritten: 0, bytesReceived: 0, chunksWritten: 0, largestChunk: 0 };
  private readonly maxChunk: number;
  private readonly drainEachChunk: boolean;
  private readonly log: Logger;
  private readonly queue = new Fifo<PendingWrite>();
  private writing = false;
  private closing: Promise<void> | undefined;
  private closed = false;
  private discarding = 0;
  private readonly clock: Clock;
  private presenceTimer: TimerHandle | undefined;

  private constructor(
    private readonly port: SerialPort,
    readonly path: string,
    readonly baudRate: number,
    opts: SerialTransportOptions,
    private readonly node: { dev: number; ino: number; rdev: number } | undefined,
  ) {
    super();
    this.clock = opts.clock ?? new RealClock();
    this.description = `${path} @ ${baudRate} baud`;
    this.maxChunk = Math.max(1, opts.maxWriteChunk ?? 64);
    this.drainEachChunk = opts.drainEachChunk ?? false;
    this.log = (opts.logger ?? silentLogger()).child({ transport: this.description });
    port.on('data', (chunk: Buffer) => {
      if (this.discarding > 0) return;
      this.stats.bytesReceived += chunk.length;
      this.emit('data', chunk);
    });
    port.on('error', (err: Error) => {
      // Errors without a callback land here; the 'close' event carries disconnects.
      this.log.warn({ err: errorMessage(err) }, 'serial port error');
    });
    port.on('close', (err: Error | null | undefined) => this.onPortClose(err ?? undefined));
    const every = opts.presenceCheckMs ?? 1000;
    if (node && every > 0) this.schedulePresenceCheck(every);
  }

  private schedulePresenceCheck(every: number): void {
    this.presenceTimer = this.clock.setTimeout(() => {
      this.presenceTimer = undefined;
      void this.checkPresence(every);
    }, every);
  }

  private async checkPresence(every: number): Promise<void> {
    if (this.closed) return;
    let why: string | undefined;
    try {
      const st = await stat(this.path);
      const n = this.node;
      if (n && (st.rdev !== n.rdev || st.ino !== n.ino || st.dev !== n.dev)) why = 'the device node now belongs to another device';
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') why = 'the device node disappeared';
    }
    if (this.closed) return;
    if (why === undefined) {
      this.schedulePresenceCheck(every);
      return;
    }
    this.log.error({ why }, 'serial port vanished');
    // Report first, then close the fd, which also ends the binding's end-of-file read loop.
    this.onPortClose(new Error(why));
    if (this.port.isOpen) this.port.close(() => {});
  }

  /**
   * Opens `path` (prefer `/dev/serial/by-id/...`). Rejects with a {@link TransportError} whose
   * kind is 'not-found', 'permission', 'busy' or 'io' and whose message says what to do.
   */
  static async open(path: string, opts: SerialTransportOptions = {}): Promise<SerialTransport> {
    await refuseNonDevice(path);
    const { SerialPort } = await loadSerialport(path);
    const baudRate = opts.baudRate ?? 1_000_000;
    let port: SerialPort;
    try {
      port = new SerialPort({
        path,
        baudRate,
        dataBits: 8,
        parity: 'none',
        stopBits: 1,
        rtscts: opts.rtscts ?? true,
        lock: opts.lock ?? true,
        autoOpen: false,
      });
    } catch (err) {
      throw new TransportError('io', path, `cannot open serial port ${path}: ${errorMessage(err)}`, { cause: err });
    }
    await new Promise<void>((resolve, reject) => {
      port.open((err) => (err ? reject(err) : resolve()));
    }).catch(async (err: unknown) => {
      throw await explainSerialOpenError(path, err, opts);
    });
    let node: { dev: number; ino: number; rdev: number } | undefined;
    try {
      const st = await stat(path);
      node = { dev: st.dev, ino: st.ino, rdev: st.rdev };
    } catch {
      node = undefined; // not a file-system node (COM3): no presence check
    }
    const t = new SerialTransport(port, path, baudRate, opts, node);
    t.log.debug({ rtscts: opts.rtscts ?? true, maxWriteChunk: t.maxChunk }, 'serial port open');
    return t;
  }

  get isOpen(): boolean {
    return !this.closed && this.closing === undefined && this.port.isOpen;
  }

  write(data: Uint8Array): Promise<void> {
    if (!this.isOpen) {
      return Promise.reject(new TransportError('closed', this.path, `serial port ${this.path} is closed: cannot write`));
    }
    if (data.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ data, off: 0, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.writing) return;
    const p = this.queue.peek();
    if (!p) return;
    this.writing = true;
    const end = Math.min(p.data.length, p.off + this.maxChunk);
    const chunk = Buffer.from(p.data.buffer, p.data.byteOffset + p.off, end - p.off);
    this.stats.chunksWritten++;
    if (chunk.length > this.stats.largestChunk) this.stats.largestChunk = chunk.length;
    this.port.write(chunk, (err) => {
      if (err) {
        this.writing = false;
        this.failWrites(this.closed ? this.lostError(err) : new TransportError('io', this.path, `write to serial port ${this.path} failed: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      this.stats.bytesWritten += chunk.length;
      const next = (): void => {
        this.writing = false;
        p.off = end;
        if (p.off >= p.data.length) {
          if (this.queue.peek() === p) this.queue.shift();
          p.resolve();
        }
        if (!this.closed) this.pump();
      };
      if (this.drainEachChunk) {
        this.port.drain((derr) => {
          if (derr) {
            this.writing = false;
            this.failWrites(new TransportError('io', this.path, `drain on serial port ${this.path} failed: ${errorMessage(derr)}`, { cause: derr }));
            return;
          }
          next();
        });
      } else {
        next();
      }
    });
  }

  private failWrites(err: Error): void {
    for (const p of this.queue.drain()) p.reject(err);
  }

  /**
   * Discards input not yet read (tcflush; note it also discards output the OS has not sent yet)
   * and any bytes read while the flush runs.
   */
  flushInput(): Promise<void> {
    if (!this.isOpen) return Promise.resolve();
    this.discarding++;
    return new Promise<void>((resolve, reject) => {
      this.port.flush((err) => {
        this.discarding--;
        if (err) reject(new TransportError('io', this.path, `flushing serial port ${this.path} failed: ${errorMessage(err)}`, { cause: err }));
        else resolve();
      });
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.clock.clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    this.closing ??= new Promise<void>((resolve) => {
      this.failWrites(new TransportError('closed', this.path, `serial port ${this.path} was closed before the write completed`));
      if (!this.port.isOpen) {
        this.onPortClose(undefined);
        resolve();
        return;
      }
      this.port.close((err) => {
        if (err && !this.closed) {
          this.log.warn({ err: errorMessage(err) }, 'closing serial port failed');
          this.onPortClose(undefined);
        }
        resolve();
      });
    });
    return this.closing;
  }

  private lostError(cause: unknown): TransportError {
    return new TransportError(
      'lost',
      this.path,
      `serial port ${this.path} went away (${errorMessage(cause)}): USB unplugged or the board reset? Reconnect it, check \`ls /dev/serial/by-id/\`, and start again`,
      { cause },
    );
  }

  private onPortClose(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    const asked = this.closing !== undefined;
    const error = asked && !err ? undefined : this.lostError(err ?? new Error('port closed'));
    if (error) {
      this.log.error({ err: error.message }, 'serial port lost');
      this.failWrites(error);
    }
    this.emit('close', error);
  }
}

/** What `listSerialPorts` knows about a port. */
export interface SerialPortSummary {
  path: string;
  manufacturer?: string;
  serialNumber?: string;
  vendorId?: string;
  productId?: string;
  /** `/dev/serial/by-id/...` link pointing at this port, when there is one. */
  byId?: string;
}

/** SEGGER's USB vendor id: the on-board J-Link of Nordic DKs. */
const SEGGER_VENDOR_ID = '1366';

/** One line per port: `/dev/ttyACM0 (SEGGER J-Link, /dev/serial/by-id/usb-SEGGER_J-Link_...)`. */
export function formatSerialPort(p: SerialPortSummary): string {
  const parts: string[] = [];
  if (p.manufacturer) parts.push(p.manufacturer);
  else if (p.vendorId?.toLowerCase() === SEGGER_VENDOR_ID) parts.push('SEGGER J-Link');
  if (p.byId) parts.push(p.byId);
  return parts.length ? `${p.path} (${parts.join(', ')})` : p.path;
}

async function byIdLinks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const dir = '/dev/serial/by-id';
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const n of names.sort()) {
    try {
      out.set(await realpath(`${dir}/${n}`), `${dir}/${n}`);
    } catch {
      // dangling link: ignore
    }
  }
  return out;
}

/**
 * Lists serial ports. Never throws: `SerialPort.list()` needs udevadm on Linux and fails without
 * it (containers); then the ports are read from /dev instead and `error` says why.
 */
export async function listSerialPorts(opts: { clock?: Clock; timeoutMs?: number } = {}): Promise<{ ports: SerialPortSummary[]; error?: string }> {
  const clock = opts.clock ?? new RealClock();
  const links = await byIdLinks();
  let error: string | undefined;
  let ports: SerialPortSummary[] | undefined;
  try {
    const { SerialPort } = await import('serialport');
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => reject(new Error('listing ports timed out')), opts.timeoutMs ?? 5000);
    });
    try {
      const listed = await Promise.race([SerialPort.list(), timeout]);
      ports = listed.map((p) => {
        const s: SerialPortSummary = { path: p.path };
        if (p.manufacturer) s.manufacturer = p.manufacturer;
        if (p.serialNumber) s.serialNumber = p.serialNumber;
        if (p.vendorId) s.vendorId = p.vendorId;
        if (p.productId) s.productId = p.productId;
        return s;
      });
    } finally {
      clock.clearTimeout(timer);
    }
  } catch (err) {
    error = `cannot list serial ports through serialport (${errorMessage(err)})`;
  }
  if (!ports) {
    ports = [];
    try {
      for (const n of (await readdir('/dev')).sort()) {
        if (/^tty(ACM|USB|AMA)\d+$/.test(n)) ports.push({ path: `/dev/${n}` });
      }
    } catch {
      // not a Unix-like /dev: nothing more to offer
    }
  }
  for (const p of ports) {
    const link = links.get(p.path);
    if (link) p.byId = link;
  }
  return error === undefined ? { ports } : { ports, error };
}

async function groupOf(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    const groups = await readFile('/etc/group', 'utf8');
    for (const line of groups.split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === st.gid) return f[0];
    }
  } catch {
    // unknown
  }
  return undefined;
}

/** Decides the kind of an open failure from the OS error code or the binding's message. */
export function classifySerialOpenError(err: unknown): 'not-found' | 'permission' | 'busy' | 'io' {
  const code = errnoCode(err);
  const msg = errorMessage(err);
  if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO' || /no such file|no such device|file not found|cannot find the file/i.test(msg)) return 'not-found';
  if (code === 'EACCES' || code === 'EPERM' || /permission denied|access denied|operation not permitted/i.test(msg)) return 'permission';
  if (code === 'EBUSY' || code === 'EAGAIN' || /cannot lock port|resource temporarily unavailable|device or resource busy|resource busy/i.test(msg)) return 'busy';
  return 'io';
}

/**
 * Turns an open failure into a {@link TransportError} that says what to do. Lists the ports
 * present for 'not-found', the group to join for 'permission', likely holders for 'busy'.
 */
export async function explainSerialOpenError(path: string, err: unknown, opts: { clock?: Clock } = {}): Promise<TransportError> {
  let kind = classifySerialOpenError(err);
  if (kind === 'io' || kind === 'busy') {
    // The binding's message is free text; let the file system confirm a missing node.
    try {
      await stat(path);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') kind = 'not-found';
    }
  }
  if (kind === 'io') {
    try {
      await access(path, fsConstants.R_OK | fsConstants.W_OK);
    } catch (e) {
      if (errnoCode(e) === 'EACCES') kind = 'permission';
    }
  }
  const why = errorMessage(err);
  switch (kind) {
    case 'not-found': {
      const listOpts = opts.clock ? { clock: opts.clock } : {};
      const { ports } = await listSerialPorts(listOpts);
      const present = ports.length
        ? `ports present: ${ports.map(formatSerialPort).join('; ')}`
        : 'no serial ports found: is the DK plugged in and switched on?';
      return new TransportError('not-found', path, `serial port ${path} not found (${present}). Check \`ls /dev/serial/by-id/\` and pass that path with --port`, { cause: err });
    }
    case 'permission': {
      const group = (await groupOf(path)) ?? 'dialout';
      return new TransportError(
        'permission',
        path,
        `permission denied opening serial port ${path} (owned by group ${group}): add yourself to it with \`sudo usermod -aG ${group} $USER\`, then log out and back in`,
        { cause: err },
      );
    }
    case 'busy':
      return new TransportError(
        'busy',
        path,
        `serial port ${path} is in use by another process (another wearable-host, a serial terminal, or ModemManager probing it; \`fuser -v ${path}\` shows which). Close it; to keep ModemManager away from the J-Link add the udev rule ATTRS{idVendor}=="1366", ENV{ID_MM_DEVICE_IGNORE}="1"`,
        { cause: err },
      );
    default:
      return new TransportError('io', path, `cannot open serial port ${path}: ${why}`, { cause: err });
  }
}
