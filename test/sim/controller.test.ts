import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ecb } from '@noble/ciphers/aes.js';
import { Commands, SupportedCommandBits, encodeCommand, type CommandName } from '../../src/hci/commands.js';
import { H4Type, encodeH4 } from '../../src/hci/h4.js';
import { encodeWith, type Codec } from '../../src/hci/codec.js';
import { fromHex, reversed, toHex } from '../../src/util/bytes.js';
import { seededRandom } from '../../src/util/random.js';
import { COMMAND_BITS, VENDOR_COMMAND_BITS } from '../../src/sim/capabilities.js';
import { makeWorld, type World } from './helpers.js';

/** One controller and its raw host; the test body gets them and the world is closed after. */
async function withOne(fn: (w: World) => Promise<void>, seed = 'ctrl-test'): Promise<void> {
  const w = makeWorld(1, { seed });
  try {
    await fn(w);
  } finally {
    w.close();
  }
}

const h = (s: string): string => s.replace(/\s+/g, '');
/** Packets separated by `|`, bytes spaced freely: 'a b | c d' -> 'ab cd'. */
const packets = (text: string): string => text.split('|').map(h).join(' ');

test('the controller says nothing after attach until HCI Reset, then answers 04 0e 04 01 03 0c 00', () =>
  withOne(async ({ clock, hosts }) => {
    const host = hosts[0]!;
    await clock.advance(5000);
    assert.equal(host.rx.length, 0, 'no start-up event (hci_uart without CONFIG_BT_WAIT_NOP)');
    assert.equal(await host.exchange('01 03 0c 00'), '040e0401030c00');
  }));

test('ncs firmware: informational commands answer with 5.4 / Nordic version, LE-only features, 10 x 251-byte buffers, no LL privacy', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 01 10 00'), h('04 0e 0c 01 01 10 00 0d 3c1a 0d 5900 3c1a'));
    assert.equal(await host.exchange('01 03 10 00'), h('04 0e 0c 01 03 10 00 00 00 00 00 60 00 00 00'));
    assert.equal(await host.exchange('01 05 10 00'), h('04 0e 0b 01 05 10 00 fb00 00 0a00 0000'));
    assert.equal(await host.exchange('01 09 10 00'), h('04 0e 0a 01 09 10 00 000000000000'));
    assert.equal(await host.exchange('01 02 20 00'), h('04 0e 07 01 02 20 00 fb00 0a'));
    assert.equal(await host.exchange('01 60 20 00'), h('04 0e 0a 01 60 20 00 fb00 0a 0000 00'));
    // Encryption, CPR, ext reject, peripheral features, ping, DLE (0x3f; no LL privacy, bit 6), 2M PHY (bit 8).
    assert.equal(await host.exchange('01 03 20 00'), h('04 0e 0c 01 03 20 00 3f 01 00 00 00 00 00 00'));
    assert.equal(await host.exchange('01 1c 20 00'), h('04 0e 0c 01 1c 20 00 ffffffffff03 0000'));
    assert.equal(await host.exchange('01 07 20 00'), h('04 0e 05 01 07 20 00 00'));
    assert.equal(await host.exchange('01 0f 20 00'), h('04 0e 05 01 0f 20 00 08'));
    // LE Read Resolving List Size: not built without LL privacy (CONFIG_BT_CTLR_PRIVACY=n).
    assert.equal(await host.exchange('01 2a 20 00'), h('04 0e 04 01 2a 20 01'));
    assert.equal(await host.exchange('01 23 20 00'), h('04 0e 08 01 23 20 00 1b00 4801'));
    assert.equal(await host.exchange('01 2f 20 00'), h('04 0e 0c 01 2f 20 00 fb00 4808 fb00 4808'));
  }));

