/**
 * The public library surface of wearable-host (the package's `exports`). Everything not exported
 * here is internal and may change. docs/api.md describes each name with an example.
 */
export { Wearable, decodeAttErrorSent, type WearableOptions, type WearableEvents, type WearableEventName, type WearableEventValue, type PeerInfo } from './lib/wearable.js';
export { Phone, parseAddress, type PhoneOptions, type PhoneEvents, type PhoneConnection } from './lib/phone.js';
export { VirtualAir, type VirtualAirOptions } from './lib/air.js';
export { openController, type ControllerSpec, type OpenControllerOptions } from './lib/controller.js';
export { WaitError, type WaitErrorKind, type WaitOptions } from './lib/wait.js';
export { diagnose, type DiagnoseCaptureOptions } from './lib/diagnose.js';
export { renderReport, reportToJson, type Report, type Finding, type ConnectionReport } from './diagnose/diagnose.js';

export { PhoneError, type PhoneErrorKind, type PhoneUser } from './phone/phone.js';
export { PHONE_NAMES, type PhoneName, type PhoneBehaviour, type PhoneProfile } from './phone/profiles.js';
export type { ScenarioEvent as PhoneEvent, PromptAnswer } from './phone/events.js';

export { GattDatabaseBuilder, GattDatabase, buildGattDatabase, type ServiceDefinition, type CharacteristicDefinition, type UpdateOutcome, type AttributeRef } from './gatt/database.js';
export { databaseFromGattJson, loadGattJsonFile } from './gatt/json.js';
export { WearableProfile, HealthUuid } from './gatt/profile.js';
export { GattUuid, Uuid, type UuidLike } from './gatt/uuid.js';

export { MemoryBondStore } from './bonds/memory.js';
export { JsonFileBondStore, defaultBondsPath } from './bonds/json-store.js';
export type { BondStore, BondRecord, LocalIdentity } from './bonds/types.js';

export { BtsnoopWriter, readBtsnoop } from './hci/btsnoop.js';
export type { Transport } from './hci/transport.js';
export type { Address } from './util/address.js';

export { WearableHostError } from './util/errors.js';
export { AttError } from './att/types.js';
export { AttErrorCode } from './att/pdu.js';
export { SmpError } from './smp/errors.js';
export { SmpReason } from './smp/pdu.js';
export { HciError } from './hci/hci-error.js';
export { HciStatus } from './hci/status.js';
