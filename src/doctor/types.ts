/**
 * What `wearable-host doctor` reports: a list of findings, each with what was seen and what to do,
 * plus what it learned about the link and the controller. Plain data, JSON-friendly.
 */

/** How a finding weighs: `fail` makes the DK unusable (exit code non-zero). */
export const Severity = {
  Ok: 'ok',
  Info: 'info',
  Warn: 'warn',
  Fail: 'fail',
  Skipped: 'skipped',
} as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

/** Stable identifiers of the checks, in the order they run. */
export const CheckId = {
  Ports: 'ports',
  PortPath: 'port-path',
  Permission: 'permission',
  ModemManager: 'modemmanager',
  Exclusive: 'exclusive',
  Link: 'link',
  Identity: 'identity',
  Features: 'features',
  Buffers: 'buffers',
  LeEncrypt: 'le-encrypt',
} as const;
export type CheckId = (typeof CheckId)[keyof typeof CheckId];

export interface Finding {
  check: CheckId;
  severity: Severity;
  /** One line: what was found. */
  title: string;
  /** More lines of evidence (bytes seen, paths, process ids). */
  details?: string[];
  /** What to do about it, when something should be done. */
  fix?: string;
}

/** Serial line settings tried by the link check. */
export interface LinkSettings {
  baudRate: number;
  /** RTS/CTS hardware flow control. */
  rtscts: boolean;
}

/** The settings `hci_uart` on the nRF5340-DK uses: the sample's board overlay (docs/field-notes.md). */
export const DK_LINK: Readonly<LinkSettings> = { baudRate: 1_000_000, rtscts: true };

/** Baud rates tried, most likely first: the sample's rate, then rates other builds and adapters use. */
export const COMMON_BAUD_RATES: readonly number[] = [1_000_000, 115_200, 921_600, 460_800, 230_400, 57_600];

/** Outcome of one HCI Reset attempt on one set of line settings. */
export type ProbeOutcome =
  /** Command Complete for HCI Reset with status Success. */
  | 'ok'
  /** Command Complete for HCI Reset with a non-zero status. */
  | 'refused'
  /** Nothing arrived at all. */
  | 'silent'
  /** Bytes arrived, but not a Reset answer (noise, framing errors, other packets). */
  | 'garbled'
  /** The controller reported an assert (vendor event) and is hung until reset. */
  | 'crashed'
  /** The port could not be opened with these settings. */
  | 'open-failed';

export interface ProbeResult {
  settings: LinkSettings;
  outcome: ProbeOutcome;
  /** Bytes received during the attempt. */
  bytesReceived: number;
  /** H:4 framing errors while parsing them. */
  framingErrors: number;
  /** Packets that parsed (events), whatever they were. */
  packets: number;
  /** Reset's status when answered. */
  status?: number;
  /** First received bytes, hex, for the report (at most 32). */
  firstBytes?: string;
  /** Why the open failed, or the decoded crash report. */
  error?: string;
  /** The transport error kind when the open failed (`not-found`, `permission`, `busy`, ...). */
  errorKind?: string;
  /** Whether zero bytes were sent first to push a half-received packet through (resynchronisation). */
  resynced?: boolean;
}

/** A serial port that might be the DK, as listed. */
export interface PortCandidate {
  /** Device node: /dev/ttyACM0. */
  path: string;
  /** /dev/serial/by-id/... link to it, when there is one. */
  byId?: string;
  /** USB vendor id, 4 hex digits lower case ("1366"). */
  vendorId?: string;
  productId?: string;
  manufacturer?: string;
  serialNumber?: string;
  /** USB interface number from the by-id name or sysfs ("00"). */
  interfaceNumber?: string;
}

/** What the USB vendor id says about a port. */
export type PortKind = 'segger-jlink' | 'nordic' | 'other';

export interface ControllerSummary {
  description: string;
  companyId: number;
  hciVersion: number;
  vendorPlatform?: number;
  vendorVariant?: number;
  identityAddress: string;
  identitySource: string;
  aclPacketLength: number;
  aclPacketCount: number;
  maxTxOctets?: number;
  maxRxOctets?: number;
  features: Record<string, boolean>;
}

export interface DoctorReport {
  /** The port examined (as given, or as chosen from the list). */
  port: string | undefined;
  /** Whether the port was chosen by doctor rather than given with --port. */
  portChosen: boolean;
  candidates: (PortCandidate & { kind: PortKind })[];
  findings: Finding[];
  /** Every HCI Reset attempt, in order. */
  probes: ProbeResult[];
  /** Settings under which the controller answered, if any. */
  working: LinkSettings | undefined;
  controller: ControllerSummary | undefined;
  /** The controller answered and no finding is `fail`. */
  usable: boolean;
}