test('zephyr firmware: 5.4 / The Linux Foundation (0x05F1) version, subversion 0xFFFF, zero BD_ADDR, 7 x 27-byte buffers, no Read Encryption Key Size or LE Read Buffer Size v2', async () => {
  const w = makeWorld(1, { seed: 'ctrl-test', air: { firmware: 'zephyr' } });
  try {
    const host = w.hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 01 10 00'), h('04 0e 0c 01 01 10 00 0d 0000 0d f105 ffff'));
    assert.equal(await host.exchange('01 09 10 00'), h('04 0e 0a 01 09 10 00 000000000000'));
    assert.equal(await host.exchange('01 05 10 00'), h('04 0e 0b 01 05 10 00 1b00 00 0700 0000'));
    assert.equal(await host.exchange('01 02 20 00'), h('04 0e 07 01 02 20 00 1b00 07'));
    assert.equal(await host.exchange('01 60 20 00'), h('04 0e 04 01 60 20 01'));
    assert.equal(await host.exchange('01 08 14 02 0000'), h('04 0e 04 01 08 14 01'));
    assert.equal(await host.exchange('01 03 20 00'), h('04 0e 0c 01 03 20 00 3f 01 00 00 00 00 00 00'));
    assert.equal(await host.exchange('01 2f 20 00'), h('04 0e 0c 01 2f 20 00 1b00 4801 1b00 4801'));
    // Zephyr Read Version Information: Nordic (0x0002), nRF53x (0x0003), standard firmware, 4.1.0.
    assert.equal(await host.exchange('01 01 fc 00'), h('04 0e 10 01 01 fc 00 0200 0300 00 04 0100 00000000'));
    // The Supported Commands bitmap drops what the firmware does not answer (octet 20 bit 4, octet 41 bit 5).
    const bitmap = fromHex(await host.exchange('01 02 10 00')).subarray(7);
    assert.equal(((bitmap[20] as number) >> 4) & 1, 0);
    assert.equal(((bitmap[41] as number) >> 5) & 1, 0);
    assert.equal(((bitmap[34] as number) >> 3) & 1, 0, 'no resolving list without LL privacy');
  } finally {
    w.close();
  }
});

test('the buffer count and data length are options of the controller', async () => {
  const w = makeWorld(1, { controller: { aclBuffers: 8 } });
  try {
    assert.equal(await w.hosts[0]!.exchange('01 02 20 00'), h('04 0e 07 01 02 20 00 fb00 08'));
  } finally {
    w.close();
  }
});

test('the Supported Commands bitmap lists exactly the commands the controller implements', () =>
  withOne(async ({ hosts, ctrls }) => {
    const host = hosts[0]!;
    const out = await host.exchange('01 02 10 00');
    const bytes = fromHex(out);
    assert.equal(bytes.length, 3 + 3 + 1 + 64);
    assert.equal(toHex(bytes.subarray(0, 7)), '040e4401021000');
    const bitmap = bytes.subarray(7);
    const implemented = new Set(ctrls[0]!.implementedCommands());
    // every bit set belongs to an implemented command...
    const byBit = new Map<string, CommandName>();
    for (const [name, pos] of Object.entries(COMMAND_BITS)) byBit.set(`${pos![0]}.${pos![1]}`, name as CommandName);
    for (let octet = 0; octet < 64; octet++) {
      for (let bit = 0; bit < 8; bit++) {
        if (((bitmap[octet] as number) >> bit) & 1) {
          const name = byBit.get(`${octet}.${bit}`);
          assert.ok(name && implemented.has(name), `bit ${octet}.${bit} set for nothing implemented`);
        }
      }
    }
    // ...and every implemented command has its bit (bar the bitless ones).
    for (const name of implemented) {
      if (name === 'ReadLocalSupportedCommands' || name in VENDOR_COMMAND_BITS) continue;
      const pos = COMMAND_BITS[name];
      assert.ok(pos, `${name} has no bitmap position`);
      assert.equal(((bitmap[pos[0]] as number) >> pos[1]) & 1, 1, name);
    }
    // The host's own table of positions agrees with ours.
    for (const [name, [octet, bit]] of Object.entries(SupportedCommandBits)) {
      assert.deepEqual(COMMAND_BITS[name as CommandName], [octet, bit], `${name} position differs from src/hci/commands.ts`);
    }
    assert.equal(toHex(bitmap), toHex(ctrls[0]!.supportedCommands()));
  }));

