/**
 * The part of npm `ble-host` 1.0.3 (CommonJS, no types of its own) the benchmarks use, typed from
 * its documentation (node_modules/ble-host/docs/api). Only what bench/ble-host-peripheral.ts calls.
 *
 * A module of types, not an ambient `declare module 'ble-host'`: the test suite has its own
 * declaration of that module in the same TypeScript program, and two would collide. The wrapper
 * loads the package with createRequire and gives the result the {@link BleHostModule} type.
 */
import type { EventEmitter } from 'node:events';

/** One whole H:4 packet per write() and per 'data' event (docs/api/ble-manager.md "The transport object"). */
export interface HciTransport extends EventEmitter {
  write(packet: Buffer): void;
}

export interface Connection extends EventEmitter {
  readonly disconnected: boolean;
  readonly peerAddress: string;
  readonly peerAddressType: string;
  disconnect(reason?: number): void;
}

export type CharacteristicProperty = 'read' | 'write-without-response' | 'write' | 'notify' | 'indicate';
export type Permission = 'not-permitted' | 'open' | 'encrypted' | 'encrypted-mitm' | 'encrypted-mitm-sc';

export interface GattServerCharacteristic {
  uuid: string | number;
  properties: CharacteristicProperty[];
  maxLength?: number;
  readPerm?: Permission;
  writePerm?: Permission;
  value?: Buffer | string;
  onWrite?(connection: Connection, needsResponse: boolean, value: Buffer, callback: (err: number) => void): void;
  onSubscriptionChange?(connection: Connection, notification: boolean, indication: boolean, isWrite: boolean): void;
  /** Attached by the stack when the service is added, for characteristics with `notify`. */
  notify?(connection: Connection, value: Buffer, sentCallback?: () => void, completeCallback?: () => void): boolean;
}

export interface GattServerService {
  uuid: string | number;
  characteristics?: GattServerCharacteristic[];
}

export interface GattServerDb {
  setDeviceName(name: string): void;
  addServices(services: GattServerService[]): void;
}

export interface AdvertisingParameters {
  /** 0.625 ms units. */
  intervalMin?: number;
  intervalMax?: number;
}

export interface BleManager extends EventEmitter {
  readonly gattDb: GattServerDb;
  setAdvertisingData(data: Buffer, callback?: (status: number) => void): void;
  /** The callback runs when a central connected (status 0) or advertising could not start. */
  startAdvertising(parameters: AdvertisingParameters, callback: (status: number, connection: Connection) => void): void;
  stopAdvertising(callback?: (status: number) => void): void;
}

export interface BleManagerOptions {
  staticRandomAddress?: string;
}

export interface BleManagerStatic {
  create(transport: HciTransport, options: BleManagerOptions, callback: (err: Error | null, manager: BleManager) => void): void;
}

/** `require('ble-host')`. */
export interface BleHostModule {
  readonly BleManager: BleManagerStatic;
  readonly AttErrors: { readonly SUCCESS: number };
}
