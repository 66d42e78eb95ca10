/**
 * Virtual controller commands about the controller itself: HCI Reset, the event masks, version,
 * supported commands and features, buffer sizes, LE Encrypt and LE Rand, and the controller-wide
 * defaults (suggested data length, default PHY). Core 5.4 Vol 4 Part E 7.3, 7.4, 7.8.
 */
import { HciStatus } from '../../hci/status.js';
import { e } from '../../crypto/index.js';
import { LMP_FEATURES, SUPPORTED_STATES } from '../capabilities.js';
import type { CommandContext, HandlerTable } from './context.js';

export function infoHandlers(cx: CommandContext): HandlerTable {
  const c = cx.ctrl;
  const ok = HciStatus.Success;
  return {
    // Controller & baseband
    Reset: () => {
      cx.reset();
      cx.complete('Reset', ok, {});
    },
    SetEventMask: (p) => {
      c.eventMask = p.mask;
      cx.complete('SetEventMask', ok, {});
    },
    SetEventMaskPage2: (p) => {
      c.eventMask2 = p.mask;
      cx.complete('SetEventMaskPage2', ok, {});
    },
    // Informational
    ReadLocalVersionInformation: () =>
      cx.complete('ReadLocalVersionInformation', ok, {
        hciVersion: c.firmware.version.hciVersion,
        hciSubversion: c.hciSubversion,
        lmpVersion: c.firmware.version.lmpVersion,
        companyId: c.firmware.version.companyId,
        lmpSubversion: c.lmpSubversion,
      }),
    ReadLocalSupportedCommands: () => cx.complete('ReadLocalSupportedCommands', ok, { commands: c.supportedCommands() }),
    ReadLocalSupportedFeatures: () => cx.complete('ReadLocalSupportedFeatures', ok, { features: LMP_FEATURES.slice() }),
    ReadBufferSize: () =>
      // LE-only: the shared ACL buffers; no synchronous buffers.
      cx.complete('ReadBufferSize', ok, {
        aclDataPacketLength: c.aclBufferSize,
        syncDataPacketLength: 0,
        totalNumAclDataPackets: c.aclBuffers,
        totalNumSyncDataPackets: 0,
      }),
    ReadBdAddr: () => cx.complete('ReadBdAddr', ok, { address: c.publicAddress }),
    // LE controller information, masks and controller-wide defaults
    LeSetEventMask: (p) => {
      c.leEventMask = p.mask;
      cx.complete('LeSetEventMask', ok, {});
    },
    LeReadBufferSize: () =>
      cx.complete('LeReadBufferSize', ok, { leAclDataPacketLength: c.aclBufferSize, totalNumLeAclDataPackets: c.aclBuffers }),
    LeReadBufferSizeV2: () =>
      cx.complete('LeReadBufferSizeV2', ok, {
        leAclDataPacketLength: c.aclBufferSize,
        totalNumLeAclDataPackets: c.aclBuffers,
        isoDataPacketLength: 0,
        totalNumIsoDataPackets: 0,
      }),
    LeReadLocalSupportedFeatures: () => cx.complete('LeReadLocalSupportedFeatures', ok, { features: c.leFeatures() }),
    LeReadSupportedStates: () => cx.complete('LeReadSupportedStates', ok, { states: SUPPORTED_STATES }),
    // The security function e on the little-endian key and plaintext HCI carries. Core 5.4 Vol 4 Part E 7.8.22.
    LeEncrypt: (p) => cx.complete('LeEncrypt', ok, { encrypted: e(p.key, p.plaintext) }),
    LeRand: () => cx.complete('LeRand', ok, { random: cx.random.bytes(8) }),
    LeReadSuggestedDefaultDataLength: () =>
      cx.complete('LeReadSuggestedDefaultDataLength', ok, { maxTxOctets: c.suggestedTxOctets, maxTxTime: c.suggestedTxTime }),
    LeWriteSuggestedDefaultDataLength: (p) => {
      if (p.maxTxOctets < 0x1b || p.maxTxOctets > 0xfb || p.maxTxTime < 0x148 || p.maxTxTime > 0x4290) {
        return cx.complete('LeWriteSuggestedDefaultDataLength', HciStatus.InvalidHciCommandParameters, {});
      }
      c.suggestedTxOctets = Math.min(p.maxTxOctets, c.maxDataLength);
      c.suggestedTxTime = p.maxTxTime;
      cx.complete('LeWriteSuggestedDefaultDataLength', ok, {});
    },
    LeReadMaximumDataLength: () => {
      const t = (c.maxDataLength + 14) * 8;
      cx.complete('LeReadMaximumDataLength', ok, { maxTxOctets: c.maxDataLength, maxTxTime: t, maxRxOctets: c.maxDataLength, maxRxTime: t });
    },
    LeSetDefaultPhy: (p) => {
      const noTx = (p.allPhys & 1) === 1;
      const noRx = (p.allPhys & 2) === 2;
      // A preference must name at least one PHY (Core 5.4 Vol 4 Part E 7.8.48).
      if (p.allPhys > 3 || (!noTx && p.txPhys === 0) || (!noRx && p.rxPhys === 0)) {
        return cx.complete('LeSetDefaultPhy', HciStatus.InvalidHciCommandParameters, {});
      }
      // Only LE 1M and LE 2M are modelled: a preference for Coded alone is unsupported.
      if ((!noTx && (p.txPhys & 0x03) === 0) || (!noRx && (p.rxPhys & 0x03) === 0)) {
        return cx.complete('LeSetDefaultPhy', HciStatus.UnsupportedFeatureOrParameterValue, {});
      }
      c.defaultPhy = { allPhys: p.allPhys, txPhys: p.txPhys, rxPhys: p.rxPhys };
      cx.complete('LeSetDefaultPhy', ok, {});
    },
  };
}
