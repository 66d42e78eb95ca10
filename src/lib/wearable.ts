/**
 * The wearable as a library object: the CLI's `wearable-host --port PATH` (same option names and
 * defaults, camel-cased), with typed events and awaitable helpers for hardware-in-the-loop tests.
 *
 *   const wearable = await Wearable.start({ controller: air });      // or '/dev/ttyACM0', 'tcp://...'
 *   await wearable.advertising();
 *   const paired = await wearable.waitFor('paired', { timeoutMs: 10_000 });
 *   await wearable.close();
 */
import { startWearable, parseWearableSettings, type WearableSession } from './session.js';
import type { MainCliOptions } from './options.js';
import { WEARABLE_APPEARANCE, type LoadedDatabase } from './database.js';
import { JsonFileBondStore, defaultBondsPath } from '../bonds/json-store.js';
import { MemoryBondStore } from '../bonds/memory.js';
import type { BondRecord, BondStore } from '../bonds/types.js';
import type { Peripheral } from '../host.js';
import type { GattDatabase, UpdateOutcome, AttributeRef } from '../gatt/database.js';
import type { WearableProfile } from '../gatt/profile.js';
import type { Finding } from '../diagnose/diagnose.js';
import type { PacketDirection } from '../hci/driver.js';
import { hciStatusName } from '../hci/status.js';
import { attErrorName } from '../att/pdu.js';
import { formatAddress } from '../util/address.js';
import { TypedEmitter } from '../util/emitter.js';
import { createLogger, silentLogger, type Logger, type LogLevel } from '../util/log.js';
import { WearableHostError } from '../util/errors.js';
import { VirtualAir } from './air.js';
import { openController, type ControllerSpec, type OpenControllerOptions } from './controller.js';
import { ObservedBondStore } from './bond-events.js';
import { WaitError, withDeadline, type WaitOptions } from './wait.js';

/** Options: the CLI's, camel-cased, with the CLI's defaults. */
export interface WearableOptions extends OpenControllerOptions {
  /** `--port`: a serial port path, `tcp://host:port`, or a VirtualAir (a new virtual controller on it). */
  controller: ControllerSpec;
  /** `--name`. Default "Noira Band". */
  name?: string;
  /** `--btsnoop FILE`: record every HCI packet. */
  btsnoop?: string;
  /**
   * `--bonds FILE`, or a BondStore. Default: the CLI's file ($XDG_STATE_HOME/wearable-host/bonds.json)
   * on a DK; in memory on a VirtualAir (as `--sim` does).
   */
  bonds?: string | BondStore;
  /** `--max-bonds`. Default 16. */
  maxBonds?: number;
  /** `--gatt FILE` (JSON), or a database from `new GattDatabaseBuilder()...build()`. Default: the wearable profile. */
  gatt?: string | GattDatabase;
  /** `--mtu`. Default 517. */
  mtu?: number;
  /** `--security-request`. Default 'never'. */
  securityRequest?: 'never' | 'on-connect' | 'after-att-rejection';
  /** `--security-request-delay`, ms. Default 0. */
  securityRequestDelay?: number;
  /** `--repair`. Default 'reject'. */
  repair?: 'reject' | 'replace';
  /** `--pairing-window`, seconds. Default: always. */
  pairingWindow?: number;
  /** `--min-key-size`. Default 16. */
  minKeySize?: number;
  /** `--io-capability`. Default 'no-input-no-output'. */
  ioCapability?: 'display-only' | 'display-yes-no' | 'keyboard-only' | 'no-input-no-output' | 'keyboard-display';
  /** `--allow-debug-keys`. Default false. */
  allowDebugKeys?: boolean;
  /** `--privacy [S]`: true (900 s) or the rotation period in seconds. Default off. */
  privacy?: boolean | number;
  /** `--resolving-list`. Default false. */
  resolvingList?: boolean;
  /** `--mix-controller-rng`. Default false. */
  mixControllerRng?: boolean;
  /** `--no-simulated-values` is `simulatedValues: false`. Default true. */
  simulatedValues?: boolean;
  /** `--no-conn-params` is `connParams: false`. Default true. */
  connParams?: boolean;
  /** `--log-level`. Default 'info' (JSON lines on stderr); ignored when `log` is given. */
  logLevel?: LogLevel;
  /** A pino logger of your own. */
  log?: Logger;
}

