/**
 * A simulated phone (iOS or Android profile, src/phone/profiles.ts) as a library object: on a
 * virtual controller, or on a second DK over real radio, driving any wearable, including the
 * user's side (accept, cancel, let the prompt time out, forget the device).
 *
 *   const phone = await Phone.open({ controller: air, profile: 'ios' });
 *   await phone.connect('Noira Band');
 *   await phone.pair();
 *   const record = await phone.read(HealthUuid.record);
 *   await phone.close();
 */
import { SimulatedPhone, PhoneError, type PhoneSession, type PhoneUser } from '../phone/phone.js';
import { phoneProfile, type PhoneBehaviour, type PhoneName, type PhoneProfile } from '../phone/profiles.js';
import type { ScenarioEvent } from '../phone/events.js';
import { MemoryBondStore } from '../bonds/memory.js';
import type { BondStore } from '../bonds/types.js';
import type { Transport } from '../hci/transport.js';
import type { RemoteDatabase } from '../gatt/client.js';
import type { UuidLike } from '../gatt/uuid.js';
import { formatAddress, isValidAddressText, normaliseAddress, type Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import { RealClock } from '../util/clock.js';
import { osRandom } from '../util/random.js';
import { silentLogger, type Logger } from '../util/log.js';
import { TypedEmitter } from '../util/emitter.js';
import { VirtualAir } from './air.js';
import { openController, type ControllerSpec, type OpenControllerOptions } from './controller.js';
import { WaitError, withDeadline, type WaitOptions } from './wait.js';

export interface PhoneOptions extends OpenControllerOptions {
  /** A VirtualAir, a serial port path (a second DK running hci_uart) or `tcp://host:port`. */
  controller: ControllerSpec;
  /** Which phone (`--profile`). Default 'ios'. */
  profile?: PhoneName;
  /** Changes to the profile's rules (each row of the table in src/phone/profiles.ts). */
  overrides?: Partial<PhoneBehaviour>;
  /** The user at the pairing prompt: answer 'accept' (default), 'cancel' or 'no-answer'; thinkMs (default 1500). */
  user?: Partial<PhoneUser>;
  /** The phone's bond store. Default: in memory. */
  bonds?: BondStore;
  log?: Logger;
}

export type PhoneEvents = {
  /** Everything the phone did or saw, as the `--sim` transcripts print it. */
  event: [ScenarioEvent];
};

/** The connection a phone made. */
export interface PhoneConnection {
  /** The wearable's address as connected to. */
  readonly peer: string;
  /** The phone's own address on this connection. */
  readonly localAddress: string;
  readonly intervalMs: number;
}

export class Phone extends TypedEmitter<PhoneEvents> {
  readonly profile: PhoneProfile;
  /** The user at the prompt: change `phone.user.answer` between steps. */
  readonly user: PhoneUser;
  readonly bonds: BondStore;
  /** Every event so far. */
  readonly events: ScenarioEvent[] = [];
  private readonly sim: SimulatedPhone;
  private readonly transport: Transport;
  private current: PhoneSession | undefined;
  private closed = false;
  private release: (() => void) | undefined;

  private constructor(sim: SimulatedPhone, transport: Transport) {
    super();
    this.sim = sim;
    this.transport = transport;
    this.profile = sim.profile;
    this.user = sim.user;
    this.bonds = sim.bonds;
    sim.on('event', (e) => {
      this.events.push(e);
      this.emit('event', e);
    });
  }

  /** Opens the controller and brings it up (HCI Reset, identity). */
  static async open(o: PhoneOptions): Promise<Phone> {
    const log = o.log ?? silentLogger();
    const transport = await openController(o.controller, { ...o, ...(o.name === undefined && o.controller instanceof VirtualAir ? { name: `phone-${o.profile ?? 'ios'}` } : {}) });
    const sim = new SimulatedPhone({
      profile: phoneProfile(o.profile ?? 'ios', o.overrides ?? {}),
      transport,
      clock: new RealClock(),
      random: osRandom,
      log,
      bonds: o.bonds ?? new MemoryBondStore(),
      ...(o.user ? { user: o.user } : {}),
    });
    const phone = new Phone(sim, transport);
    try {
      await withDeadline(sim.start(), 'the phone controller to come up', {}, 10_000);
    } catch (err) {
      await phone.close();
      throw err;
    }
    if (o.controller instanceof VirtualAir) phone.release = o.controller.own(phone);
    return phone;
  }

  /** The phone's identity address. */
  get address(): string {
    const id = this.sim.central.identity;
    return id ? formatAddress(id.address) : '';
  }

  private session(what: string): PhoneSession {
    const s = this.current;
    if (!s || !s.open) throw new PhoneError('disconnected', `${what}: the phone is not connected (call connect() first)`);
    return s;
  }

  /**
   * Scans for the wearable by advertised name (or address, `AA:BB:CC:DD:EE:FF` / `{ address }`),
   * connects, and does what the phone does right after connecting (encrypt with a stored key,
   * exchange MTU). Default timeout 10 s.
   */
  async connect(target: string | { name: string } | { address: Address }, o: WaitOptions = {}): Promise<PhoneConnection> {
    const t = typeof target === 'string' ? (/^([0-9a-f]{2}:){5}[0-9a-f]{2}( \((random|public)\))?$/i.test(target) ? { address: parseAddress(target) } : { name: target }) : target;
    const what = `phone.connect(${JSON.stringify(typeof target === 'string' ? target : 'name' in target ? target.name : formatAddress(target.address))})`;
    const timeoutMs = o.timeoutMs ?? 10_000;
    this.current = await withDeadline(this.sim.connect(t, timeoutMs + 1000), what, { ...o, timeoutMs }, timeoutMs, () => {
      void this.sim.central.cancelConnect().catch(() => undefined);
    });
    const link = this.current.link;
    return { peer: formatAddress(link.peer), localAddress: formatAddress(link.localAddress), intervalMs: link.hci.intervalMs };
  }

  /**
   * Pairs now (LE Secure Connections), with the user's answer at the prompt. Rejects with a
   * PhoneError when the pairing fails or is cancelled, a WaitError on timeout (default 40 s: the
   * 30 s SMP timeout plus the user).
   */
  async pair(o: WaitOptions = {}): Promise<void> {
    return withDeadline(this.session('pair()').pair(), 'phone.pair()', o, 40_000);
  }

  /** Discovers the wearable's database (or uses the cached one of a bonded wearable). Default timeout 20 s. */
  async discover(o: WaitOptions = {}): Promise<RemoteDatabase> {
    return withDeadline(this.session('discover()').discover(), 'phone.discover()', o, 20_000);
  }

  private async ensureDiscovered(s: PhoneSession, o: WaitOptions): Promise<void> {
    if (!s.remote) await this.discover(o);
  }

  /** Reads a characteristic; on 0x05/0x0F it encrypts or pairs as this phone does, then retries. Default timeout 40 s. */
  async read(uuid: UuidLike, o: WaitOptions = {}): Promise<Uint8Array> {
    const s = this.session('read()');
    await this.ensureDiscovered(s, o);
    return withDeadline(s.read(uuid), `phone.read(${String(uuid)})`, o, 40_000);
  }

  async write(uuid: UuidLike, value: Uint8Array, o: WaitOptions = {}): Promise<void> {
    const s = this.session('write()');
    await this.ensureDiscovered(s, o);
    return withDeadline(s.write(uuid, value), `phone.write(${String(uuid)})`, o, 40_000);
  }

  /** Subscribes (CCCD) to notifications or indications. */
  async subscribe(uuid: UuidLike, kind: 'notify' | 'indicate' = 'notify', o: WaitOptions = {}): Promise<void> {
    const s = this.session('subscribe()');
    await this.ensureDiscovered(s, o);
    await withDeadline(s.subscribe(uuid, kind), `phone.subscribe(${String(uuid)})`, o, 40_000);
  }

  /** Values notified so far for a characteristic on the current connection. */
  received(uuid: UuidLike): Uint8Array[] {
    return this.current?.received(uuid) ?? [];
  }

  /** True while connected. */
  get connected(): boolean {
    return this.current?.open ?? false;
  }

  /** Disconnects (0x13 Remote User Terminated Connection). */
  async disconnect(o: WaitOptions = {}): Promise<void> {
    const s = this.current;
    if (!s?.open) return;
    await withDeadline(s.disconnect().then(() => s.whenClosed()), 'phone.disconnect()', o, 10_000);
  }

  /** The user removes the wearable in the phone's Bluetooth settings ("Forget This Device"). */
  async forget(wearableIdentity?: string | Address): Promise<boolean> {
    const id = typeof wearableIdentity === 'string' ? parseAddress(wearableIdentity) : (wearableIdentity ?? this.bonds.list()[0]?.peer);
    if (!id) return false;
    return this.sim.forget(id);
  }

  /** Disconnects, stops the controller and closes its link. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.release?.();
    await withDeadline(this.sim.stop(), 'the phone to stop', {}, 5000).catch(() => undefined);
    await this.transport.close().catch(() => undefined);
    this.removeAllListeners();
  }
}

export { PhoneError, WaitError };

/** `AA:BB:CC:DD:EE:FF`, optionally followed by ` (random)` or ` (public)` as printed everywhere; random by default (the DK's static address). */
export function parseAddress(text: string): Address {
  const m = /^(\S+)(?: \((random|public)\))?$/.exec(text.trim());
  if (!m || !isValidAddressText(m[1] as string)) throw new WearableHostError('cli', `not a Bluetooth address: ${JSON.stringify(text)} (AA:BB:CC:DD:EE:FF, optionally "(public)")`);
  return { address: normaliseAddress(m[1] as string), type: m[2] === 'public' ? 'public' : 'random' };
}