test('every command of the HCI table can be played by the virtual controller (a firmware profile chooses which it answers)', () =>
  withOne(async ({ ctrls }) => {
    const implemented = new Set(ctrls[0]!.handledCommands());
    for (const name of Object.keys(Commands) as CommandName[]) assert.ok(implemented.has(name), `${name} is in the table but not implemented`);
  }));

test('unknown opcodes get Command Complete with 0x01 Unknown HCI Command', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    assert.equal(await host.exchange('01 14 0c 00'), h('04 0e 04 01 14 0c 01')); // Read Local Name (BR/EDR)
    assert.equal(await host.exchange('01 99 fc 00'), h('04 0e 04 01 99 fc 01'));
    assert.equal(await host.exchange('01 36 20 19' + '00'.repeat(25)), h('04 0e 04 01 36 20 01')); // LE Set Extended Adv Params
  }));

test('a wrong parameter length gets 0x12 Invalid HCI Command Parameters in the form the command answers', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    assert.equal(await host.exchange('01 03 0c 01 00'), h('04 0e 04 01 03 0c 12'));
    assert.equal(await host.exchange('01 01 10 01 00'), h('04 0e 0c 01 01 10 12 0000000000000000'));
    assert.equal(await host.exchange('01 0d 20 00'), h('04 0f 04 12 01 0d 20'));
    // Advertising data longer than 31 bytes.
    assert.equal(await host.exchange('01 08 20 20 20' + '00'.repeat(31)), h('04 0e 04 01 08 20 12'));
  }));

test('event mask, random address and advertising commands, with Command Disallowed while advertising', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 01 0c 08 ffffffffffffff3f'), h('04 0e 04 01 01 0c 00'));
    assert.equal(await host.exchange('01 63 0c 08 0000000000000000'), h('04 0e 04 01 63 0c 00'));
    assert.equal(await host.exchange('01 01 20 08 1f08000000000000'), h('04 0e 04 01 01 20 00'));
    // Random own address before one is set: enabling is refused with 0x12.
    assert.equal(await host.exchange('01 06 20 0f a000 a000 00 01 00 000000000000 07 00'), h('04 0e 04 01 06 20 00'));
    assert.equal(await host.exchange('01 0a 20 01 01'), h('04 0e 04 01 0a 20 12'));
    assert.equal(await host.exchange('01 05 20 06 112233445566'), h('04 0e 04 01 05 20 00'));
    assert.equal(await host.exchange('01 08 20 20 03 020106' + '00'.repeat(28)), h('04 0e 04 01 08 20 00'));
    assert.equal(await host.exchange('01 09 20 20 00' + '00'.repeat(31)), h('04 0e 04 01 09 20 00'));
    assert.equal(await host.exchange('01 0a 20 01 01'), h('04 0e 04 01 0a 20 00'));
    assert.equal(await host.exchange('01 0a 20 01 01'), h('04 0e 04 01 0a 20 00'), 'enabling again is not an error');
    assert.equal(await host.exchange('01 05 20 06 112233445577'), h('04 0e 04 01 05 20 0c'));
    assert.equal(await host.exchange('01 06 20 0f a000 a000 00 01 00 000000000000 07 00'), h('04 0e 04 01 06 20 0c'));
    assert.equal(await host.exchange('01 0a 20 01 00'), h('04 0e 04 01 0a 20 00'));
    // Bad advertising parameters: interval below 20 ms, min above max, empty channel map.
    assert.equal(await host.exchange('01 06 20 0f 1000 1000 00 01 00 000000000000 07 00'), h('04 0e 04 01 06 20 12'));
    assert.equal(await host.exchange('01 06 20 0f b000 a000 00 01 00 000000000000 07 00'), h('04 0e 04 01 06 20 12'));
    assert.equal(await host.exchange('01 06 20 0f a000 a000 00 01 00 000000000000 00 00'), h('04 0e 04 01 06 20 12'));
  }));

