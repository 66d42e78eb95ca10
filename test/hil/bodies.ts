/**
 * Hardware-in-the-loop test bodies, written once and run twice: against the nRF5340-DK
 * (dk.hil.test.ts, `npm run test:hil` with WEARABLE_HOST_PORT set) and against the virtual
 * controller (sim-bodies.test.ts, in `npm test`), so the DK tests cannot rot unnoticed.
 *
 * Each body takes an opener: a function that opens a fresh byte transport to the same controller
 * (the DK's serial port, or the virtual controller's TCP port) and says what it is. Bodies drive
 * the real Hci driver on a real clock and assert on what the controller answered.
 */
import assert from 'node:assert/strict';
import { RealClock, type Clock } from '../../src/util/clock.js';
import { silentLogger, type Logger } from '../../src/util/log.js';
import { bytesEqual, toHex } from '../../src/util/bytes.js';
import { formatAddress, randomAddressKind } from '../../src/util/address.js';
import type { Transport } from '../../src/hci/transport.js';
import { openTransport } from '../../src/hci/open-transport.js';
import { Hci, type PacketDirection } from '../../src/hci/driver.js';
import type { ControllerInfo } from '../../src/hci/controller-info.js';
import { H4Type } from '../../src/hci/h4.js';
import { e } from '../../src/crypto/index.js';
import { leEncryptSampleWire } from '../../src/doctor/controller.js';
import { FIRMWARE_PROFILES, isFirmwareName, type FirmwareName } from '../../src/sim/firmware.js';

/** A freshly opened transport to the controller under test. */
export interface OpenedController {
  transport: Transport;
  /** `DK on /dev/serial/by-id/... @ 1000000 baud`, `virtual controller tcp://127.0.0.1:40123`. */
  description: string;
}

/** Opens a new transport to the same controller each time it is called. */
export type ControllerOpener = () => Promise<OpenedController>;

export interface BodyOptions {
  clock?: Clock;
  log?: Logger;
  /** HCI Resets in the soak. Default 20 (WEARABLE_HOST_SOAK_RESETS overrides it in the runners). */
  soakResets?: number;
  /**
   * The firmware the controller runs: its profile (src/sim/firmware.ts) is what the identity and
   * buffer bodies expect, so a DK that disagrees with the table fails here. Default `ncs`.
   */
  firmware?: FirmwareName;
  /** Data length and ACL buffer size expected. Default: the firmware profile's. */
  expectedDataLength?: number;
  /** Per-command timeout. Default 2000 ms. */
  commandTimeoutMs?: number;
}

export interface HilBody {
  /** Test name, stating the behaviour proven. */
  name: string;
  run(open: ControllerOpener, opts?: BodyOptions): Promise<void>;
}

interface Session {
  hci: Hci;
  info: ControllerInfo;
  description: string;
  /** Every H:4 packet both ways since the session opened. */
  packets: { dir: PacketDirection; bytes: Uint8Array }[];
  transport: Transport;
}

/**
 * Opens, brings the controller up through the driver, runs `fn`, and always closes both.
 * `beforeInit` may write to the transport first (to leave the controller mid-packet).
 */
async function withController<T>(
  open: ControllerOpener,
  opts: BodyOptions,
  fn: (s: Session) => Promise<T>,
  beforeInit?: (t: Transport) => Promise<void>,
): Promise<T> {
  const { transport, description } = await open();
  if (beforeInit) {
    try {
      await beforeInit(transport);
    } catch (err) {
      await transport.close();
      throw err;
    }
  }
  const packets: Session['packets'] = [];
  const hci = new Hci(transport, {
    clock: opts.clock ?? new RealClock(),
    log: opts.log ?? silentLogger(),
    commandTimeoutMs: opts.commandTimeoutMs ?? 2000,
    trace: (dir, bytes) => void packets.push({ dir, bytes: bytes.slice() }),
  });
  try {
    const info = await hci.init();
    return await fn({ hci, info, description, packets, transport });
  } finally {
    hci.close();
    await transport.close();
  }
}

/** Command Complete events for `opcode` among received packets. */
function commandCompletes(packets: Session['packets'], opcode: number): number {
  let n = 0;
  for (const p of packets) {
    const b = p.bytes;
    if (p.dir === 'received' && b[0] === H4Type.Event && b[1] === 0x0e && b.length >= 6 && ((b[4] as number) | ((b[5] as number) << 8)) === opcode) n++;
  }
  return n;
}

