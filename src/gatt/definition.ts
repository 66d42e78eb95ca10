/**
 * What an application may define: services, characteristics, descriptors, their permissions and
 * initial values, and the options of the built-in GAP service; and the error that names the path
 * of a bad field. `layout.ts` checks a definition and turns it into attributes.
 */
import { WearableHostError } from '../util/errors.js';
import type { AuthorizeHook, CharacteristicProperty, ReadHandler, WriteHandler } from './attribute.js';
import type { AccessRequirement } from './permissions.js';
import type { UuidLike } from './uuid.js';

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
