import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  loadResolvingList,
  controllerSupportsResolvingList,
  ResolvingListError,
  PrivacyMode,
  type ResolvingListCommand,
  type ResolvingListCommandName,
} from '../../src/privacy/resolving-list.js';
import { Commands, encodeCommand, type CommandParams, type CommandReturn, type SupportedCommandBits } from '../../src/hci/commands.js';
import { HciError } from '../../src/hci/hci-error.js';
import { HciStatus } from '../../src/hci/status.js';
import type { BondRecord } from '../../src/bonds/types.js';
import type { Address } from '../../src/util/address.js';
import { toHex } from '../../src/util/bytes.js';

const LOCAL_IRK = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

function irk(seed: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (seed * 16 + i) & 0xff);
}

function bond(peer: Address, lastSeenAt: string, peerIrk?: Uint8Array): BondRecord {
  return {
    peer,
    ltk: new Uint8Array(16),
    ediv: 0,
    rand: 0n,
    keySize: 16,
    authenticated: false,
    secureConnections: true,
    ...(peerIrk ? { peerIrk } : {}),
    cccd: {},
    gatt: { clientFeatures: 0, changeAware: true },
    createdAt: '2026-01-01T00:00:00.000Z',
    lastSeenAt,
  };
}

const PHONE_A: Address = { type: 'public', address: '11:22:33:44:55:66' };
const PHONE_B: Address = { type: 'random', address: 'C1:C2:C3:C4:C5:C6' };
const PHONE_C: Address = { type: 'public', address: 'AA:BB:CC:DD:EE:01' };
const NO_IRK: Address = { type: 'public', address: '00:11:22:33:44:55' };

interface Sent {
  name: ResolvingListCommandName;
  params: unknown;
  /** The HCI command packet as it would go on the wire (opcode LE, length, parameters). */
  hex: string;
}

/** A scripted controller: answers from `size`, refuses per `refuse`. */
function fakeController(opts: { size?: number; refuse?: (name: ResolvingListCommandName, n: number) => number | undefined } = {}) {
  const sent: Sent[] = [];
  const command = (async (name: ResolvingListCommandName, params: CommandParams<ResolvingListCommandName>) => {
    sent.push({ name, params, hex: toHex(encodeCommand(name, params as never)) });
    const status = opts.refuse?.(name, sent.filter((s) => s.name === name).length);
    if (status !== undefined) throw new HciError(status, Commands[name].opcode);
    if (name === 'LeReadResolvingListSize') return { size: opts.size ?? 8 };
    return {};
  }) as unknown as ResolvingListCommand;
  return { command, sent };
}

test('loads every bonded peer with an IRK: exact command sequence and parameters (identity type/address, peer IRK, our IRK, device privacy)', async () => {
  const { command, sent } = fakeController({ size: 8 });
  const bonds = [bond(PHONE_A, '2026-01-02T00:00:00.000Z', irk(1)), bond(PHONE_B, '2026-01-03T00:00:00.000Z', irk(2))];
  const r = await loadResolvingList(command, bonds, { localIrk: LOCAL_IRK });
  assert.deepEqual(
    sent.map((s) => s.name),
    [
      'LeSetAddressResolutionEnable',
      'LeReadResolvingListSize',
      'LeClearResolvingList',
      'LeAddDeviceToResolvingList',
      'LeSetPrivacyMode',
      'LeAddDeviceToResolvingList',
      'LeSetPrivacyMode',
      'LeSetAddressResolutionEnable',
    ],
  );
  // Bytes on the wire: opcode (LE), parameter length, parameters. Core 5.4 Vol 4 Part E 7.8.38/7.8.44/7.8.77.
  assert.equal(sent[0]?.hex, '2d200100');
  assert.equal(sent[1]?.hex, '2a2000');
  assert.equal(sent[2]?.hex, '292000');
  // Most recently seen first: PHONE_B (random static, type 0x01) then PHONE_A (public, 0x00).
  assert.equal(sent[3]?.hex, '272027' + '01' + 'c6c5c4c3c2c1' + toHex(irk(2)) + toHex(LOCAL_IRK));
  assert.equal(sent[4]?.hex, '4e2008' + '01' + 'c6c5c4c3c2c1' + '01');
  assert.equal(sent[5]?.hex, '272027' + '00' + '665544332211' + toHex(irk(1)) + toHex(LOCAL_IRK));
  assert.equal(sent[6]?.hex, '4e2008' + '00' + '665544332211' + '01');
  assert.equal(sent[7]?.hex, '2d200101');
  assert.deepEqual(sent[4]?.params, { peerIdentityAddressType: 1, peerIdentityAddress: PHONE_B.address, privacyMode: PrivacyMode.Device });
  assert.deepEqual(r, { size: 8, loaded: [PHONE_B, PHONE_A], skipped: [], resolutionEnabled: true, devicePrivacy: true });
});

