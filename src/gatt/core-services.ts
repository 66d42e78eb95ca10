/**
 * The two services every server carries: GAP (0x1800, Core 5.4 Vol 3 Part C 12) and GATT (0x1801,
 * Core 5.4 Vol 3 Part G 7), as ordinary definitions the layout places first and second.
 */
import type { AttributeKind } from './attribute.js';
import type { CharacteristicDefinition, GapServiceOptions, PreferredConnectionParameters, ServiceDefinition } from './definition.js';
import { GattUuid } from './uuid.js';

/** The PPCP served unless the options give one: interval 30..45 ms, latency 0, supervision timeout 4 s. */
export const DEFAULT_PPCP: PreferredConnectionParameters = { intervalMin: 24, intervalMax: 36, latency: 0, timeout: 400 };

/** 16-bit values in sequence, little-endian as GATT carries them (Core 5.4 Vol 3 Part F 3.3.1). */
function le16s(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => {
    out[2 * i] = v & 0xff;
    out[2 * i + 1] = (v >> 8) & 0xff;
  });
  return out;
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
    { uuid: GattUuid.appearance, id: 'gap.appearance', properties: ['read'], value: le16s(o.appearance ?? 0), fixedLength: true },
  ];
  if (o.ppcp !== false) {
    const p = o.ppcp ?? DEFAULT_PPCP;
    const v = le16s(p.intervalMin, p.intervalMax, p.latency, p.timeout);
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

/** Attribute kinds of the GATT service's characteristic values, by UUID: the ATT server serves these from per-connection state. */
export const GATT_SPECIAL = new Map<number, AttributeKind>([
  [GattUuid.serviceChanged, 'serviceChanged'],
  [GattUuid.clientSupportedFeatures, 'clientSupportedFeatures'],
  [GattUuid.databaseHash, 'databaseHash'],
]);
