/**
 * The simulator: a virtual nRF5340 `hci_uart` controller, the virtual air linking any number of
 * them, and serving them to other processes. The host stack never imports this module; tests,
 * the CLI's simulator modes and benchmarks do.
 */
export { VirtualAir, AirConnection, type VirtualAirOptions, type LinkEnd, type ConnParams, type Role } from './air.js';
export {
  VirtualController,
  AdvType,
  connectionParamsValid,
  type VirtualControllerOptions,
  type VirtualControllerStats,
  type AdvertisingParams,
  type ScanParams,
} from './controller.js';
export { serveControllers, type ServeControllersOptions, type ServedController, type ServedControllers } from './serve.js';
export * as capabilities from './capabilities.js';
