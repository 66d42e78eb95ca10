/**
 * The hardware-in-the-loop bodies (bodies.ts) against the virtual nRF5340 controller served on
 * TCP by src/sim/serve.ts, in `npm test`: the same code dk.hil.test.ts runs on a DK, so the DK
 * tests cannot rot unnoticed. Real clock and real sockets, as a DK would have.
 */
import { test, before, after } from 'node:test';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { serveControllers, type ServedControllers } from '../../src/sim/index.js';
import { HIL_BODIES, soakResetsFromEnv, type ControllerOpener } from './bodies.js';

let served: ServedControllers | undefined;

before(async () => {
  served = await serveControllers({ count: 1, seed: 'hil-bodies' });
});

after(async () => {
  await served?.close();
});

const openSim: ControllerOpener = async () => {
  const s = served?.controllers[0];
  if (!s) throw new Error('the virtual controller is not being served');
  const url = `tcp://${s.host}:${s.port}`;
  const transport = await TcpTransport.connect(url);
  return { transport, description: `virtual controller ${url}` };
};

for (const body of HIL_BODIES) {
  test(`sim: ${body.name}`, async () => {
    await body.run(openSim, { soakResets: soakResetsFromEnv(20) });
  });
}
