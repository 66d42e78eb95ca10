/** A virtual air with our Peripheral (wearable profile) and our Central, for central-role tests. */
import { Peripheral, type PeripheralOptions } from '../../src/host.js';
import { Central, type CentralOptions } from '../../src/central/central.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { WearableProfile } from '../../src/gatt/profile.js';
import { VirtualAir } from '../../src/sim/air.js';
import type { FirmwareName } from '../../src/sim/firmware.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

export const log = process.env['TEST_LOG'] ? createLogger({ level: 'debug', pretty: false }) : silentLogger();

/** Runs the virtual clock until `p` settles. */
export function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 20_000): Promise<T> {
  return clock.drive(p, maxMs);
}

export interface World {
  clock: VirtualClock;
  air: VirtualAir;
  profile: WearableProfile;
  peripheral: Peripheral;
  central: Central;
  periphBonds: MemoryBondStore;
  centralBonds: MemoryBondStore;
  close(): Promise<void>;
}

export async function world(
  o: { seed?: string; central?: Partial<CentralOptions>; peripheral?: Partial<PeripheralOptions>; start?: boolean; firmware?: FirmwareName } = {},
): Promise<World> {
  const seed = o.seed ?? 'central-test';
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed, log, ...(o.firmware ? { firmware: o.firmware } : {}) });
  const [ph, pc] = createMemoryTransportPair('wearable-host', 'wearable-ctrl');
  const [ch, cc] = createMemoryTransportPair('phone-host', 'phone-ctrl');
  air.createController({ name: 'wearable', seed: `${seed}/wearable` }).attach(pc);
  air.createController({ name: 'phone', seed: `${seed}/phone` }).attach(cc);
  const profile = new WearableProfile({ deviceName: 'Noira Band' });
  const periphBonds = new MemoryBondStore();
  const centralBonds = new MemoryBondStore();
  const peripheral = new Peripheral({
    transport: ph,
    clock,
    random: seededRandom(`${seed}/p`),
    log,
    bonds: periphBonds,
    db: profile.db,
    name: 'Noira Band',
    serviceUuids16: [0x180d],
    connectionParameters: false,
    ...o.peripheral,
  });
  const central = new Central({ transport: ch, clock, random: seededRandom(`${seed}/c`), log, bonds: centralBonds, ...o.central });
  const w: World = {
    clock,
    air,
    profile,
    peripheral,
    central,
    periphBonds,
    centralBonds,
    async close() {
      await drive(clock, central.stop()).catch(() => undefined);
      await drive(clock, peripheral.stop()).catch(() => undefined);
      air.close();
    },
  };
  if (o.start !== false) {
    await drive(clock, peripheral.start());
    await drive(clock, central.start());
  }
  return w;
}
