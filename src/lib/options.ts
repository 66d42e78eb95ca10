/**
 * The raw option bag of a wearable run (as commander hands it, and as the library builds it) and
 * its parsing into typed values. Every error names the option and what it accepts.
 */
import { WearableHostError } from '../util/errors.js';
import { IoCapability, type IoCapabilityValue } from '../smp/pdu.js';
import type { RePairingPolicy, SecurityRequestMode } from '../smp/types.js';
import type { LogLevel } from '../util/log.js';

export function cliError(message: string): WearableHostError {
  return new WearableHostError('cli', message);
}

export function parseIntOption(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw cliError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

export function parseChoice<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw cliError(`${name} must be one of ${choices.join(', ')}; got ${JSON.stringify(value)}`);
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LogLevel[];
export const SECURITY_REQUEST_MODES = ['never', 'on-connect', 'after-att-rejection'] as const satisfies readonly SecurityRequestMode[];
export const REPAIR_POLICIES = ['reject', 'replace'] as const satisfies readonly RePairingPolicy[];

const IO_NAMES = {
  'display-only': IoCapability.DisplayOnly,
  'display-yes-no': IoCapability.DisplayYesNo,
  'keyboard-only': IoCapability.KeyboardOnly,
  'no-input-no-output': IoCapability.NoInputNoOutput,
  'keyboard-display': IoCapability.KeyboardDisplay,
} as const satisfies Record<string, IoCapabilityValue>;
export const IO_CAPABILITY_NAMES = Object.keys(IO_NAMES) as (keyof typeof IO_NAMES)[];

export function parseIoCapability(value: string): IoCapabilityValue {
  return IO_NAMES[parseChoice('--io-capability', value, IO_CAPABILITY_NAMES)];
}

/** Options shared by every command that opens a controller port. */
export interface PortOptions {
  port: string;
  baud: number;
  rtscts: boolean;
  chunkSize: number;
}

/** The raw option bag commander hands the main command. */
export interface MainCliOptions {
  port?: string;
  sim?: boolean;
  baud: string;
  rtscts: boolean;
  chunkSize: string;
  name: string;
  btsnoop?: string;
  logLevel: string;
  logJson?: boolean;
  bonds?: string;
  maxBonds: string;
  /** --evict-oldest-bond: a full store evicts the least recently seen bond instead of refusing a new peer. */
  evictOldestBond?: boolean;
  gatt?: string;
  mtu: string;
  securityRequest: string;
  securityRequestDelay: string;
  repair: string;
  pairingWindow?: string;
  minKeySize: string;
  ioCapability: string;
  allowDebugKeys?: boolean;
  mixControllerRng?: boolean;
  /** `--privacy` alone is true; `--privacy 600` is the period. */
  privacy?: boolean | string;
  resolvingList?: boolean;
  connParams: boolean;
  /** --no-simulated-values turns it off. */
  simulatedValues: boolean;
  profile?: string;
  scenario?: string;
  seed?: string;
  /** `--controller ncs|zephyr`: the virtual controller's firmware with --sim. */
  controller?: string;
}
