/**
 * Virtual controller commands bound to one connection handle: reads (RSSI, key size, PHY,
 * authenticated payload timeout), Disconnect, remote version and features, connection parameter
 * update and its replies, data length, PHY, and encryption (LE Enable Encryption, the LTK request
 * replies). Unknown handle: Unknown Connection Identifier; the air runs the LL procedure.
 */
import { HciStatus } from '../../hci/status.js';
import type { CommandContext, HandlerTable } from './context.js';
import { connectionParamsValid } from './params.js';

/** Reasons Disconnect accepts. Core 5.4 Vol 4 Part E 7.1.6. */
const DISCONNECT_REASONS: ReadonlySet<number> = new Set([0x05, 0x13, 0x14, 0x15, 0x1a, 0x29, 0x3b]);

export function linkHandlers(cx: CommandContext): HandlerTable {
  const c = cx.ctrl;
  const ok = HciStatus.Success;
  return {
    // Reads about one connection
    ReadAuthenticatedPayloadTimeout: (p) => {
      // Default 30 s (3000 x 10 ms). Core 5.4 Vol 4 Part E 7.3.93.
      const l = cx.link(p.handle);
      cx.complete('ReadAuthenticatedPayloadTimeout', l ? ok : HciStatus.UnknownConnectionIdentifier, { handle: p.handle, timeout: l ? 3000 : 0 });
    },
    ReadRssi: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('ReadRssi', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, rssi: 127 });
      cx.complete('ReadRssi', ok, { handle: p.handle, rssi: l.conn.rssiFor(l) });
    },
    ReadEncryptionKeySize: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('ReadEncryptionKeySize', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, keySize: 0 });
      // An unencrypted link has no key: Insufficient Security (Core 5.4 Vol 4 Part E 7.5.7).
      if (!l.conn.encrypted) return cx.complete('ReadEncryptionKeySize', HciStatus.InsufficientSecurity, { handle: p.handle, keySize: 0 });
      cx.complete('ReadEncryptionKeySize', ok, { handle: p.handle, keySize: l.conn.keySize });
    },
    LeReadPhy: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeReadPhy', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, txPhy: 0, rxPhy: 0 });
      const { txPhy, rxPhy } = l.conn.phyFor(l);
      cx.complete('LeReadPhy', ok, { handle: p.handle, txPhy, rxPhy });
    },
    // Connection-bound procedures: status first, then the LL does the rest
    Disconnect: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      if (!DISCONNECT_REASONS.has(p.reason)) return cx.status(opcode, HciStatus.InvalidHciCommandParameters);
      cx.status(opcode, l.conn.hostDisconnect(l, p.reason));
    },
    ReadRemoteVersionInformation: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      cx.status(opcode, ok);
      l.conn.readRemoteVersion(l);
    },
    LeReadRemoteFeatures: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      cx.status(opcode, ok);
      l.conn.readRemoteFeatures(l);
    },
    LeConnectionUpdate: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      if (!connectionParamsValid({ intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout })) {
        return cx.status(opcode, HciStatus.InvalidHciCommandParameters);
      }
      cx.status(opcode, l.conn.hostConnectionUpdate(l, { intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout }));
    },
    LeRemoteConnectionParameterRequestReply: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeRemoteConnectionParameterRequestReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
      if (!connectionParamsValid({ intervalMin: p.intervalMin, intervalMax: p.intervalMax, latency: p.maxLatency, timeout: p.timeout })) {
        return cx.complete('LeRemoteConnectionParameterRequestReply', HciStatus.InvalidHciCommandParameters, { handle: p.handle });
      }
      const status = l.conn.hostConnParamReply(l, { intervalMin: p.intervalMin, intervalMax: p.intervalMax, latency: p.maxLatency, timeout: p.timeout });
      cx.complete('LeRemoteConnectionParameterRequestReply', status, { handle: p.handle });
    },
    LeRemoteConnectionParameterRequestNegativeReply: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeRemoteConnectionParameterRequestNegativeReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
      const status = l.conn.hostConnParamReply(l, p.reason);
      cx.complete('LeRemoteConnectionParameterRequestNegativeReply', status, { handle: p.handle });
    },
    LeSetDataLength: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeSetDataLength', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
      if (p.txOctets < 0x1b || p.txOctets > 0xfb || p.txTime < 0x148 || p.txTime > 0x4290) {
        return cx.complete('LeSetDataLength', HciStatus.InvalidHciCommandParameters, { handle: p.handle });
      }
      cx.complete('LeSetDataLength', ok, { handle: p.handle });
      l.conn.setDataLength(l, Math.min(p.txOctets, c.maxDataLength));
    },
    LeSetPhy: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      const noTx = (p.allPhys & 1) === 1;
      const noRx = (p.allPhys & 2) === 2;
      if (p.allPhys > 3 || (!noTx && p.txPhys === 0) || (!noRx && p.rxPhys === 0)) return cx.status(opcode, HciStatus.InvalidHciCommandParameters);
      // Only 1M and 2M are modelled: asking for nothing but Coded is an unsupported value.
      if ((!noTx && (p.txPhys & 0x03) === 0) || (!noRx && (p.rxPhys & 0x03) === 0)) return cx.status(opcode, HciStatus.UnsupportedFeatureOrParameterValue);
      cx.status(opcode, ok);
      l.conn.setPhy(l, { tx: noTx ? 0x03 : p.txPhys & 0x03, rx: noRx ? 0x03 : p.rxPhys & 0x03 });
    },
    // Encryption (Core 5.4 Vol 6 Part B 5.1.3)
    LeEnableEncryption: (p, opcode) => {
      const l = cx.link(p.handle);
      if (!l) return cx.status(opcode, HciStatus.UnknownConnectionIdentifier);
      // Central role only (Core 5.4 Vol 4 Part E 7.8.24).
      if (l.role !== 'central') return cx.status(opcode, HciStatus.CommandDisallowed);
      cx.status(opcode, l.conn.startEncryption(l, p.ltk.slice(), p.rand, p.ediv));
    },
    LeLongTermKeyRequestReply: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeLongTermKeyRequestReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
      // No LTK request pending: Command Disallowed, as Zephyr's LL answers
      // (subsys/bluetooth/controller/ll_sw/ull_llcp.c ull_cp_ltk_req_reply).
      cx.complete('LeLongTermKeyRequestReply', l.conn.ltkReply(l, p.ltk.slice()), { handle: p.handle });
    },
    LeLongTermKeyRequestNegativeReply: (p) => {
      const l = cx.link(p.handle);
      if (!l) return cx.complete('LeLongTermKeyRequestNegativeReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
      // Same rule as the reply (Zephyr ull_llcp.c ull_cp_ltk_req_neq_reply).
      cx.complete('LeLongTermKeyRequestNegativeReply', l.conn.ltkReply(l, undefined), { handle: p.handle });
    },
  };
}
