/**
 * A simulated phone: our {@link Central} driven by a {@link PhoneProfile}. The profile's values
 * decide everything phone-specific (what the Pairing Request carries, the MTU asked for, which
 * ATT errors trigger pairing, Security Requests, the consent prompt and what Cancel sends, what
 * happens when the accessory lost the bond, connection parameters, GATT caching); the user at the
 * prompt is a small model (accept, cancel, or no answer after some thinking time). This file
 * holds the phone (its central, bonds, GATT cache and user); one connection with the phone's
 * reactions is a {@link PhoneSession} (session.ts), and what it reports is a {@link PhoneError}
 * (errors.ts); both are re-exported here.
 *
 * It runs on the virtual air (scenarios) and on a real controller (`wearable-host phone --port`).
 *
 * The Pairing Request is the profile's: its AuthReq bits (CT2, Keypress) and key distribution are
 * SMP policy fields, so the SMP session sends them itself and feeds the same AuthReq to f6.
 */
import { Central, CentralError, type SmpTap } from '../central/central.js';
import type { CentralLink } from '../central/link.js';
import type { RemoteDatabase } from '../gatt/client.js';
import type { Transport } from '../hci/transport.js';
import type { PacketDirection } from '../hci/driver.js';
import { checkAppleConnectionParameters, formatConnectionParameters } from '../l2cap/conn-params.js';
import { AuthReq } from '../smp/pdu.js';
import type { SmpPolicy } from '../smp/types.js';
import type { BondStore } from '../bonds/types.js';
import { formatAddress, type Address } from '../util/address.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import { TypedEmitter } from '../util/emitter.js';
import type { PhoneProfile } from './profiles.js';
import type { PromptAnswer, ScenarioEvent } from './events.js';
import { PhoneError } from './errors.js';
import { PhoneSession } from './session.js';

export { PhoneError, type PhoneErrorKind } from './errors.js';
export { PhoneSession } from './session.js';

/** The user holding the phone. */
export interface PhoneUser {
  /** What they do at the pairing prompt. Default 'accept'. */
  answer: PromptAnswer;
  /** How long they look at it first, ms. Default 1500. */
  thinkMs: number;
}

export interface SimulatedPhoneOptions {
  profile: PhoneProfile;
  transport: Transport;
  clock: Clock;
  random: RandomSource;
  log: Logger;
  bonds: BondStore;
  user?: Partial<PhoneUser>;
  /** An LE legacy-only central: its Pairing Request has no Secure Connections bit, and it cannot go further. */
  legacyOnly?: boolean;
  trace?: (dir: PacketDirection, h4Packet: Uint8Array) => void;
  /** SMP timeout (default 30 s). */
  smpTimeoutMs?: number;
}

export type SimulatedPhoneEvents = {
  event: [ScenarioEvent];
};

function addressKey(a: Address): string {
  return `${a.type}/${a.address}`;
}

/** The phone: its central, its bonds, its GATT cache, its user. */
export class SimulatedPhone extends TypedEmitter<SimulatedPhoneEvents> {
  readonly central: Central;
  readonly profile: PhoneProfile;
  readonly bonds: BondStore;
  readonly user: PhoneUser;
  private readonly opts: SimulatedPhoneOptions;
  private readonly log: Logger;
  private readonly cache = new Map<string, RemoteDatabase>();
  private readonly sessions = new Map<CentralLink, PhoneSession>();

  constructor(opts: SimulatedPhoneOptions) {
    super();
    this.opts = opts;
    this.profile = opts.profile;
    this.bonds = opts.bonds;
    this.log = opts.log.child({ phone: opts.profile.name });
    this.user = { answer: opts.user?.answer ?? 'accept', thinkMs: opts.user?.thinkMs ?? 1500 };
    const p = opts.profile;
    const policy: Partial<SmpPolicy> = {
      ioCapability: p.pairingRequest.ioCapability as SmpPolicy['ioCapability'],
      bondable: (p.pairingRequest.authReq & AuthReq.BondingFlagsMask) === AuthReq.Bonding,
      ct2: (p.pairingRequest.authReq & AuthReq.Ct2) !== 0,
      keypress: (p.pairingRequest.authReq & AuthReq.Keypress) !== 0,
      initiatorKeyDistribution: p.pairingRequest.initiatorKeyDist,
      responderKeyDistribution: p.pairingRequest.responderKeyDist,
      // Numeric Comparison (a peer with a display): the same user, the same answer.
      confirmNumericComparison: () => this.askUser().then((a) => a === 'accept'),
      requestPasskey: () => this.askUser().then(() => undefined),
    };
    const tap: SmpTap = {
      inbound: (link, pdu) => this.session(link)?.onSmpIn(pdu) ?? true,
      outbound: (link, pdu) => {
        const s = this.session(link);
        return s ? s.onSmpOut(pdu) : pdu;
      },
    };
    this.central = new Central({
      transport: opts.transport,
      clock: opts.clock,
      random: opts.random,
      log: this.log,
      bonds: opts.bonds,
      policy,
      mtu: p.mtu,
      privacy: p.privacy.rpa ? 'rpa' : 'static',
      connection: p.initialConnection,
      acceptParameters: (params) => p.connectionParameters !== 'apple-adg' || checkAppleConnectionParameters(params).length === 0,
      smpTap: tap,
      ...(opts.trace ? { trace: opts.trace } : {}),
      ...(opts.smpTimeoutMs !== undefined ? { smpTimeoutMs: opts.smpTimeoutMs } : {}),
    });
    this.central.on('disconnected', (link, reason, name) => {
      const s = this.sessions.get(link);
      if (!s) return;
      this.sessions.delete(link);
      s.onDisconnected(reason, name);
    });
    this.central.on('encryptionChanged', (link, ch) => this.session(link)?.onEncryptionChanged(ch.status, ch.enabled));
    this.central.on('parameterRequest', (_link, params, accepted) =>
      this.record({ kind: 'parameter-request', accepted, summary: formatConnectionParameters(params) }),
    );
  }

