/**
 * The GATT database: the attribute table a server serves, found by handle or by id, with the
 * application's side of it (set a value, send it to subscribed clients). `buildGattDatabase` and
 * `GattDatabaseBuilder` make one from a definition; `layout.ts` assigns the handles.
 *
 * Values: every attribute has a stored value (static, or the last one set by the application or
 * written by a client) unless it has a read handler. Per-connection attributes (CCCDs, Client
 * Supported Features) are served by the ATT server from the connection's state.
 *
 * This is the module importers use: the types, definitions, built-in services and Database Hash
 * that live in their own files are re-exported here.
 */
import { toHex } from '../util/bytes.js';
import type { Attribute, AttributeKind, GattCharacteristic, GattConnection, GattService } from './attribute.js';
import { GattDefinitionError, type GapServiceOptions, type GattDatabaseDefinition, type ServiceDefinition } from './definition.js';
import { computeDatabaseHash } from './database-hash.js';
import { layOutDatabase } from './layout.js';

export {
  CharacteristicPropertyBit,
  CHARACTERISTIC_PROPERTIES,
  UNSUPPORTED_PROPERTIES,
  CccdBit,
  ClientFeatureBit,
  CLIENT_FEATURES_DEFINED,
  type CharacteristicProperty,
  type AttributeKind,
  type GattConnection,
  type AccessContext,
  type ReadHandler,
  type WriteHandler,
  type AuthorizationRequest,
  type AuthorizeHook,
  type Attribute,
  type GattService,
  type GattCharacteristic,
} from './attribute.js';
export {
  GattDefinitionError,
  type ValueInit,
  type PermissionsDefinition,
  type DescriptorDefinition,
  type CharacteristicDefinition,
  type ServiceDefinition,
  type PreferredConnectionParameters,
  type GapServiceOptions,
  type GattDatabaseDefinition,
} from './definition.js';
export { DEFAULT_PPCP, gapServiceDefinition, gattServiceDefinition } from './core-services.js';
export { computeDatabaseHash } from './database-hash.js';

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

/** Builds a database from a definition. Throws {@link GattDefinitionError} naming the offending path. */
export function buildGattDatabase(def: GattDatabaseDefinition): GattDatabase {
  const { attributes, services, characteristics } = layOutDatabase(def);
  return new GattDatabase(attributes, services, characteristics);
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
