/**
 * Bring-up and identity discovery for the nRF5340 `hci_uart` controllers (docs/field-notes.md): no
 * start-up event, so flush, HCI Reset with retries (zero bytes before each retry to resynchronise a
 * UART stuck mid-packet), then the reads and masks the host needs (version, supported commands,
 * features, buffer sizes, event masks), the identity address (Zephyr static address, public
 * address, or a generated static one) and the default data length. A failed step after Reset starts
 * the whole sequence again from Reset, a bounded number of times. The driver ({@link Hci}) runs
 * it for the first bring-up and every re-initialisation.
 */
import type { Logger } from '../util/log.js';
import { randomAddressKind, type Address } from '../util/address.js';
import { osRandom } from '../util/random.js';
import type { Transport } from './transport.js';
import { Commands, formatOpcode, isCommandSupported, type CommandName, type CommandParams, type CommandReturn } from './commands.js';
import { leEventMaskFor } from './events.js';
import { HciStatus } from './status.js';
import { HciError, SILENT_CONTROLLER_CHECKS } from './hci-error.js';
import { ControllerInfo, coreVersionName, companyName, decodeLeFeatures, decodeVendorVersion, type BufferSizes, type IdentitySource, type VendorVersion } from './controller-info.js';
import type { HciOptions } from './driver.js';

/** Event mask bits. Core 5.4 Vol 4 Part E 7.3.1. */
export const EventMaskBit = {
  DisconnectionComplete: 4,
  EncryptionChange: 7,
  ReadRemoteVersionInformationComplete: 11,
  HardwareError: 15,
  DataBufferOverflow: 25,
  EncryptionKeyRefreshComplete: 47,
  LeMeta: 61,
} as const;

/** The event mask bring-up sets: the events this host handles. */
export const HOST_EVENT_MASK: bigint = Object.values(EventMaskBit).reduce((m, b) => m | (1n << BigInt(b)), 0n);

/** LE subevents bring-up unmasks. Core 5.4 Vol 4 Part E 7.8.1. */
export const HOST_LE_SUBEVENTS = [
  0x01, // LE Connection Complete
  0x02, // LE Advertising Report
  0x03, // LE Connection Update Complete
  0x04, // LE Read Remote Features Complete
  0x05, // LE Long Term Key Request
  0x06, // LE Remote Connection Parameter Request
  0x07, // LE Data Length Change
  0x0a, // LE Enhanced Connection Complete
  0x0c, // LE PHY Update Complete
] as const;
export const HOST_LE_EVENT_MASK: bigint = leEventMaskFor(HOST_LE_SUBEVENTS);

/** Company identifiers of controllers that run Zephyr's HCI and answer its vendor commands. */
const ZEPHYR_COMPANIES = new Set([0x0059 /* Nordic */, 0x05f1 /* The Linux Foundation */]);

/** Zephyr vendor supported-commands bit for Read Static Addresses (Zephyr hci_vs.h BT_VS_CMD_BIT_READ_STATIC_ADDRS). */
const VS_CMD_BIT_READ_STATIC_ADDRS = 8;

const NO_ADDRESS = '00:00:00:00:00:00';

/** What bring-up needs from its driver. */
export interface BringUpContext {
  readonly transport: Transport;
  readonly log: Logger;
  readonly port: string;
  readonly opts: HciOptions;
  /** Sends one of bring-up's own commands (ahead of the queue of the layers above). */
  internal<N extends CommandName>(name: N, params: CommandParams<N>, timeoutMs?: number): Promise<CommandReturn<N>>;
  /** Forgets a half-received packet. */
  resetFramer(): void;
  /** Fails the commands of a failed attempt still in flight and restores one credit. */
  abandonAttempt(err: Error): void;
  closed(): boolean;
}

export class BringUp {
  private readonly log: Logger;
  private readonly opts: HciOptions;
  private readonly resetTimeoutMs: number;
  private readonly resetAttempts: number;
  private readonly bringUpAttempts: number;
  private readonly resyncBytes: number;

