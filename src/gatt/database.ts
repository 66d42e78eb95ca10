/**
 * The GATT database: a typed builder that lays services out as attributes with deterministic
 * handles, the mandatory GAP (0x1800) and GATT (0x1801) services, and the Database Hash.
 *
 * Layout (Core 5.4 Vol 3 Part G 3): for each service in order, the service declaration, its
 * include declarations, then per characteristic the declaration, the value and the descriptors
 * (an automatic CCCD first when notify or indicate is set, then the Extended Properties and User
 * Description descriptors when asked for, then the caller's descriptors in order). Handles count
 * up from 0x0001 without gaps unless a service pins its `startHandle`. The GAP service comes
 * first and the GATT service second, so the Service Changed handles never move when the
 * application's services change.
 *
 * Values: every attribute has a stored value (static, or the last one set by the application or
 * written by a client) unless it has a read handler. Per-connection attributes (CCCDs, Client
 * Supported Features) are served by the ATT server from the connection's state.
 */
import { WearableHostError } from '../util/errors.js';
import type { Address } from '../util/address.js';
import type { LinkSecurity } from '../smp/link-security.js';
import { aesCmac } from '../crypto/index.js';
import { reversed, toHex } from '../util/bytes.js';
import { ATT_MAX_VALUE_LENGTH } from '../att/types.js';
import { type AccessRequirement, type AttributePermissions, ACCESS_REQUIREMENTS } from './permissions.js';
import { GattUuid, Uuid, type UuidLike } from './uuid.js';

/** Characteristic property bits. Core 5.4 Vol 3 Part G 3.3.1.1 Table 3.5. */
export const CharacteristicPropertyBit = {
  broadcast: 0x01,
  read: 0x02,
  writeWithoutResponse: 0x04,
  write: 0x08,
  notify: 0x10,
  indicate: 0x20,
  authenticatedSignedWrites: 0x40,
  extendedProperties: 0x80,
} as const;
/**
 * A property a definition may ask for; `extendedProperties` is set by giving
 * {@link CharacteristicDefinition.extendedProperties}. `authenticatedSignedWrites` is not offered:
 * see {@link UNSUPPORTED_PROPERTIES}.
 */
export type CharacteristicProperty = Exclude<keyof typeof CharacteristicPropertyBit, 'extendedProperties' | 'authenticatedSignedWrites'>;
export const CHARACTERISTIC_PROPERTIES: readonly CharacteristicProperty[] = ['broadcast', 'read', 'writeWithoutResponse', 'write', 'notify', 'indicate'];
/** Properties of Core 5.4 Vol 3 Part G 3.3.1.1 this server does not support, with why a definition asking for one is refused. */
export const UNSUPPORTED_PROPERTIES: Readonly<Record<string, string>> = {
  authenticatedSignedWrites:
    'is not supported: this server ignores Signed Write Commands, so no characteristic may advertise them (docs/api.md "Signed writes")',
};

/** CCCD bits. Core 5.4 Vol 3 Part G 3.3.3.3 Table 3.11. */
export const CccdBit = { notification: 0x0001, indication: 0x0002 } as const;

/** Client Supported Features bits. Core 5.4 Vol 3 Part G 7.2 Table 7.6. */
export const ClientFeatureBit = { robustCaching: 0x01, eatt: 0x02, multipleHandleValueNotifications: 0x04 } as const;
/** Bits defined for Client Supported Features octet 0; the rest are RFU and ignored on write. */
export const CLIENT_FEATURES_DEFINED = 0x07;

/** What an attribute is, which decides how the ATT server serves it. */
export type AttributeKind =
  | 'primaryService'
  | 'secondaryService'
  | 'include'
  | 'characteristic'
  | 'value'
  | 'descriptor'
  | 'cccd'
  | 'clientSupportedFeatures'
  | 'databaseHash'
  | 'serviceChanged';

/** The per-connection view the database and handlers get of a connected client. The ATT server implements it. */
export interface GattConnection {
  /** Unique per connection for the process lifetime. */
  readonly id: number;
  readonly peer: Address;
  /** Resolved identity when bonded. */
  readonly identity: Address | undefined;
  readonly security: LinkSecurity;
  readonly mtu: number;
  /** Whether the client enabled notifications (`notify`) or indications (`indicate`) in the CCCD of this characteristic value. */
  isSubscribed(valueHandle: number, kind: 'notify' | 'indicate'): boolean;
  /**
   * Sends the value the way the client subscribed: a notification (resolves when handed to the
   * controller) or an indication (resolves on confirmation). 'skipped' when not subscribed or the
   * link does not meet the subscription's security.
   */
  sendValue(valueHandle: number, value: Uint8Array): Promise<'notified' | 'indicated' | 'skipped'>;
}

/** Context of one read or write of an attribute. */
export interface AccessContext {
  readonly handle: number;
  readonly connection: GattConnection;
  /** Read: the offset requested (Read Blob); write: always 0 (long writes are assembled first). */
  readonly offset: number;
  /** How the write arrived. */
  readonly via?: 'writeRequest' | 'writeCommand' | 'executeWrite';
}

