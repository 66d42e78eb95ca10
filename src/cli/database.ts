/**
 * The GATT database a run serves: the wearable profile by default, or the user's JSON file (--gatt).
 */
import { buildGattDatabase, type GattDatabase } from '../gatt/database.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

export interface LoadedDatabase {
  db: GattDatabase;
  appearance: number | undefined;
  serviceUuids16: number[];
  startSimulation?: () => void;
  stopSimulation?: () => void;
}

export interface LoadDatabaseOptions {
  gattFile: string | undefined;
  name: string;
  clock: Clock;
  log: Logger;
}

export async function loadDatabase(o: LoadDatabaseOptions): Promise<LoadedDatabase> {
  // Placeholder until src/gatt/profile.ts lands: GAP + Battery.
  const db = buildGattDatabase({
    gap: { deviceName: o.name },
    services: [{ uuid: 0x180f, characteristics: [{ uuid: 0x2a19, properties: ['read', 'notify'], value: Uint8Array.of(100) }] }],
  });
  return { db, appearance: undefined, serviceUuids16: [0x180f] };
}
