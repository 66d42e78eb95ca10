/**
 * `wearable-host --port PATH`: the wearable on a DK (or any H:4 controller): bring-up, advertising,
 * pairing, bonds kept in the JSON store, every packet in the btsnoop trace, live diagnosis, and a
 * clean shutdown on Ctrl-C (advertising off, peers disconnected, port closed, trace flushed).
 */
import { openTransport } from '../hci/open-transport.js';
import type { Transport } from '../hci/transport.js';
import { BtsnoopWriter } from '../hci/btsnoop.js';
import { DEFAULT_IDLE_CHECK_MS } from '../hci/watchdog.js';
import type { PacketDirection } from '../hci/driver.js';
import { JsonFileBondStore, defaultBondsPath } from '../bonds/json-store.js';
import type { BondStore, WhenBondStoreFull } from '../bonds/types.js';
import { Peripheral, type PeripheralOptions } from '../host.js';
import { LiveDiagnoser } from '../diagnose/live.js';
import { hciLogFields, HCI_LOG_MSG } from '../diagnose/formats/pino.js';
import { renderFinding } from '../diagnose/render-finding.js';
import { formatAddress } from '../util/address.js';
import { RealClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { mixedRandom, osRandom, type RandomSource } from '../util/random.js';
import type { SmpPolicy } from '../smp/types.js';
import { loadDatabase, type LoadedDatabase } from './database.js';
import {
  REPAIR_POLICIES,
  SECURITY_REQUEST_MODES,
  parseChoice,
  parseIntOption,
  parseIoCapability,
  type MainCliOptions,
} from './options.js';
import type { Hci } from '../hci/driver.js';
import { DEFAULT_RPA_TIMEOUT_S, MAX_RPA_TIMEOUT_S, MIN_RPA_TIMEOUT_S } from '../privacy/rpa-rotation.js';

/** Settings of a wearable run, parsed and validated from the CLI options. */
export interface WearableSettings {
  name: string;
  btsnoop: string | undefined;
  bondsPath: string;
  maxBonds: number;
  /** What a full bond store does with a new peer (--evict-oldest-bond). */
  whenBondsFull: WhenBondStoreFull;
  gattFile: string | undefined;
  mtu: number;
  policy: Partial<SmpPolicy>;
  pairingWindowS: number | undefined;
  mixControllerRng: boolean;
  connParams: boolean;
  /** RPA rotation period in seconds when --privacy is on. */
  privacyS: number | undefined;
  resolvingList: boolean;
}

export function parseWearableSettings(o: MainCliOptions): WearableSettings {
  const pairingWindowS = o.pairingWindow === undefined ? undefined : parseIntOption('--pairing-window', o.pairingWindow, 1, 86_400);
  return {
    name: o.name,
    btsnoop: o.btsnoop,
    bondsPath: o.bonds ?? defaultBondsPath(),
    maxBonds: parseIntOption('--max-bonds', o.maxBonds, 1, 1000),
    whenBondsFull: o.evictOldestBond ? 'evict-oldest' : 'refuse',
    gattFile: o.gatt,
    mtu: parseIntOption('--mtu', o.mtu, 23, 517),
    pairingWindowS,
    mixControllerRng: o.mixControllerRng ?? false,
    connParams: o.connParams,
    resolvingList: o.resolvingList ?? false,
    privacyS:
      o.privacy === undefined || o.privacy === false
        ? undefined
        : o.privacy === true
          ? DEFAULT_RPA_TIMEOUT_S
          : parseIntOption('--privacy', o.privacy, MIN_RPA_TIMEOUT_S, MAX_RPA_TIMEOUT_S),
    policy: {
      securityRequest: parseChoice('--security-request', o.securityRequest, SECURITY_REQUEST_MODES),
      securityRequestDelayMs: parseIntOption('--security-request-delay', o.securityRequestDelay, 0, 60_000),
      rePairing: parseChoice('--repair', o.repair, REPAIR_POLICIES),
      minKeySize: parseIntOption('--min-key-size', o.minKeySize, 7, 16),
      ioCapability: parseIoCapability(o.ioCapability),
      allowDebugKeys: o.allowDebugKeys ?? false,
    },
  };
}

/** A running wearable and everything it holds open, so one place closes it. */
export interface WearableSession {
  readonly peripheral: Peripheral;
  readonly bonds: BondStore;
  readonly database: LoadedDatabase;
  readonly diagnoser: LiveDiagnoser;
  readonly trace: BtsnoopWriter | undefined;
  /** Stops advertising, disconnects, closes the port, flushes the trace, releases the bond file. */
  close(): Promise<void>;
}

export interface StartWearableOptions {
  settings: WearableSettings;
  transport: Transport;
  log: Logger;
  clock?: Clock;
  random?: RandomSource;
  /** Defaults to the JSON file store at settings.bondsPath. */
  bonds?: BondStore;
  /** Extra peripheral options (tests, simulator). */
  peripheral?: Partial<PeripheralOptions>;
  /** Start the simulated sensor values (heart rate, battery, records). */
  simulateValues?: boolean;
  /** Serve this database instead of loading one from settings.gattFile (the library's `gatt` option). */
  database?: LoadedDatabase;
  /** Sees every HCI packet too (after the trace and the live diagnosis). */
  onPacket?: (dir: PacketDirection, h4: Uint8Array) => void;
}

/**
 * A pool of controller randomness (LE Rand, TRNG-seeded on the nRF53 network core) mixed into the
 * OS CSPRNG. The pool is refilled in the background after each use; the OS source alone already
 * suffices, the controller's bytes are defence in depth.
 */
function controllerRandomMixer(hci: Hci, log: Logger): { random: RandomSource; refill(): Promise<void> } {
  let pool = new Uint8Array(0);
  let refilling = false;
  const refill = async (): Promise<void> => {
    if (refilling || !hci.ready) return;
    refilling = true;
    try {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 4; i++) parts.push((await hci.command('LeRand', {})).random);
      const next = new Uint8Array(32);
      parts.forEach((p, i) => next.set(p, i * 8));
      pool = next;
    } catch (err) {
      log.warn({ err }, 'LE Rand failed; continuing with the OS CSPRNG alone');
    } finally {
      refilling = false;
    }
  };
  return {
    random: mixedRandom(osRandom, () => {
      const used = pool;
      void refill();
      return used;
    }),
    refill,
  };
}