  get clock(): Clock {
    return this.opts.clock;
  }

  /** @internal */
  clearTimer(t: TimerHandle | undefined): void {
    this.opts.clock.clearTimeout(t);
  }

  /** @internal */
  record(e: DistributiveOmit<ScenarioEvent, 'at'>): void {
    this.emit('event', { ...e, at: this.opts.clock.now() } as ScenarioEvent);
  }

  private session(link: CentralLink): PhoneSession | undefined {
    return this.sessions.get(link);
  }

  /** Brings the controller up. */
  async start(): Promise<void> {
    await this.central.start();
  }

  async stop(): Promise<void> {
    await this.central.stop();
  }

  /**
   * Connects to the accessory (by its advertised name or address) and does what the phone does
   * right after connecting: encrypt with the stored key when bonded, start the MTU exchange.
   */
  async connect(target: { name: string } | { address: Address }, timeoutMs = 10_000): Promise<PhoneSession> {
    let link: CentralLink;
    try {
      link = await this.central.connect(target, { timeoutMs });
    } catch (err) {
      if (err instanceof CentralError) throw new PhoneError('not-found', err.message);
      throw err;
    }
    const s = new PhoneSession(this, link, this.opts.legacyOnly ?? false);
    this.sessions.set(link, s);
    this.record({
      kind: 'connected',
      phoneAddress: formatAddress(link.localAddress),
      wearableAddress: formatAddress(link.peer),
      intervalMs: link.hci.intervalMs,
    });
    link.smp.on('paired', (info) => {
      this.record({ kind: 'paired', side: 'phone', level: info.level, bonded: info.bonded, keySize: info.keySize });
      if (!this.profile.gattCaching || !info.bonded) return;
      if (s.remote) this.cache.set(addressKey(info.peerIdentity), s.remote);
    });
    link.smp.on('bondSaved', (b) => this.record({ kind: 'bond-saved', side: 'phone', peer: formatAddress(b.peer) }));
    link.smp.on('pairingFailed', (f) => {
      if (f.by === 'disconnected') return;
      this.record({ kind: 'pairing-failed', side: 'phone', reason: f.reason, by: f.by });
    });
    await s.afterConnect();
    return s;
  }

  /** The user removes the accessory in the phone's settings ("Forget This Device"). */
  async forget(peer: Address): Promise<boolean> {
    this.cache.delete(addressKey(peer));
    const removed = await this.bonds.remove(peer);
    this.record({ kind: 'note', text: `the user removed ${formatAddress(peer)} in the phone's Bluetooth settings (Forget This Device)` });
    return removed;
  }

  /** @internal the cached database of a bonded peer. */
  cachedDatabase(identity: Address | undefined): RemoteDatabase | undefined {
    return identity && this.profile.gattCaching ? this.cache.get(addressKey(identity)) : undefined;
  }

  /** @internal */
  rememberDatabase(identity: Address | undefined, db: RemoteDatabase): void {
    if (!identity || !this.profile.gattCaching || !this.bonds.get(identity)) return;
    this.cache.set(addressKey(identity), db);
  }

  /** @internal shows the prompt and resolves with the user's answer; 'no-answer' never resolves. */
  askUser(): Promise<PromptAnswer> {
    const answer = this.user.answer;
    return new Promise<PromptAnswer>((resolve) => {
      this.opts.clock.setTimeout(() => {
        this.record({ kind: 'prompt', answer });
        if (answer !== 'no-answer') resolve(answer);
      }, this.user.thinkMs);
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
