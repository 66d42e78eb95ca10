/**
 * One LE connection as the HCI driver knows it: handle, role, peer, the parameters the controller
 * reported, and the link state events change (encryption, data length, PHY). The driver mutates
 * it as events arrive and hands the same object to every listener. Core 5.4 Vol 4 Part E 7.7.65.1
 * and 7.7.65.10 (connection complete), 7.7.65.3, 7.7.65.7, 7.7.65.12, 7.7.8.
 */
import { formatAddress, type Address } from '../util/address.js';

export type ConnectionRole = 'central' | 'peripheral';

export interface DataLength {
  maxTxOctets: number;
  maxTxTime: number;
  maxRxOctets: number;
  maxRxTime: number;
}

/** LE PHY codes in PHY Update Complete. Core 5.4 Vol 4 Part E 7.7.65.12. */
export const LePhy = { Le1M: 1, Le2M: 2, LeCoded: 3 } as const;

export interface ConnectionParameters {
  /** Connection interval in units of 1.25 ms. */
  interval: number;
  /** Peripheral latency in connection events. */
  latency: number;
  /** Supervision timeout in units of 10 ms. */
  supervisionTimeout: number;
}

export interface HciConnectionInit extends ConnectionParameters {
  handle: number;
  role: ConnectionRole;
  peer: Address;
  peerResolved: boolean;
  peerRpa: string | undefined;
  localRpa: string | undefined;
  centralClockAccuracy: number;
  connectedAt: number;
}

export class HciConnection {
  readonly handle: number;
  readonly role: ConnectionRole;
  /**
   * The peer's address as the controller reported it: its identity address when the controller
   * resolved it through the resolving list (`peerResolved`), otherwise the over-the-air address.
   */
  readonly peer: Address;
  /** Peer address type was 0x02/0x03 (identity address resolved by the controller). */
  readonly peerResolved: boolean;
  /** The peer's resolvable private address, when the controller resolved it (Enhanced Connection Complete). */
  readonly peerRpa: string | undefined;
  /** Our resolvable private address used for this connection, when the controller generated one. */
  readonly localRpa: string | undefined;
  readonly centralClockAccuracy: number;
  /** Clock time of the connection complete event, ms. */
  readonly connectedAt: number;
  interval: number;
  latency: number;
  supervisionTimeout: number;
  encrypted = false;
  /** Defaults are the LE minimum until a Data Length Change event says otherwise. Core 5.4 Vol 6 Part B 4.5.10. */
  dataLength: DataLength = { maxTxOctets: 27, maxTxTime: 328, maxRxOctets: 27, maxRxTime: 328 };
  txPhy: number = LePhy.Le1M;
  rxPhy: number = LePhy.Le1M;
  /** False once Disconnection Complete arrived (or the driver dropped the connection on re-init). */
  open = true;

  constructor(init: HciConnectionInit) {
    this.handle = init.handle;
    this.role = init.role;
    this.peer = init.peer;
    this.peerResolved = init.peerResolved;
    this.peerRpa = init.peerRpa;
    this.localRpa = init.localRpa;
    this.centralClockAccuracy = init.centralClockAccuracy;
    this.connectedAt = init.connectedAt;
    this.interval = init.interval;
    this.latency = init.latency;
    this.supervisionTimeout = init.supervisionTimeout;
  }

  get intervalMs(): number {
    return this.interval * 1.25;
  }

  get supervisionTimeoutMs(): number {
    return this.supervisionTimeout * 10;
  }

  /** `0x0040 peripheral with 11:22:33:44:55:66 (random)`. */
  toString(): string {
    return `0x${this.handle.toString(16).padStart(4, '0')} ${this.role} with ${formatAddress(this.peer)}`;
  }

  /** Plain fields for logs. */
  toJSON(): Record<string, unknown> {
    return {
      handle: this.handle,
      role: this.role,
      peer: formatAddress(this.peer),
      peerResolved: this.peerResolved,
      peerRpa: this.peerRpa,
      localRpa: this.localRpa,
      intervalMs: this.intervalMs,
      latency: this.latency,
      supervisionTimeoutMs: this.supervisionTimeoutMs,
      encrypted: this.encrypted,
      dataLength: this.dataLength,
      txPhy: this.txPhy,
      rxPhy: this.rxPhy,
      open: this.open,
    };
  }
}