export async function startWearable(o: StartWearableOptions): Promise<WearableSession> {
  const { settings, transport, log } = o;
  const clock = o.clock ?? new RealClock();
  let trace: BtsnoopWriter | undefined;
  let peripheral: Peripheral | undefined;
  let bonds: BondStore | undefined = o.bonds;
  try {
    // Opened inside the try: a bond file that cannot be used must not leave the port open.
    bonds ??= await openBondStore(settings, log);
    const store = bonds;
    const database = o.database ?? (await loadDatabase({ gattFile: settings.gattFile, name: settings.name, clock, log }));
    if (settings.btsnoop) trace = await BtsnoopWriter.open(settings.btsnoop);
    const diagnoser = new LiveDiagnoser({
      clock,
      log: log.child({ layer: 'diagnose' }),
      resolveAddress: (a) => store.resolve(a)?.peer,
      bondStore: () => store.capacity?.(),
    });
    diagnoser.on('finding', (f) => log.warn({ rule: f.rule }, renderFinding(f)));
    let packetNumber = 0;
    const onPacket = (dir: PacketDirection, h4: Uint8Array): void => {
      packetNumber++;
      trace?.write(dir, h4, clock.now());
      const d = dir === 'sent' ? 'tx' : 'rx';
      diagnoser.trace(d, h4);
      if (log.isLevelEnabled('debug')) log.debug(hciLogFields(d, h4, packetNumber), HCI_LOG_MSG);
      o.onPacket?.(dir, h4);
    };
    const openedAt = clock.now();
    const windowMs = settings.pairingWindowS === undefined ? undefined : settings.pairingWindowS * 1000;
    let random: RandomSource = o.random ?? osRandom;
    let mixer: ReturnType<typeof controllerRandomMixer> | undefined;
    const policy: Partial<SmpPolicy> = {
      ...settings.policy,
      ...(windowMs !== undefined ? { isPairingAllowed: () => clock.now() - openedAt < windowMs } : {}),
    };
    // The mixer needs the driver, which the peripheral owns: route through a late-bound source.
    const lateRandom: RandomSource = { bytes: (n) => (mixer ? mixer.random.bytes(n) : random.bytes(n)) };
    peripheral = new Peripheral({
      transport,
      clock,
      random: lateRandom,
      log,
      bonds: store,
      db: database.db,
      name: settings.name,
      appearance: database.appearance,
      serviceUuids16: database.serviceUuids16,
      mtu: settings.mtu,
      policy,
      trace: onPacket,
      ...(settings.connParams ? {} : { connectionParameters: false as const }),
      ...(settings.privacyS !== undefined ? { privacy: { rpaTimeoutS: settings.privacyS } } : {}),
      ...(settings.resolvingList ? { resolvingList: true } : {}),
      ...o.peripheral,
      // The idle watchdog notices a controller that hung or rebooted while nobody talked to it.
      hci: { idleCheckMs: DEFAULT_IDLE_CHECK_MS, ...o.peripheral?.hci },
    });
    const p = peripheral;
    if (settings.mixControllerRng) mixer = controllerRandomMixer(p.hci, log);
    describeEvents(p, log, settings);
    const info = await p.start();
    if (mixer) await mixer.refill();
    if (o.simulateValues) database.startSimulation?.();
    log.info(
      { identity: formatAddress(info.identityAddress), controller: info.versionSummary, bonds: store.description, btsnoop: settings.btsnoop },
      `"${settings.name}" is advertising on ${p.hci.port} (${info.description}); identity ${formatAddress(info.identityAddress)}; ` +
        `${store.list().length} bond(s) in ${store.description}` +
        (windowMs !== undefined ? `; new pairings allowed for ${settings.pairingWindowS} s` : '') +
        (p.privateAddress ? `; private address ${p.privateAddress.address}, rotated every ${settings.privacyS} s` : ''),
    );
    let closed = false;
    return {
      peripheral: p,
      bonds: store,
      database,
      diagnoser,
      trace,
      async close() {
        if (closed) return;
        closed = true;
        database.stopSimulation?.();
        await p.stop();
        diagnoser.stop();
        await transport.close().catch(() => undefined);
        await trace?.close();
        await store.close();
      },
    };
  } catch (err) {
    peripheral?.hci.close();
    await trace?.close().catch(() => undefined);
    await transport.close().catch(() => undefined);
    if (!o.bonds) await bonds?.close().catch(() => undefined);
    throw err;
  }
}