/** Returns the whole current value (the server slices it for Read Blob). */
export type ReadHandler = (ctx: AccessContext) => Uint8Array | Promise<Uint8Array>;
/**
 * Accepts a whole new value; returns nothing to accept it or an ATT error code (0x80..0x9F
 * application, 0x13, 0xFC..0xFF) to refuse. `value` is lent for the call: copy it to keep it.
 */
export type WriteHandler = (value: Uint8Array, ctx: AccessContext) => void | number | Promise<void | number>;

export interface AuthorizationRequest {
  readonly op: 'read' | 'write';
  readonly handle: number;
  readonly attribute: Attribute;
  readonly connection: GattConnection;
}
/** Application authorization: true to allow, false for 0x08 Insufficient Authorization. */
export type AuthorizeHook = (req: AuthorizationRequest) => boolean | Promise<boolean>;

export interface Attribute {
  readonly handle: number;
  readonly type: Uuid;
  readonly kind: AttributeKind;
  readonly permissions: AttributePermissions;
  /** Longest value accepted on write (512 unless the definition says less). */
  readonly maxLength: number;
  /** A fixed-length value: shorter writes replace the leading bytes only (Core 5.4 Vol 3 Part F 3.4.5.1); Read Blob answers Attribute Not Long when it fits a Read Response. */
  readonly fixedLength: boolean;
  /** Stored value; served when there is no read handler. Change it with {@link GattDatabase.setValue}. */
  value: Uint8Array;
  readonly onRead?: ReadHandler;
  readonly onWrite?: WriteHandler;
  readonly authorize?: AuthorizeHook;
  readonly service: GattService;
  /** The characteristic this attribute belongs to (declaration, value, descriptors). */
  readonly characteristic?: GattCharacteristic;
  readonly id?: string;
}

export interface GattService {
  readonly uuid: Uuid;
  readonly primary: boolean;
  readonly id?: string;
  readonly handle: number;
  readonly endHandle: number;
  readonly includes: readonly GattService[];
  readonly characteristics: readonly GattCharacteristic[];
}

export interface GattCharacteristic {
  readonly uuid: Uuid;
  readonly id?: string;
  /** Property bits as in the declaration. */
  readonly properties: number;
  readonly declarationHandle: number;
  readonly valueHandle: number;
  readonly endHandle: number;
  readonly cccdHandle?: number;
  readonly service: GattService;
}

// ------------------------------------------------------------------ definitions

export type ValueInit = Uint8Array | string;

export interface PermissionsDefinition {
  readonly read?: AccessRequirement;
  readonly write?: AccessRequirement;
  readonly authorizeRead?: boolean;
  readonly authorizeWrite?: boolean;
}

export interface DescriptorDefinition {
  readonly uuid: UuidLike;
  readonly id?: string;
  /** Default: read `none`, write `notPermitted`. */
  readonly permissions?: PermissionsDefinition;
  readonly value?: ValueInit;
  readonly maxLength?: number;
  readonly fixedLength?: boolean;
  readonly onRead?: ReadHandler;
  readonly onWrite?: WriteHandler;
  readonly authorize?: AuthorizeHook;
}

export interface CharacteristicDefinition {
  readonly uuid: UuidLike;
  /** Name to find it by (`db.handle('hr.measurement')`); unique in the database. */
  readonly id?: string;
  readonly properties: readonly CharacteristicProperty[];
  /**
   * Value permissions. Defaults: read `none` when the `read` property is set, else `notPermitted`;
   * write `none` when `write` or `writeWithoutResponse` is set, else `notPermitted`.
   */
  readonly permissions?: PermissionsDefinition;
  readonly value?: ValueInit;
  readonly maxLength?: number;
  readonly fixedLength?: boolean;
  readonly onRead?: ReadHandler;
  readonly onWrite?: WriteHandler;
  readonly authorize?: AuthorizeHook;
  /**
   * The CCCD added when `notify` or `indicate` is set. Its write permission defaults to the
   * characteristic's write permission class, or its read class when the value is not writable, so
   * a client can subscribe to an encrypted characteristic only over an encrypted link. The CCCD is
   * always readable without security (Core 5.4 Vol 3 Part G 3.3.3.3).
   */
  readonly cccd?: { readonly write?: AccessRequirement; readonly authorizeWrite?: boolean };
  /** Adds the Characteristic Extended Properties descriptor (0x2900) and property bit 0x80. */
  readonly extendedProperties?: { readonly reliableWrite?: boolean; readonly writableAuxiliaries?: boolean };
  /** Adds a Characteristic User Description descriptor (0x2901). */
  readonly userDescription?: string;
  readonly descriptors?: readonly DescriptorDefinition[];
}

export interface ServiceDefinition {
  /** Where this definition came from, used in error messages (default `services[i]`; a JSON file gives its own path). */
  readonly path?: string;
  readonly uuid: UuidLike;
  readonly id?: string;
  /** Default true. */
  readonly primary?: boolean;
  /** Pins the service declaration's handle (must be above the previous service's last handle). */
  readonly startHandle?: number;
  /** Ids of services this one includes. */
  readonly includes?: readonly string[];
  readonly characteristics?: readonly CharacteristicDefinition[];
}

/** Peripheral Preferred Connection Parameters. Core 5.4 Vol 3 Part C 12.3. Units: 1.25 ms, 1.25 ms, events, 10 ms. */
export interface PreferredConnectionParameters {
  readonly intervalMin: number;
  readonly intervalMax: number;
  readonly latency: number;
  readonly timeout: number;
}

