/**
 * Virtual controller commands for the LE states without a connection: own random address,
 * advertising, scanning, initiating (LE Create Connection and its cancel), the filter accept list
 * and the resolving list of LL privacy. The air runs the radio side. Core 5.4 Vol 4 Part E 7.8.
 */
import { HciStatus } from '../../hci/status.js';
import type { VirtualController } from '../controller.js';
import type { CommandContext, HandlerTable } from './context.js';
import { AdvType, connectionParamsValid } from './params.js';

/** The filter accept list may not change while a filter policy uses it (Core 5.4 Vol 4 Part E 7.8.16). */
function filterListInUse(c: VirtualController): boolean {
  return (
    (c.advertisingEnabled && c.advertising.filterPolicy !== 0) ||
    (c.scanEnabled && (c.scan.filterPolicy & 1) === 1) ||
    (c.initiating !== undefined && c.initiating.initiatorFilterPolicy === 1)
  );
}

/** Advertising, scanning or initiating: the own address and the resolving list's use are fixed then (Core 5.4 Vol 4 Part E 7.8.4, 7.8.44). */
function onAir(c: VirtualController): boolean {
  return c.advertisingEnabled || c.scanEnabled || c.initiating !== undefined;
}

export function leHandlers(cx: CommandContext): HandlerTable {
  const c = cx.ctrl;
  const ok = HciStatus.Success;
  return {
    // Own address and advertising
    LeSetRandomAddress: (p) => {
      // Command Disallowed while advertising, scanning or initiating (Core 5.4 Vol 4 Part E 7.8.4;
      // Zephyr ll_addr_set refuses while advertising, active scanning or initiating).
      if (onAir(c)) return cx.complete('LeSetRandomAddress', HciStatus.CommandDisallowed, {});
      c.randomAddress = p.address;
      cx.complete('LeSetRandomAddress', ok, {});
    },
    LeSetAdvertisingParameters: (p) => {
      // Disallowed while advertising (Core 5.4 Vol 4 Part E 7.8.5; Zephyr ll_adv_params_set).
      if (c.advertisingEnabled) return cx.complete('LeSetAdvertisingParameters', HciStatus.CommandDisallowed, {});
      const directedHigh = p.advertisingType === AdvType.AdvDirectIndHigh;
      const bad =
        p.advertisingType > 4 ||
        p.ownAddressType > 3 ||
        p.peerAddressType > 1 ||
        (p.channelMap & 0x07) === 0 ||
        p.channelMap > 0x07 ||
        p.filterPolicy > 3 ||
        (!directedHigh && (p.intervalMin < 0x0020 || p.intervalMax > 0x4000 || p.intervalMin > p.intervalMax));
      if (bad) return cx.complete('LeSetAdvertisingParameters', HciStatus.InvalidHciCommandParameters, {});
      c.advertising = { ...p };
      cx.complete('LeSetAdvertisingParameters', ok, {});
    },
    LeReadAdvertisingPhysicalChannelTxPower: () => cx.complete('LeReadAdvertisingPhysicalChannelTxPower', ok, { txPowerLevel: 0 }),
    LeSetAdvertisingData: (p) => {
      c.advertisingData = p.data.slice();
      cx.complete('LeSetAdvertisingData', ok, {});
    },
    LeSetScanResponseData: (p) => {
      c.scanResponseData = p.data.slice();
      cx.complete('LeSetScanResponseData', ok, {});
    },
    LeSetAdvertisingEnable: (p) => {
      if (!p.enable) {
        c.advertisingEnabled = false;
        c.air.advertisingChanged(c);
        return cx.complete('LeSetAdvertisingEnable', ok, {});
      }
      const a = c.advertising;
      // Own address random but none set: Invalid HCI Command Parameters (Core 5.4 Vol 4 Part E 7.8.9).
      if ((a.ownAddressType & 1) === 1 && c.randomAddress === undefined) {
        return cx.complete('LeSetAdvertisingEnable', HciStatus.InvalidHciCommandParameters, {});
      }
      const connectable = a.advertisingType === AdvType.AdvInd || a.advertisingType === AdvType.AdvDirectIndHigh || a.advertisingType === AdvType.AdvDirectIndLow;
      // No room for another connection: Memory Capacity Exceeded (Zephyr ll_adv_enable).
      if (connectable && c.connectionCount >= c.maxConnections) {
        return cx.complete('LeSetAdvertisingEnable', HciStatus.MemoryCapacityExceeded, {});
      }
      if (!c.advertisingEnabled) {
        c.advertisingEnabled = true;
        c.advertisingSince = c.air.clock.now();
        c.air.advertisingChanged(c);
      }
      cx.complete('LeSetAdvertisingEnable', ok, {});
    },
    // Scanning and initiating
    LeSetScanParameters: (p) => {
      // Disallowed while scanning (Core 5.4 Vol 4 Part E 7.8.10).
      if (c.scanEnabled) return cx.complete('LeSetScanParameters', HciStatus.CommandDisallowed, {});
      const bad =
        p.scanType > 1 ||
        p.interval < 0x0004 ||
        p.interval > 0x4000 ||
        p.window < 0x0004 ||
        p.window > p.interval ||
        p.ownAddressType > 3 ||
        p.filterPolicy > 3;
      if (bad) return cx.complete('LeSetScanParameters', HciStatus.InvalidHciCommandParameters, {});
      c.scan = { ...p };
      cx.complete('LeSetScanParameters', ok, {});
    },
    LeSetScanEnable: (p) => {
      if (p.enable) {
        if ((c.scan.ownAddressType & 1) === 1 && c.randomAddress === undefined) {
          return cx.complete('LeSetScanEnable', HciStatus.InvalidHciCommandParameters, {});
        }
        // Enabling again only updates Filter_Duplicates (Core 5.4 Vol 4 Part E 7.8.11).
        if (!c.scanEnabled || p.filterDuplicates !== c.filterDuplicates) c.seenReports.clear();
        c.scanEnabled = true;
        c.filterDuplicates = p.filterDuplicates;
      } else {
        c.scanEnabled = false;
        c.seenReports.clear();
      }
      cx.complete('LeSetScanEnable', ok, {});
    },
    LeCreateConnection: (p, opcode) => {
      // One pending LE Create Connection at a time (Zephyr ll_create_connection / ull_central.c).
      if (c.initiating) return cx.status(opcode, HciStatus.CommandDisallowed);
      const bad =
        p.scanInterval < 0x0004 ||
        p.scanInterval > 0x4000 ||
        p.scanWindow < 0x0004 ||
        p.scanWindow > p.scanInterval ||
        p.initiatorFilterPolicy > 1 ||
        p.peerAddressType > 3 ||
        p.ownAddressType > 3 ||
        !connectionParamsValid({ intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout }) ||
        ((p.ownAddressType & 1) === 1 && c.randomAddress === undefined);
      if (bad) return cx.status(opcode, HciStatus.InvalidHciCommandParameters);
      if (c.connectionCount >= c.maxConnections) return cx.status(opcode, HciStatus.MemoryCapacityExceeded);
      c.initiating = { ...p };
      cx.status(opcode, ok);
      c.air.initiatingChanged(c);
    },
    LeCreateConnectionCancel: () => {
      // Nothing pending: Command Disallowed (Core 5.4 Vol 4 Part E 7.8.13; Zephyr ll_connect_disable).
      const pending = c.initiating;
      if (!pending) return cx.complete('LeCreateConnectionCancel', HciStatus.CommandDisallowed, {});
      c.initiating = undefined;
      c.air.initiatingChanged(c);
      cx.complete('LeCreateConnectionCancel', ok, {});
      // Then the connection complete event with Unknown Connection Identifier (7.8.13).
      c.connectionComplete({
        status: HciStatus.UnknownConnectionIdentifier,
        handle: 0,
        role: 0,
        peerAddressType: pending.peerAddressType,
        peerAddress: pending.peerAddress,
        connInterval: 0,
        connLatency: 0,
        supervisionTimeout: 0,
        centralClockAccuracy: 0,
      });
    },
    // Filter accept list
    LeReadFilterAcceptListSize: () => cx.complete('LeReadFilterAcceptListSize', ok, { size: cx.falSize }),
    LeClearFilterAcceptList: () => {
      if (filterListInUse(c)) return cx.complete('LeClearFilterAcceptList', HciStatus.CommandDisallowed, {});
      c.filterAcceptList.clear();
      cx.complete('LeClearFilterAcceptList', ok, {});
    },
    LeAddDeviceToFilterAcceptList: (p) => {
      if (filterListInUse(c)) return cx.complete('LeAddDeviceToFilterAcceptList', HciStatus.CommandDisallowed, {});
      if (p.addressType > 1 && p.addressType !== 0xff) return cx.complete('LeAddDeviceToFilterAcceptList', HciStatus.InvalidHciCommandParameters, {});
      const key = `${p.addressType & 1}/${p.address}`;
      if (!c.filterAcceptList.has(key) && c.filterAcceptList.size >= cx.falSize) {
        return cx.complete('LeAddDeviceToFilterAcceptList', HciStatus.MemoryCapacityExceeded, {});
      }
      c.filterAcceptList.add(key);
      cx.complete('LeAddDeviceToFilterAcceptList', ok, {});
    },
    LeRemoveDeviceFromFilterAcceptList: (p) => {
      if (filterListInUse(c)) return cx.complete('LeRemoveDeviceFromFilterAcceptList', HciStatus.CommandDisallowed, {});
      c.filterAcceptList.delete(`${p.addressType & 1}/${p.address}`);
      cx.complete('LeRemoveDeviceFromFilterAcceptList', ok, {});
    },
    // Resolving list (LL privacy)
    LeAddDeviceToResolvingList: (p) => {
      if (c.addressResolution && onAir(c)) {
        return cx.complete('LeAddDeviceToResolvingList', HciStatus.CommandDisallowed, {});
      }
      const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
      if (!c.resolvingList.has(key) && c.resolvingList.size >= cx.rlSize) {
        return cx.complete('LeAddDeviceToResolvingList', HciStatus.MemoryCapacityExceeded, {});
      }
      c.resolvingList.set(key, { peerIrk: p.peerIrk.slice(), localIrk: p.localIrk.slice() });
      cx.complete('LeAddDeviceToResolvingList', ok, {});
    },
    LeRemoveDeviceFromResolvingList: (p) => {
      const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
      // Not in the list: Unknown Connection Identifier (Core 5.4 Vol 4 Part E 7.8.39).
      if (!c.resolvingList.delete(key)) return cx.complete('LeRemoveDeviceFromResolvingList', HciStatus.UnknownConnectionIdentifier, {});
      cx.complete('LeRemoveDeviceFromResolvingList', ok, {});
    },
    LeClearResolvingList: () => {
      c.resolvingList.clear();
      cx.complete('LeClearResolvingList', ok, {});
    },
    LeReadResolvingListSize: () => cx.complete('LeReadResolvingListSize', ok, { size: cx.rlSize }),
    LeSetAddressResolutionEnable: (p) => {
      if (onAir(c)) return cx.complete('LeSetAddressResolutionEnable', HciStatus.CommandDisallowed, {});
      c.addressResolution = p.enable;
      cx.complete('LeSetAddressResolutionEnable', ok, {});
    },
    LeSetResolvablePrivateAddressTimeout: (p) => {
      if (p.timeout < 1 || p.timeout > 0x0e10) return cx.complete('LeSetResolvablePrivateAddressTimeout', HciStatus.InvalidHciCommandParameters, {});
      c.rpaTimeout = p.timeout;
      cx.complete('LeSetResolvablePrivateAddressTimeout', ok, {});
    },
    LeSetPrivacyMode: (p) => {
      const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
      if (!c.resolvingList.has(key)) return cx.complete('LeSetPrivacyMode', HciStatus.UnknownConnectionIdentifier, {});
      if (p.privacyMode > 1) return cx.complete('LeSetPrivacyMode', HciStatus.InvalidHciCommandParameters, {});
      cx.complete('LeSetPrivacyMode', ok, {});
    },
  };
}