const RESET_OPCODE = 0x0c03;

export const bringUp: HilBody = {
  name: 'bring-up: HCI Reset answered, version, features, buffers and an identity address read',
  async run(open, opts = {}) {
    await withController(open, opts, async ({ hci, info, description }) => {
      assert.equal(hci.state, 'ready', description);
      assert.ok(info.version.hciVersion >= 0x09, `HCI version ${info.version.hciVersionName} >= 5.0 on ${description}`);
      assert.ok(info.features.encryption, 'LE encryption supported');
      assert.ok(info.supports('LeEncrypt') && info.supports('LeRand') && info.supports('LeLongTermKeyRequestReply'));
      assert.ok(info.buffers.aclPacketCount >= 1, `ACL buffers: ${info.buffers.aclPacketCount}`);
      assert.equal(info.identityAddress.type, 'random');
      assert.equal(randomAddressKind(info.identityAddress.address), 'static');
    });
  },
};

export const vendorIdentity: HilBody = {
  name: 'vendor identity: Zephyr Read Version Information says Nordic (0x0002) nRF53 (0x0003); company and versions as the firmware profile says (Nordic 0x0059 or The Linux Foundation 0x05F1)',
  async run(open, opts = {}) {
    const fw = FIRMWARE_PROFILES[opts.firmware ?? 'ncs'];
    await withController(open, opts, async ({ info, description }) => {
      assert.ok(info.vendor, `Zephyr vendor commands answered on ${description} (CONFIG_BT_HCI_VS)`);
      assert.equal(info.vendor.hwPlatform, 0x0002, info.vendor.hwPlatformName);
      assert.equal(info.vendor.hwVariant, 0x0003, info.vendor.hwVariantName);
      assert.equal(info.version.companyId, fw.version.companyId, `${info.version.companyName} (${fw.name} firmware profile)`);
      assert.equal(info.version.hciVersion, fw.version.hciVersion, 'HCI version');
      assert.equal(info.supports('ReadEncryptionKeySize'), fw.commands.includes('ReadEncryptionKeySize'), 'Read Encryption Key Size in the Supported Commands bitmap');
    });
  },
};

export const staticAddressStable: HilBody = {
  name: 'the static address from Read Static Addresses (0xFC09) is the identity and survives HCI Reset and reopening the port',
  async run(open, opts = {}) {
    const first = await withController(open, opts, async ({ hci, info }) => {
      assert.equal(info.identitySource, 'zephyr-static');
      const before = (await hci.command('ZephyrReadStaticAddresses', {})).addresses.map((a) => a.address);
      await hci.command('Reset', {});
      const after = (await hci.command('ZephyrReadStaticAddresses', {})).addresses.map((a) => a.address);
      assert.deepEqual(after, before, 'same static addresses after HCI Reset');
      assert.equal(before[0], info.identityAddress.address);
      return formatAddress(info.identityAddress);
    });
    const second = await withController(open, opts, async ({ info }) => formatAddress(info.identityAddress));
    assert.equal(second, first, 'same identity after closing and reopening the port');
  },
};

export const leRandVaries: HilBody = {
  name: 'LE Rand returns 8 bytes that differ from call to call',
  async run(open, opts = {}) {
    await withController(open, opts, async ({ hci }) => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const r = (await hci.command('LeRand', {})).random;
        assert.equal(r.length, 8);
        seen.add(toHex(r));
      }
      assert.equal(seen.size, 8, `8 distinct values: ${[...seen].join(' ')}`);
      assert.ok(!seen.has('0000000000000000'));
    });
  },
};

export const leEncryptMatchesAes: HilBody = {
  name: "LE Encrypt on the controller equals our AES-128 (e) on the Core spec sample (Vol 6 Part C 1), LSB-first on the wire",
  async run(open, opts = {}) {
    const s = leEncryptSampleWire();
    assert.ok(bytesEqual(e(s.key, s.plaintext), s.encrypted), 'our e() reproduces the spec sample');
    await withController(open, opts, async ({ hci }) => {
      const r = await hci.command('LeEncrypt', { key: s.key, plaintext: s.plaintext });
      assert.equal(toHex(r.encrypted), toHex(s.encrypted));
      // A second, random-looking block: controller and ours agree beyond the published sample.
      const key = (await hci.command('LeRand', {})).random;
      const k16 = new Uint8Array(16);
      k16.set(key, 0);
      k16.set(key, 8);
      const pt = Uint8Array.from({ length: 16 }, (_, i) => (i * 17 + 3) & 0xff);
      const r2 = await hci.command('LeEncrypt', { key: k16, plaintext: pt });
      assert.equal(toHex(r2.encrypted), toHex(e(k16, pt)));
    });
  },
};

