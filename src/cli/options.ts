/**
 * The CLI's option definitions that need commander; the option bag and its parsing live in
 * src/lib/options.ts (the library parses the same options).
 */
import { Option } from 'commander';
import { FIRMWARE_NAMES } from '../sim/firmware.js';

export {
  cliError,
  parseIntOption,
  parseChoice,
  parseIoCapability,
  LOG_LEVELS,
  SECURITY_REQUEST_MODES,
  REPAIR_POLICIES,
  IO_CAPABILITY_NAMES,
  type PortOptions,
  type MainCliOptions,
} from '../lib/options.js';

/**
 * `--controller ncs|zephyr`: which `hci_uart` build the virtual controller plays (src/sim/firmware.ts).
 * Used by --sim, `info --sim` and `sim-controller`.
 */
export function controllerOption(what: string): Option {
  return new Option(
    '--controller <firmware>',
    `${what}: ncs (nRF Connect SDK, SoftDevice Controller, firmware/hci_uart.conf: 10 x 251-byte ACL buffers) or zephyr (upstream Zephyr link layer, sample defaults: 7 x 27-byte buffers, company 0x05F1, no Read Encryption Key Size)`,
  )
    .choices([...FIRMWARE_NAMES])
    .default('ncs');
}
