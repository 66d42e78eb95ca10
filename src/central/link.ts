/**
 * One connection as the Central made it: the link's L2CAP and SMP (src/stack/link.ts), the ATT
 * bearer and GATT client on it, our address on the link, and the way the phone layer's SMP tap
 * sends its own PDUs.
 */
import type { HciConnection } from '../hci/connection.js';
import { HciStatus } from '../hci/status.js';
import { FixedCid, type L2capConnection } from '../l2cap/connection.js';
import type { SmpSession } from '../smp/pairing.js';
import type { LinkSecurity } from '../smp/link-security.js';
import type { AttBearer } from '../att/bearer.js';
import type { LinkStack } from '../stack/link.js';
import { formatAddress, type Address } from '../util/address.js';
import type { GattClient } from '../gatt/client.js';

/** One connection's layers, as the central made them. */
export class CentralLink {
  readonly hci: HciConnection;
  readonly l2cap: L2capConnection;
  readonly smp: SmpSession;
  readonly bearer: AttBearer;
  readonly gatt: GattClient;
  /** Our address on this connection (an RPA in 'rpa' mode). */
  readonly localAddress: Address;
  /** Clock time the link came up. */
  readonly connectedAt: number;
  private closed = false;
  disconnectReason: number | undefined;

  /** @internal made by {@link Central}. */
  constructor(
    private readonly central: { disconnect(link: CentralLink, reason: number): Promise<void> },
    hci: HciConnection,
    /** @internal the link's L2CAP and SMP (src/stack/link.ts). */
    readonly stack: LinkStack,
    bearer: AttBearer,
    gatt: GattClient,
    localAddress: Address,
    connectedAt: number,
  ) {
    this.hci = hci;
    this.l2cap = stack.l2cap;
    this.smp = stack.smp;
    this.bearer = bearer;
    this.gatt = gatt;
    this.localAddress = localAddress;
    this.connectedAt = connectedAt;
  }

  /** The peer's address on air. */
  get peer(): Address {
    return this.hci.peer;
  }

  /** The peer's identity once known (bond or key distribution). */
  get peerIdentity(): Address | undefined {
    return this.smp.peerIdentity;
  }

  get security(): LinkSecurity {
    return this.smp.security;
  }

  get open(): boolean {
    return !this.closed && this.hci.open;
  }

  /** Sends SMP bytes as they are (a tap's held or own PDU). */
  sendSmp(pdu: Uint8Array): void {
    if (!this.open) return;
    this.l2cap.sendFixed(FixedCid.Smp, pdu).catch(() => undefined);
  }

  /** HCI Disconnect (default 0x13 Remote User Terminated Connection). Resolves once the link is down. */
  disconnect(reason: number = HciStatus.RemoteUserTerminatedConnection): Promise<void> {
    return this.central.disconnect(this, reason);
  }

  /** @internal */
  markClosed(reason: number): void {
    this.closed = true;
    this.disconnectReason = reason;
  }

  toString(): string {
    return `${formatAddress(this.localAddress)} -> ${formatAddress(this.peer)} (handle 0x${this.hci.handle.toString(16).padStart(4, '0')})`;
  }
}