test('the list size from LE Read Resolving List Size is honoured: the least recently seen peers are skipped as list-full', async () => {
  const { command, sent } = fakeController({ size: 2 });
  const bonds = [
    bond(PHONE_A, '2026-01-01T10:00:00.000Z', irk(1)),
    bond(PHONE_B, '2026-01-03T10:00:00.000Z', irk(2)),
    bond(PHONE_C, '2026-01-02T10:00:00.000Z', irk(3)),
  ];
  const r = await loadResolvingList(command, bonds, { localIrk: LOCAL_IRK, setPrivacyMode: false });
  assert.deepEqual(r.loaded, [PHONE_B, PHONE_C]);
  assert.deepEqual(r.skipped, [{ peer: PHONE_A, reason: 'list-full' }]);
  assert.equal(sent.filter((s) => s.name === 'LeAddDeviceToResolvingList').length, 2);
  assert.equal(sent.filter((s) => s.name === 'LeSetPrivacyMode').length, 0, 'no LE Set Privacy Mode when the controller lacks it');
  assert.equal(r.devicePrivacy, false);
});

test('Memory Capacity Exceeded (0x07) on an add stops adding; the rest are list-full and resolution is still enabled for those loaded', async () => {
  const { command, sent } = fakeController({
    size: 8,
    refuse: (name, n) => (name === 'LeAddDeviceToResolvingList' && n === 2 ? HciStatus.MemoryCapacityExceeded : undefined),
  });
  const bonds = [
    bond(PHONE_A, '2026-01-03T00:00:00.000Z', irk(1)),
    bond(PHONE_B, '2026-01-02T00:00:00.000Z', irk(2)),
    bond(PHONE_C, '2026-01-01T00:00:00.000Z', irk(3)),
  ];
  const r = await loadResolvingList(command, bonds, { localIrk: LOCAL_IRK });
  assert.deepEqual(r.loaded, [PHONE_A]);
  assert.deepEqual(r.skipped, [
    { peer: PHONE_B, reason: 'list-full' },
    { peer: PHONE_C, reason: 'list-full' },
  ]);
  assert.equal(sent.filter((s) => s.name === 'LeAddDeviceToResolvingList').length, 2, 'no add after the controller said full');
  assert.equal(sent.at(-1)?.hex, '2d200101');
});

test('bonds without an IRK are skipped as no-irk; with nothing to load, address resolution stays off', async () => {
  const { command, sent } = fakeController();
  const r = await loadResolvingList(command, [bond(NO_IRK, '2026-01-01T00:00:00.000Z')], { localIrk: LOCAL_IRK });
  assert.deepEqual(sent.map((s) => s.hex), ['2d200100', '2a2000', '292000']);
  assert.deepEqual(r, { size: 8, loaded: [], skipped: [{ peer: NO_IRK, reason: 'no-irk' }], resolutionEnabled: false, devicePrivacy: true });
});

