/**
 * The two-controller bodies (two-dk-bodies.ts) on two virtual nRF5340 controllers sharing one
 * virtual air, in `npm test`: the same code two-dk.hil.test.ts runs on two DKs over real radio,
 * so those tests cannot rot unnoticed.
 *
 * Each body runs once per firmware profile (src/sim/firmware.ts) and gets a fresh air on a seeded VirtualClock with in-memory transports (fast and
 * deterministic: the scenarios' waits are virtual). One more run goes through the real-time path
 * the hardware uses: two controllers served on TCP by serveControllers, TcpTransport openers, the
 * real clock and the per-step timeout driver.
 */
import { test } from 'node:test';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { VirtualAir, serveControllers, type VirtualController } from '../../src/sim/index.js';
import { FIRMWARE_NAMES } from '../../src/sim/firmware.js';
import { RealClock, VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import type { ControllerOpener } from './bodies.js';
import { TWO_DK_BODIES, realTimeDriver, virtualDriver, type TwoDkOpeners, type TwoDkOptions } from './two-dk-bodies.js';

function memoryOpener(ctrl: VirtualController): ControllerOpener {
  return async () => {
    const [host, end] = createMemoryTransportPair(`host-of-${ctrl.name}`, ctrl.name);
    ctrl.attach(end);
    return { transport: host, description: `virtual controller ${ctrl.name} (memory)` };
  };
}

for (const firmware of FIRMWARE_NAMES) {
TWO_DK_BODIES.forEach((body, i) => {
  test(`two virtual controllers (${firmware} firmware): ${body.name}`, async () => {
    const seed = `two-dk-sim/${i}`;
    const clock = new VirtualClock();
    const air = new VirtualAir({ clock, seed, firmware });
    try {
      const openers: TwoDkOpeners = {
        wearable: memoryOpener(air.createController({ name: 'wearable-nrf5340', seed: `${seed}/wearable` })),
        phone: memoryOpener(air.createController({ name: 'phone-nrf5340', seed: `${seed}/phone` })),
      };
      const opts: TwoDkOptions = { driver: virtualDriver(clock), random: (who) => seededRandom(`${seed}/${who}`) };
      await body.run(openers, opts);
    } finally {
      air.close();
    }
  });
});
}

const realTimeBody = TWO_DK_BODIES[0];
if (realTimeBody) {
  test(`two virtual controllers served on TCP, real time (the hardware path): ${realTimeBody.name}`, async () => {
    const served = await serveControllers({ count: 2, tcp: 0, seed: 'two-dk-sim/tcp' });
    try {
      const tcpOpener = (index: number): ControllerOpener => async () => {
        const s = served.controllers[index];
        if (!s) throw new Error(`virtual controller ${index} is not being served`);
        const url = `tcp://${s.host}:${s.port}`;
        return { transport: await TcpTransport.connect(url), description: `virtual controller ${url}` };
      };
      // The user answers the prompt quickly: the scenario's own waits already take several seconds.
      await realTimeBody.run({ wearable: tcpOpener(0), phone: tcpOpener(1) }, { driver: realTimeDriver(new RealClock(), 20_000), thinkMs: 200 });
    } finally {
      await served.close();
    }
  });
}