/** A connected phone, as the wearable sees it. */
export interface PeerInfo {
  /** Connection handle. */
  readonly handle: number;
  /** The address it connected from, `AA:BB:CC:DD:EE:FF (random)`. */
  readonly peer: string;
}

export type WearableEvents = {
  advertising: [on: boolean];
  connected: [PeerInfo];
  disconnected: [PeerInfo & { readonly reason: number; readonly reasonName: string }];
  /** Pairing completed: security level (2 = LESC unauthenticated), key size, bonded. Core 5.4 Vol 3 Part C 10.2. */
  paired: [PeerInfo & { readonly identity: string; readonly level: number; readonly keySize: number; readonly bonded: boolean; readonly model: string }];
  pairingFailed: [PeerInfo & { readonly reason: number | undefined; readonly by: string; readonly message: string }];
  /** HCI Encryption Change (Core 5.4 Vol 4 Part E 7.7.8): status 0x00 and enabled, or a failure such as 0x06. */
  encryptionChanged: [PeerInfo & { readonly status: number; readonly statusName: string; readonly enabled: boolean }];
  /** An ATT Error Response the wearable sent (Core 5.4 Vol 3 Part F 3.4.1.1). */
  attErrorSent: [{ readonly handle: number; readonly requestOpcode: number; readonly attributeHandle: number; readonly code: number; readonly codeName: string }];
  bondSaved: [{ readonly peer: string; readonly bond: BondRecord }];
  bondRemoved: [{ readonly peer: string }];
  /** A live diagnosis finding (the same rules as `wearable-host diagnose`). */
  finding: [Finding];
  /** The controller or its port is gone. */
  fatal: [Error];
};

export type WearableEventName = keyof WearableEvents;
/** What `waitFor(name)` resolves with: the event's (single) argument. */
export type WearableEventValue<K extends WearableEventName> = WearableEvents[K][0];

interface Waiter {
  readonly pred: (v: unknown) => boolean;
  readonly resolve: (v: unknown) => void;
}

/** Events kept per name for waitFor, oldest dropped first. */
const BUFFERED_PER_EVENT = 256;

export class Wearable extends TypedEmitter<WearableEvents> {
  /** The composition root underneath (internal API, may change). */
  readonly peripheral: Peripheral;
  /** The bond store (list, get, remove, clear). */
  readonly bonds: BondStore;
  /** The GATT database served. */
  readonly db: GattDatabase;
  /** The wearable profile, when served (heart rate, battery, health records). */
  readonly profile: WearableProfile | undefined;
  private readonly session: WearableSession;
  private readonly buffered = new Map<WearableEventName, unknown[]>();
  private readonly waiters = new Map<WearableEventName, Set<Waiter>>();
  private readonly closers = new Set<(err: WaitError) => void>();
  private closed = false;
  private release: (() => void) | undefined;

  private constructor(session: WearableSession) {
    super();
    this.session = session;
    this.peripheral = session.peripheral;
    this.bonds = session.bonds;
    this.db = session.database.db;
    this.profile = session.database.profile;
  }

  /** Opens the controller, brings it up, and starts advertising (resolves once advertising). */
  static async start(o: WearableOptions): Promise<Wearable> {
    const log = o.log ?? (o.logLevel === 'silent' ? silentLogger() : createLogger({ level: o.logLevel ?? 'info', pretty: false }));
    const onAir = o.controller instanceof VirtualAir;
    const settings = parseWearableSettings(cliOptions(o));
    let emit: ((name: WearableEventName, v: unknown) => void) | undefined;
    const emitLater = (name: WearableEventName, v: unknown): void => emit?.(name, v);
    let inner: BondStore;
    if (typeof o.bonds === 'object') inner = o.bonds;
    else if (typeof o.bonds === 'string' || !onAir) inner = await JsonFileBondStore.open(o.bonds ?? defaultBondsPath(), { maxBonds: settings.maxBonds, logger: log.child({ layer: 'bonds' }) });
    else inner = new MemoryBondStore({ maxBonds: settings.maxBonds });
    const bonds = new ObservedBondStore(
      inner,
      (r) => emitLater('bondSaved', { peer: formatAddress(r.peer), bond: r }),
      (p) => emitLater('bondRemoved', { peer: formatAddress(p) }),
    );
    let transport;
    try {
      transport = await openController(o.controller, { ...o, log });
    } catch (err) {
      await inner.close().catch(() => undefined);
      throw err;
    }
    const database: LoadedDatabase | undefined =
      typeof o.gatt === 'object' ? { db: o.gatt, profile: undefined, appearance: WEARABLE_APPEARANCE, serviceUuids16: [] } : undefined;
    const session = await startWearable({
      settings,
      transport,
      log,
      bonds,
      simulateValues: o.simulatedValues ?? true,
      ...(database ? { database } : {}),
      onPacket: (dir, h4) => {
        const e = decodeAttErrorSent(dir, h4);
        if (e) emitLater('attErrorSent', e);
      },
    }).catch(async (err: unknown) => {
      // startWearable closes the transport; the bond store is ours to close.
      await inner.close().catch(() => undefined);
      throw err;
    });
    const w = new Wearable(session);
    emit = (name, v) => w.deliver(name, v);
    w.wire();
    if (o.controller instanceof VirtualAir) w.release = o.controller.own(w);
    return w;
  }

