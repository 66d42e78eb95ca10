/**
 * Which Handle Value Indication is a Service Changed, for the timeline: the characteristic's value
 * handle, given (live: our GATT database) or learned from the GATT discovery responses the capture
 * shows, and, while it is unknown, the guess that a 4-byte handle range indicated before the phone's
 * first request on the connection is one.
 *
 * Core 5.4 references: Service Changed Vol 3 Part G 7.1; characteristic declaration Vol 3 Part G
 * 3.3.1; Find Information and Read By Type Vol 3 Part F 3.4.3.2 / 3.4.4.2.
 */
import type { AttPdu } from '../att/pdu.js';
import type { Side } from './timeline-model.js';

const UUID_SERVICE_CHANGED = 0x2a05;
const UUID_CHARACTERISTIC = 0x2803;

/** A Service Changed indication: the attribute indicated and the affected handle range. */
export interface ServiceChangedIndication {
  readonly attHandle: number;
  /** The value handle was not known: the indication looked like a Service Changed. */
  readonly guessed: boolean;
  readonly startHandle: number;
  readonly endHandle: number;
}

/** Tracks the Service Changed value handle and recognises its indications. */
export class ServiceChangedWatch {
  /** Per connection id: last ATT request from the client, to interpret discovery responses. */
  private readonly lastRequest = new Map<number, AttPdu>();
  /** Per connection id: the phone sent its first ATT request (for the Service Changed guess). */
  private readonly phoneSpoke = new Set<number>();

  /** `handle`: the value handle of Service Changed, when known from outside the capture. */
  constructor(private scHandle: number | undefined) {}

  /** Value handle of Service Changed, if given or learned. */
  get handle(): number | undefined {
    return this.scHandle;
  }

  /** An ATT request on connection `connId`, sent by `from`. */
  request(connId: number, pdu: AttPdu, from: Side | undefined): void {
    this.lastRequest.set(connId, pdu);
    if (from !== 'accessory') this.phoneSpoke.add(connId);
  }

  /** Learns the Service Changed value handle from discovery responses (characteristic declarations, Find Information). */
  discoveryResponse(connId: number, pdu: AttPdu): void {
    if (pdu.type === 'findInformationResponse') {
      for (const e of pdu.entries) if (e.uuid.length === 2 && ((e.uuid[0] as number) | ((e.uuid[1] as number) << 8)) === UUID_SERVICE_CHANGED) this.scHandle = e.handle;
      return;
    }
    if (pdu.type !== 'readByTypeResponse') return;
    const req = this.lastRequest.get(connId);
    if (!req || req.type !== 'readByTypeRequest' || req.attributeType.length !== 2) return;
    if (((req.attributeType[0] as number) | ((req.attributeType[1] as number) << 8)) !== UUID_CHARACTERISTIC) return;
    for (const d of pdu.data) {
      // Characteristic declaration value: properties (1), value handle (2), UUID (2 or 16). Core 5.4 Vol 3 Part G 3.3.1.
      if (d.value.length === 5 && ((d.value[3] as number) | ((d.value[4] as number) << 8)) === UUID_SERVICE_CHANGED) {
        this.scHandle = (d.value[1] as number) | ((d.value[2] as number) << 8);
      }
    }
  }

  /** The Service Changed reading of an indication from the accessory, or undefined when it is another characteristic's. */
  indication(connId: number, pdu: AttPdu & { type: 'handleValueIndication' }): ServiceChangedIndication | undefined {
    if (pdu.value.length !== 4) return undefined;
    const startHandle = (pdu.value[0] as number) | ((pdu.value[1] as number) << 8);
    const endHandle = (pdu.value[2] as number) | ((pdu.value[3] as number) << 8);
    if (this.scHandle !== undefined) {
      return pdu.handle === this.scHandle ? { attHandle: pdu.handle, guessed: false, startHandle, endHandle } : undefined;
    }
    // Guess: a handle range indicated before the phone asked anything on this connection.
    if (startHandle >= 1 && startHandle <= endHandle && !this.phoneSpoke.has(connId)) {
      return { attHandle: pdu.handle, guessed: true, startHandle, endHandle };
    }
    return undefined;
  }

  /** Forgets what is kept for a dropped connection. */
  forgetConnection(connId: number): void {
    this.lastRequest.delete(connId);
    this.phoneSpoke.delete(connId);
  }
}
