/**
 * Bluetooth device addresses. On the wire an address is 6 bytes little-endian; as text it is
 * `AA:BB:CC:DD:EE:FF`, most significant byte first, as every tool prints it.
 * Core 5.4 Vol 6 Part B 1.3.
 */
import { fromHex } from './bytes.js';

export type AddressType = 'public' | 'random';

/** An address with its type, as in HCI `Peer_Address_Type` (0 public, 1 random). */
export interface Address {
  readonly type: AddressType;
  /** Upper-case `AA:BB:CC:DD:EE:FF`, most significant byte first. */
  readonly address: string;
}

/** Kind of a random address, from its two most significant bits. Core 5.4 Vol 6 Part B 1.3.2. */
export type RandomAddressKind = 'static' | 'resolvable' | 'non-resolvable' | 'reserved';

export function addressFromWire(le: Uint8Array): string {
  if (le.length !== 6) throw new Error(`an address is 6 bytes, got ${le.length}`);
  const parts: string[] = [];
  for (let i = 5; i >= 0; i--) parts.push((le[i] as number).toString(16).padStart(2, '0'));
  return parts.join(':').toUpperCase();
}

export function addressToWire(text: string): Uint8Array {
  const be = fromHex(text);
  if (be.length !== 6) throw new Error(`not a Bluetooth address: ${JSON.stringify(text)}`);
  return be.reverse();
}

export function isValidAddressText(text: string): boolean {
  return /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(text);
}

export function normaliseAddress(text: string): string {
  if (!isValidAddressText(text)) throw new Error(`not a Bluetooth address: ${JSON.stringify(text)} (expected AA:BB:CC:DD:EE:FF)`);
  return text.toUpperCase();
}

export function randomAddressKind(text: string): RandomAddressKind {
  const msb = parseInt(text.slice(0, 2), 16);
  switch (msb >> 6) {
    case 0b11:
      return 'static';
    case 0b01:
      return 'resolvable';
    case 0b00:
      return 'non-resolvable';
    default:
      return 'reserved';
  }
}

/** Whether `address` is a resolvable private address: random, two most significant bits 0b01. Core 5.4 Vol 6 Part B 1.3.2.2. */
export function isResolvablePrivateAddress(address: Address): boolean {
  return address.type === 'random' && randomAddressKind(address.address) === 'resolvable';
}

/** HCI address type byte: 0x00 public, 0x01 random (0x02/0x03 identity types come from the controller's resolving list). */
export function addressTypeToByte(t: AddressType): number {
  return t === 'public' ? 0 : 1;
}

export function addressTypeFromByte(b: number): AddressType {
  return (b & 1) === 0 ? 'public' : 'random';
}

/** Whether two addresses are the same device address: same type, same 48 bits, letter case aside. */
export function sameAddress(a: Address | undefined, b: Address | undefined): boolean {
  return !!a && !!b && a.type === b.type && a.address.toUpperCase() === b.address.toUpperCase();
}

export function formatAddress(a: Address): string {
  return `${a.address} (${a.type})`;
}
