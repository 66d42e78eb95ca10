/**
 * Hardware in the loop with two nRF5340-DKs running hci_uart: the two-controller bodies
 * (two-dk-bodies.ts) over real radio. WEARABLE_HOST_PORT is the wearable's DK (our Peripheral),
 * WEARABLE_HOST_PHONE_PORT the DK acting as the phone (SimulatedPhone with the iOS or Android
 * profile). Runs only in `npm run test:hil`, and only does anything when both are set; every test
 * says why it skipped otherwise. The same bodies run on two virtual controllers in `npm test`
 * (two-dk-sim.test.ts).
 *
 * Optional: WEARABLE_HOST_BAUD (default 1000000) and WEARABLE_HOST_RTSCTS=0 (RTS/CTS off) apply
 * to both DKs; WEARABLE_HOST_STEP_TIMEOUT_MS (default 20000) bounds each step of a scenario.
 * The wearable advertises under a name unique to this run, so a neighbouring wearable is never
 * picked; keep the DKs within a few metres of each other.
 */
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { RealClock } from '../../src/util/clock.js';
import { dkOpener } from './bodies.js';
import { TWO_DK_BODIES, realTimeDriver } from './two-dk-bodies.js';

const wearablePort = process.env['WEARABLE_HOST_PORT'];
const phonePort = process.env['WEARABLE_HOST_PHONE_PORT'];
const SKIP = 'WEARABLE_HOST_PORT and WEARABLE_HOST_PHONE_PORT not set: connect two nRF5340-DKs running hci_uart and set them to their serial ports';

function stepTimeoutFromEnv(): number {
  const v = process.env['WEARABLE_HOST_STEP_TIMEOUT_MS'];
  if (v === undefined || v === '') return 20_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1000) throw new Error(`WEARABLE_HOST_STEP_TIMEOUT_MS must be a whole number of milliseconds >= 1000, got ${JSON.stringify(v)}`);
  return n;
}

const runName = `Noira HIL ${randomBytes(2).toString('hex')}`;

for (const body of TWO_DK_BODIES) {
  test(`two DKs: ${body.name}`, { timeout: 600_000 }, async (t) => {
    if (!wearablePort || !phonePort) {
      t.skip(SKIP);
      return;
    }
    if (wearablePort === phonePort) {
      throw new Error(`WEARABLE_HOST_PORT and WEARABLE_HOST_PHONE_PORT are both ${wearablePort}: they must name two different DKs`);
    }
    await body.run(
      { wearable: dkOpener(wearablePort, 'wearable DK'), phone: dkOpener(phonePort, 'phone DK') },
      { driver: realTimeDriver(new RealClock(), stepTimeoutFromEnv()), wearableName: runName },
    );
  });
}
