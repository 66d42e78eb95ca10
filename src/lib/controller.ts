/**
 * Opens a link to a controller, with the CLI's `--port` syntax and serial defaults: a serial port
 * path (the DK's `/dev/serial/by-id/...`), `tcp://host:port` (an H:4 stream over TCP), or a
 * virtual controller on a {@link VirtualAir}.
 */
import { openTransport } from '../hci/open-transport.js';
import type { Transport } from '../hci/transport.js';
import type { Logger } from '../util/log.js';
import { VirtualAir } from './air.js';

/** Where the controller is: `--port` text, a VirtualAir (a new virtual controller on it), or an open transport. */
export type ControllerSpec = string | VirtualAir | Transport;

export interface OpenControllerOptions {
  /** UART baud rate (`--baud`). Default 1000000, hci_uart on the nRF5340-DK. */
  baud?: number;
  /** RTS/CTS flow control (`--no-rtscts` turns it off). Default true. */
  rtscts?: boolean;
  /** Largest single write, bytes (`--chunk-size`). Default 64 (J-Link VCOM truncation). */
  chunkSize?: number;
  /** Name of the virtual controller, on a VirtualAir. */
  name?: string;
  log?: Logger;
}

/** Opens the H:4 link to a controller. Close it with `transport.close()` (a Wearable or Phone closes its own). */
export async function openController(spec: ControllerSpec, o: OpenControllerOptions = {}): Promise<Transport> {
  if (spec instanceof VirtualAir) return spec.openController(o.name);
  if (typeof spec !== 'string') return spec;
  return openTransport(spec, {
    baudRate: o.baud ?? 1_000_000,
    rtscts: o.rtscts ?? true,
    maxWriteChunk: o.chunkSize ?? 64,
    ...(o.log ? { logger: o.log.child({ layer: 'transport' }) } : {}),
  });
}