/** The JSON bond store at settings.bondsPath, locked for this process. */
export function openBondStore(settings: WearableSettings, log: Logger): Promise<BondStore> {
  return JsonFileBondStore.open(settings.bondsPath, { maxBonds: settings.maxBonds, whenFull: settings.whenBondsFull, logger: log.child({ layer: 'bonds' }) });
}

/** Info-level lines for what a user watches: connections, pairing, encryption, bonds. */
function describeEvents(p: Peripheral, log: Logger, settings: WearableSettings): void {
  p.on('connected', (link) => log.info({ handle: link.hci.handle }, `connected: ${formatAddress(link.hci.peer)} (interval ${link.hci.intervalMs} ms)`));
  p.on('disconnected', (link, _reason, name) => log.info({ handle: link.hci.handle }, `disconnected: ${formatAddress(link.hci.peer)}, reason ${name}`));
  p.on('paired', (link, info) =>
    log.info(
      { handle: link.hci.handle, securityLevel: info.level, keySize: info.keySize, bonded: info.bonded },
      `paired with ${formatAddress(info.peerIdentity)}: security level L${info.level} (${info.model}), key ${info.keySize} bytes${info.bonded ? ', bond saved' : ', not bonded'}`,
    ),
  );
  p.on('pairingFailed', (link, f) => log.warn({ handle: link.hci.handle, reason: f.reason, by: f.by }, f.message));
  p.on('encrypted', (link) =>
    log.info({ handle: link.hci.handle }, `link to ${formatAddress(link.hci.peer)} encrypted: level L${link.smp.level}, key ${link.smp.keySize} bytes`),
  );
  p.on('fatal', (err) => log.error(`${err.message}. Check the cable and run \`wearable-host doctor\`; restart with --port when the DK is back.`));
  void settings;
}

/** Opens the port named by --port with the serial settings given. */
export function openPort(port: string, o: { baud: number; rtscts: boolean; chunkSize: number; log: Logger }): Promise<Transport> {
  return openTransport(port, { baudRate: o.baud, rtscts: o.rtscts, maxWriteChunk: o.chunkSize, logger: o.log.child({ layer: 'transport' }) });
}
