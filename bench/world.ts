/**
 * The benchmark world on the virtual air: our Peripheral (src/host.ts) on one virtual controller,
 * and any number of minimal centrals built from our own layers (HCI driver, L2CAP, ATT bearer,
 * GATT client, optionally the SMP initiator), one virtual controller each. The same central
 * connects to ble-host when ble-host is the peripheral.
 */
import { Peripheral } from '../src/host.js';
import { buildSmpLower } from '../src/stack/link.js';
import { Hci } from '../src/hci/driver.js';
import type { HciConnection } from '../src/hci/connection.js';
import { createMemoryTransportPair } from '../src/hci/memory-transport.js';
import type { Transport } from '../src/hci/transport.js';
import type { PacketDirection } from '../src/hci/driver.js';
import { L2capConnection, FixedCid } from '../src/l2cap/connection.js';
import { AttBearer } from '../src/att/bearer.js';
import { GattClient, type CharacteristicView } from '../src/gatt/client.js';
import { SecurityManager } from '../src/smp/security-manager.js';
import type { SmpSession } from '../src/smp/pairing.js';
import { buildGattDatabase, type GattDatabase } from '../src/gatt/database.js';
import { Uuid } from '../src/gatt/uuid.js';
import { MemoryBondStore } from '../src/bonds/memory.js';
import { generateIrk } from '../src/privacy/rpa.js';
import type { VirtualAir } from '../src/sim/air.js';
import type { VirtualControllerOptions } from '../src/sim/controller.js';
import type { Clock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { osRandom } from '../src/util/random.js';
import { addressTypeToByte, type Address } from '../src/util/address.js';
import { SinkTransport } from './sink.js';

export const BENCH_SERVICE = '7e4a0001-3c1d-4b8e-9a51-2f7d0c6b5e10';
export const STREAM_CHAR = '7e4a0002-3c1d-4b8e-9a51-2f7d0c6b5e10';
export const SINK_CHAR = '7e4a0003-3c1d-4b8e-9a51-2f7d0c6b5e10';

const log = silentLogger();

/**
 * ACL buffers our firmware overlay gives the DK (firmware/hci_uart.conf CONFIG_BT_BUF_ACL_TX_COUNT);
 * the virtual controller's ncs profile has the same (src/sim/firmware.ts).
 */
export const DK_ACL_BUFFERS = 10;

/** Resolves with `p`, or rejects after `ms` of real time saying what did not happen. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`benchmark: ${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `cond` every few ms of real time until true, or rejects after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error(`benchmark: ${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The benchmark's GATT database: a 512-byte notify characteristic and a Write Without Response one. */
export function benchDatabase(onWrite: () => void): GattDatabase {
  return buildGattDatabase({
    gap: { deviceName: 'Bench Band' },
    services: [
      {
        uuid: BENCH_SERVICE,
        characteristics: [
          { uuid: STREAM_CHAR, id: 'stream', properties: ['notify'], maxLength: 512 },
          {
            uuid: SINK_CHAR,
            id: 'sink',
            properties: ['writeWithoutResponse'],
            maxLength: 512,
            onWrite: () => {
              onWrite();
            },
          },
        ],
      },
    ],
  });
}

export interface OurPeripheralOptions {
  air: VirtualAir;
  clock: Clock;
  name: string;
  maxConnections?: number;
  controller?: Omit<VirtualControllerOptions, 'name' | 'seed'>;
  /** Wraps the host end of the host <-> controller pipe (e.g. a 1 Mbaud paced link). */
  wrap?: (hostEnd: Transport) => Transport;
  /** Every HCI packet the peripheral's driver sends or receives (as the CLI feeds its live diagnosis). */
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
}

export interface OurPeripheralWorld {
  readonly peripheral: Peripheral;
  /** The peripheral's transport: a pass-through until handles are sunk. */
  readonly tap: SinkTransport;
  readonly db: GattDatabase;
  readonly streamHandle: number;
  readonly sinkHandle: number;
  /** Write handler calls on the Write Without Response characteristic. */
  readonly writes: { count: number };
  close(): Promise<void>;
}

/** Our Peripheral on a new controller of `air`, started (advertising). */
export async function startOurPeripheral(o: OurPeripheralOptions): Promise<OurPeripheralWorld> {
  const ctrl = o.air.createController({ ...(o.controller ?? {}), name: o.name, seed: o.name });
  const [hostEnd, ctrlEnd] = createMemoryTransportPair(`${o.name}-host`, `${o.name}-ctrl`);
  ctrl.attach(ctrlEnd);
  const tap = new SinkTransport(o.wrap ? o.wrap(hostEnd) : hostEnd);
  const writes = { count: 0 };
  const db = benchDatabase(() => {
    writes.count++;
  });
  const peripheral = new Peripheral({
    transport: tap,
    clock: o.clock,
    random: osRandom,
    log,
    bonds: new MemoryBondStore(),
    db,
    name: 'Bench Band',
    connectionParameters: false,
    maxConnections: o.maxConnections ?? 1,
    ...(o.trace ? { trace: o.trace } : {}),
  });
  await within(peripheral.start(), 10_000, `${o.name}: bring-up`);
  return {
    peripheral,
    tap,
    db,
    streamHandle: db.handle('stream'),
    sinkHandle: db.handle('sink'),
    writes,
    close: async () => {
      await peripheral.stop().catch(() => undefined);
      await tap.close().catch(() => undefined);
    },
  };
}

/** One connection of a {@link BenchCentral}. */
export interface CentralLink {
  readonly conn: HciConnection;
  readonly l2cap: L2capConnection;
  readonly bearer: AttBearer;
  readonly client: GattClient;
  readonly smp: SmpSession | undefined;
  /** Notifications received and their value bytes. */
  readonly received: { count: number; bytes: number };
}

export interface BenchCentralOptions {
  air: VirtualAir;
  clock: Clock;
  name: string;
  /** ATT_MTU the client offers (23 means no exchange). */
  mtu: number;
  /** Build an SMP initiator (LESC Just Works, bonding, our IRK distributed like a phone's). */
  smp?: boolean;
  controller?: Omit<VirtualControllerOptions, 'name' | 'seed'>;
}

/** A minimal central: our driver, L2CAP, ATT client bearer and GATT client on its own controller. */
export class BenchCentral {
  readonly hci: Hci;
  readonly transport: Transport;
  private readonly links = new Map<number, CentralLink>();
  private security: SecurityManager | undefined;

  private constructor(
    private readonly o: BenchCentralOptions,
    transport: Transport,
  ) {
    this.transport = transport;
    this.hci = new Hci(transport, { clock: o.clock, log });
    this.hci.on('acl', (h, f) => this.links.get(h)?.l2cap.onFrame(f));
    this.hci.on('encryptionChanged', (c, ch) => this.links.get(c.handle)?.smp?.onEncryptionChange(ch.status, ch.enabled));
    this.hci.on('disconnected', (c) => {
      const l = this.links.get(c.handle);
      if (!l) return;
      this.links.delete(c.handle);
      l.l2cap.close();
      l.smp?.onDisconnected();
      l.bearer.onDisconnected();
    });
  }

  static async create(o: BenchCentralOptions): Promise<BenchCentral> {
    const ctrl = o.air.createController({ ...(o.controller ?? {}), name: o.name, seed: o.name });
    const [hostEnd, ctrlEnd] = createMemoryTransportPair(`${o.name}-host`, `${o.name}-ctrl`);
    ctrl.attach(ctrlEnd);
    const c = new BenchCentral(o, hostEnd);
    const info = await within(c.hci.init(), 10_000, `${o.name}: bring-up`);
    if (o.smp) {
      const bonds = new MemoryBondStore({ localIdentity: { address: info.identityAddress, irk: generateIrk(osRandom) } });
      c.security = new SecurityManager({ bonds, clock: o.clock, random: osRandom, log });
    }
    return c;
  }

  /**
   * Connects to `target` (interval in 1.25 ms units), builds the link's layers, exchanges the MTU
   * when above 23. Resolves once the connection exists on our side.
   */
  async connect(target: Address, intervalUnits = 24): Promise<CentralLink> {
    const connected = this.hci.wait('connected');
    await this.hci.command('LeCreateConnection', {
      scanInterval: 0x10,
      scanWindow: 0x10,
      initiatorFilterPolicy: 0,
      peerAddressType: addressTypeToByte(target.type),
      peerAddress: target.address,
      ownAddressType: 1,
      connIntervalMin: intervalUnits,
      connIntervalMax: intervalUnits,
      maxLatency: 0,
      supervisionTimeout: 400,
      minCeLength: 0,
      maxCeLength: 0,
    });
    const [conn] = await within(connected, 10_000, `${this.o.name}: connection to ${target.address}`);
    const l2cap = new L2capConnection({ handle: conn.handle, role: 'central', clock: this.o.clock, log, lower: { send: (f) => this.hci.sendAcl(conn.handle, f) } });
    let smp: SmpSession | undefined;
    const bearer = new AttBearer({
      clock: this.o.clock,
      log,
      mtu: this.o.mtu,
      lower: {
        send: (pdu) => l2cap.sendFixed(FixedCid.Att, pdu),
        peer: conn.peer,
      },
    });
    l2cap.setHandler(FixedCid.Att, (p) => bearer.onPdu(p));
    if (this.security) {
      const s = this.security.createSession(buildSmpLower(this.hci, conn, l2cap, this.hci.info!.identityAddress));
      l2cap.setHandler(FixedCid.Smp, (p) => s.onPdu(p));
      s.start();
      smp = s;
    }
    const client = new GattClient({ bearer, log });
    const received = { count: 0, bytes: 0 };
    client.on('notification', (_h, v) => {
      received.count++;
      received.bytes += v.length;
    });
    const link: CentralLink = { conn, l2cap, bearer, client, smp, received };
    this.links.set(conn.handle, link);
    return link;
  }

  /** Exchanges the MTU (if above 23), finds the bench characteristics and subscribes to notifications. */
  async subscribe(link: CentralLink): Promise<{ stream: CharacteristicView; sink: CharacteristicView }> {
    if (this.o.mtu > 23) await within(link.client.exchangeMtu(), 10_000, `${this.o.name}: MTU exchange`);
    const [service] = await within(link.client.discoverPrimaryServicesByUuid(BENCH_SERVICE), 10_000, `${this.o.name}: service discovery`);
    if (!service) throw new Error(`benchmark: ${this.o.name} found no bench service on the peer`);
    const chars = await within(link.client.discoverCharacteristics(service), 10_000, `${this.o.name}: characteristic discovery`);
    const find = async (uuid: string): Promise<CharacteristicView> => {
      const ch = chars.find((c) => c.uuid.equals(Uuid.of(uuid)));
      if (!ch) throw new Error(`benchmark: ${this.o.name} found no characteristic ${uuid}`);
      const descriptors = await link.client.discoverDescriptors(ch);
      const cccd = descriptors.find((d) => d.uuid.equals(Uuid.of(0x2902)));
      return { ...ch, descriptors, cccdHandle: cccd?.handle };
    };
    const stream = await find(STREAM_CHAR);
    const sink = await find(SINK_CHAR);
    await within(link.client.subscribe(stream, 'notify'), 10_000, `${this.o.name}: subscription`);
    return { stream, sink };
  }

  close(): void {
    this.hci.close();
    void this.transport.close().catch(() => undefined);
  }
}
