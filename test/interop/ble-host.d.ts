/**
 * The part of the npm package `ble-host` (Emill/node-ble-host 1.0.3, CommonJS) the interop tests
 * use, typed from its docs (node_modules/ble-host/docs/api). Not a complete declaration.
 */
declare module 'ble-host' {
  import type { EventEmitter } from 'node:events';

  namespace bleHost {
    /** Anything with write(Buffer) and a 'data' event carrying one whole H:4 packet (type byte included). */
    interface Transport extends EventEmitter {
      write(packet: Buffer): void;
    }

    interface PairingFeatures {
      ioCap?: number;
      bondingFlags?: number;
      mitm?: boolean;
      sc?: boolean;
      keypress?: boolean;
      maxKeySize?: number;
      initKeyDistr?: { encKey?: boolean; idKey?: boolean };
      rspKeyDistr?: { encKey?: boolean; idKey?: boolean };
    }

    interface PairingResult {
      sc: boolean;
      mitm: boolean;
      bond: boolean;
      rspIrk?: Buffer | null;
      rspIdentityAddress?: { addressType: string; address: string } | null;
      initIrk?: Buffer | null;
      initIdentityAddress?: { addressType: string; address: string } | null;
    }

    interface Smp extends EventEmitter {
      readonly isEncrypted: boolean;
      readonly isBonded: boolean;
      readonly hasLtk: boolean;
      sendPairingRequest(req: PairingFeatures): boolean;
      startEncryption(): boolean;
      sendSecurityRequest(bond: boolean, mitm: boolean, sc: boolean, keypress: boolean): void;
      on(event: 'pairingComplete', fn: (res: PairingResult) => void): this;
      on(event: 'pairingFailed', fn: (reason: number, isErrorFromRemote: boolean) => void): this;
      on(event: 'encrypt', fn: (status: number, level?: { mitm: boolean; sc: boolean; keySize: number }) => void): this;
      on(event: 'pairingRequest', fn: (req: PairingFeatures, callback: (rsp: PairingFeatures) => void) => void): this;
    }

    interface GattClientCharacteristic extends EventEmitter {
      readonly uuid: string;
      readonly valueHandle: number;
      readonly declarationHandle: number;
      read(cb: (err: number, value?: Buffer) => void): void;
      write(value: Buffer | string, cb?: (err: number) => void): void;
      writeCCCD(notifications: boolean, indications: boolean, cb?: (err: number) => void): void;
      on(event: 'change', fn: (value: Buffer, isIndication: boolean, confirm: () => void) => void): this;
    }

    interface GattClientService {
      readonly uuid: string;
      readonly startHandle: number;
      readonly endHandle: number;
      discoverCharacteristics(cb: (chars: GattClientCharacteristic[]) => void): void;
    }

    interface GattConnection extends EventEmitter {
      readonly currentMtu: number;
      exchangeMtu(cb?: (err: number) => void): void;
      discoverAllPrimaryServices(cb: (services: GattClientService[]) => void): void;
    }

    interface Connection extends EventEmitter {
      readonly ownAddress: string;
      readonly ownAddressType: string;
      readonly peerAddress: string;
      readonly peerAddressType: string;
      readonly peerIdentityAddress: string | null;
      readonly disconnected: boolean;
      readonly smp: Smp;
      readonly gatt: GattConnection;
      disconnect(reason?: number): void;
      on(event: 'disconnect', fn: (reason: number) => void): this;
    }

    /** A characteristic definition for gattDb.addServices; notify/indicate are attached by the stack. */
    interface ServerCharacteristic {
      uuid: string | number;
      properties: string[];
      maxLength?: number;
      readPerm?: string;
      writePerm?: string;
      value?: Buffer | string;
      descriptors?: { uuid: string | number; writePerm?: string; readPerm?: string; value?: Buffer | string }[];
      onWrite?(connection: Connection, needsResponse: boolean, value: Buffer, callback: (err: number) => void): void;
      notify?(connection: Connection, value: Buffer | string, sent?: () => void, complete?: () => void): boolean;
      indicate?(connection: Connection, value: Buffer | string, callback?: () => void): boolean;
    }

    interface ServerService {
      uuid: string | number;
      characteristics?: ServerCharacteristic[];
      startHandle?: number;
      endHandle?: number;
    }

    interface GattServerDb {
      setDeviceName(name: string | Buffer): void;
      addServices(services: ServerService[]): void;
    }

    interface PendingConnection {
      cancel(cb?: () => void): void;
    }

    interface Manager extends EventEmitter {
      readonly gattDb: GattServerDb;
      connect(addressType: 'public' | 'random', address: string, parameters: Record<string, number>, cb: (conn: Connection) => void): PendingConnection;
      setAdvertisingData(data: Buffer, cb?: (status: number) => void): void;
      setScanResponseData(data: Buffer, cb?: (status: number) => void): void;
      startAdvertising(parameters: Record<string, unknown>, cb: (status: number, conn?: Connection) => void): void;
      stopAdvertising(cb?: (status: number) => void): void;
      removeBond(identityAddressType: string, identityAddress: string): void;
    }

    const BleManager: {
      create(transport: Transport, options: { staticRandomAddress?: string }, cb: (err: Error | null, manager: Manager) => void): void;
    };
    const IOCapabilities: { readonly NO_INPUT_NO_OUTPUT: number; readonly KEYBOARD_DISPLAY: number };
    const AttErrors: { readonly SUCCESS: number; readonly INSUFFICIENT_AUTHENTICATION: number; readonly INSUFFICIENT_ENCRYPTION: number };
  }

  export = bleHost;
}
