/**
 * Lays a database definition out as attributes with deterministic handles, checking every field
 * on the way (a bad one throws {@link GattDefinitionError} with its path).
 *
 * Layout (Core 5.4 Vol 3 Part G 3): for each service in order, the service declaration, its
 * include declarations, then per characteristic the declaration, the value and the descriptors
 * (an automatic CCCD first when notify or indicate is set, then the Extended Properties and User
 * Description descriptors when asked for, then the caller's descriptors in order). Handles count
 * up from 0x0001 without gaps unless a service pins its `startHandle`. The GAP service comes
 * first and the GATT service second, so the Service Changed handles never move when the
 * application's services change.
 */
import { ATT_MAX_VALUE_LENGTH } from '../att/types.js';
import { CHARACTERISTIC_PROPERTIES, CharacteristicPropertyBit, UNSUPPORTED_PROPERTIES } from './attribute.js';
import type { Attribute, AttributeKind, GattCharacteristic, GattService } from './attribute.js';
import { GATT_SPECIAL, gapServiceDefinition, gattServiceDefinition } from './core-services.js';
import { GattDefinitionError } from './definition.js';
import type { CharacteristicDefinition, GattDatabaseDefinition, PermissionsDefinition, ServiceDefinition, ValueInit } from './definition.js';
import { type AccessRequirement, type AttributePermissions, ACCESS_REQUIREMENTS } from './permissions.js';
import { GattUuid, Uuid, type UuidLike } from './uuid.js';

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

/** The attributes, services and characteristics a database is made of, in handle order. */
export interface DatabaseLayout {
  readonly attributes: Attribute[];
  readonly services: GattService[];
  readonly characteristics: GattCharacteristic[];
}

/** Checks a definition and lays it out as attributes. Throws {@link GattDefinitionError} naming the offending path. */
export function layOutDatabase(def: GattDatabaseDefinition): DatabaseLayout {
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

  return { attributes, services, characteristics };
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
  push({
    type: Uuid.from16(GattUuid.characteristic),
    kind: 'characteristic',
    permissions: { read: 'none', write: 'notPermitted' },
    maxLength: ATT_MAX_VALUE_LENGTH,
    fixedLength: true,
    value: dv,
    characteristic: ch,
  });

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
