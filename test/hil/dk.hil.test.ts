/**
 * Hardware in the loop: the shared bodies (bodies.ts) against a real nRF5340-DK running hci_uart
 * with firmware/hci_uart.conf. Runs only in `npm run test:hil`, and only does anything when
 * WEARABLE_HOST_PORT names the DK's serial port (prefer /dev/serial/by-id/...); every test says
 * why it skipped otherwise.
 *
 * Optional: WEARABLE_HOST_BAUD (default 1000000), WEARABLE_HOST_RTSCTS=0 to turn RTS/CTS off,
 * WEARABLE_HOST_SOAK_RESETS (default 50) for the reset soak, WEARABLE_HOST_FIRMWARE=zephyr when the DK
 * runs upstream Zephyr's hci_uart (docs/zephyr-hci-uart.md) instead of the nRF Connect SDK build, and
 * WEARABLE_HOST_DATA_LENGTH=251 when that build carries our overlay (the profile has the sample defaults).
 *
 * The two-DK tests (our phone profile against our wearable over real radio, with
 * WEARABLE_HOST_PHONE_PORT as well) are in two-dk.hil.test.ts.
 */
import { test } from 'node:test';
import { HIL_BODIES, dataLengthFromEnv, dkOpener, firmwareFromEnv, soakResetsFromEnv } from './bodies.js';

const port = process.env['WEARABLE_HOST_PORT'];
const SKIP = 'WEARABLE_HOST_PORT not set: connect a DK and set it to its serial port';

for (const body of HIL_BODIES) {
  test(`DK: ${body.name}`, async (t) => {
    if (!port) {
      t.skip(SKIP);
      return;
    }
    const dataLength = dataLengthFromEnv();
    await body.run(dkOpener(port), { soakResets: soakResetsFromEnv(50), commandTimeoutMs: 3000, firmware: firmwareFromEnv(), ...(dataLength !== undefined ? { expectedDataLength: dataLength } : {}) });
  });
}
