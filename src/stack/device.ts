/**
 * The device-wide part of the stack, the same for the Peripheral (src/host.ts) and the Central
 * (src/central/central.ts): the HCI driver on the transport, the Security Manager, and the owner
 * of our address on air (src/privacy/own-address.ts) with the controller operations it needs.
 */
import type { Transport } from '../hci/transport.js';
import { Hci, type HciOptions, type PacketDirection } from '../hci/driver.js';
import { SecurityManager } from '../smp/security-manager.js';
import type { SmpPolicy } from '../smp/types.js';
import type { BondStore } from '../bonds/types.js';
import { OwnAddress, type OwnAddressMode } from '../privacy/own-address.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';

/** What both roles build their stack from. */
export interface StackCoreOptions {
  transport: Transport;
  clock: Clock;
  /** The OS CSPRNG in production. */
  random: RandomSource;
  log: Logger;
  bonds: BondStore;
  policy?: Partial<SmpPolicy>;
  /** Every HCI packet both ways (btsnoop, diagnosis). */
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
  /** Passed to the driver. */
  hci?: Partial<Omit<HciOptions, 'clock' | 'log' | 'trace'>>;
  /** SMP timeout (tests only; default 30 s). */
  smpTimeoutMs?: number;
}

export interface DeviceStack {
  readonly hci: Hci;
  readonly security: SecurityManager;
  readonly ownAddress: OwnAddress;
}

/** The driver on the transport, the device-wide Security Manager and our address owner in `addressMode`. */
export function buildDeviceStack(o: StackCoreOptions, addressMode: OwnAddressMode): DeviceStack {
  const hci = new Hci(o.transport, {
    ...o.hci,
    clock: o.clock,
    log: o.log.child({ layer: 'hci' }),
    ...(o.trace ? { trace: o.trace } : {}),
  });
  const security = new SecurityManager({
    bonds: o.bonds,
    clock: o.clock,
    random: o.random,
    ...(o.policy ? { policy: o.policy } : {}),
    ...(o.smpTimeoutMs !== undefined ? { timeoutMs: o.smpTimeoutMs } : {}),
    log: o.log.child({ layer: 'smp' }),
  });
  const ownAddress = new OwnAddress({
    mode: addressMode,
    bonds: o.bonds,
    clock: o.clock,
    random: o.random,
    log: o.log,
    lower: {
      controllerIdentity: () => hci.info?.identityAddress,
      setRandomAddress: async (address) => {
        await hci.command('LeSetRandomAddress', { address });
      },
      command: (name, params) => hci.command(name, params),
    },
  });
  return { hci, security, ownAddress };
}
