/**
 * The virtual air for tests without hardware: as many virtual nRF5340 `hci_uart` controllers as you need
 * (src/sim) on one air, in real time. Pass it as the `controller` of a Wearable or a
 * Phone and each gets its own virtual controller on this air; `close()` closes every wearable and
 * phone opened on it, then the air.
 */
import { VirtualAir as SimAir } from '../sim/air.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import type { Transport } from '../hci/transport.js';
import { RealClock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { WearableHostError } from '../util/errors.js';

export interface VirtualAirOptions {
  /** Seed of the controllers' identities (static addresses) and the air. Default 'wearable-host'. */
  seed?: string | number;
  /** Logger for the simulated controllers (default silent). */
  log?: Logger;
}

/** Something `VirtualAir.close()` closes too. */
interface Closable {
  close(): Promise<void>;
}

export class VirtualAir {
  private readonly air: SimAir;
  private readonly seed: string;
  private readonly owned = new Set<Closable>();
  private count = 0;
  private closed = false;

  constructor(opts: VirtualAirOptions = {}) {
    this.seed = String(opts.seed ?? 'wearable-host');
    this.air = new SimAir({ clock: new RealClock(), seed: this.seed, log: opts.log ?? silentLogger() });
  }

  /**
   * A new virtual controller on this air, and the host side of its H:4 link. The controller is
   * silent until the host sends HCI Reset, like the DK.
   */
  openController(name = `ctrl${this.count}`): Transport {
    if (this.closed) throw new WearableHostError('sim', 'the virtual air is closed');
    this.count++;
    const [host, end] = createMemoryTransportPair(`host-of-${name}`, name);
    this.air.createController({ name, seed: `${this.seed}/${name}` }).attach(end);
    return host;
  }

  /** @internal a wearable or phone on this air, closed with it. */
  own(c: Closable): () => void {
    this.owned.add(c);
    return () => void this.owned.delete(c);
  }

  /** Closes every wearable and phone opened on this air, then the air. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.owned]) await c.close().catch(() => undefined);
    this.owned.clear();
    this.air.close();
  }
}