  private wire(): void {
    const p = this.peripheral;
    const info = (handle: number, peer: string): PeerInfo => ({ handle, peer });
    p.on('advertising', (on) => this.deliver('advertising', on));
    p.on('connected', (l) => this.deliver('connected', info(l.hci.handle, formatAddress(l.hci.peer))));
    p.on('disconnected', (l, reason, reasonName) => this.deliver('disconnected', { ...info(l.hci.handle, formatAddress(l.hci.peer)), reason, reasonName }));
    p.on('paired', (l, i) =>
      this.deliver('paired', { ...info(l.hci.handle, formatAddress(l.hci.peer)), identity: formatAddress(i.peerIdentity), level: i.level, keySize: i.keySize, bonded: i.bonded, model: i.model }),
    );
    p.on('pairingFailed', (l, f) => this.deliver('pairingFailed', { ...info(l.hci.handle, formatAddress(l.hci.peer)), reason: f.reason, by: f.by, message: f.message }));
    p.hci.on('encryptionChanged', (c, ch) =>
      this.deliver('encryptionChanged', { ...info(c.handle, formatAddress(c.peer)), status: ch.status, statusName: hciStatusName(ch.status), enabled: ch.enabled }),
    );
    this.session.diagnoser.on('finding', (f) => this.deliver('finding', f));
    p.on('fatal', (err) => this.deliver('fatal', err));
  }

  private deliver(name: WearableEventName, v: unknown): void {
    (this.emit as (n: WearableEventName, ...a: unknown[]) => boolean)(name, v);
    for (const w of this.waiters.get(name) ?? []) {
      if (w.pred(v)) {
        this.waiters.get(name)?.delete(w);
        w.resolve(v);
        return;
      }
    }
    let q = this.buffered.get(name);
    if (!q) this.buffered.set(name, (q = []));
    q.push(v);
    if (q.length > BUFFERED_PER_EVENT) q.shift();
  }

  /**
   * Resolves with the next `name` event not yet taken by an earlier waitFor (events are buffered
   * from start(), so one that fired just before the call still counts), optionally the next one
   * `filter` accepts. Rejects with a WaitError naming the event after `timeoutMs` (default 30 000),
   * when `signal` fires, or when the wearable is closed.
   */
  waitFor<K extends WearableEventName>(
    name: K,
    o: WaitOptions & { filter?: (v: WearableEventValue<K>) => boolean } = {},
  ): Promise<WearableEventValue<K>> {
    const what = `the wearable's '${String(name)}' event`;
    if (this.closed) return Promise.reject(new WaitError('closed', what));
    const pred = (v: unknown): boolean => (o.filter ? o.filter(v as WearableEventValue<K>) : true);
    const q = this.buffered.get(name) ?? [];
    const i = q.findIndex(pred);
    if (i >= 0) return Promise.resolve(q.splice(i, 1)[0] as WearableEventValue<K>);
    let waiter: Waiter | undefined;
    let onClose: ((err: WaitError) => void) | undefined;
    const p = new Promise<WearableEventValue<K>>((resolve, reject) => {
      waiter = { pred, resolve: (v) => resolve(v as WearableEventValue<K>) };
      let set = this.waiters.get(name);
      if (!set) this.waiters.set(name, (set = new Set()));
      set.add(waiter);
      onClose = (err) => reject(new WaitError('closed', what, undefined, { cause: err }));
      this.closers.add(onClose);
    });
    const cleanup = (): void => {
      if (waiter) this.waiters.get(name)?.delete(waiter);
      if (onClose) this.closers.delete(onClose);
    };
    return withDeadline(p, what, o, 30_000, cleanup).finally(cleanup);
  }

