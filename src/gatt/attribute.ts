/**
 * What a built GATT database is made of: attributes, the services and characteristics they group
 * into, the property and configuration bits of Core 5.4 Vol 3 Part G 3 and 7.2, and the
 * per-connection view (`GattConnection`) through which read, write and authorization handlers see
 * the client. Types only, plus the bit tables; the builder is in `layout.ts`, the database that
 * serves them in `database.ts`.
 */
import type { Address } from '../util/address.js';
import type { LinkSecurity } from '../smp/link-security.js';
import type { AttributePermissions } from './permissions.js';
import type { Uuid } from './uuid.js';

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
