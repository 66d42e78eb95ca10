/**
 * Zephyr vendor commands of the virtual controller (Zephyr include/zephyr/bluetooth/hci_vs.h):
 * version, supported commands and features, Write BD_ADDR, the static address with its identity
 * root, and the IR/ER key hierarchy roots.
 */
import { HciStatus } from '../../hci/status.js';
import type { CommandContext, HandlerTable } from './context.js';

export function vendorHandlers(cx: CommandContext): HandlerTable {
  const c = cx.ctrl;
  const ok = HciStatus.Success;
  return {
    ZephyrReadVersionInfo: () => cx.complete('ZephyrReadVersionInfo', ok, { ...c.firmware.zephyrVersion }),
    ZephyrReadSupportedCommands: () => cx.complete('ZephyrReadSupportedCommands', ok, { commands: c.vendorSupportedCommands() }),
    ZephyrReadSupportedFeatures: () => cx.complete('ZephyrReadSupportedFeatures', ok, { features: new Uint8Array(8) }),
    ZephyrWriteBdAddr: (p) => {
      c.publicAddress = p.address;
      cx.complete('ZephyrWriteBdAddr', ok, {});
    },
    ZephyrReadStaticAddresses: () =>
      cx.complete('ZephyrReadStaticAddresses', ok, { addresses: cx.hasStaticAddress() ? [{ address: c.staticAddress, identityRoot: c.identityRoot.slice() }] : [] }),
    ZephyrReadKeyHierarchyRoots: () => cx.complete('ZephyrReadKeyHierarchyRoots', ok, { ir: c.ir.slice(), er: c.er.slice() }),
  };
}
