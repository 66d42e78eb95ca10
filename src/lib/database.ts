/**
 * The GATT database a run serves: the wearable profile by default, or the user's JSON file (--gatt),
 * which may include the profile. With --sim the profile is fed simulated values.
 */
import type { GattDatabase } from '../gatt/database.js';
import { WearableProfile, SimulatedFeeder } from '../gatt/profile.js';
import { loadGattJsonFile, formatGattJsonIssues } from '../gatt/json.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { WearableHostError } from '../util/errors.js';

export interface LoadedDatabase {
  db: GattDatabase;
  /** The wearable profile, when served (default, or asked for by the JSON file). */
  profile: WearableProfile | undefined;
  appearance: number | undefined;
  /** 16-bit primary service UUIDs to advertise. */
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

/** The wearable's appearance: 0x00C1 Sports Watch (Assigned Numbers 2.6). */
export const WEARABLE_APPEARANCE = 0x00c1;

/** Heart Rate and Battery are what a phone app scans for; both fit the advertising data. */
const ADVERTISED_16 = [0x180d, 0x180f];

export async function loadDatabase(o: LoadDatabaseOptions): Promise<LoadedDatabase> {
  let db: GattDatabase;
  let profile: WearableProfile | undefined;
  if (o.gattFile) {
    const r = await loadGattJsonFile(o.gattFile, { deviceName: o.name, appearance: WEARABLE_APPEARANCE });
    if (!r.ok) throw new WearableHostError('gatt', formatGattJsonIssues(o.gattFile, r.issues));
    db = r.value.db;
    profile = r.value.profile;
  } else {
    profile = new WearableProfile({ deviceName: o.name, appearance: WEARABLE_APPEARANCE });
    db = profile.db;
  }
  const primary16 = new Set<number>();
  for (const s of db.services) {
    if (s.primary && s.uuid.is16) primary16.add(parseInt(s.uuid.key, 16));
  }
  const serviceUuids16 = ADVERTISED_16.filter((u) => primary16.has(u));
  o.log.info({ services: db.services.length, attributes: db.attributes.length }, `serving ${o.gattFile ? `the GATT database of ${o.gattFile}` : 'the wearable profile'}`);
  let feeder: SimulatedFeeder | undefined;
  return {
    db,
    profile,
    appearance: WEARABLE_APPEARANCE,
    serviceUuids16,
    ...(profile
      ? {
          startSimulation: () => {
            feeder ??= new SimulatedFeeder(profile, o.clock, { initialRecord: true });
            feeder.start();
          },
          stopSimulation: () => feeder?.stop(),
        }
      : {}),
  };
}
