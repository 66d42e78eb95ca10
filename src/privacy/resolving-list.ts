/**
 * Optional controller-based resolution of bonded peers' private addresses: load their IRKs into
 * the controller's resolving list so the controller resolves a phone's RPA itself and reports its
 * identity address in LE Enhanced Connection Complete (peer address type 0x02/0x03).
 * Core 5.4 Vol 6 Part B 4.7 (resolving list, privacy modes); Vol 4 Part E 7.8.38-7.8.41, 7.8.44,
 * 7.8.77 (the commands).
 *
 * The host resolves RPAs with ah() against stored IRKs either way (BondStore.resolve); this only
 * moves the work to the controller when it supports LL privacy.
 *
 * The list cannot change while advertising, scanning or a connection attempt is on (Command
 * Disallowed: 7.8.38-7.8.40 when address resolution is enabled, 7.8.44 always), so the caller
 * pauses advertising around {@link loadResolvingList} (pass `pause` to have it done here).
 */
import type { BondRecord } from '../bonds/types.js';
import type { CommandParams, CommandReturn, SupportedCommandBits } from '../hci/commands.js';
import { Commands, formatOpcode } from '../hci/commands.js';
import { HciError } from '../hci/hci-error.js';
import { HciStatus } from '../hci/status.js';
import type { LeFeatures } from '../hci/controller-info.js';
import { addressTypeToByte, formatAddress, type Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { RpaRotatorLower } from './rpa-rotation.js';

/** The HCI commands this module sends. */
export type ResolvingListCommandName =
  | 'LeReadResolvingListSize'
  | 'LeClearResolvingList'
  | 'LeAddDeviceToResolvingList'
  | 'LeSetAddressResolutionEnable'
  | 'LeSetPrivacyMode';

/**
 * Sends one HCI command and resolves with its return parameters, rejecting with an
 * {@link HciError} on a non-zero status: `(name, params) => hci.command(name, params)`.
 */
export type ResolvingListCommand = <N extends ResolvingListCommandName>(name: N, params: CommandParams<N>) => Promise<CommandReturn<N>>;

/** Privacy_Mode of LE Set Privacy Mode. Core 5.4 Vol 4 Part E 7.8.77, Vol 6 Part B 4.7. */
export const PrivacyMode = {
  /** Only the peer's RPAs are accepted once its IRK is in the list (the controller's default). */
  Network: 0x00,
  /** The peer's identity address is accepted too (phones that sometimes use it). */
  Device: 0x01,
} as const;

/** Why a bond was not put in the list. */
export type ResolvingListSkip =
  /** The peer distributed no IRK (it uses its identity address; nothing to resolve). */
  | 'no-irk'
  /** The controller's list is full (size from LE Read Resolving List Size, or Memory Capacity Exceeded). */
  | 'list-full';

export interface ResolvingListResult {
  /** Entries the controller holds (LE Read Resolving List Size). */
  readonly size: number;
  /** Peers whose IRK is in the list, in the order added (most recently seen first). */
  readonly loaded: readonly Address[];
  readonly skipped: readonly { readonly peer: Address; readonly reason: ResolvingListSkip }[];
  /** Whether address resolution was enabled at the end (only when something was loaded). */
  readonly resolutionEnabled: boolean;
  /** Whether LE Set Privacy Mode (device privacy) was sent for each entry. */
  readonly devicePrivacy: boolean;
}

export interface ResolvingListOptions {
  /** Our IRK (LocalIdentity.irk), stored with each entry as the local IRK. All zeros when unused. */
  localIrk: Uint8Array;
  /**
   * Send LE Set Privacy Mode (device privacy) for each entry; pass
   * `info.supports('LeSetPrivacyMode')`. Default true.
   */
  setPrivacyMode?: boolean;
  /** When given, advertising is paused around the whole update and resumed after (even on failure). */
  pause?: Pick<RpaRotatorLower, 'pauseAdvertising' | 'resumeAdvertising'>;
  log?: Logger;
}

/** Whether the controller can hold a resolving list: the LL Privacy feature and the commands. */
export function controllerSupportsResolvingList(info: {
  readonly features: Pick<LeFeatures, 'privacy'>;
  supports(name: keyof typeof SupportedCommandBits): boolean;
}): boolean {
  return info.features.privacy && info.supports('LeAddDeviceToResolvingList') && info.supports('LeSetAddressResolutionEnable');
}

/** An error of the resolving-list update, with the HCI status and command that failed. */
export class ResolvingListError extends WearableHostError {
  constructor(
    /** HCI status (Core 5.4 Vol 1 Part F), when the controller answered. */
    readonly status: number | undefined,
    readonly command: ResolvingListCommandName,
    message: string,
    cause: unknown,
  ) {
    super('hci', message, { cause });
    this.name = 'ResolvingListError';
  }
}

/** Most recently seen first, so the phones in daily use get the limited entries. */
function byLastSeen(a: BondRecord, b: BondRecord): number {
  return a.lastSeenAt < b.lastSeenAt ? 1 : a.lastSeenAt > b.lastSeenAt ? -1 : 0;
}

/**
 * Replaces the controller's resolving list with the bonded peers that have an IRK:
 * LE Set Address Resolution Enable (off), LE Read Resolving List Size, LE Clear Resolving List,
 * then per peer LE Add Device To Resolving List (identity address, peer IRK, our IRK) and
 * LE Set Privacy Mode (device), and finally LE Set Address Resolution Enable (on) when any peer
 * was loaded. At most `size` peers, most recently seen first; the rest are reported as skipped.
 *
 * Command Disallowed (advertising, scanning or initiating is on) rejects with a
 * {@link ResolvingListError} naming the command; address resolution is then left off, which is
 * safe: the host still resolves RPAs itself.
 */
export async function loadResolvingList(
  command: ResolvingListCommand,
  bonds: readonly BondRecord[],
  opts: ResolvingListOptions,
): Promise<ResolvingListResult> {
  if (opts.localIrk.length !== 16) throw new RangeError(`an IRK is 16 bytes, got ${opts.localIrk.length}`);
  const resume = opts.pause ? await opts.pause.pauseAdvertising() : false;
  try {
    return await load(command, bonds, opts);
  } finally {
    if (resume && opts.pause) await opts.pause.resumeAdvertising();
  }
}

async function load(command: ResolvingListCommand, bonds: readonly BondRecord[], opts: ResolvingListOptions): Promise<ResolvingListResult> {
  const devicePrivacy = opts.setPrivacyMode ?? true;
  const send = async <N extends ResolvingListCommandName>(name: N, params: CommandParams<N>): Promise<CommandReturn<N>> => {
    try {
      return await command(name, params);
    } catch (err) {
      throw wrap(name, err);
    }
  };

  // Off first: Clear/Add/Set Privacy Mode are then allowed whatever else the controller does,
  // and this command itself is the one that reports Command Disallowed if advertising is on.
  await send('LeSetAddressResolutionEnable', { enable: false });
  const { size } = await send('LeReadResolvingListSize', {});
  await send('LeClearResolvingList', {});

  const loaded: Address[] = [];
  const skipped: { peer: Address; reason: ResolvingListSkip }[] = [];
  const candidates: BondRecord[] = [];
  for (const b of bonds) {
    if (b.peerIrk && b.peerIrk.length === 16) candidates.push(b);
    else skipped.push({ peer: b.peer, reason: 'no-irk' });
  }
  candidates.sort(byLastSeen);

  let full = false;
  for (const b of candidates) {
    if (full || loaded.length >= size) {
      full = true;
      skipped.push({ peer: b.peer, reason: 'list-full' });
      continue;
    }
    const peerIdentityAddressType = addressTypeToByte(b.peer.type);
    try {
      await command('LeAddDeviceToResolvingList', {
        peerIdentityAddressType,
        peerIdentityAddress: b.peer.address,
        peerIrk: b.peerIrk as Uint8Array,
        localIrk: opts.localIrk,
      });
    } catch (err) {
      // The controller may hold fewer entries than it reported (or share them with other lists).
      if (err instanceof HciError && err.status === HciStatus.MemoryCapacityExceeded) {
        full = true;
        skipped.push({ peer: b.peer, reason: 'list-full' });
        continue;
      }
      throw wrap('LeAddDeviceToResolvingList', err);
    }
    if (devicePrivacy) {
      await send('LeSetPrivacyMode', { peerIdentityAddressType, peerIdentityAddress: b.peer.address, privacyMode: PrivacyMode.Device });
    }
    loaded.push(b.peer);
  }

  const resolutionEnabled = loaded.length > 0;
  if (resolutionEnabled) await send('LeSetAddressResolutionEnable', { enable: true });
  const left = skipped.filter((s) => s.reason === 'list-full');
  if (left.length > 0) {
    opts.log?.warn(
      { size, loaded: loaded.length, left: left.map((s) => formatAddress(s.peer)) },
      `the controller's resolving list holds ${size} entries; ${left.length} bonded peer(s) seen least recently are resolved by the host instead`,
    );
  }
  opts.log?.info({ size, loaded: loaded.map(formatAddress), devicePrivacy, resolutionEnabled }, `resolving list loaded with ${loaded.length} bonded peer(s)`);
  return { size, loaded, skipped, resolutionEnabled, devicePrivacy };
}

function wrap(name: ResolvingListCommandName, err: unknown): ResolvingListError {
  const op = formatOpcode(Commands[name].opcode);
  if (err instanceof HciError && err.status === HciStatus.CommandDisallowed) {
    return new ResolvingListError(
      err.status,
      name,
      `the controller refused ${op} with Command Disallowed (0x0c): the resolving list can only change while advertising, ` +
        'scanning and connection attempts are off. Pause advertising around the update (pass `pause`); address resolution is left off, ' +
        'the host still resolves private addresses itself.',
      err,
    );
  }
  const status = err instanceof HciError ? err.status : undefined;
  const why = err instanceof Error ? err.message : String(err);
  return new ResolvingListError(status, name, `loading the resolving list failed at ${op}: ${why}`, err);
}

