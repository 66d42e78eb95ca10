/**
 * Hardware in the loop: the shared bodies (bodies.ts) against a real nRF5340-DK running hci_uart
 * with firmware/hci_uart.conf. Runs only in `npm run test:hil`, and only does anything when
 * WEARABLE_HOST_PORT names the DK's serial port (prefer /dev/serial/by-id/...); every test says
 * why it skipped otherwise.
 *
 * Optional: WEARABLE_HOST_BAUD (default 1000000), WEARABLE_HOST_RTSCTS=0 to turn RTS/CTS off,
 * WEARABLE_HOST_SOAK_RESETS (default 50) for the reset soak.
 *
 * Two-DK tests (our central against our peripheral over real radio, WEARABLE_HOST_PHONE_PORT)
 * come with the phone profile; they are not stubbed here.
 */
import { test } from 'node:test';
import { openTransport } from '../../src/hci/open-transport.js';
import { HIL_BODIES, soakResetsFromEnv, type ControllerOpener } from './bodies.js';

const port = process.env['WEARABLE_HOST_PORT'];
const SKIP = 'WEARABLE_HOST_PORT not set: connect a DK and set it to its serial port';

function baudFromEnv(): number {
  const v = process.env['WEARABLE_HOST_BAUD'];
  if (v === undefined || v === '') return 1_000_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`WEARABLE_HOST_BAUD must be a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

const openDk: ControllerOpener = async () => {
  const transport = await openTransport(port as string, {
    baudRate: baudFromEnv(),
    rtscts: process.env['WEARABLE_HOST_RTSCTS'] !== '0',
  });
  return { transport, description: `DK on ${transport.description}` };
};

for (const body of HIL_BODIES) {
  test(`DK: ${body.name}`, async (t) => {
    if (!port) {
      t.skip(SKIP);
      return;
    }
    await body.run(openDk, { soakResets: soakResetsFromEnv(50), commandTimeoutMs: 3000 });
  });
}