export interface GapServiceOptions {
  readonly deviceName?: string;
  /** Let clients write the Device Name (with this security); default not writable. */
  readonly deviceNameWrite?: AccessRequirement;
  /** Appearance value (Assigned Numbers 2.6); default 0x0000 Unknown. */
  readonly appearance?: number;
  /** Default 30..45 ms, latency 0, timeout 4 s (inside Apple ADG 35.6 rules); `false` omits the characteristic. */
  readonly ppcp?: PreferredConnectionParameters | false;
  /** Central Address Resolution (0x2AA6) value; `false` omits the characteristic. Default `{ supported: false }`. */
  readonly centralAddressResolution?: { readonly supported: boolean } | false;
}

export interface GattDatabaseDefinition {
  /** The GAP service options, or `false` to leave it out (then define 0x1800 yourself). */
  readonly gap?: GapServiceOptions | false;
  /** Include the GATT service (Service Changed, Client Supported Features, Database Hash). Default true. */
  readonly gattService?: boolean;
  readonly services: readonly ServiceDefinition[];
}

/** A definition error, with the path of the offending field (`services[1].characteristics[0].permissions.read`). */
export class GattDefinitionError extends WearableHostError {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super('gatt', `${path}: ${detail}`);
    this.name = 'GattDefinitionError';
  }
}

export const DEFAULT_PPCP: PreferredConnectionParameters = { intervalMin: 24, intervalMax: 36, latency: 0, timeout: 400 };

// ------------------------------------------------------------------ the database

export type AttributeRef = number | string;

export interface UpdateOutcome {
  readonly notified: number;
  readonly indicated: number;
  readonly skipped: number;
}

let nextConnectionId = 1;
/** A process-unique id for a {@link GattConnection}. */
export function allocateConnectionId(): number {
  return nextConnectionId++;
}

export class GattDatabase {
  /** Attributes in handle order. */
  readonly attributes: readonly Attribute[];
  readonly services: readonly GattService[];
  readonly characteristics: readonly GattCharacteristic[];
  /** Database Hash as served in the characteristic (16 bytes, little-endian). Core 5.4 Vol 3 Part G 7.3. */
  readonly hash: Uint8Array;
  /** {@link hash} as lower-case hex, the form stored in bonds. */
  readonly hashHex: string;
  readonly serviceChangedHandle: number | undefined;
  readonly serviceChangedCccdHandle: number | undefined;
  readonly databaseHashHandle: number | undefined;
  readonly clientSupportedFeaturesHandle: number | undefined;
  private readonly byHandle: (Attribute | undefined)[];
  private readonly byId: Map<string, Attribute>;
  private readonly charsById: Map<string, GattCharacteristic>;
  private readonly live = new Set<GattConnection>();

  /** @internal use {@link buildGattDatabase}. */
  constructor(attributes: Attribute[], services: GattService[], characteristics: GattCharacteristic[]) {
    this.attributes = attributes;
    this.services = services;
    this.characteristics = characteristics;
    const last = attributes.length > 0 ? (attributes[attributes.length - 1] as Attribute).handle : 0;
    this.byHandle = new Array<Attribute | undefined>(last + 1);
    this.byId = new Map();
    this.charsById = new Map();
    for (const a of attributes) {
      this.byHandle[a.handle] = a;
      if (a.id) this.byId.set(a.id, a);
    }
    for (const c of characteristics) if (c.id) this.charsById.set(c.id, c);
    const find = (kind: AttributeKind): number | undefined => attributes.find((a) => a.kind === kind)?.handle;
    this.serviceChangedHandle = find('serviceChanged');
    this.databaseHashHandle = find('databaseHash');
    this.clientSupportedFeaturesHandle = find('clientSupportedFeatures');
    this.serviceChangedCccdHandle =
      this.serviceChangedHandle !== undefined
        ? characteristics.find((c) => c.valueHandle === this.serviceChangedHandle)?.cccdHandle
        : undefined;
    this.hash = computeDatabaseHash(attributes);
    this.hashHex = toHex(this.hash);
    const hashAttr = this.databaseHashHandle !== undefined ? this.byHandle[this.databaseHashHandle] : undefined;
    if (hashAttr) hashAttr.value = this.hash;
  }

  /** Highest handle in use. */
  get lastHandle(): number {
    return this.byHandle.length - 1;
  }

  /** The attribute at a handle, if any. */
  attribute(handle: number): Attribute | undefined {
    return handle > 0 && handle < this.byHandle.length ? this.byHandle[handle] : undefined;
  }

  /** Handle of an attribute by id (a characteristic id names its value attribute). Throws when unknown. */
  handle(ref: AttributeRef): number {
    return this.resolve(ref).handle;
  }

  /** The characteristic with this id, or whose value/declaration handle this is. */
  characteristic(ref: AttributeRef): GattCharacteristic | undefined {
    if (typeof ref === 'string') return this.charsById.get(ref);
    return this.attribute(ref)?.characteristic;
  }

  private resolve(ref: AttributeRef): Attribute {
    const a = typeof ref === 'number' ? this.attribute(ref) : this.byId.get(ref);
    if (!a) throw new GattDefinitionError(String(ref), 'no such attribute in the database');
    return a;
  }

