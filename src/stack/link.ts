/**
 * The per-connection stack, the same for the Peripheral (src/host.ts) and the Central
 * (src/central/central.ts): L2CAP on the new connection, an SMP session on fixed channel 0x0006
 * with the HCI commands it needs (a narrow interface, never the driver itself) and our address on
 * this link from the privacy layer, the ATT side's view of the link, and the routing of the
 * driver's per-connection events to them. The ATT user on channel 0x0004 (GATT server or client)
 * is the role's own.
 */
import type { Hci } from '../hci/driver.js';
import type { HciConnection } from '../hci/connection.js';
import { L2capConnection, FixedCid, L2CAP_BASIC_HEADER, SMP_MTU, type L2capOptions } from '../l2cap/connection.js';
import type { SecurityManager } from '../smp/security-manager.js';
import type { SmpSession } from '../smp/pairing.js';
import type { SmpLower } from '../smp/types.js';
import type { LinkSecurity } from '../smp/link-security.js';
import type { AttLower } from '../att/types.js';
import type { GattServerLower } from '../gatt/server.js';
import type { Address } from '../util/address.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

/** One connection's L2CAP and SMP. */
export interface LinkStack {
  readonly l2cap: L2capConnection;
  readonly smp: SmpSession;
}

export interface LinkStackOptions {
  clock: Clock;
  log: Logger;
  /** Our ATT receive MTU. */
  mtu: number;
  /** Our address on this link: OwnAddress.localAddressFor(c), read when the connection completed. */
  localAddress: Address;
  onParameterUpdateRequest?: L2capOptions['onParameterUpdateRequest'];
  /** How SMP PDUs go out (the central's tap); default: L2CAP channel 0x0006. */
  smpSend?: SmpLower['send'];
  /** Sees each SMP PDU from the peer first; false drops it (the central's tap). */
  smpInbound?: (pdu: Uint8Array) => boolean;
}

/**
 * L2CAP and an SMP session on a new connection, channel 0x0006 routed to SMP. The session is not
 * started: the caller wires its ATT side and events, then calls `smp.start()`.
 */
export function openLinkStack(hci: Hci, security: SecurityManager, c: HciConnection, o: LinkStackOptions): LinkStack {
  const l2cap = openL2cap(hci, c, o);
  const lower = buildSmpLower(hci, c, l2cap, o.localAddress);
  const smp = security.createSession(o.smpSend ? { ...lower, send: o.smpSend } : lower);
  const inbound = o.smpInbound;
  l2cap.setHandler(FixedCid.Smp, (p) => {
    if (inbound && !inbound(p)) return;
    smp.onPdu(p);
  });
  return { l2cap, smp };
}

/** The ATT bearer's view of the link: channel 0x0004 and the peer's address on air. */
export function attLower(c: HciConnection, stack: LinkStack): AttLower {
  const { l2cap } = stack;
  return { send: (pdu) => l2cap.sendFixed(FixedCid.Att, pdu), peer: c.peer };
}

/**
 * The GATT server's view of the link: the bearer's, plus the security SMP reached and the peer's
 * identity (both read at each access), and each 0x05/0x0F the server answers told to SMP, whose
 * Security Request policy may act.
 */
export function gattServerLower(c: HciConnection, stack: LinkStack): GattServerLower {
  const { smp } = stack;
  return {
    ...attLower(c, stack),
    get security(): LinkSecurity {
      return smp.security;
    },
    peerIdentity: () => smp.peerIdentity,
    onSecurityRejection: () => smp.onAttSecurityRejection(),
  };
}

/** Routes the driver's per-connection events (ACL data, Encryption Change, Key Refresh) to the link's stack. */
export function routeLinkEvents(hci: Hci, linkOf: (handle: number) => LinkStack | undefined): void {
  hci.on('acl', (handle, frame) => linkOf(handle)?.l2cap.onFrame(frame));
  hci.on('encryptionChanged', (c, ch) => linkOf(c.handle)?.smp.onEncryptionChange(ch.status, ch.enabled));
  hci.on('encryptionKeyRefreshed', (c, status) => linkOf(c.handle)?.smp.onKeyRefresh(status));
}

/** The link is gone: L2CAP stops sending and SMP ends its procedure and timer. */
export function closeLinkStack(stack: LinkStack): void {
  stack.l2cap.close();
  stack.smp.onDisconnected();
}

/**
 * L2CAP on a new connection, for either role. The driver's reassembly is bounded by the largest
 * valid frame on our fixed channels: an ATT PDU at our MTU (SMP: 65, signaling: 23), so a peer
 * cannot make it buffer up to 64 KiB.
 */
export function openL2cap(
  hci: Hci,
  c: HciConnection,
  o: { clock: Clock; log: Logger; mtu: number; onParameterUpdateRequest?: L2capOptions['onParameterUpdateRequest'] },
): L2capConnection {
  hci.setRxFrameLimit(c.handle, L2CAP_BASIC_HEADER + Math.max(o.mtu, SMP_MTU));
  return new L2capConnection({
    handle: c.handle,
    role: c.role,
    lower: { send: (frame) => hci.sendAcl(c.handle, frame) },
    clock: o.clock,
    log: o.log.child({ layer: 'l2cap' }),
    attMtu: o.mtu,
    ...(o.onParameterUpdateRequest ? { onParameterUpdateRequest: o.onParameterUpdateRequest } : {}),
  });
}

/** SMP's view of one connection: L2CAP channel 0x0006 for PDUs, and the HCI commands it needs. */
export function buildSmpLower(hci: Hci, c: HciConnection, l2cap: L2capConnection, localAddress: Address): SmpLower {
  const handle = c.handle;
  return {
    role: c.role,
    localAddress,
    peerAddress: c.peerRpa ? { type: 'random', address: c.peerRpa } : c.peer,
    send: (pdu) => {
      l2cap.sendFixed(FixedCid.Smp, pdu).catch(() => undefined);
    },
    ltkReply: async (ltk) => {
      await hci.command('LeLongTermKeyRequestReply', { handle, ltk });
    },
    ltkNegativeReply: async () => {
      await hci.command('LeLongTermKeyRequestNegativeReply', { handle });
    },
    startEncryption: async (ltk, ediv, rand) => {
      await hci.command('LeEnableEncryption', { handle, rand, ediv, ltk });
    },
    readKeySize: async () => {
      // Not in the Supported Commands bitmap (Zephyr's LL answers 0x01 Unknown HCI Command): the
      // controller cannot tell; SMP keeps the size it negotiated.
      if (hci.info && !hci.info.supports('ReadEncryptionKeySize')) return undefined;
      const r = await hci.command('ReadEncryptionKeySize', { handle });
      return r.keySize;
    },
    disconnect: async (reason) => {
      await hci.disconnect(handle, reason);
    },
  };
}
