/**
 * `wearable-host --sim`: the wearable against the embedded virtual controller (no hardware).
 * Interim: brings the wearable up on a virtual nRF5340 and advertises until Ctrl-C.
 */
import type { MainCliOptions } from './options.js';
import { makeLogger } from './common.js';
import { parseWearableSettings, startWearable } from './run-wearable.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import { MemoryBondStore } from '../bonds/memory.js';
import { VirtualAir } from '../sim/air.js';
import { RealClock } from '../util/clock.js';

export async function runSimCommand(opts: MainCliOptions): Promise<number> {
  const log = makeLogger(opts.logLevel, opts.logJson);
  const settings = parseWearableSettings(opts);
  const clock = new RealClock();
  const air = new VirtualAir({ clock, log: log.child({ layer: 'sim' }), ...(opts.seed !== undefined ? { seed: opts.seed } : {}) });
  const [host, ctrl] = createMemoryTransportPair('wearable', 'virtual-nrf5340');
  air.createController({ name: 'virtual-nrf5340', seed: opts.seed ?? 'wearable' }).attach(ctrl);
  const bonds = opts.bonds ? undefined : new MemoryBondStore();
  const session = await startWearable({ settings, transport: host, log, clock, ...(bonds ? { bonds } : {}), simulateValues: true });
  await new Promise<void>((resolve) => {
    // Virtual transports and unref'd timers hold no handle: keep the process alive until Ctrl-C.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const stop = (): void => {
      clearInterval(keepAlive);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void session.close().finally(() => {
        air.close();
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