  /** Resolves when the wearable is advertising (at once if it is). Default timeout 10 s. */
  advertising(o: WaitOptions = {}): Promise<void> {
    if (this.peripheral.advertising) return Promise.resolve();
    return this.waitFor('advertising', { ...o, timeoutMs: o.timeoutMs ?? 10_000, filter: (on) => on }).then(() => undefined);
  }

  /** The wearable's identity address (the DK's static address), `AA:BB:CC:DD:EE:FF (random)`. */
  get address(): string {
    const id = this.peripheral.identity;
    if (!id) throw new WearableHostError('hci', 'the wearable has not started');
    return formatAddress(id.address);
  }

  /** Replaces a characteristic's stored value (by id, or value handle) without sending it. */
  setValue(ref: AttributeRef, value: Uint8Array): void {
    this.db.setValue(ref, value);
  }

  /** Stores a value and notifies or indicates it to every subscribed phone (indications resolve when confirmed). */
  notify(ref: AttributeRef, value: Uint8Array): Promise<UpdateOutcome> {
    return this.db.update(ref, value);
  }

  /** Disconnects every phone, stops advertising, closes the controller link, the trace and the bond store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.release?.();
    const err = new WaitError('closed', 'the wearable');
    for (const c of [...this.closers]) c(err);
    this.closers.clear();
    this.waiters.clear();
    await this.session.close();
    this.removeAllListeners();
  }
}

/** The CLI's raw option bag from library options, so parsing, validation and defaults are the CLI's own. */
function cliOptions(o: WearableOptions): MainCliOptions {
  const s = (v: number | undefined, d: string): string => (v === undefined ? d : String(v));
  return {
    baud: s(o.baud, '1000000'),
    rtscts: o.rtscts ?? true,
    chunkSize: s(o.chunkSize, '64'),
    name: o.name ?? 'Noira Band',
    logLevel: o.logLevel ?? 'info',
    maxBonds: s(o.maxBonds, '16'),
    mtu: s(o.mtu, '517'),
    securityRequest: o.securityRequest ?? 'never',
    securityRequestDelay: s(o.securityRequestDelay, '0'),
    repair: o.repair ?? 'reject',
    minKeySize: s(o.minKeySize, '16'),
    ioCapability: o.ioCapability ?? 'no-input-no-output',
    connParams: o.connParams ?? true,
    simulatedValues: o.simulatedValues ?? true,
    ...(o.btsnoop !== undefined ? { btsnoop: o.btsnoop } : {}),
    ...(typeof o.bonds === 'string' ? { bonds: o.bonds } : {}),
    ...(typeof o.gatt === 'string' ? { gatt: o.gatt } : {}),
    ...(o.pairingWindow !== undefined ? { pairingWindow: String(o.pairingWindow) } : {}),
    ...(o.allowDebugKeys ? { allowDebugKeys: true } : {}),
    ...(o.privacy !== undefined && o.privacy !== false ? { privacy: o.privacy === true ? true : String(o.privacy) } : {}),
    ...(o.resolvingList ? { resolvingList: true } : {}),
    ...(o.mixControllerRng ? { mixControllerRng: true } : {}),
  };
}

/**
 * An ATT Error Response in an ACL packet the host sent: H:4 type 0x02, the first fragment of an
 * L2CAP B-frame on CID 0x0004, ATT opcode 0x01 (Core 5.4 Vol 3 Part F 3.4.1.1: request opcode,
 * attribute handle, error code). The 5-byte PDU always sits in the first fragment.
 */
export function decodeAttErrorSent(dir: PacketDirection, h4: Uint8Array): WearableEventValue<'attErrorSent'> | undefined {
  if (dir !== 'sent' || h4.length < 14 || h4[0] !== 0x02) return undefined;
  const hf = (h4[1] as number) | ((h4[2] as number) << 8);
  const pb = (hf >> 12) & 0x3;
  if (pb === 0x1) return undefined; // a continuation fragment
  const cid = (h4[7] as number) | ((h4[8] as number) << 8);
  if (cid !== 0x0004 || h4[9] !== 0x01) return undefined;
  const code = h4[13] as number;
  return { handle: hf & 0x0fff, requestOpcode: h4[10] as number, attributeHandle: (h4[11] as number) | ((h4[12] as number) << 8), code, codeName: attErrorName(code) };
}