test('scanning, connection creation and cancel follow the spec, including the cancelled connection event', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    await host.exchange('01 01 0c 08 ffffffffffffff3f');
    await host.exchange('01 05 20 06 112233445566');
    assert.equal(await host.exchange('01 0b 20 07 01 1000 1000 01 00'), h('04 0e 04 01 0b 20 00'));
    assert.equal(await host.exchange('01 0b 20 07 01 1000 2000 01 00'), h('04 0e 04 01 0b 20 12'), 'window above interval');
    assert.equal(await host.exchange('01 0c 20 02 01 00'), h('04 0e 04 01 0c 20 00'));
    assert.equal(await host.exchange('01 0b 20 07 01 1000 1000 01 00'), h('04 0e 04 01 0b 20 0c'), 'parameters while scanning');
    assert.equal(await host.exchange('01 0c 20 02 00 00'), h('04 0e 04 01 0c 20 00'));
    assert.equal(await host.exchange('01 0e 20 00'), h('04 0e 04 01 0e 20 0c'), 'cancel with nothing pending');
    const create = '01 0d 20 19 6000 3000 00 01 c6c5c4c3c2c1 01 1800 1800 0000 9001 0000 0000';
    assert.equal(await host.exchange(create), h('04 0f 04 00 01 0d 20'));
    assert.equal(await host.exchange(create), h('04 0f 04 0c 01 0d 20'), 'a second pending create');
    assert.equal(
      await host.exchange('01 0e 20 00'),
      packets('04 0e 04 01 0e 20 00 | 04 3e 13 01 02 0000 00 01 c6c5c4c3c2c1 0000 0000 0000 00'),
    );
    // Timeout too short for the interval: (1 + 0) * 30 ms * 2 >= 50 ms.
    assert.equal(await host.exchange('01 0d 20 19 6000 3000 00 01 c6c5c4c3c2c1 01 1800 1800 0000 0500 0000 0000'), h('04 0f 04 12 01 0d 20'));
  }));

test('connection-bound commands on a handle that does not exist answer 0x02 Unknown Connection Identifier', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 06 04 03 0000 13'), h('04 0f 04 02 01 06 04'));
    assert.equal(await host.exchange('01 1d 04 02 0000'), h('04 0f 04 02 01 1d 04'));
    assert.equal(await host.exchange('01 16 20 02 0000'), h('04 0f 04 02 01 16 20'));
    assert.equal(await host.exchange('01 13 20 0e 0000 1800 1800 0000 9001 0000 0000'), h('04 0f 04 02 01 13 20'));
    assert.equal(await host.exchange('01 19 20 1c 0000 0000000000000000 0000 ' + '00'.repeat(16)), h('04 0f 04 02 01 19 20'));
    assert.equal(await host.exchange('01 32 20 07 0000 00 03 03 0000'), h('04 0f 04 02 01 32 20'));
    assert.equal(await host.exchange('01 1a 20 12 0000 ' + '00'.repeat(16)), h('04 0e 06 01 1a 20 02 0000'));
    assert.equal(await host.exchange('01 1b 20 02 0000'), h('04 0e 06 01 1b 20 02 0000'));
    assert.equal(await host.exchange('01 05 14 02 0000'), h('04 0e 07 01 05 14 02 0000 7f'));
    assert.equal(await host.exchange('01 08 14 02 0000'), h('04 0e 07 01 08 14 02 0000 00'));
    assert.equal(await host.exchange('01 7b 0c 02 0000'), h('04 0e 08 01 7b 0c 02 0000 0000'));
    assert.equal(await host.exchange('01 22 20 06 0000 fb00 4808'), h('04 0e 06 01 22 20 02 0000'));
    assert.equal(await host.exchange('01 30 20 02 0000'), h('04 0e 08 01 30 20 02 0000 00 00'));
    assert.equal(await host.exchange('01 20 20 0e 0000 1800 1800 0000 9001 0000 0000'), h('04 0e 06 01 20 20 02 0000'));
    assert.equal(await host.exchange('01 21 20 03 0000 3b'), h('04 0e 06 01 21 20 02 0000'));
  }));