  /** The stored value (not a read handler's). */
  value(ref: AttributeRef): Uint8Array {
    return this.resolve(ref).value;
  }

  /** Replaces the stored value (a copy is kept). Throws when longer than the attribute allows. */
  setValue(ref: AttributeRef, value: Uint8Array): void {
    const a = this.resolve(ref);
    if (value.length > a.maxLength || (a.fixedLength && value.length !== a.value.length)) {
      throw new GattDefinitionError(
        a.id ?? `handle 0x${a.handle.toString(16).padStart(4, '0')}`,
        a.fixedLength ? `value must be exactly ${a.value.length} bytes, got ${value.length}` : `value longer than ${a.maxLength} bytes (${value.length})`,
      );
    }
    a.value = value.slice();
  }

  /**
   * Sets the stored value and sends it to every connected client subscribed to it (notification or
   * indication, as each subscribed). Resolves when every notification was handed to its controller
   * and every indication confirmed or failed.
   */
  async update(ref: AttributeRef, value: Uint8Array): Promise<UpdateOutcome> {
    const a = this.resolve(ref);
    this.setValue(a.handle, value);
    return this.send(a.handle, value);
  }

  /** Sends a value to every subscribed connection without storing it (e.g. a segment of a long record). */
  async send(valueHandle: number, value: Uint8Array): Promise<UpdateOutcome> {
    let notified = 0;
    let indicated = 0;
    let skipped = 0;
    const sends: Promise<void>[] = [];
    for (const c of this.live) {
      sends.push(
        c.sendValue(valueHandle, value).then(
          (r) => {
            if (r === 'notified') notified++;
            else if (r === 'indicated') indicated++;
            else skipped++;
          },
          () => {
            skipped++;
          },
        ),
      );
    }
    await Promise.all(sends);
    return { notified, indicated, skipped };
  }

  /** Live connections served from this database. */
  connections(): IterableIterator<GattConnection> {
    return this.live.values();
  }

  /** @internal the ATT server registers itself for the lifetime of its connection. */
  attach(conn: GattConnection): void {
    this.live.add(conn);
  }

  /** @internal */
  detach(conn: GattConnection): void {
    this.live.delete(conn);
  }

  /** The attribute table as text lines, for logs and `--gatt` checks. */
  describe(): string[] {
    return this.attributes.map((a) => {
      const h = `0x${a.handle.toString(16).padStart(4, '0')}`;
      const perm = `r:${a.permissions.read} w:${a.permissions.write}${a.permissions.authorizeRead || a.permissions.authorizeWrite ? ' +authz' : ''}`;
      const v = a.onRead ? '<handler>' : a.value.length > 24 ? `${toHex(a.value.subarray(0, 24))}… (${a.value.length})` : toHex(a.value);
      return `${h} ${a.kind.padEnd(24)} ${a.type.toString().padEnd(38)} ${perm.padEnd(36)} ${v}${a.id ? ` [${a.id}]` : ''}`;
    });
  }
}

/**
 * Database Hash. Core 5.4 Vol 3 Part G 7.3: AES-CMAC with a zero key over, in handle order,
 * handle || type || value of every Primary Service, Secondary Service, Include, Characteristic and
 * Characteristic Extended Properties attribute, and handle || type of every Characteristic User
 * Description, Client/Server Characteristic Configuration, Presentation Format and Aggregate
 * Format descriptor; fields little-endian as on the wire.
 *
 * Byte order of the result: the CMAC output is a 128-bit number (the spec's example prints it
 * MSB first: F1CA2D48...); the characteristic carries it little-endian, as Core 5.4 Vol 3 Part F
 * 3.3.1 makes multi-octet values, which is what the qualification tester expects (Zephyr changed
 * to this order for PTS GATT/SR/GAS/BV-02-C, zephyr PR #17859). BlueZ serves the other order;
 * only equality matters to a caching client.
 */
export function computeDatabaseHash(attributes: readonly Attribute[]): Uint8Array {
  const parts: number[] = [];
  for (const a of attributes) {
    const t = a.type.value16;
    if (t === undefined) continue;
    const withValue =
      t === GattUuid.primaryService ||
      t === GattUuid.secondaryService ||
      t === GattUuid.include ||
      t === GattUuid.characteristic ||
      t === GattUuid.characteristicExtendedProperties;
    const withoutValue =
      t === GattUuid.characteristicUserDescription ||
      t === GattUuid.clientCharacteristicConfiguration ||
      t === GattUuid.serverCharacteristicConfiguration ||
      t === GattUuid.characteristicPresentationFormat ||
      t === GattUuid.characteristicAggregateFormat;
    if (!withValue && !withoutValue) continue;
    parts.push(a.handle & 0xff, a.handle >> 8, t & 0xff, t >> 8);
    if (withValue) for (const b of a.value) parts.push(b);
  }
  return reversed(aesCmac(new Uint8Array(16), Uint8Array.from(parts)));
}

// ------------------------------------------------------------------ the builder

const utf8 = new TextEncoder();

function valueBytes(v: ValueInit | undefined): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  return typeof v === 'string' ? utf8.encode(v) : v.slice();
}

function le16(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >> 8) & 0xff);
}

