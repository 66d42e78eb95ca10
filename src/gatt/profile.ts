/**
 * The wearable profile served by default: Heart Rate (0x180D), Battery (0x180F), Device
 * Information (0x180A) and a vendor "health data" service whose records can only be read,
 * written or subscribed over an encrypted link. Plus the application-facing API (set the heart
 * rate, the battery level, append a health record) and a Clock-driven simulated feeder that
 * `--sim` uses.
 *
 * Health data service (128-bit UUIDs, fixed forever). They were generated once from the random
 * v4 UUID 04b543f4-eafd-4d46-8a1f-a25a0e0a4ac6; the 16 bits after "04b5" number the attributes,
 * the way vendor bases usually do:
 * - 04b50001-eafd-4d46-8a1f-a25a0e0a4ac6  Health Data service
 * - 04b50002-...  Health Record: read + notify, encrypted. Read: the selected record (latest by
 *   default), up to 512 bytes, so a long record needs Read Blob. Notify: each new record, sent in
 *   segments of ATT_MTU-4 bytes, each segment prefixed by one header byte: bits 0..6 the segment
 *   index (mod 128), bit 7 set on the last segment.
 * - 04b50003-...  Record Control Point: write, encrypted. 0x01 idx(u16 LE): select record idx
 *   (0 = oldest); 0x02: select the latest; 0x03: delete all records. Errors: 0x80 opcode not
 *   supported, 0xFF Out of Range (no such record), 0x0D wrong length.
 * - 04b50004-...  Record Count: read, encrypted, u16 LE.
 * - 04b50005-...  Annotation: read + write, encrypted, up to 512 bytes of UTF-8 (long writes).
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/emitter.js';
import { seededRandom, randomInt, type RandomSource } from '../util/random.js';
import { AttErrorCode } from '../att/pdu.js';
import {
  buildGattDatabase,
  type GapServiceOptions,
  type GattConnection,
  type GattDatabase,
  type ServiceDefinition,
  type UpdateOutcome,
} from './database.js';
import { GattUuid, Uuid } from './uuid.js';

export const HealthUuid = {
  service: '04b50001-eafd-4d46-8a1f-a25a0e0a4ac6',
  record: '04b50002-eafd-4d46-8a1f-a25a0e0a4ac6',
  controlPoint: '04b50003-eafd-4d46-8a1f-a25a0e0a4ac6',
  recordCount: '04b50004-eafd-4d46-8a1f-a25a0e0a4ac6',
  annotation: '04b50005-eafd-4d46-8a1f-a25a0e0a4ac6',
} as const;

/** Body Sensor Location values. Heart Rate Service 1.0, 3.2. */
export const BodySensorLocation = { other: 0, chest: 1, wrist: 2, finger: 3, hand: 4, earLobe: 5, foot: 6 } as const;

/** Heart Rate Control Point error "Control Point Not Supported". Heart Rate Service 1.0, 1.6 / 3.3. */
export const HRS_CONTROL_POINT_NOT_SUPPORTED = 0x80;

export interface WearableProfileOptions {
  deviceName?: string;
  /** GAP Appearance; default 0x00C1 Sports Watch. */
  appearance?: number;
  /** Further GAP options (PPCP, Central Address Resolution, writable name). */
  gap?: Omit<GapServiceOptions, 'deviceName' | 'appearance'>;
  manufacturer?: string;
  model?: string;
  firmwareRevision?: string;
  bodySensorLocation?: number;
  /** Health records kept; the oldest is dropped beyond this. Default 100. */
  recordCapacity?: number;
  /** Services appended after the profile's (e.g. from a `--gatt` file). */
  extraServices?: readonly ServiceDefinition[];
}

export interface HeartRateSample {
  /** Sensor contact detected (flags bits 1-2 = 0b11); undefined: not supported. */
  contact?: boolean;
  /** RR-intervals in 1/1024 s. */
  rrIntervals?: readonly number[];
}

export type WearableProfileEvents = {
  /** The client reset Energy Expended through the Heart Rate Control Point. */
  energyReset: [];
  /** A client wrote the annotation. */
  annotation: [text: string];
  /** A client deleted all health records. */
  recordsCleared: [];
};

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/**
 * Heart Rate Measurement value. Heart Rate Service 1.0, 3.1.1: flags (bit 0 UINT16 format,
 * bits 1-2 sensor contact, bit 3 Energy Expended present, bit 4 RR-Interval present), the rate,
 * Energy Expended (kJ, u16), RR-intervals (u16 each, 1/1024 s).
 */
