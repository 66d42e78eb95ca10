/**
 * A diagnosis rule that needs a fact no capture holds: the live host's bond store is full and
 * refuses new peers (the default, so that a stranger pairing Just Works cannot evict the owner's
 * bond; Zephyr's CONFIG_BT_KEYS_OVERWRITE_OLDEST=n answers the same way). Built with a function
 * that reads the store's capacity; the live diagnoser adds it when it is given one.
 *
 * It fires when the accessory answered a Pairing Request with Pairing Failed 0x08 Unspecified
 * Reason and no Pairing Response (refused up front) while the store is full and refusing.
 * Core 5.4 Vol 3 Part H 3.5.5 (Pairing Failed), 3.5.1 (Pairing Request).
 */
import type { BondStoreCapacity } from '../../bonds/types.js';
import { SmpReason } from '../../smp/pdu.js';
import { describeEvent } from '../describe.js';
import type { RuleDef } from '../rules.js';
import type { TimelineEvent } from '../timeline.js';

export const BOND_STORE_FULL_RULE_ID = 'bond-store-full';

type SmpEvent = Extract<TimelineEvent, { kind: 'smp' }>;

/** The rule, reading the store's capacity through `capacity` when it is evaluated. */
export function bondStoreFullRule(capacity: () => BondStoreCapacity | undefined): RuleDef {
  return {
    id: BOND_STORE_FULL_RULE_ID,
    title: 'Pairing refused: the bond store is full',
    severity: 'error',
    cause:
      'The accessory refused the Pairing Request with 0x08 Unspecified Reason because its bond store is full and it refuses new peers rather than evicting a bonded phone (a stranger in radio range could otherwise evict the owner\'s bond).',
    fixes: [
      { where: 'wearable-host', text: 'Remove a bond the owner no longer uses (`wearable-host bonds list`, then `wearable-host bonds remove ADDRESS`), or raise --max-bonds.' },
      { where: 'wearable-host', text: 'Or run with --evict-oldest-bond to let a new pairing evict the least recently seen bond (only where no stranger can reach the device).' },
    ],
    sources: ['Core 5.4 Vol 3 Part H 3.5.5 (Pairing Failed reasons)', 'Zephyr subsys/bluetooth/host/smp.c smp_pairing_req (bt_keys_get_addr fails: BT_SMP_ERR_UNSPECIFIED), CONFIG_BT_KEYS_OVERWRITE_OLDEST'],
    match(ctx) {
      const cap = capacity();
      if (!cap || cap.whenFull !== 'refuse' || cap.stored < cap.max) return [];
      let request: SmpEvent | undefined;
      for (const e of ctx.conn.events) {
        if (e.kind !== 'smp') continue;
        if (e.pdu.type === 'pairingRequest' && e.from === 'phone') request = e;
        else if (e.pdu.type === 'pairingResponse') request = undefined;
        else if (e.pdu.type === 'pairingFailed' && e.from === 'accessory' && request && e.pdu.reason === SmpReason.UnspecifiedReason) {
          return [
            {
              evidence: [
                { at: request.at, what: describeEvent(request) },
                { at: e.at, what: `${describeEvent(e)}: refused before any Pairing Response` },
              ],
              detail: `The bond store holds ${cap.stored} of ${cap.max} bonds.`,
            },
          ];
        }
      }
      return [];
    },
  };
}