  constructor(private readonly ctx: BringUpContext) {
    this.log = ctx.log;
    this.opts = ctx.opts;
    this.resetTimeoutMs = ctx.opts.resetTimeoutMs ?? 1000;
    this.resetAttempts = Math.max(1, ctx.opts.resetAttempts ?? 3);
    this.bringUpAttempts = Math.max(1, ctx.opts.bringUpAttempts ?? 3);
    this.resyncBytes = ctx.opts.resyncBytes ?? 260;
  }

  /** Runs an internal command whose failure with a status (or a timeout) is tolerated: resolves undefined. */
  private async optional<N extends CommandName>(name: N, params: CommandParams<N>, why: string): Promise<CommandReturn<N> | undefined> {
    try {
      return await this.ctx.internal(name, params);
    } catch (err) {
      if (err instanceof HciError && (err.kind === 'status' || err.kind === 'timeout' || err.kind === 'malformed')) {
        const level = err.status === HciStatus.UnknownHciCommand ? 'info' : 'warn';
        this.log[level]({ command: name, status: err.statusName }, `${formatOpcode(Commands[name].opcode)} not available on ${this.ctx.port} (${err.statusName ?? err.kind}); ${why}`);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * HCI Reset, then the reads and settings of bring-up. When the controller answered Reset but a
   * later step failed (a lost, garbled or inserted packet makes a command time out or fail), the
   * whole sequence starts again from HCI Reset, up to `bringUpAttempts` times: Reset puts the
   * controller back in its default state (Core 5.4 Vol 4 Part E 7.3.2), so a retry starts clean.
   */
  async run(): Promise<ControllerInfo> {
    for (let attempt = 1; ; attempt++) {
      await this.ctx.transport.flushInput();
      this.ctx.resetFramer();
      try {
        await this.resetWithRetries();
        return await this.readController();
      } catch (err) {
        if (!(err instanceof HciError) || err.kind === 'closed' || err.kind === 'transport' || this.ctx.closed()) throw err;
        // A controller that never answered Reset is reported at once (resetWithRetries has its own retries).
        if (err.kind === 'timeout' && err.opcode === Commands.Reset.opcode) throw err;
        // Commands of the failed attempt still in flight would take the credits of the next one.
        this.ctx.abandonAttempt(err);
        if (attempt >= this.bringUpAttempts) {
          throw new HciError(err.status, err.opcode, {
            kind: err.kind,
            port: this.ctx.port,
            message:
              `Bring-up of the controller on ${this.ctx.port} failed ${attempt} times (each from HCI Reset); last failure: ${err.message}. ` +
              `Check the serial line (cable, baud rate, flow control), then press the DK's RESET button and start again.`,
            cause: err,
          });
        }
        this.log.warn({ attempt, attempts: this.bringUpAttempts, err: err.message }, `bring-up of the controller on ${this.ctx.port} failed (attempt ${attempt} of ${this.bringUpAttempts}); starting again from HCI Reset`);
      }
    }
  }

  private async resetWithRetries(): Promise<void> {
    for (let attempt = 1; attempt <= this.resetAttempts; attempt++) {
      if (attempt > 1 && this.resyncBytes > 0) {
        this.log.debug({ bytes: this.resyncBytes }, 'writing zero bytes to resynchronise the controller before retrying HCI Reset');
        try {
          await this.ctx.transport.write(new Uint8Array(this.resyncBytes));
        } catch (err) {
          throw new HciError(undefined, Commands.Reset.opcode, { kind: 'transport', port: this.ctx.port, message: `cannot write to ${this.ctx.port}: ${errorText(err)}`, cause: err });
        }
      }
      try {
        await this.ctx.internal('Reset', {}, this.resetTimeoutMs);
        return;
      } catch (err) {
        if (err instanceof HciError && err.kind === 'timeout') {
          this.log.warn(`no answer to HCI Reset on ${this.ctx.port} (attempt ${attempt} of ${this.resetAttempts}, ${this.resetTimeoutMs} ms)`);
          continue;
        }
        throw err;
      }
    }
    throw new HciError(undefined, Commands.Reset.opcode, {
      kind: 'timeout',
      port: this.ctx.port,
      message:
        `The controller on ${this.ctx.port} did not answer HCI Reset (${this.resetAttempts} attempts, ${this.resetTimeoutMs} ms each). ${SILENT_CONTROLLER_CHECKS}`,
    });
  }

  private async readController(): Promise<ControllerInfo> {
    const v = await this.ctx.internal('ReadLocalVersionInformation', {});
    const sc = await this.ctx.internal('ReadLocalSupportedCommands', {});
    const lmp = await this.ctx.internal('ReadLocalSupportedFeatures', {});
    const lef = await this.ctx.internal('LeReadLocalSupportedFeatures', {});
    const buffers = await this.readBuffers(sc.commands);
    await this.ctx.internal('SetEventMask', { mask: HOST_EVENT_MASK });
    await this.ctx.internal('LeSetEventMask', { mask: HOST_LE_EVENT_MASK });

    let vendor: VendorVersion | undefined;
    let vendorCommands: Uint8Array | undefined;
    const staticAddresses: string[] = [];
    const mode = this.opts.vendorCommands ?? 'auto';
    if (mode === 'always' || (mode === 'auto' && ZEPHYR_COMPANIES.has(v.companyId))) {
      const vv = await this.optional('ZephyrReadVersionInfo', {}, 'no Zephyr vendor extensions');
      if (vv) {
        vendor = decodeVendorVersion(vv);
        const vc = await this.optional('ZephyrReadSupportedCommands', {}, 'trying Read Static Addresses anyway');
        vendorCommands = vc?.commands;
        const hasStatic = !vc || ((((vc.commands[VS_CMD_BIT_READ_STATIC_ADDRS >> 3] ?? 0) >> (VS_CMD_BIT_READ_STATIC_ADDRS & 7)) & 1) as number) === 1;
        if (hasStatic) {
          const sa = await this.optional('ZephyrReadStaticAddresses', {}, 'no static address from the controller');
          for (const a of sa?.addresses ?? []) {
            if (randomAddressKind(a.address) === 'static' && a.address !== 'FF:FF:FF:FF:FF:FF') staticAddresses.push(a.address);
            else this.log.warn(`Zephyr Read Static Addresses returned ${a.address}, not a static random address; ignored`);
          }
        }
      }
    }

    let identity: Address;
    let identitySource: IdentitySource;
    let publicAddress: string | undefined;
    if (this.opts.identityAddress) {
      identity = this.opts.identityAddress;
      identitySource = 'configured';
    } else if (staticAddresses.length > 0) {
      identity = { type: 'random', address: staticAddresses[0] as string };
      identitySource = 'zephyr-static';
    } else {
      const bd = await this.optional('ReadBdAddr', {}, 'no public address');
      if (bd && bd.address !== NO_ADDRESS) publicAddress = bd.address;
      if (publicAddress) {
        identity = { type: 'public', address: publicAddress };
        identitySource = 'public';
      } else {
        identity = { type: 'random', address: this.generateStaticAddress() };
        identitySource = 'generated';
        this.log.warn(
          `the controller on ${this.ctx.port} has neither a static nor a public address: using the generated static address ${identity.address} for this run only (bonds will not survive a restart; pass an identity address to keep one)`,
        );
      }
    }
    if (identity.type === 'random') await this.ctx.internal('LeSetRandomAddress', { address: identity.address });

    let suggestedDataLength: { maxTxOctets: number; maxTxTime: number } | undefined;
    const dl = this.opts.dataLength ?? { txOctets: 251, txTime: 2120 };
    if (dl !== false && isCommandSupported(sc.commands, 'LeWriteSuggestedDefaultDataLength')) {
      const ok = await this.optional('LeWriteSuggestedDefaultDataLength', { maxTxOctets: dl.txOctets, maxTxTime: dl.txTime }, 'connections keep the controller default data length');
      if (ok) suggestedDataLength = { maxTxOctets: dl.txOctets, maxTxTime: dl.txTime };
    }

    return new ControllerInfo({
      port: this.ctx.port,
      version: {
        hciVersion: v.hciVersion,
        hciVersionName: coreVersionName(v.hciVersion),
        hciSubversion: v.hciSubversion,
        lmpVersion: v.lmpVersion,
        lmpVersionName: coreVersionName(v.lmpVersion),
        lmpSubversion: v.lmpSubversion,
        companyId: v.companyId,
        companyName: companyName(v.companyId),
      },
      vendor,
      identityAddress: identity,
      identitySource,
      staticAddresses,
      publicAddress,
      buffers,
      features: decodeLeFeatures(lef.features),
      leFeatures: lef.features,
      lmpFeatures: lmp.features,
      supportedCommands: sc.commands,
      vendorCommands,
      suggestedDataLength,
    });
  }

  /** LE Read Buffer Size v2 when listed, else v1; Read Buffer Size when the LE figures are zero (shared buffers). */
  private async readBuffers(commands: Uint8Array): Promise<BufferSizes> {
    let b: BufferSizes;
    if (isCommandSupported(commands, 'LeReadBufferSizeV2')) {
      const r = await this.ctx.internal('LeReadBufferSizeV2', {});
      b = {
        aclPacketLength: r.leAclDataPacketLength,
        aclPacketCount: r.totalNumLeAclDataPackets,
        source: 'LeReadBufferSizeV2',
        isoPacketLength: r.isoDataPacketLength,
        isoPacketCount: r.totalNumIsoDataPackets,
      };
    } else {
      const r = await this.ctx.internal('LeReadBufferSize', {});
      b = { aclPacketLength: r.leAclDataPacketLength, aclPacketCount: r.totalNumLeAclDataPackets, source: 'LeReadBufferSize' };
    }
    if (b.aclPacketCount === 0 || b.aclPacketLength === 0) {
      // Core 5.4 Vol 4 Part E 7.8.2: zero means LE shares the BR/EDR buffers; ask Read Buffer Size.
      const r = await this.ctx.internal('ReadBufferSize', {});
      b = { ...b, aclPacketLength: r.aclDataPacketLength, aclPacketCount: r.totalNumAclDataPackets, source: 'ReadBufferSize' };
      if (b.aclPacketCount === 0 || b.aclPacketLength === 0) {
        throw new HciError(undefined, Commands.ReadBufferSize.opcode, {
          kind: 'malformed',
          port: this.ctx.port,
          message: `the controller on ${this.ctx.port} reports no ACL buffers (LE Read Buffer Size and Read Buffer Size both gave 0): it cannot carry data`,
        });
      }
    }
    return b;
  }

  /** A static random address: two top bits set, the rest random, neither all zeros nor all ones. Core 5.4 Vol 6 Part B 1.3.2.1. */
  private generateStaticAddress(): string {
    const rng = this.opts.random ?? osRandom;
    for (;;) {
      const b = rng.bytes(6);
      b[5] = ((b[5] as number) | 0xc0) & 0xff;
      let ones = true;
      let zeros = true;
      for (let i = 0; i < 6; i++) {
        const v = i === 5 ? (b[i] as number) & 0x3f : (b[i] as number);
        if (v !== (i === 5 ? 0x3f : 0xff)) ones = false;
        if (v !== 0) zeros = false;
      }
      if (ones || zeros) continue;
      let s = '';
      for (let i = 5; i >= 0; i--) s += (i < 5 ? ':' : '') + (b[i] as number).toString(16).padStart(2, '0');
      return s.toUpperCase();
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