export function encodeHeartRateMeasurement(bpm: number, energyKj: number | undefined, s: HeartRateSample = {}): Uint8Array {
  const wide = bpm > 0xff;
  let flags = wide ? 0x01 : 0x00;
  if (s.contact !== undefined) flags |= s.contact ? 0x06 : 0x04;
  if (energyKj !== undefined) flags |= 0x08;
  const rr = s.rrIntervals ?? [];
  if (rr.length > 0) flags |= 0x10;
  const out: number[] = [flags];
  const v = Math.max(0, Math.min(0xffff, Math.round(bpm)));
  if (wide) out.push(v & 0xff, v >> 8);
  else out.push(v);
  if (energyKj !== undefined) {
    const e = Math.max(0, Math.min(0xffff, Math.round(energyKj)));
    out.push(e & 0xff, e >> 8);
  }
  for (const r of rr) out.push(r & 0xff, (r >> 8) & 0xff);
  return Uint8Array.from(out);
}

/** The application's handle on the wearable profile and its database. */
export class WearableProfile extends TypedEmitter<WearableProfileEvents> {
  readonly db: GattDatabase;
  private readonly records: Uint8Array[] = [];
  private readonly capacity: number;
  /** Record selection per connection (Record Control Point); absent = latest. */
  private readonly selection = new WeakMap<GattConnection, number>();
  private _heartRate = 0;
  private _battery = 100;
  private energyKj = 0;
  private _annotation = '';

  constructor(opts: WearableProfileOptions = {}) {
    super();
    this.capacity = opts.recordCapacity ?? 100;
    this.db = buildGattDatabase({
      gap: { ...(opts.gap ?? {}), deviceName: opts.deviceName ?? 'wearable-host', appearance: opts.appearance ?? 0x00c1 },
      services: [...this.services(opts), ...(opts.extraServices ?? [])],
    });
  }

  private services(opts: WearableProfileOptions): ServiceDefinition[] {
    return [
      {
        uuid: GattUuid.heartRate,
        id: 'hrs',
        path: 'wearable profile (hrs)',
        characteristics: [
          // The CCCD needs encryption: subscribing is what makes a phone pair (0x05 -> pairing).
          { uuid: GattUuid.heartRateMeasurement, id: 'hrs.measurement', properties: ['notify'], cccd: { write: 'encrypted' } },
          { uuid: GattUuid.bodySensorLocation, id: 'hrs.location', properties: ['read'], value: Uint8Array.of(opts.bodySensorLocation ?? BodySensorLocation.wrist), fixedLength: true },
          {
            uuid: GattUuid.heartRateControlPoint,
            id: 'hrs.controlPoint',
            properties: ['write'],
            permissions: { write: 'encrypted' },
            maxLength: 1,
            onWrite: (v) => {
              if (v.length !== 1 || v[0] !== 0x01) return HRS_CONTROL_POINT_NOT_SUPPORTED;
              this.energyKj = 0;
              this.emit('energyReset');
              return undefined;
            },
          },
        ],
      },
      {
        uuid: GattUuid.battery,
        id: 'bas',
        path: 'wearable profile (bas)',
        characteristics: [{ uuid: GattUuid.batteryLevel, id: 'bas.level', properties: ['read', 'notify'], value: Uint8Array.of(this._battery), fixedLength: true }],
      },
      {
        uuid: GattUuid.deviceInformation,
        id: 'dis',
        path: 'wearable profile (dis)',
        characteristics: [
          { uuid: GattUuid.manufacturerNameString, id: 'dis.manufacturer', properties: ['read'], value: opts.manufacturer ?? 'wearable-host' },
          { uuid: GattUuid.modelNumberString, id: 'dis.model', properties: ['read'], value: opts.model ?? 'WH-1' },
          { uuid: GattUuid.firmwareRevisionString, id: 'dis.firmware', properties: ['read'], value: opts.firmwareRevision ?? '0.1.0' },
        ],
      },
      {
        uuid: HealthUuid.service,
        id: 'health',
        path: 'wearable profile (health)',
        characteristics: [
          {
            uuid: HealthUuid.record,
            id: 'health.record',
            properties: ['read', 'notify'],
            permissions: { read: 'encrypted' },
            maxLength: 512,
            userDescription: 'Health record',
            onRead: (ctx) => this.selectedRecord(ctx.connection),
          },
          {
            uuid: HealthUuid.controlPoint,
            id: 'health.controlPoint',
            properties: ['write'],
            permissions: { write: 'encrypted' },
            maxLength: 3,
            onWrite: (v, ctx) => this.onRecordControl(v, ctx.connection),
          },
          {
            uuid: HealthUuid.recordCount,
            id: 'health.count',
            properties: ['read'],
            permissions: { read: 'encrypted' },
            onRead: () => Uint8Array.of(this.records.length & 0xff, this.records.length >> 8),
          },
          {
            uuid: HealthUuid.annotation,
            id: 'health.annotation',
            properties: ['read', 'write'],
            permissions: { read: 'encrypted', write: 'encrypted' },
            extendedProperties: { reliableWrite: true },
            maxLength: 512,
            onWrite: (v) => {
              this._annotation = utf8d.decode(v);
              this.emit('annotation', this._annotation);
              return undefined;
            },
          },
        ],
      },
    ];
  }