function checkRequirement(path: string, v: unknown): AccessRequirement | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !(ACCESS_REQUIREMENTS as readonly string[]).includes(v)) {
    throw new GattDefinitionError(path, `expected one of ${ACCESS_REQUIREMENTS.join(', ')}; got ${JSON.stringify(v)}`);
  }
  return v as AccessRequirement;
}

function parseUuid(path: string, u: UuidLike): Uuid {
  try {
    return Uuid.of(u);
  } catch (err) {
    throw new GattDefinitionError(path, (err as Error).message);
  }
}

/** Mutable shapes used while building. */
interface MService {
  uuid: Uuid;
  primary: boolean;
  id?: string;
  handle: number;
  endHandle: number;
  includes: MService[];
  characteristics: MCharacteristic[];
}
interface MCharacteristic {
  uuid: Uuid;
  id?: string;
  properties: number;
  declarationHandle: number;
  valueHandle: number;
  endHandle: number;
  cccdHandle?: number;
  service: MService;
}

interface Planned {
  def: ServiceDefinition;
  path: string;
  /** For built-in services: attribute kinds by characteristic UUID. */
  specialKinds?: ReadonlyMap<number, AttributeKind>;
  count: number;
  start: number;
}

function descriptorCount(c: CharacteristicDefinition): number {
  const props = c.properties;
  const explicitCccd = (c.descriptors ?? []).some((d) => Uuid.of(d.uuid).value16 === GattUuid.clientCharacteristicConfiguration);
  let n = c.descriptors?.length ?? 0;
  if ((props.includes('notify') || props.includes('indicate')) && !explicitCccd) n++;
  if (c.extendedProperties) n++;
  if (c.userDescription !== undefined) n++;
  return n;
}

/** The GAP service definition. Core 5.4 Vol 3 Part C 12. */
export function gapServiceDefinition(o: GapServiceOptions = {}): ServiceDefinition {
  const name = o.deviceName ?? 'wearable-host';
  const chars: CharacteristicDefinition[] = [
    {
      uuid: GattUuid.deviceName,
      id: 'gap.deviceName',
      properties: o.deviceNameWrite && o.deviceNameWrite !== 'notPermitted' ? ['read', 'write'] : ['read'],
      permissions: o.deviceNameWrite ? { write: o.deviceNameWrite } : {},
      value: name,
      maxLength: 248,
    },
    { uuid: GattUuid.appearance, id: 'gap.appearance', properties: ['read'], value: le16(o.appearance ?? 0), fixedLength: true },
  ];
  if (o.ppcp !== false) {
    const p = o.ppcp ?? DEFAULT_PPCP;
    const v = new Uint8Array(8);
    v.set(le16(p.intervalMin), 0);
    v.set(le16(p.intervalMax), 2);
    v.set(le16(p.latency), 4);
    v.set(le16(p.timeout), 6);
    chars.push({ uuid: GattUuid.peripheralPreferredConnectionParameters, id: 'gap.ppcp', properties: ['read'], value: v, fixedLength: true });
  }
  if (o.centralAddressResolution !== false) {
    const supported = o.centralAddressResolution?.supported ?? false;
    chars.push({
      uuid: GattUuid.centralAddressResolution,
      id: 'gap.centralAddressResolution',
      properties: ['read'],
      value: Uint8Array.of(supported ? 1 : 0),
      fixedLength: true,
    });
  }
  return { uuid: GattUuid.genericAccess, id: 'gap', characteristics: chars };
}

/** The GATT service definition: Service Changed, Client Supported Features, Database Hash. Core 5.4 Vol 3 Part G 7. */
export function gattServiceDefinition(): ServiceDefinition {
  return {
    uuid: GattUuid.genericAttribute,
    id: 'gatt',
    characteristics: [
      {
        uuid: GattUuid.serviceChanged,
        id: 'gatt.serviceChanged',
        properties: ['indicate'],
        value: Uint8Array.of(0x01, 0x00, 0xff, 0xff),
        fixedLength: true,
        cccd: { write: 'none' },
      },
      { uuid: GattUuid.clientSupportedFeatures, id: 'gatt.clientSupportedFeatures', properties: ['read', 'write'], value: Uint8Array.of(0), maxLength: 8 },
      { uuid: GattUuid.databaseHash, id: 'gatt.databaseHash', properties: ['read'], value: new Uint8Array(16), fixedLength: true },
    ],
  };
}

const GATT_SPECIAL = new Map<number, AttributeKind>([
  [GattUuid.serviceChanged, 'serviceChanged'],
  [GattUuid.clientSupportedFeatures, 'clientSupportedFeatures'],
  [GattUuid.databaseHash, 'databaseHash'],
]);