export const advertisingOnOff: HilBody = {
  name: 'advertising: parameters, data and scan response accepted; enable and disable answered with Success',
  async run(open, opts = {}) {
    await withController(open, opts, async ({ hci }) => {
      await hci.command('LeSetAdvertisingParameters', {
        intervalMin: 0x00a0, // 100 ms
        intervalMax: 0x00a0,
        advertisingType: 0x00, // ADV_IND
        ownAddressType: 0x01, // random: the static identity set at bring-up
        peerAddressType: 0x00,
        peerAddress: '00:00:00:00:00:00',
        channelMap: 0x07,
        filterPolicy: 0x00,
      });
      // Flags (LE General Discoverable, BR/EDR not supported) and a complete local name.
      const name = new TextEncoder().encode('wh-hil');
      const ad = Uint8Array.of(0x02, 0x01, 0x06, name.length + 1, 0x09, ...name);
      await hci.command('LeSetAdvertisingData', { data: ad });
      await hci.command('LeSetScanResponseData', { data: Uint8Array.of(0x03, 0x03, 0x0d, 0x18) });
      await hci.command('LeSetAdvertisingEnable', { enable: true });
      await hci.command('LeSetAdvertisingEnable', { enable: false });
      // And again, so a stuck state from the first round would show.
      await hci.command('LeSetAdvertisingEnable', { enable: true });
      await hci.command('LeSetAdvertisingEnable', { enable: false });
    });
  },
};

export const dataLengthAndBuffers: HilBody = {
  name: 'data length and ACL buffers are as the firmware configures them (ncs overlay: 10 x 251, LL 251; upstream Zephyr defaults: 7 x 27, LL 27)',
  async run(open, opts = {}) {
    const fw = FIRMWARE_PROFILES[opts.firmware ?? 'ncs'];
    const want = opts.expectedDataLength ?? fw.maxDataLength;
    const wantBuffer = opts.expectedDataLength ?? fw.aclBufferSize;
    const time = (want + 14) * 8;
    await withController(open, opts, async ({ hci, info }) => {
      assert.ok(info.features.dataLengthExtension, 'LE Data Packet Length Extension');
      assert.equal(info.buffers.aclPacketLength, wantBuffer, `ACL buffer size (${info.buffers.source}, CONFIG_BT_BUF_ACL_TX_SIZE)`);
      if (opts.expectedDataLength === undefined) assert.equal(info.buffers.aclPacketCount, fw.aclBuffers, 'ACL buffers (CONFIG_BT_BUF_ACL_TX_COUNT)');
      const m = await hci.command('LeReadMaximumDataLength', {});
      assert.equal(m.maxTxOctets, want, 'maximum TX octets (CONFIG_BT_CTLR_DATA_LENGTH_MAX)');
      assert.equal(m.maxRxOctets, want, 'maximum RX octets');
      assert.ok(m.maxTxTime >= time && m.maxRxTime >= time, `max times ${m.maxTxTime}/${m.maxRxTime} us cover ${want} octets on 1M PHY`);
      await hci.command('LeWriteSuggestedDefaultDataLength', { maxTxOctets: want, maxTxTime: time });
      const d = await hci.command('LeReadSuggestedDefaultDataLength', {});
      assert.deepEqual(d, { maxTxOctets: want, maxTxTime: time });
    });
  },
};

/** Half an HCI Reset: type byte and the low opcode byte. The controller waits for the rest. */
const HALF_COMMAND = Uint8Array.of(0x01, 0x03);

export const recoveryAfterReopen: HilBody = {
  name: 'recovery: a controller left mid-packet, on the same port and after closing and reopening it, is brought up again',
  async run(open, opts = {}) {
    // Same port: the driver's first Reset completes the stray header into a bogus command, gets no
    // answer, flushes with zero bytes and resets again.
    await withController(
      open,
      opts,
      async ({ hci, packets }) => {
        assert.equal(hci.state, 'ready');
        assert.ok(commandCompletes(packets, RESET_OPCODE) >= 1);
        assert.equal((await hci.command('LeRand', {})).random.length, 8);
      },
      (t) => t.write(HALF_COMMAND),
    );
    // Closed mid-packet, then reopened: the controller kept running; bring-up works again.
    const first = await open();
    await first.transport.write(HALF_COMMAND);
    await first.transport.close();
    await withController(open, opts, async ({ hci }) => {
      assert.equal(hci.state, 'ready');
      assert.equal((await hci.command('LeRand', {})).random.length, 8);
    });
    // And a plain close/reopen after a clean session.
    await withController(open, opts, async ({ hci }) => {
      assert.equal((await hci.command('LeRand', {})).random.length, 8);
    });
  },
};