  get heartRate(): number {
    return this._heartRate;
  }
  get battery(): number {
    return this._battery;
  }
  get energyExpended(): number {
    return this.energyKj;
  }
  get annotation(): string {
    return this._annotation;
  }
  /** Stored health records, oldest first. */
  get healthRecords(): readonly Uint8Array[] {
    return this.records;
  }

  /** Adds to Energy Expended (kJ), reported in the next measurement. */
  addEnergy(kj: number): void {
    this.energyKj = Math.min(0xffff, this.energyKj + kj);
  }

  /**
   * Publishes a heart rate measurement to every subscribed client. Resolves when each
   * notification was handed to its controller: await it to follow the links' pace.
   */
  setHeartRate(bpm: number, sample: HeartRateSample = {}): Promise<UpdateOutcome> {
    if (!Number.isFinite(bpm) || bpm < 0) throw new RangeError(`heart rate must be a non-negative number, got ${bpm}`);
    this._heartRate = bpm;
    return this.db.update('hrs.measurement', encodeHeartRateMeasurement(bpm, this.energyKj, sample));
  }

  /** Sets the Battery Level (0..100 %) and notifies subscribed clients. */
  setBattery(percent: number): Promise<UpdateOutcome> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new RangeError(`battery level must be an integer 0..100, got ${percent}`);
    this._battery = percent;
    return this.db.update('bas.level', Uint8Array.of(percent));
  }

  /**
   * Stores a health record (bytes, or an object stored as JSON) and notifies it, in segments
   * sized to each client's ATT_MTU, to every client subscribed to Health Record.
   * Resolves with how many clients received it whole.
   */
  async appendHealthRecord(record: Uint8Array | object): Promise<{ delivered: number; skipped: number }> {
    const bytes = record instanceof Uint8Array ? record.slice() : utf8.encode(JSON.stringify(record));
    if (bytes.length > 512) throw new RangeError(`a health record is at most 512 bytes, got ${bytes.length}`);
    this.records.push(bytes);
    if (this.records.length > this.capacity) this.records.shift();
    const handle = this.db.handle('health.record');
    let delivered = 0;
    let skipped = 0;
    await Promise.all(
      [...this.db.connections()].map(async (c) => {
        if (!c.isSubscribed(handle, 'notify')) {
          skipped++;
          return;
        }
        try {
          for (const seg of segmentRecord(bytes, c.mtu - 3)) {
            if ((await c.sendValue(handle, seg)) === 'skipped') {
              skipped++;
              return;
            }
          }
          delivered++;
        } catch {
          skipped++;
        }
      }),
    );
    return { delivered, skipped };
  }

  private selectedRecord(c: GattConnection): Uint8Array {
    const i = this.selection.get(c);
    if (i === undefined) return this.records[this.records.length - 1] ?? new Uint8Array(0);
    return this.records[i] ?? new Uint8Array(0);
  }

  private onRecordControl(v: Uint8Array, c: GattConnection): number | undefined {
    switch (v[0]) {
      case 0x01: {
        if (v.length !== 3) return AttErrorCode.invalidAttributeValueLength;
        const i = (v[1] as number) | ((v[2] as number) << 8);
        if (i >= this.records.length) return AttErrorCode.outOfRange;
        this.selection.set(c, i);
        return undefined;
      }
      case 0x02:
        if (v.length !== 1) return AttErrorCode.invalidAttributeValueLength;
        this.selection.delete(c);
        return undefined;
      case 0x03:
        if (v.length !== 1) return AttErrorCode.invalidAttributeValueLength;
        this.records.length = 0;
        this.emit('recordsCleared');
        return undefined;
      default:
        return AttErrorCode.applicationErrorFirst;
    }
  }
}

/** Splits a record into notification payloads of at most `max` bytes: header (index | 0x80 on the last) + data. */
export function segmentRecord(record: Uint8Array, max: number): Uint8Array[] {
  const room = Math.max(1, max - 1);
  const out: Uint8Array[] = [];
  const n = Math.max(1, Math.ceil(record.length / room));
  for (let i = 0; i < n; i++) {
    const part = record.subarray(i * room, (i + 1) * room);
    const seg = new Uint8Array(1 + part.length);
    seg[0] = (i & 0x7f) | (i === n - 1 ? 0x80 : 0);
    seg.set(part, 1);
    out.push(seg);
  }
  return out;
}

