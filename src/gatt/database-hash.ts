/**
 * The Database Hash (Core 5.4 Vol 3 Part G 7.3) a caching client compares to learn whether the
 * server's attribute table changed.
 */
import { aesCmac } from '../crypto/index.js';
import { reversed } from '../util/bytes.js';
import type { Attribute } from './attribute.js';
import { GattUuid } from './uuid.js';

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
