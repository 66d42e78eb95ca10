/**
 * The state one SMP session shares between its parts: the phase, the running pairing procedure,
 * and the narrow context ({@link SmpContext}) the session core hands to each part (feature
 * exchange, association models, link encryption, key distribution). The core
 * ({@link SmpSession} in ./pairing.ts) owns the state; the parts read it and advance the phase.
 * Core 5.4 Vol 3 Part H 2.3 (pairing phases), 3 (protocol).
 */
import type { BondRecord, BondStore, LocalIdentity } from '../bonds/types.js';
import type { Address } from '../util/address.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import type { Association } from './association.js';
import type { PairingBackoff } from './backoff.js';
import { generateKeyPair, type P256KeyPair } from '../crypto/index.js';
import type { PairingFeatures, SmpPduOf, SmpPduType } from './pdu.js';
import type { FailureSource, SmpEvents, SmpLower, SmpPolicy } from './types.js';

/** Where the pairing procedure stands. */
export type SmpPhase =
  /** No procedure. */
  | 'idle'
  /** Central: Pairing Request sent. */
  | 'waitPairingResponse'
  /** Features exchanged; waiting for the peer's Pairing Public Key. */
  | 'waitPublicKey'
  /** Waiting for Pairing Confirm (central: Cb; passkey rounds: Cai / Cbi). */
  | 'waitConfirm'
  /** Waiting for Pairing Random (Na / Nb, or Nai / Nbi in passkey rounds). */
  | 'waitRandom'
  /** Waiting for our own user (passkey input, numeric comparison) before anything is sent. */
  | 'waitUser'
  /** Waiting for Pairing DHKey Check (Ea / Eb). */
  | 'waitDhKeyCheck'
  /** DHKey check passed; waiting for the link to encrypt with the new LTK. */
  | 'waitEncryption'
  /** Encrypted; key distribution running. */
  | 'waitKeys'
  /** The SMP timeout expired: no more SMP on this link (Core 5.4 Vol 3 Part H 3.4). */
  | 'timedOut'
  /** The link is gone. */
  | 'closed';

/** One pairing procedure. */
export interface Procedure {
  readonly epoch: number;
  readonly preq: PairingFeatures;
  pres: PairingFeatures | undefined;
  assoc: Exclude<Association, { model: 'oob' }> | undefined;
  keySize: number;
  bonding: boolean;
  readonly keys: P256KeyPair;
  peerKey: Uint8Array | undefined;
  dhKey: Uint8Array | undefined;
  /** Our nonce of this round (Na / Nb, or Nai / Nbi). */
  localNonce: Uint8Array | undefined;
  /** The peer's confirm value waiting to be checked (Cb, Cai / Cbi). */
  peerConfirm: Uint8Array | undefined;
  na: Uint8Array | undefined;
  nb: Uint8Array | undefined;
  passkey: number | undefined;
  round: number;
  /** Numeric comparison: our user said yes (true from the start for the other models). */
  userConfirmed: boolean;
  /** Peripheral: Ea received, waiting for our user. */
  peerCheck: Uint8Array | undefined;
  macKey: Uint8Array | undefined;
  ltk: Uint8Array | undefined;
  checkPassed: boolean;
  /** Key distribution bits still expected from the peer, and the step inside IdKey. */
  expectFromPeer: number;
  idStep: 0 | 1;
  /** Key distribution bits we send. */
  sendToPeer: number;
  peerIrk: Uint8Array | undefined;
  peerIdentity: Address | undefined;
  /** The bond this peer had when the procedure started ('replace' policy, or a central re-pairing). */
  readonly existingBond: BondRecord | undefined;
}

/** A fresh procedure with a new P-256 key pair (never reused across pairings). */
export function newProcedure(epoch: number, random: RandomSource, preq: PairingFeatures, existingBond: BondRecord | undefined): Procedure {
  return {
    epoch,
    preq,
    pres: undefined,
    assoc: undefined,
    keySize: 16,
    bonding: false,
    keys: generateKeyPair(random),
    peerKey: undefined,
    dhKey: undefined,
    localNonce: undefined,
    peerConfirm: undefined,
    na: undefined,
    nb: undefined,
    passkey: undefined,
    round: 0,
    userConfirmed: false,
    peerCheck: undefined,
    macKey: undefined,
    ltk: undefined,
    checkPassed: false,
    expectFromPeer: 0,
    idStep: 0,
    sendToPeer: 0,
    peerIrk: undefined,
    peerIdentity: undefined,
    existingBond,
  };
}

/** What the session core owns and its parts read and advance. */
export interface SessionState {
  phase: SmpPhase;
  /** The running procedure; set by the part that starts one, cleared only by the core. */
  proc: Procedure | undefined;
  /** The peer's identity address once known (bond or key distribution). */
  identity: Address | undefined;
}

/** What every part of a session gets from the core: the shared state and the core's services. */
export interface SmpContext {
  readonly state: SessionState;
  readonly lower: SmpLower;
  readonly policy: SmpPolicy;
  readonly bonds: BondStore;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly backoff: PairingBackoff;
  readonly log: Logger;
  /** Emits one of the session's events. */
  emit<K extends keyof SmpEvents>(event: K, ...args: SmpEvents[K]): void;
  /** Sends one SMP PDU (nothing once the SMP timeout expired or the link closed); restarts the SMP timer during a procedure. */
  send<K extends SmpPduType>(pdu: SmpPduOf<K>): void;
  /** The one exit for every failure (see SmpSession). */
  fail(reason: number | undefined, by: FailureSource, detail: string): void;
  /** Queues an input behind the ones already queued. */
  enqueue(what: string, fn: () => void | Promise<void>): void;
  /** The running procedure if it is still the one numbered `epoch`. */
  currentProc(epoch: number): Procedure | undefined;
  /** Our identity (IRK and identity address) to distribute, if any. */
  localIdentity(): LocalIdentity | undefined;
  /** The address the repeated-attempts table knows this peer by: its identity once known. */
  backoffPeer(): Address;
}

export function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}
