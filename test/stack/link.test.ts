import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { attLower, gattServerLower, closeLinkStack, openLinkStack, routeLinkEvents, type LinkStack } from '../../src/stack/link.js';
import { SecurityManager } from '../../src/smp/security-manager.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import type { HciConnection } from '../../src/hci/connection.js';
import { seededRandom } from '../../src/util/random.js';
import { settle } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import { makeRig, type Rig } from '../hci/fixtures/rig.js';

const log = pino({ level: 'silent' });
const HANDLE = 0x0040;
/** L2CAP basic header (length 7, CID 0x0006) + Pairing Request: NoInputNoOutput, no OOB, bonding + SC, 16-byte keys, EncKey|IdKey both ways. Core 5.4 Vol 3 Part H 3.5.1. */
const PAIRING_REQUEST_FRAME = Uint8Array.from([0x07, 0x00, 0x06, 0x00, 0x01, 0x03, 0x00, 0x09, 0x10, 0x03, 0x03]);

async function linkUp(o: { smpInbound?: (pdu: Uint8Array) => boolean } = {}): Promise<{ rig: Rig; c: HciConnection; stack: LinkStack }> {
  const rig = makeRig();
  await rig.hci.init();
  const connected = new Promise<HciConnection>((resolve) => rig.hci.once('connected', resolve));
  await rig.ctrl.connect({ handle: HANDLE });
  const c = await connected;
  const security = new SecurityManager({ bonds: new MemoryBondStore(), clock: rig.clock, random: seededRandom('link-stack'), log });
  const stack = openLinkStack(rig.hci, security, c, {
    clock: rig.clock,
    log,
    mtu: 517,
    localAddress: rig.hci.info!.identityAddress,
    ...(o.smpInbound ? { smpInbound: o.smpInbound } : {}),
  });
  routeLinkEvents(rig.hci, (h) => (h === HANDLE ? stack : undefined));
  stack.smp.start();
  return { rig, c, stack };
}

/** SMP PDUs the host sent on the link (L2CAP CID 0x0006), as hex. */
function smpSent(rig: Rig): string[] {
  return rig.ctrl.aclPackets
    .filter((a) => a.handle === HANDLE && a.data.length > 4 && a.data[2] === 0x06 && a.data[3] === 0x00)
    .map((a) => toHex(a.data.subarray(4)));
}

test('openLinkStack: a Pairing Request on L2CAP channel 0x0006 reaches SMP, which answers with a Pairing Response on 0x0006', async () => {
  const { rig, stack } = await linkUp();
  await rig.ctrl.sendL2cap(HANDLE, PAIRING_REQUEST_FRAME);
  await settle();
  await settle();
  const sent = smpSent(rig);
  assert.equal(sent.length, 1, 'one SMP PDU back');
  assert.equal(sent[0]?.slice(0, 2), '02', 'Pairing Response (0x02)');
  closeLinkStack(stack);
  await rig.stop();
});

test('openLinkStack: an SMP PDU the inbound tap refuses never reaches SMP (nothing is answered)', async () => {
  const seen: string[] = [];
  const { rig, stack } = await linkUp({
    smpInbound: (pdu) => {
      seen.push(toHex(pdu));
      return false;
    },
  });
  await rig.ctrl.sendL2cap(HANDLE, PAIRING_REQUEST_FRAME);
  await settle();
  await settle();
  assert.deepEqual(seen, [toHex(PAIRING_REQUEST_FRAME.subarray(4))], 'the tap saw the Pairing Request');
  assert.deepEqual(smpSent(rig), []);
  closeLinkStack(stack);
  await rig.stop();
});

test('gattServerLower: security and peer identity are read from SMP at each access; only the GATT server reports 0x05/0x0F rejections to SMP', async () => {
  const { rig, c, stack } = await linkUp();
  const server = gattServerLower(c, stack);
  const client = attLower(c, stack);
  assert.deepEqual(Object.keys(client).sort(), ['peer', 'send']);
  assert.deepEqual(server.peer, c.peer);
  assert.equal(server.security, stack.smp.security);
  assert.equal(server.peerIdentity(), stack.smp.peerIdentity);
  let told = 0;
  const smp = stack.smp as { onAttSecurityRejection(): void };
  const original = smp.onAttSecurityRejection.bind(smp);
  smp.onAttSecurityRejection = () => {
    told++;
    original();
  };
  server.onSecurityRejection?.(0x05);
  assert.equal(told, 1);
  closeLinkStack(stack);
  await rig.stop();
});
