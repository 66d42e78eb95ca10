/**
 * One-line descriptions of timeline events for evidence lists ("SMP Pairing Failed 0x03
 * (Authentication Requirements) from the accessory"). Key material never appears: the timeline
 * holds none.
 */
import { hciStatusName } from '../hci/status.js';
import { formatAuthReq, formatKeyDist, ioCapabilityName, smpReasonName } from '../smp/pdu.js';
import { attErrorName, attPduSpec, attPduSpecOf } from '../att/pdu.js';
import { formatConnectionParameters } from '../l2cap/conn-params.js';
import { addressText, type TimelineEvent } from './timeline.js';

function hex(v: number, digits = 2): string {
  return `0x${v.toString(16).padStart(digits, '0')}`;
}

function by(from: string | undefined): string {
  return from ? ` from the ${from}` : '';
}

/** A short, user-readable line for one event. */
export function describeEvent(e: TimelineEvent): string {
  switch (e.kind) {
    case 'advertising':
      return `advertising ${e.enabled ? 'on' : 'off'}`;
    case 'connection':
      return `LE Connection Complete: ${e.localRole === 'peripheral' ? 'the capturing device is the peripheral' : 'the capturing device is the central'}, peer ${addressText(e.peer.onAir)}${e.peer.identity && e.peer.identitySource !== 'address' && e.peer.identitySource !== 'pairing' ? `, identity ${e.peer.identity.address}` : ''}`;
    case 'connectionFailed':
      return `connection attempt failed (${hciStatusName(e.status)})`;
    case 'disconnection':
      return `Disconnection Complete, reason ${hciStatusName(e.reason)}${e.requestedBy ? ` (the ${e.requestedBy} disconnected${e.requestedReason !== undefined ? ` with ${hciStatusName(e.requestedReason)}` : ''})` : ''}`;
    case 'att': {
      const p = e.pdu;
      const name = attPduSpecOf(p.type).name;
      switch (p.type) {
        case 'errorResponse':
          return `${name} to ${attPduSpec(p.requestOpcode)?.name ?? hex(p.requestOpcode)} on handle ${hex(p.handle, 4)}: ${hex(p.errorCode)} ${attErrorName(p.errorCode)}${by(e.from)}`;
        case 'exchangeMtuRequest':
          return `${name} MTU ${p.clientRxMtu}${by(e.from)}`;
        case 'exchangeMtuResponse':
          return `${name} MTU ${p.serverRxMtu}${by(e.from)}`;
        case 'readRequest':
        case 'readBlobRequest':
        case 'writeRequest':
        case 'prepareWriteRequest':
        case 'handleValueIndication':
          return `${name} handle ${hex(p.handle, 4)}${by(e.from)}`;
        default:
          return `${name}${by(e.from)}`;
      }
    }
    case 'smp': {
      const p = e.pdu;
      switch (p.type) {
        case 'pairingRequest':
        case 'pairingResponse':
          return `SMP ${p.type === 'pairingRequest' ? 'Pairing Request' : 'Pairing Response'}${by(e.from)}: IO ${ioCapabilityName(p.ioCapability)}, AuthReq ${formatAuthReq(p.authReq)}, max key ${p.maxKeySize}, key distribution ${formatKeyDist(p.initiatorKeyDist)}/${formatKeyDist(p.responderKeyDist)}`;
        case 'pairingFailed':
          return `SMP Pairing Failed ${hex(p.reason)} (${smpReasonName(p.reason)})${by(e.from)}`;
        case 'securityRequest':
          return `SMP Security Request (AuthReq ${formatAuthReq(p.authReq)})${by(e.from)}`;
        case 'identityAddressInformation':
          return `SMP Identity Address Information ${p.address.address} (${p.address.type})${by(e.from)}`;
        default: {
          const names: Record<string, string> = {
            pairingConfirm: 'Pairing Confirm',
            pairingRandom: 'Pairing Random',
            encryptionInformation: 'Encryption Information',
            centralIdentification: 'Central Identification',
            identityInformation: 'Identity Information (IRK)',
            signingInformation: 'Signing Information',
            pairingPublicKey: 'Pairing Public Key',
            pairingDhKeyCheck: 'Pairing DHKey Check',
            pairingKeypressNotification: 'Pairing Keypress Notification',
          };
          return `SMP ${names[p.type] ?? p.type}${by(e.from)}`;
        }
      }
    }
    case 'ltkRequest':
      return `LE Long Term Key Request (EDIV ${hex(e.ediv, 4)}, Rand ${e.rand === 0n ? '0' : hex(Number(e.rand & 0xffffffffn), 8) + '…'}${e.ediv === 0 && e.rand === 0n ? ': an LE Secure Connections key' : ': a legacy key'})`;
    case 'ltkReply':
      return e.positive ? 'LE Long Term Key Request Reply (the accessory has a key)' : 'LE Long Term Key Request Negative Reply (the accessory has no key for this phone)';
    case 'startEncryption':
      return `LE Enable Encryption (EDIV ${hex(e.ediv, 4)}${e.ediv === 0 && e.rand === 0n ? ', Rand 0: an LE Secure Connections key' : ''})`;
    case 'encryptionChange':
      return e.status === 0
        ? `${e.refresh ? 'Encryption Key Refresh Complete' : 'Encryption Change'}: ${e.enabled ? 'encrypted' : 'encryption off'}${e.keySize !== undefined ? `, key size ${e.keySize}` : ''}`
        : `${e.refresh ? 'Encryption Key Refresh Complete' : 'Encryption Change'}: failed, ${hciStatusName(e.status)}`;
    case 'keySize':
      return `Read Encryption Key Size: ${e.keySize}`;
    case 'connParamRequest': {
      const via = e.via === 'l2cap' ? 'L2CAP Connection Parameter Update Request' : e.via === 'hci' ? 'HCI LE Connection Update' : 'LL Connection Parameters Request';
      return `${via}${by(e.from)}: ${formatConnectionParameters(e.params)}`;
    }
    case 'connParamResponse':
      return `L2CAP Connection Parameter Update Response: ${e.accepted ? 'accepted' : `rejected (result ${e.result})`}${by(e.from)}`;
    case 'connUpdate':
      return e.status === 0
        ? `LE Connection Update Complete: interval ${e.interval * 1.25} ms, latency ${e.latency}, timeout ${e.timeout * 10} ms`
        : `LE Connection Update Complete: failed, ${hciStatusName(e.status)}`;
    case 'serviceChanged':
      return `ATT Handle Value Indication of Service Changed (handle ${hex(e.attHandle, 4)}${e.guessed ? ', guessed: a handle range indicated before the phone asked anything' : ''}, range ${hex(e.startHandle, 4)}-${hex(e.endHandle, 4)})${by(e.from)}`;
    case 'hostReset':
      return 'HCI Reset: the capturing host (re)started';
    case 'resolvingListAdd':
      return `LE Add Device To Resolving List: ${e.identity.address} (${e.identity.type}) with its IRK`;
    case 'commandFailed':
      return `${e.name} failed: ${hciStatusName(e.status)}`;
    case 'decodeError':
      return `undecodable packet: ${e.message}`;
  }
}