test('LE Encrypt is AES-128 with key, plaintext and result least significant octet first (FIPS-197 C.1)', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    const key = fromHex('000102030405060708090a0b0c0d0e0f');
    const pt = fromHex('00112233445566778899aabbccddeeff');
    const expect = fromHex('69c4e0d86a7b0430d8cdb78070b4c55a');
    assert.equal(toHex(ecb(key, { disablePadding: true }).encrypt(pt)), toHex(expect));
    const out = await host.exchange('01 17 20 20 ' + toHex(reversed(key)) + toHex(reversed(pt)));
    assert.equal(out, '040e14011720' + '00' + toHex(reversed(expect)));
  }));

test('LE Rand returns 8 bytes from the injected random source', async () => {
  const w = makeWorld(1, { seed: 'rand-seed' });
  try {
    const out = await w.hosts[0]!.exchange('01 18 20 00');
    const expected = seededRandom('rand:rand-seed:ctrl0').bytes(8);
    assert.equal(out, '040e0c011820' + '00' + toHex(expected));
  } finally {
    w.close();
  }
});

test('filter accept list, resolving list (LL privacy built in), PHY defaults and data length defaults', async () => {
  const w = makeWorld(1, { seed: 'ctrl-test', controller: { llPrivacy: true } });
  try {
    const { hosts } = w;
    const host = hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 10 20 00'), h('04 0e 04 01 10 20 00'));
    assert.equal(await host.exchange('01 11 20 07 01 c6c5c4c3c2c1'), h('04 0e 04 01 11 20 00'));
    assert.equal(await host.exchange('01 12 20 07 01 c6c5c4c3c2c1'), h('04 0e 04 01 12 20 00'));
    assert.equal(await host.exchange('01 27 20 27 01 c6c5c4c3c2c1' + '11'.repeat(16) + '22'.repeat(16)), h('04 0e 04 01 27 20 00'));
    assert.equal(await host.exchange('01 4e 20 08 01 c6c5c4c3c2c1 01'), h('04 0e 04 01 4e 20 00'));
    assert.equal(await host.exchange('01 4e 20 08 01 d6c5c4c3c2c1 01'), h('04 0e 04 01 4e 20 02'));
    assert.equal(await host.exchange('01 28 20 07 01 d6c5c4c3c2c1'), h('04 0e 04 01 28 20 02'));
    assert.equal(await host.exchange('01 28 20 07 01 c6c5c4c3c2c1'), h('04 0e 04 01 28 20 00'));
    assert.equal(await host.exchange('01 29 20 00'), h('04 0e 04 01 29 20 00'));
    assert.equal(await host.exchange('01 2d 20 01 01'), h('04 0e 04 01 2d 20 00'));
    assert.equal(await host.exchange('01 2e 20 02 8403'), h('04 0e 04 01 2e 20 00'));
    assert.equal(await host.exchange('01 2e 20 02 0000'), h('04 0e 04 01 2e 20 12'));
    assert.equal(await host.exchange('01 31 20 03 00 03 03'), h('04 0e 04 01 31 20 00'));
    assert.equal(await host.exchange('01 31 20 03 00 00 03'), h('04 0e 04 01 31 20 12'));
    assert.equal(await host.exchange('01 24 20 04 fb00 4808'), h('04 0e 04 01 24 20 00'));
    assert.equal(await host.exchange('01 23 20 00'), h('04 0e 08 01 23 20 00 fb00 4808'));
    assert.equal(await host.exchange('01 24 20 04 1a00 4801'), h('04 0e 04 01 24 20 12'));
    // HCI Reset brings the suggested default data length back to 27 octets.
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 23 20 00'), h('04 0e 08 01 23 20 00 1b00 4801'));
  } finally {
    w.close();
  }
});