/** Reassembles segments made by {@link segmentRecord} (for clients and tests). */
export function joinRecordSegments(segments: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const s of segments) n += s.length - 1;
  const out = new Uint8Array(n);
  let o = 0;
  for (const s of segments) {
    out.set(s.subarray(1), o);
    o += s.length - 1;
  }
  return out;
}

export interface SimulatedFeederOptions {
  /** Default 1000 ms. */
  heartRateIntervalMs?: number;
  /** Default 60 000 ms (one percent per interval, back to 100 below 5). */
  batteryIntervalMs?: number;
  /** Default 30 000 ms. */
  recordIntervalMs?: number;
  /** Jitter source; default a fixed seed so runs repeat. */
  random?: RandomSource;
  /** Append one health record at start, so a client that connects at once has one to read. Default false. */
  initialRecord?: boolean;
}

/**
 * Feeds the profile with plausible values on a {@link Clock}: a heart rate drifting around
 * 72 bpm, a slowly draining battery, and a JSON health record every 30 s (longer than a default
 * MTU, so clients exercise Read Blob and segmented notifications). A tick whose previous update
 * is still waiting for the link is skipped rather than queued.
 */
export class SimulatedFeeder {
  private readonly timers: (TimerHandle | undefined)[] = [undefined, undefined, undefined];
  private running = false;
  private readonly busy = [false, false, false];
  private readonly rng: RandomSource;
  private steps = 0;
  private readonly t0: number;
  /** Updates skipped because the previous one was still in flight (back-pressure). */
  skipped = 0;

  constructor(
    private readonly profile: WearableProfile,
    private readonly clock: Clock,
    private readonly opts: SimulatedFeederOptions = {},
  ) {
    this.rng = opts.random ?? seededRandom('wearable-feeder');
    this.t0 = clock.now();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0, this.opts.heartRateIntervalMs ?? 1000, () => this.heartRateTick());
    this.schedule(1, this.opts.batteryIntervalMs ?? 60_000, () => this.batteryTick());
    this.schedule(2, this.opts.recordIntervalMs ?? 30_000, () => this.recordTick());
    if (this.opts.initialRecord) {
      this.busy[2] = true;
      this.recordTick()
        .catch(() => undefined)
        .finally(() => {
          this.busy[2] = false;
        });
    }
  }

  stop(): void {
    this.running = false;
    for (let i = 0; i < this.timers.length; i++) {
      this.clock.clearTimeout(this.timers[i]);
      this.timers[i] = undefined;
    }
  }

  private schedule(slot: number, every: number, tick: () => Promise<unknown>): void {
    const run = (): void => {
      if (!this.running) return;
      this.timers[slot] = this.clock.setTimeout(run, every);
      if (this.busy[slot]) {
        this.skipped++;
        return;
      }
      this.busy[slot] = true;
      tick()
        .catch(() => undefined)
        .finally(() => {
          this.busy[slot] = false;
        });
    };
    this.timers[slot] = this.clock.setTimeout(run, every);
  }

  /** The simulated heart rate at a time: 72 bpm, +-12 over five minutes, +-2 jitter. */
  heartRateAt(ms: number): number {
    const phase = ((ms - this.t0) / 300_000) * 2 * Math.PI;
    return Math.round(72 + 12 * Math.sin(phase) + randomInt(this.rng, 5) - 2);
  }

  private heartRateTick(): Promise<unknown> {
    const bpm = this.heartRateAt(this.clock.now());
    this.profile.addEnergy(1);
    this.steps += randomInt(this.rng, 3);
    return this.profile.setHeartRate(bpm, { contact: true, rrIntervals: [Math.round((60 / bpm) * 1024)] });
  }

  private batteryTick(): Promise<unknown> {
    const next = this.profile.battery <= 5 ? 100 : this.profile.battery - 1;
    return this.profile.setBattery(next);
  }

  private recordTick(): Promise<unknown> {
    return this.profile.appendHealthRecord({
      t: new Date(this.clock.now()).toISOString(),
      hr: this.profile.heartRate,
      steps: this.steps,
      spo2: 95 + randomInt(this.rng, 5),
      battery: this.profile.battery,
      energyKj: this.profile.energyExpended,
      note: 'simulated',
    });
  }
}

/** The Uuid objects of {@link HealthUuid}. */
export function healthUuids(): Record<keyof typeof HealthUuid, Uuid> {
  return {
    service: Uuid.parse(HealthUuid.service),
    record: Uuid.parse(HealthUuid.record),
    controlPoint: Uuid.parse(HealthUuid.controlPoint),
    recordCount: Uuid.parse(HealthUuid.recordCount),
    annotation: Uuid.parse(HealthUuid.annotation),
  };
}