/** Builds a database from a definition. Throws {@link GattDefinitionError} naming the offending path. */
export function buildGattDatabase(def: GattDatabaseDefinition): GattDatabase {
  const planned: Planned[] = [];
  if (def.gap !== false) planned.push({ def: gapServiceDefinition(def.gap ?? {}), path: 'gap', count: 0, start: 0 });
  if (def.gattService !== false) planned.push({ def: gattServiceDefinition(), path: 'gatt', specialKinds: GATT_SPECIAL, count: 0, start: 0 });
  if (!isArray(def.services)) throw new GattDefinitionError('services', 'expected an array of services');
  def.services.forEach((s, i) => planned.push({ def: s, path: s.path ?? `services[${i}]`, count: 0, start: 0 }));

  // Ids must be unique across services, characteristics and descriptors.
  const ids = new Map<string, string>();
  const claimId = (id: string | undefined, path: string): void => {
    if (id === undefined) return;
    if (typeof id !== 'string' || id.length === 0) throw new GattDefinitionError(`${path}.id`, 'expected a non-empty string');
    const prev = ids.get(id);
    if (prev) throw new GattDefinitionError(`${path}.id`, `id ${JSON.stringify(id)} already used at ${prev}`);
    ids.set(id, path);
  };

  // Pass 1: sizes and handles.
  let next = 1;
  const serviceById = new Map<string, Planned>();
  for (const p of planned) {
    const s = p.def;
    claimId(s.id, p.path);
    if (s.id) serviceById.set(s.id, p);
    const chars = s.characteristics ?? [];
    if (!isArray(chars)) throw new GattDefinitionError(`${p.path}.characteristics`, 'expected an array');
    let count = 1 + (s.includes?.length ?? 0);
    chars.forEach((c, j) => {
      const cp = `${p.path}.characteristics[${j}]`;
      claimId(c.id, cp);
      (c.descriptors ?? []).forEach((d, k) => claimId(d.id, `${cp}.descriptors[${k}]`));
      if (!isArray(c.properties)) throw new GattDefinitionError(`${cp}.properties`, 'expected an array of properties');
      count += 2 + descriptorCount(c);
    });
    if (s.startHandle !== undefined) {
      if (!Number.isInteger(s.startHandle) || s.startHandle < next || s.startHandle > 0xffff) {
        throw new GattDefinitionError(`${p.path}.startHandle`, `must be an integer in ${next}..0xffff (after the previous service), got ${s.startHandle}`);
      }
      next = s.startHandle;
    }
    p.start = next;
    p.count = count;
    next += count;
    if (next - 1 > 0xffff) throw new GattDefinitionError(p.path, 'the database does not fit in handles 0x0001..0xFFFF');
  }

  // Pass 2: attributes.
  const attributes: Attribute[] = [];
  const services: MService[] = [];
  const characteristics: MCharacteristic[] = [];
  const svcByPlan = new Map<Planned, MService>();
  for (const p of planned) {
    const svc: MService = {
      uuid: parseUuid(`${p.path}.uuid`, p.def.uuid),
      primary: p.def.primary ?? true,
      handle: p.start,
      endHandle: p.start + p.count - 1,
      includes: [],
      characteristics: [],
    };
    if (p.def.id !== undefined) svc.id = p.def.id;
    if (typeof svc.primary !== 'boolean') throw new GattDefinitionError(`${p.path}.primary`, 'expected true or false');
    svcByPlan.set(p, svc);
    services.push(svc);
  }

  for (const p of planned) {
    const svc = svcByPlan.get(p) as MService;
    let h = p.start;
    const push = (a: Omit<Attribute, 'handle' | 'service'>): Attribute => {
      const attr: Attribute = { ...a, handle: h++, service: svc };
      attributes.push(attr);
      return attr;
    };
    const decl: Omit<Attribute, 'handle' | 'service' | 'type' | 'value' | 'kind'> = {
      permissions: { read: 'none', write: 'notPermitted' },
      maxLength: ATT_MAX_VALUE_LENGTH,
      fixedLength: true,
    };
    push({
      ...decl,
      type: Uuid.from16(svc.primary ? GattUuid.primaryService : GattUuid.secondaryService),
      kind: svc.primary ? 'primaryService' : 'secondaryService',
      value: svc.uuid.bytes,
      ...(svc.id !== undefined ? { id: svc.id } : {}),
    });

    (p.def.includes ?? []).forEach((incId, k) => {
      const ip = `${p.path}.includes[${k}]`;
      const target = typeof incId === 'string' ? serviceById.get(incId) : undefined;
      if (!target) throw new GattDefinitionError(ip, `no service with id ${JSON.stringify(incId)}`);
      if (target === p) throw new GattDefinitionError(ip, 'a service cannot include itself');
      const ts = svcByPlan.get(target) as MService;
      svc.includes.push(ts);
      // Core 5.4 Vol 3 Part G 3.2: handle, end group handle, and the UUID only when it is 16-bit.
      const v = new Uint8Array(ts.uuid.is16 ? 6 : 4);
      v.set(le16(ts.handle), 0);
      v.set(le16(ts.endHandle), 2);
      if (ts.uuid.is16) v.set(ts.uuid.bytes, 4);
      push({ ...decl, type: Uuid.from16(GattUuid.include), kind: 'include', value: v });
    });

    (p.def.characteristics ?? []).forEach((c, j) => {
      const cp = `${p.path}.characteristics[${j}]`;
      buildCharacteristic(c, cp, svc, push, () => h, characteristics, p.specialKinds);
    });
    if (h !== p.start + p.count) throw new Error(`internal: ${p.path} planned ${p.count} attributes, built ${h - p.start}`);
  }

  return new GattDatabase(attributes, services, characteristics);
}