export const resetSoak: HilBody = {
  name: 'soak: N HCI Resets in a row, each answered exactly once, no desync, controller usable after',
  async run(open, opts = {}) {
    const n = opts.soakResets ?? 20;
    await withController(open, opts, async ({ hci, packets }) => {
      const before = commandCompletes(packets, RESET_OPCODE);
      for (let i = 0; i < n; i++) {
        await hci.command('Reset', {});
        // Something after each Reset, as a host does: Read Local Version Information.
        const v = await hci.command('ReadLocalVersionInformation', {});
        assert.equal(v.companyId, hci.info?.version.companyId);
      }
      assert.equal(commandCompletes(packets, RESET_OPCODE) - before, n, 'one Command Complete per Reset, no duplicates or losses');
      const sent = packets.filter((p) => p.dir === 'sent').length;
      const received = packets.filter((p) => p.dir === 'received').length;
      assert.equal(received, sent, 'every command got exactly one answer');
      assert.equal((await hci.command('LeRand', {})).random.length, 8);
    });
  },
};

/** Every single-controller body, in the order they run. */
export const HIL_BODIES: readonly HilBody[] = [
  bringUp,
  vendorIdentity,
  staticAddressStable,
  leRandVaries,
  leEncryptMatchesAes,
  advertisingOnOff,
  dataLengthAndBuffers,
  recoveryAfterReopen,
  resetSoak,
];

/** N for the soak from WEARABLE_HOST_SOAK_RESETS (a positive integer), else `fallback`. */
export function soakResetsFromEnv(fallback: number): number {
  const v = process.env['WEARABLE_HOST_SOAK_RESETS'];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`WEARABLE_HOST_SOAK_RESETS must be a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

/** Serial settings of the DKs from the environment: WEARABLE_HOST_BAUD (default 1000000), WEARABLE_HOST_RTSCTS=0 turns RTS/CTS off. */
export function dkSerialOptionsFromEnv(): { baudRate: number; rtscts: boolean } {
  const v = process.env['WEARABLE_HOST_BAUD'];
  let baudRate = 1_000_000;
  if (v !== undefined && v !== '') {
    baudRate = Number(v);
    if (!Number.isInteger(baudRate) || baudRate <= 0) throw new Error(`WEARABLE_HOST_BAUD must be a positive whole number, got ${JSON.stringify(v)}`);
  }
  return { baudRate, rtscts: process.env['WEARABLE_HOST_RTSCTS'] !== '0' };
}

/** Opens the DK on `port` (a serial path, or tcp://host:port) with the environment's serial settings; `label` names it in messages. */
export function dkOpener(port: string, label = 'DK'): ControllerOpener {
  return async () => {
    const transport = await openTransport(port, dkSerialOptionsFromEnv());
    return { transport, description: `${label} on ${transport.description}` };
  };
}

/** WEARABLE_HOST_FIRMWARE: `ncs` (default, firmware/README.md) or `zephyr` (docs/zephyr-hci-uart.md). */
export function firmwareFromEnv(): FirmwareName {
  const v = process.env['WEARABLE_HOST_FIRMWARE'];
  if (v === undefined || v === '') return 'ncs';
  if (!isFirmwareName(v)) throw new Error(`WEARABLE_HOST_FIRMWARE must be ncs or zephyr, got ${JSON.stringify(v)}`);
  return v;
}

/** WEARABLE_HOST_DATA_LENGTH: the ACL/LL data length the DK's build sets when it differs from its firmware profile (251 with our overlay on upstream Zephyr). */
export function dataLengthFromEnv(): number | undefined {
  const v = process.env['WEARABLE_HOST_DATA_LENGTH'];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 27 || n > 251) throw new Error(`WEARABLE_HOST_DATA_LENGTH must be a whole number from 27 to 251, got ${JSON.stringify(v)}`);
  return n;
}