test('Zephyr vendor commands: version info, supported commands/features, write BD_ADDR, static address, key roots', () =>
  withOne(async ({ hosts, ctrls }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 01 fc 00'), h('04 0e 10 01 01 fc 00 0200 0300 00 03 0600 63000000'));
    assert.equal(await host.exchange('01 02 fc 00'), h('04 0e 44 01 02 fc 00 27 03' + '00'.repeat(62)));
    assert.equal(await host.exchange('01 03 fc 00'), h('04 0e 0c 01 03 fc 00' + '00'.repeat(8)));
    const sa = fromHex(await host.exchange('01 09 fc 00'));
    assert.equal(toHex(sa.subarray(0, 8)), '040e1b0109fc0001');
    const addr = sa.subarray(8, 14);
    assert.equal((addr[5] as number) >> 6, 0b11, 'a static random address has its two top bits set');
    assert.equal(toHex(reversed(addr)).toUpperCase().match(/../g)!.join(':'), ctrls[0]!.staticAddress);
    const roots = fromHex(await host.exchange('01 0a fc 00'));
    assert.equal(roots.length, 3 + 4 + 32);
    // The static address survives HCI Reset.
    await host.exchange('01030c00');
    assert.equal(toHex(fromHex(await host.exchange('01 09 fc 00'))), toHex(sa));
    // Write BD_ADDR sets the public address Read BD_ADDR reports, and it survives Reset.
    assert.equal(await host.exchange('01 06 fc 06 665544332211'), h('04 0e 04 01 06 fc 00'));
    assert.equal(await host.exchange('01 09 10 00'), h('04 0e 0a 01 09 10 00 665544332211'));
    await host.exchange('01030c00');
    assert.equal(await host.exchange('01 09 10 00'), h('04 0e 0a 01 09 10 00 665544332211'));
  }));