function buildCharacteristic(
  c: CharacteristicDefinition,
  cp: string,
  svc: MService,
  push: (a: Omit<Attribute, 'handle' | 'service'>) => Attribute,
  nextHandle: () => number,
  all: MCharacteristic[],
  special: ReadonlyMap<number, AttributeKind> | undefined,
): void {
  const uuid = parseUuid(`${cp}.uuid`, c.uuid);
  let props = 0;
  c.properties.forEach((name, k) => {
    const unsupported = UNSUPPORTED_PROPERTIES[name];
    if (unsupported !== undefined) throw new GattDefinitionError(`${cp}.properties[${k}]`, `${JSON.stringify(name)} ${unsupported}`);
    const bit = (CharacteristicPropertyBit as Record<string, number>)[name];
    if (bit === undefined || (name as string) === 'extendedProperties') {
      throw new GattDefinitionError(`${cp}.properties[${k}]`, `expected one of ${CHARACTERISTIC_PROPERTIES.join(', ')}; got ${JSON.stringify(name)}`);
    }
    props |= bit;
  });
  if (c.extendedProperties) props |= CharacteristicPropertyBit.extendedProperties;

  const canRead = (props & CharacteristicPropertyBit.read) !== 0;
  const canWrite =
    (props & (CharacteristicPropertyBit.write | CharacteristicPropertyBit.writeWithoutResponse)) !== 0 ||
    c.extendedProperties?.reliableWrite === true;
  const pr = c.permissions ?? {};
  const read = checkRequirement(`${cp}.permissions.read`, pr.read) ?? (canRead ? 'none' : 'notPermitted');
  const write = checkRequirement(`${cp}.permissions.write`, pr.write) ?? (canWrite ? 'none' : 'notPermitted');
  if (read !== 'notPermitted' && !canRead) throw new GattDefinitionError(`${cp}.permissions.read`, `is ${JSON.stringify(read)} but the characteristic has no "read" property`);
  if (write !== 'notPermitted' && !canWrite) {
    throw new GattDefinitionError(`${cp}.permissions.write`, `is ${JSON.stringify(write)} but the characteristic has no "write" or "writeWithoutResponse" property`);
  }
  const { value, maxLength, fixedLength } = valueShape(cp, c.value, c.maxLength, c.fixedLength);

  const ch: MCharacteristic = { uuid, properties: props, declarationHandle: nextHandle(), valueHandle: nextHandle() + 1, endHandle: 0, service: svc };
  if (c.id !== undefined) ch.id = c.id;
  svc.characteristics.push(ch);
  all.push(ch);

  // Characteristic declaration. Core 5.4 Vol 3 Part G 3.3.1: properties, value handle, UUID.
  const dv = new Uint8Array(3 + uuid.bytes.length);
  dv[0] = props;
  dv.set(le16(ch.valueHandle), 1);
  dv.set(uuid.bytes, 3);
  const declAttr = push({
    type: Uuid.from16(GattUuid.characteristic),
    kind: 'characteristic',
    permissions: { read: 'none', write: 'notPermitted' },
    maxLength: ATT_MAX_VALUE_LENGTH,
    fixedLength: true,
    value: dv,
    characteristic: ch,
  });
  void declAttr;

  const kind: AttributeKind = (uuid.value16 !== undefined && special?.get(uuid.value16)) || 'value';
  push({
    type: uuid,
    kind,
    permissions: permissionsOf(read, write, pr),
    maxLength,
    fixedLength,
    value,
    characteristic: ch,
    ...(c.onRead ? { onRead: c.onRead } : {}),
    ...(c.onWrite ? { onWrite: c.onWrite } : {}),
    ...(c.authorize ? { authorize: c.authorize } : {}),
    ...(c.id !== undefined ? { id: c.id } : {}),
  });

  const descriptors = c.descriptors ?? [];
  const hasExplicitCccd = descriptors.some((d) => Uuid.of(d.uuid).value16 === GattUuid.clientCharacteristicConfiguration);
  const notifies = (props & (CharacteristicPropertyBit.notify | CharacteristicPropertyBit.indicate)) !== 0;
  const cccdWrite =
    checkRequirement(`${cp}.cccd.write`, c.cccd?.write) ?? (write !== 'notPermitted' ? write : read !== 'notPermitted' ? read : 'none');
  if (c.cccd && !notifies) throw new GattDefinitionError(`${cp}.cccd`, 'a CCCD needs the "notify" or "indicate" property');
  if (hasExplicitCccd && !notifies) throw new GattDefinitionError(`${cp}.descriptors`, 'a 0x2902 descriptor needs the "notify" or "indicate" property');
  const pushCccd = (write: AccessRequirement, authorizeWrite: boolean | undefined, id?: string): void => {
    ch.cccdHandle = nextHandle();
    push({
      type: Uuid.from16(GattUuid.clientCharacteristicConfiguration),
      kind: 'cccd',
      permissions: { read: 'none', write, ...(authorizeWrite ? { authorizeWrite: true } : {}) },
      maxLength: 2,
      fixedLength: true,
      value: new Uint8Array(2),
      characteristic: ch,
      ...(id !== undefined ? { id } : {}),
    });
  };
  if (notifies && !hasExplicitCccd) pushCccd(cccdWrite, c.cccd?.authorizeWrite);
  if (c.extendedProperties) {
    const e = c.extendedProperties;
    // Core 5.4 Vol 3 Part G 3.3.3.1: bit 0 Reliable Write, bit 1 Writable Auxiliaries.
    push({
      type: Uuid.from16(GattUuid.characteristicExtendedProperties),
      kind: 'descriptor',
      permissions: { read: 'none', write: 'notPermitted' },
      maxLength: 2,
      fixedLength: true,
      value: le16((e.reliableWrite ? 1 : 0) | (e.writableAuxiliaries ? 2 : 0)),
      characteristic: ch,
    });
  }
  if (c.userDescription !== undefined) {
    if (typeof c.userDescription !== 'string') throw new GattDefinitionError(`${cp}.userDescription`, 'expected a string');
    push({
      type: Uuid.from16(GattUuid.characteristicUserDescription),
      kind: 'descriptor',
      permissions: { read: 'none', write: 'notPermitted' },
      maxLength: ATT_MAX_VALUE_LENGTH,
      fixedLength: false,
      value: utf8.encode(c.userDescription),
      characteristic: ch,
    });
  }
  descriptors.forEach((d, k) => {
    const dp = `${cp}.descriptors[${k}]`;
    const du = parseUuid(`${dp}.uuid`, d.uuid);
    const dperm = d.permissions ?? {};
    const dread = checkRequirement(`${dp}.permissions.read`, dperm.read);
    const dwrite = checkRequirement(`${dp}.permissions.write`, dperm.write);
    if (du.value16 === GattUuid.clientCharacteristicConfiguration) {
      if (d.value !== undefined || d.onRead || d.onWrite) throw new GattDefinitionError(dp, 'a CCCD holds per-client state: give only its permissions');
      pushCccd(dwrite ?? cccdWrite, dperm.authorizeWrite, d.id);
      return;
    }
    if (du.value16 === GattUuid.characteristicExtendedProperties && c.extendedProperties) {
      throw new GattDefinitionError(dp, 'give either "extendedProperties" or a 0x2900 descriptor, not both');
    }
    const shape = valueShape(dp, d.value, d.maxLength, d.fixedLength);
    push({
      type: du,
      kind: 'descriptor',
      permissions: permissionsOf(dread ?? 'none', dwrite ?? 'notPermitted', dperm),
      maxLength: shape.maxLength,
      fixedLength: shape.fixedLength,
      value: shape.value,
      characteristic: ch,
      ...(d.onRead ? { onRead: d.onRead } : {}),
      ...(d.onWrite ? { onWrite: d.onWrite } : {}),
      ...(d.authorize ? { authorize: d.authorize } : {}),
      ...(d.id !== undefined ? { id: d.id } : {}),
    });
  });
  ch.endHandle = nextHandle() - 1;
}