test('Command Disallowed (advertising on) rejects with a ResolvingListError naming the command and telling to pause advertising; nothing else is sent', async () => {
  const { command, sent } = fakeController({ refuse: (name) => (name === 'LeSetAddressResolutionEnable' ? HciStatus.CommandDisallowed : undefined) });
  await assert.rejects(loadResolvingList(command, [bond(PHONE_A, '2026-01-01T00:00:00.000Z', irk(1))], { localIrk: LOCAL_IRK }), (e: unknown) => {
    assert.ok(e instanceof ResolvingListError);
    assert.equal(e.status, HciStatus.CommandDisallowed);
    assert.equal(e.command, 'LeSetAddressResolutionEnable');
    assert.equal(e.layer, 'hci');
    assert.match(e.message, /0x202d/i);
    assert.match(e.message, /Command Disallowed/);
    assert.match(e.message, /[Pp]ause advertising/);
    return true;
  });
  assert.equal(sent.length, 1);
});

test('with `pause`, advertising is paused before the first command and resumed after the last, also when a command fails', async () => {
  const order: string[] = [];
  const pause = {
    pauseAdvertising: async () => {
      order.push('pause');
      return true;
    },
    resumeAdvertising: async () => {
      order.push('resume');
    },
  };
  const ok = fakeController();
  const wrapped = (async (name: ResolvingListCommandName, params: CommandParams<ResolvingListCommandName>) => {
    order.push(name);
    return (ok.command as (n: ResolvingListCommandName, p: unknown) => Promise<CommandReturn<ResolvingListCommandName>>)(name, params);
  }) as unknown as ResolvingListCommand;
  await loadResolvingList(wrapped, [bond(PHONE_A, '2026-01-01T00:00:00.000Z', irk(1))], { localIrk: LOCAL_IRK, pause });
  assert.equal(order[0], 'pause');
  assert.equal(order.at(-1), 'resume');
  assert.equal(order.at(-2), 'LeSetAddressResolutionEnable');

  order.length = 0;
  const failing = fakeController({ refuse: (name) => (name === 'LeClearResolvingList' ? HciStatus.UnspecifiedError : undefined) });
  const wrappedFailing = (async (name: ResolvingListCommandName, params: CommandParams<ResolvingListCommandName>) => {
    order.push(name);
    return (failing.command as (n: ResolvingListCommandName, p: unknown) => Promise<CommandReturn<ResolvingListCommandName>>)(name, params);
  }) as unknown as ResolvingListCommand;
  await assert.rejects(
    loadResolvingList(wrappedFailing, [], { localIrk: LOCAL_IRK, pause }),
    (e: unknown) => e instanceof ResolvingListError && e.command === 'LeClearResolvingList' && e.status === HciStatus.UnspecifiedError,
  );
  assert.deepEqual(order, ['pause', 'LeSetAddressResolutionEnable', 'LeReadResolvingListSize', 'LeClearResolvingList', 'resume']);
});

test('a local IRK that is not 16 bytes is refused before any command', async () => {
  const { command, sent } = fakeController();
  await assert.rejects(loadResolvingList(command, [], { localIrk: new Uint8Array(8) }), RangeError);
  assert.equal(sent.length, 0);
});

test('controllerSupportsResolvingList needs the LL Privacy feature and the Add Device / Address Resolution Enable commands', () => {
  const info = (privacy: boolean, cmds: (keyof typeof SupportedCommandBits)[]) => ({
    features: { privacy },
    supports: (n: keyof typeof SupportedCommandBits) => cmds.includes(n),
  });
  assert.equal(controllerSupportsResolvingList(info(true, ['LeAddDeviceToResolvingList', 'LeSetAddressResolutionEnable'])), true);
  assert.equal(controllerSupportsResolvingList(info(false, ['LeAddDeviceToResolvingList', 'LeSetAddressResolutionEnable'])), false);
  assert.equal(controllerSupportsResolvingList(info(true, ['LeAddDeviceToResolvingList'])), false);
});
