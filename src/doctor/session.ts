/**
 * The doctor's default {@link DoctorEnv} pieces that need other layers: the serial/TCP port opener,
 * the port lister and a controller session through the Hci driver.
 */
import type { Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { Transport } from '../hci/transport.js';
import { Hci } from '../hci/driver.js';
import { openTransport } from '../hci/open-transport.js';
import { listSerialPorts } from '../hci/serial-transport.js';
import type { ControllerSession, DoctorEnv, DoctorEnvParts } from './env.js';
import { nodeDoctorEnv } from './env.js';
import type { LinkSettings, PortCandidate } from './types.js';

/**
 * Brings the controller up through {@link Hci.init} (HCI Reset, identity, buffers). The doctor
 * only looks: it asks the driver not to change the controller's default data length.
 */
export async function hciSession(transport: Transport, opts: { clock: Clock; log?: Logger; timeoutMs: number }): Promise<ControllerSession> {
  const hci = new Hci(transport, {
    clock: opts.clock,
    log: opts.log ?? silentLogger(),
    commandTimeoutMs: opts.timeoutMs,
    resetTimeoutMs: opts.timeoutMs,
    resetAttempts: 2,
    dataLength: false,
  });
  try {
    const info = await hci.init();
    return {
      info,
      command: (name, params) => hci.command(name, params),
      close: async () => hci.close(),
    };
  } catch (err) {
    hci.close();
    throw err;
  }
}

/** Opens `port` (serial path or tcp:// URL) with the given line settings. */
export function openPortWith(port: string, settings: LinkSettings, opts: { clock: Clock; log?: Logger }): Promise<Transport> {
  return openTransport(port, {
    baudRate: settings.baudRate,
    rtscts: settings.rtscts,
    clock: opts.clock,
    ...(opts.log ? { logger: opts.log } : {}),
  });
}

/** Ports as `serialport` lists them; throws when that listing failed (the doctor then scans /dev). */
export async function serialportList(clock: Clock): Promise<PortCandidate[]> {
  const r = await listSerialPorts({ clock });
  if (r.error !== undefined) throw new Error(r.error);
  return r.ports.map((p) => {
    const c: PortCandidate = { path: p.path };
    if (p.byId) c.byId = p.byId;
    if (p.vendorId) c.vendorId = p.vendorId;
    if (p.productId) c.productId = p.productId;
    if (p.manufacturer) c.manufacturer = p.manufacturer;
    if (p.serialNumber) c.serialNumber = p.serialNumber;
    return c;
  });
}

/** The real machine: serial ports through `serialport`, the controller through the Hci driver. */
export function defaultDoctorEnv(overrides: Partial<DoctorEnvParts> & { clock: Clock; logger?: Logger }): DoctorEnv {
  const { clock, logger } = overrides;
  const log = logger;
  return nodeDoctorEnv({
    listPorts: () => serialportList(clock),
    openPort: (port, settings) => openPortWith(port, settings, { clock, ...(log ? { log } : {}) }),
    openController: (transport, o) => hciSession(transport, { clock, timeoutMs: o.timeoutMs, ...(log ? { log } : {}) }),
    ...overrides,
  });
}