/** Array check that does not narrow a readonly array to a mutable, untyped one (as Array.isArray does). */
function isArray(v: unknown): boolean {
  return Array.isArray(v);
}

function permissionsOf(read: AccessRequirement, write: AccessRequirement, p: PermissionsDefinition): AttributePermissions {
  return {
    read,
    write,
    ...(p.authorizeRead ? { authorizeRead: true } : {}),
    ...(p.authorizeWrite ? { authorizeWrite: true } : {}),
  };
}

function valueShape(
  path: string,
  init: ValueInit | undefined,
  maxLength: number | undefined,
  fixedLength: boolean | undefined,
): { value: Uint8Array; maxLength: number; fixedLength: boolean } {
  if (init !== undefined && typeof init !== 'string' && !(init instanceof Uint8Array)) {
    throw new GattDefinitionError(`${path}.value`, 'expected a string or bytes');
  }
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0 || maxLength > ATT_MAX_VALUE_LENGTH)) {
    throw new GattDefinitionError(`${path}.maxLength`, `must be an integer in 0..${ATT_MAX_VALUE_LENGTH}, got ${maxLength}`);
  }
  let value = valueBytes(init);
  const fixed = fixedLength === true;
  if (fixed && init === undefined) {
    if (maxLength === undefined) throw new GattDefinitionError(`${path}.fixedLength`, 'a fixed-length value needs an initial value or a maxLength');
    value = new Uint8Array(maxLength);
  }
  const max = fixed ? value.length : (maxLength ?? ATT_MAX_VALUE_LENGTH);
  if (value.length > max) throw new GattDefinitionError(`${path}.value`, `is ${value.length} bytes, longer than maxLength ${max}`);
  if (fixed && maxLength !== undefined && maxLength !== value.length) {
    throw new GattDefinitionError(`${path}.maxLength`, `is ${maxLength} but the fixed-length value is ${value.length} bytes`);
  }
  return { value, maxLength: max, fixedLength: fixed };
}

/** A chainable front end to {@link buildGattDatabase}. */
export class GattDatabaseBuilder {
  private gapOptions: GapServiceOptions | false = {};
  private withGatt = true;
  private readonly list: ServiceDefinition[] = [];

  gap(options: GapServiceOptions | false): this {
    this.gapOptions = options;
    return this;
  }

  gattService(include: boolean): this {
    this.withGatt = include;
    return this;
  }

  service(def: ServiceDefinition): this {
    this.list.push(def);
    return this;
  }

  build(): GattDatabase {
    return buildGattDatabase({ gap: this.gapOptions, gattService: this.withGatt, services: this.list });
  }
}
