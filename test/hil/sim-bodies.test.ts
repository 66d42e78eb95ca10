/**
 * The hardware-in-the-loop bodies (bodies.ts) against the virtual nRF5340 controller served on
 * TCP by src/sim/serve.ts, in `npm test`, once per firmware profile (the nRF Connect SDK's
 * SoftDevice Controller and upstream Zephyr's link layer): the same code dk.hil.test.ts runs on a
 * DK, so the DK tests cannot rot unnoticed. Real clock and real sockets, as a DK would have.
 */
import { test, before, after } from 'node:test';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { serveControllers, type ServedControllers } from '../../src/sim/index.js';
import { FIRMWARE_NAMES, type FirmwareName } from '../../src/sim/firmware.js';
import { HIL_BODIES, soakResetsFromEnv, type ControllerOpener } from './bodies.js';

const served = new Map<FirmwareName, ServedControllers>();

before(async () => {
  for (const firmware of FIRMWARE_NAMES) served.set(firmware, await serveControllers({ count: 1, seed: `hil-bodies-${firmware}`, air: { firmware } }));
});

after(async () => {
  for (const s of served.values()) await s.close();
});

function openSim(firmware: FirmwareName): ControllerOpener {
  return async () => {
    const s = served.get(firmware)?.controllers[0];
    if (!s) throw new Error(`the virtual ${firmware} controller is not being served`);
    const url = `tcp://${s.host}:${s.port}`;
    const transport = await TcpTransport.connect(url);
    return { transport, description: `virtual ${firmware} controller ${url}` };
  };
}

for (const firmware of FIRMWARE_NAMES) {
  for (const body of HIL_BODIES) {
    test(`sim (${firmware} firmware): ${body.name}`, async () => {
      await body.run(openSim(firmware), { soakResets: soakResetsFromEnv(20), firmware });
    });
  }
}
