/**
 * HCI error codes. Core 5.4 Vol 1 Part F 1.3 (list of error codes).
 */
export const HciStatus = {
  Success: 0x00,
  UnknownHciCommand: 0x01,
  UnknownConnectionIdentifier: 0x02,
  HardwareFailure: 0x03,
  PageTimeout: 0x04,
  AuthenticationFailure: 0x05,
  PinOrKeyMissing: 0x06,
  MemoryCapacityExceeded: 0x07,
  ConnectionTimeout: 0x08,
  ConnectionLimitExceeded: 0x09,
  ConnectionAlreadyExists: 0x0b,
  CommandDisallowed: 0x0c,
  ConnectionRejectedLimitedResources: 0x0d,
  ConnectionRejectedSecurityReasons: 0x0e,
  UnsupportedFeatureOrParameterValue: 0x11,
  InvalidHciCommandParameters: 0x12,
  RemoteUserTerminatedConnection: 0x13,
  RemoteDeviceTerminatedLowResources: 0x14,
  RemoteDeviceTerminatedPowerOff: 0x15,
  ConnectionTerminatedByLocalHost: 0x16,
  RepeatedAttempts: 0x17,
  PairingNotAllowed: 0x18,
  UnsupportedRemoteFeature: 0x1a,
  InvalidLmpLlParameters: 0x1e,
  UnspecifiedError: 0x1f,
  UnsupportedLmpLlParameterValue: 0x20,
  LmpLlResponseTimeout: 0x22,
  LmpLlErrorTransactionCollision: 0x23,
  InstantPassed: 0x28,
  PairingWithUnitKeyNotSupported: 0x29,
  DifferentTransactionCollision: 0x2a,
  InsufficientSecurity: 0x2f,
  ParameterOutOfMandatoryRange: 0x30,
  HostBusyPairing: 0x38,
  ControllerBusy: 0x3a,
  UnacceptableConnectionParameters: 0x3b,
  AdvertisingTimeout: 0x3c,
  ConnectionTerminatedMicFailure: 0x3d,
  ConnectionFailedToBeEstablished: 0x3e,
  UnknownAdvertisingIdentifier: 0x42,
  LimitReached: 0x43,
  PacketTooLong: 0x45,
} as const;

export type HciStatusCode = (typeof HciStatus)[keyof typeof HciStatus];

const NAMES = new Map<number, string>(Object.entries(HciStatus).map(([k, v]) => [v, k]));

/** `0x06 PinOrKeyMissing`, or `0x7e (unknown)`. */
export function hciStatusName(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')} ${NAMES.get(code) ?? '(unknown)'}`;
}