test('the static address derives from the seed: same seed same address, another seed another', async () => {
  const a = makeWorld(1, { seed: 'same' });
  const b = makeWorld(1, { seed: 'same' });
  const c = makeWorld(1, { seed: 'other' });
  try {
    assert.equal(a.ctrls[0]!.staticAddress, b.ctrls[0]!.staticAddress);
    assert.notEqual(a.ctrls[0]!.staticAddress, c.ctrls[0]!.staticAddress);
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

test('every Command Complete and Command Status allows exactly one more command (Num_HCI_Command_Packets = 1)', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    const from = host.mark();
    for (const name of Object.keys(Commands) as CommandName[]) {
      const codec = Commands[name].params as Codec<unknown>;
      const params = new Uint8Array(codec.length ?? codec.minLength);
      const body = encodeH4(H4Type.Command, Uint8Array.of(Commands[name].opcode & 0xff, Commands[name].opcode >> 8, params.length, ...params));
      await host.exchange(toHex(body));
    }
    const replies = [...host.events('CommandComplete', from), ...host.events('CommandStatus', from)];
    assert.ok(replies.length >= Object.keys(Commands).length);
    for (const r of replies) assert.equal(r.numHciCommandPackets, 1);
  }));

test('ACL before any connection, oversized or with bad flags is dropped without an answer', () =>
  withOne(async ({ hosts, ctrls, clock }) => {
    const host = hosts[0]!;
    await host.exchange('01030c00');
    const from = host.mark();
    host.sendAcl(0x0000, fromHex('0100040001020304'));
    host.sendRaw('02 0000 fc00' + '00'.repeat(252)); // 252 bytes, buffer is 251
    host.sendAcl(0x0000, fromHex('00'), 0b10);
    await clock.advance(100);
    assert.equal(host.rx.length, from);
    assert.equal(ctrls[0]!.stats.droppedAcl, 3);
    assert.equal(await host.exchange('01030c00'), '040e0401030c00');
  }));

test('garbage, truncated and random input never crashes the controller; zeros and Reset recover it', () =>
  withOne(async ({ hosts, ctrls, clock }) => {
    const host = hosts[0]!;
    const rng = seededRandom('garbage');
    for (let i = 0; i < 300; i++) {
      const kind = rng.bytes(1)[0]! % 4;
      if (kind === 0) host.sendRaw(rng.bytes(1 + (rng.bytes(1)[0]! % 64)));
      else if (kind === 1) {
        // a known opcode with random parameters of a random length
        const names = Object.keys(Commands) as CommandName[];
        const name = names[rng.bytes(1)[0]! % names.length]!;
        const len = rng.bytes(1)[0]! % 48;
        const op = Commands[name].opcode;
        host.sendRaw(Uint8Array.of(1, op & 0xff, op >> 8, len, ...rng.bytes(len)));
      } else if (kind === 2) {
        const len = rng.bytes(1)[0]! % 300;
        const handle = rng.bytes(2);
        host.sendRaw(Uint8Array.of(2, handle[0]!, handle[1]! & 0x3f, len & 0xff, len >> 8, ...rng.bytes(len)));
      } else {
        host.sendRaw(encodeH4(H4Type.Command, encodeCommand('LeSetAdvertisingEnable', { enable: true })));
      }
      if (i % 20 === 0) await clock.advance(50);
    }
    await clock.advance(2000);
    assert.equal(ctrls[0]!.stats.internalErrors, 0, 'no handler threw');
    host.sendRaw(new Uint8Array(1100)); // completes any partial packet, then skipped byte by byte
    await clock.advance(10);
    assert.equal(await host.exchange('01030c00'), '040e0401030c00');
  }));

test('a real host sequence encodes the same bytes the table does (encodeCommand vs raw)', () =>
  withOne(async ({ hosts }) => {
    const host = hosts[0]!;
    const body = encodeH4(H4Type.Command, encodeCommand('LeSetDefaultPhy', { allPhys: 0, txPhys: 3, rxPhys: 3 }));
    assert.equal(await host.exchange(toHex(body)), '040e0401312000');
    assert.equal(toHex(encodeWith(Commands.LeSetDefaultPhy.params, { allPhys: 0, txPhys: 3, rxPhys: 3 })), '000303');
  }));

test('debug logs show decoded commands but never key material (LTK, LE Encrypt key, IRKs)', async () => {
  const { Writable } = await import('node:stream');
  const { createLogger } = await import('../../src/util/log.js');
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const w = makeWorld(1, { controller: { log: createLogger({ level: 'debug', pretty: false, destination }) } });
  try {
    const host = w.hosts[0]!;
    await host.exchange('01030c00');
    await host.exchange('01 1a 20 12 0000 ' + 'a5'.repeat(16));
    await host.exchange('01 17 20 20 ' + '5a'.repeat(16) + '00'.repeat(16));
    await host.exchange('01 27 20 27 01 c6c5c4c3c2c1' + '3c'.repeat(16) + 'c3'.repeat(16));
    assert.match(text, /LeLongTermKeyRequestReply/);
    assert.match(text, /16 bytes redacted/);
    for (const b of ['165', '90', '60', '195']) assert.doesNotMatch(text, new RegExp(`"0":${b},"1":${b}`), `byte ${b} of a key in the log`);
  } finally {
    w.close();
  }
});
