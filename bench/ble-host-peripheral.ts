/**
 * npm ble-host as the peripheral of the host-path comparison: the same GATT layout as ours (a
 * notify characteristic and a Write Without Response characteristic with a counting handler) on a
 * virtual controller of the same air, reached through {@link BleHostTransport}.
 *
 * ble-host keeps bond storage under `NodeBleLib-storage-dir` in the working directory
 * (docs/field-notes.md): the benchmark runs it from a temporary directory.
 */
import { createRequire } from 'node:module';
import type { BleHostModule, BleManager, Connection, GattServerCharacteristic } from './ble-host.js';
import { createMemoryTransportPair } from '../src/hci/memory-transport.js';
import type { VirtualAir } from '../src/sim/air.js';
import type { Address } from '../src/util/address.js';
import { BleHostTransport } from './sink.js';
import { BENCH_SERVICE, SINK_CHAR, STREAM_CHAR, within } from './world.js';

const bleHost: BleHostModule = createRequire(import.meta.url)('ble-host');

export interface BleHostPeripheralOptions {
  air: VirtualAir;
  name: string;
  /** Static random address ble-host uses (it does not read the controller's). */
  address: string;
}

export class BleHostPeripheral {
  readonly transport: BleHostTransport;
  readonly manager: BleManager;
  readonly address: Address;
  /** Write handler calls on the Write Without Response characteristic. */
  readonly writes = { count: 0 };
  private readonly stream: GattServerCharacteristic;
  private subscribedBy: Connection | undefined;
  private connection: Connection | undefined;

  private constructor(transport: BleHostTransport, manager: BleManager, address: string) {
    this.transport = transport;
    this.manager = manager;
    this.address = { type: 'random', address };
    // Closing the transport at the end makes the manager emit 'error' ("Transport closed").
    manager.on('error', () => undefined);
    this.stream = {
      uuid: STREAM_CHAR,
      properties: ['notify'],
      maxLength: 512,
      onSubscriptionChange: (conn, notification) => {
        this.subscribedBy = notification ? conn : undefined;
      },
    };
    const sink: GattServerCharacteristic = {
      uuid: SINK_CHAR,
      properties: ['write-without-response'],
      maxLength: 512,
      onWrite: (_conn, needsResponse, _value, callback) => {
        this.writes.count++;
        if (needsResponse) callback(bleHost.AttErrors.SUCCESS);
      },
    };
    manager.gattDb.setDeviceName('Bench ble-host');
    manager.gattDb.addServices([{ uuid: BENCH_SERVICE, characteristics: [this.stream, sink] }]);
  }

  /** Brings ble-host up on a new controller of `air`. */
  static async create(o: BleHostPeripheralOptions): Promise<BleHostPeripheral> {
    const ctrl = o.air.createController({ name: o.name, seed: o.name });
    const [hostEnd, ctrlEnd] = createMemoryTransportPair(`${o.name}-host`, `${o.name}-ctrl`);
    ctrl.attach(ctrlEnd);
    const transport = new BleHostTransport(hostEnd);
    const manager = await within(
      new Promise<BleManager>((resolve, reject) =>
        bleHost.BleManager.create(transport, { staticRandomAddress: o.address }, (err, m) => (err ? reject(err) : resolve(m))),
      ),
      10_000,
      `${o.name}: ble-host bring-up`,
    );
    return new BleHostPeripheral(transport, manager, o.address);
  }

  /** Starts advertising; resolves with the first connection. */
  advertise(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      this.manager.setAdvertisingData(Buffer.from('020106', 'hex'));
      this.manager.startAdvertising({ intervalMin: 32, intervalMax: 32 }, (status, conn) => {
        if (status !== 0) return reject(new Error(`ble-host could not advertise: HCI status 0x${status.toString(16)}`));
        this.connection = conn;
        resolve(conn);
      });
    });
  }

  /** True once the connected client subscribed to the stream characteristic. */
  get subscribed(): boolean {
    return this.subscribedBy !== undefined && this.subscribedBy === this.connection;
  }

  /**
   * Notifies `value` on the stream characteristic; `sent` runs when ble-host handed the packet to
   * the controller (its sentCallback). False when nobody is subscribed.
   */
  notify(value: Buffer, sent: () => void): boolean {
    const conn = this.subscribedBy;
    if (!conn || !this.stream.notify) return false;
    return this.stream.notify(conn, value, sent);
  }

  close(): void {
    this.connection?.disconnect();
    this.transport.emit('close');
  }
}
