/**
 * A virtual nRF5340 network core running Zephyr's `hci_uart` sample with the SoftDevice
 * Controller, seen from its UART: H:4 in, H:4 out. It is a product, not a mock: the same host
 * code runs against it and against a DK, so it answers the way the real one does, including its
 * refusals. The radio side lives in {@link VirtualAir}; this class is the HCI front end.
 *
 * Behaviour worth knowing (and where it comes from):
 * - Silent until spoken to: nothing is sent after attach (no start-up event; hci_uart without
 *   CONFIG_BT_WAIT_NOP). Commands are answered at any time; HCI Reset clears the LE state.
 * - Every Command Complete / Command Status carries Num_HCI_Command_Packets = 1, as the SDC does.
 *   Commands sent without waiting are still processed in order (the real UART may drop them).
 * - Unknown opcodes: Command Complete with 0x01 Unknown HCI Command and no other parameter.
 * - A known command whose parameter length is wrong: 0x12 Invalid HCI Command Parameters, in a
 *   Command Complete (zero-filled return parameters) or a Command Status, as the command answers.
 *   (Zephyr's own LL drops such packets; the SDC's answer is not documented.)
 * - ACL from the host (Zephyr subsys/bluetooth/controller/hci/hci.c hci_acl_handle): longer than
 *   the advertised buffer size, broadcast flags set, or a Packet_Boundary_Flag other than 0b00/0b01:
 *   logged and dropped. No free buffer (the host ignored its credits): Data Buffer Overflow event
 *   (link type 0x01) and the packet is dropped. Unknown handle: logged and dropped.
 * - H:4 garbage (a byte that is not a command or ACL type byte, an impossible header): logged and
 *   skipped byte by byte by the framer, like hci_uart discarding unknown types (no ISO support).
 *   A stray type byte makes the framer wait for the length it announces, as the real UART does;
 *   the host recovers by sending zeros (skipped) and HCI Reset.
 * - Nothing a host sends can throw out of this class: handler bugs are caught and logged.
 */
import { createHash } from 'node:crypto';
import { ecb } from '@noble/ciphers/aes.js';
import {
  Commands,
  commandNameOf,
  decodeCommand,
  encodeReturn,
  formatOpcode,
  type CommandName,
  type CommandParams,
  type CommandReturn,
} from '../hci/commands.js';
import { encodeEvent, Events, type EventName, type EventParams } from '../hci/events.js';
import { decodeAcl, AclBoundary } from '../hci/acl.js';
import { H4Framer, H4Type, encodeH4, type H4FramerError } from '../hci/h4.js';
import { HciStatus } from '../hci/status.js';
import type { Codec } from '../hci/codec.js';
import type { Transport } from '../hci/transport.js';
import { reversed, toHex } from '../util/bytes.js';
import { addressFromWire } from '../util/address.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import {
  COMMAND_BITS,
  DEFAULT_EVENT_MASK,
  DEFAULT_LE_EVENT_MASK,
  LMP_FEATURES,
  LeFeature,
  SUPPORTED_STATES,
  VENDOR_COMMAND_BITS,
  bitmapOf,
  eventAllowed,
} from './capabilities.js';
import { PRIVACY_COMMANDS, firmwareProfile, type FirmwareName, type FirmwareProfile } from './firmware.js';
import type { AirConnection, LinkEnd, VirtualAir } from './air.js';

export interface VirtualControllerOptions {
  /** Shown in logs and descriptions: `ctrl0`. */
  name?: string;
  /**
   * Identity seed: the static random address, its identity root and the IR/ER key roots derive
   * from it, so they survive HCI Reset and are the same on every run with the same seed.
   */
  seed?: string;
  /** Source of LE Rand output. Default: derived from the air's random source. */
  random?: RandomSource;
  log?: Logger;
  /**
   * The firmware the DK runs (src/sim/firmware.ts): `ncs` (the nRF Connect SDK's SoftDevice
   * Controller with firmware/hci_uart.conf, the default) or `zephyr` (upstream Zephyr's link
   * layer), or a profile object. The options below override single values of the profile.
   */
  firmware?: FirmwareName | FirmwareProfile;
  /** Number of ACL buffers (LE Read Buffer Size Total_Num_LE_ACL_Data_Packets). Default: the profile's. */
  aclBuffers?: number;
  /** Largest ACL data length accepted from the host. Default: the profile's. */
  aclBufferSize?: number;
  /** Largest LL data PDU payload (CONFIG_BT_CTLR_DATA_LENGTH_MAX). Default: the profile's. */
  maxDataLength?: number;
  /** LL privacy (CONFIG_BT_CTLR_PRIVACY=y): feature bit and resolving-list commands. Default: the profile's. */
  llPrivacy?: boolean;
  filterAcceptListSize?: number;
  resolvingListSize?: number;
  /** Simultaneous connections. Default 4. */
  maxConnections?: number;
  hciSubversion?: number;
  lmpSubversion?: number;
  /**
   * A public address (BD_ADDR) programmed into the controller, and no static random address: Zephyr
   * Read Static Addresses returns none, so the host's identity address is this public one. Default:
   * no public address, a static address derived from the seed (the DK as shipped).
   */
  publicAddress?: string;
}

/** Advertising parameters as set by LE Set Advertising Parameters. Core 5.4 Vol 4 Part E 7.8.5. */
export interface AdvertisingParams {
  intervalMin: number;
  intervalMax: number;
  advertisingType: number;
  ownAddressType: number;
  peerAddressType: number;
  peerAddress: string;
  channelMap: number;
  filterPolicy: number;
}

/** LE Set Advertising Parameters Advertising_Type values. Core 5.4 Vol 4 Part E 7.8.5. */
export const AdvType = { AdvInd: 0, AdvDirectIndHigh: 1, AdvScanInd: 2, AdvNonconnInd: 3, AdvDirectIndLow: 4 } as const;

export interface ScanParams {
  scanType: number;
  interval: number;
  window: number;
  ownAddressType: number;
  filterPolicy: number;
}

export type CreateConnectionParams = CommandParams<'LeCreateConnection'>;

/** Counters of what the controller refused or dropped (tests and diagnostics). */
export interface VirtualControllerStats {
  commands: number;
  events: number;
  aclIn: number;
  aclOut: number;
  droppedAcl: number;
  bufferOverflows: number;
  framingErrors: number;
  unknownCommands: number;
  badLengthCommands: number;
  internalErrors: number;
}

const ZERO_ADDRESS = '00:00:00:00:00:00';

/** Reasons Disconnect accepts. Core 5.4 Vol 4 Part E 7.1.6. */
const DISCONNECT_REASONS: ReadonlySet<number> = new Set([0x05, 0x13, 0x14, 0x15, 0x1a, 0x29, 0x3b]);

type Handler<N extends CommandName> = (params: CommandParams<N>, opcode: number) => void;
type HandlerTable = { [N in CommandName]?: Handler<N> };

function defaultAdvertising(): AdvertisingParams {
  // Defaults of Core 5.4 Vol 4 Part E 7.8.5: 1.28 s, ADV_IND, public, all channels, no filter.
  return {
    intervalMin: 0x0800,
    intervalMax: 0x0800,
    advertisingType: AdvType.AdvInd,
    ownAddressType: 0,
    peerAddressType: 0,
    peerAddress: ZERO_ADDRESS,
    channelMap: 0x07,
    filterPolicy: 0,
  };
}

function defaultScan(): ScanParams {
  // Defaults of Core 5.4 Vol 4 Part E 7.8.10: passive, 10 ms interval and window.
  return { scanType: 0, interval: 0x0010, window: 0x0010, ownAddressType: 0, filterPolicy: 0 };
}

/** LE connection interval, latency and timeout limits. Core 5.4 Vol 4 Part E 7.8.12 / 7.8.18. */
export function connectionParamsValid(p: {
  intervalMin: number;
  intervalMax: number;
  latency: number;
  timeout: number;
}): boolean {
  if (p.intervalMin < 0x0006 || p.intervalMax > 0x0c80 || p.intervalMin > p.intervalMax) return false;
  if (p.latency > 0x01f3) return false;
  if (p.timeout < 0x000a || p.timeout > 0x0c80) return false;
  // Supervision timeout (10 ms units) must exceed (1 + latency) * interval_max * 2 (1.25 ms units).
  return p.timeout * 10 > (1 + p.latency) * p.intervalMax * 1.25 * 2;
}

/** Key material stays out of logs: LTKs, LE Encrypt keys, IRKs. */
const SECRET_FIELDS: ReadonlySet<string> = new Set(['ltk', 'key', 'peerIrk', 'localIrk']);

function redacted(params: object): object {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(params)) {
    if (SECRET_FIELDS.has(k) && v instanceof Uint8Array) {
      out ??= { ...params };
      out[k] = `<${v.length} bytes redacted>`;
    }
  }
  return out ?? params;
}

function sha256(...parts: (string | Uint8Array)[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** The virtual controller. Create through {@link VirtualAir.createController}. */
export class VirtualController {
  readonly name: string;
  readonly seed: string;
  readonly log: Logger;
  /** Static random address reported by Zephyr Read Static Addresses (0xFC09). */
  readonly staticAddress: string;
  readonly identityRoot: Uint8Array;
  readonly ir: Uint8Array;
  readonly er: Uint8Array;
  readonly aclBuffers: number;
  readonly aclBufferSize: number;
  readonly maxDataLength: number;
  /** The firmware profile this controller plays, with the option overrides applied. */
  readonly firmware: FirmwareProfile;
  readonly maxConnections: number;
  readonly hciSubversion: number;
  readonly lmpSubversion: number;
  readonly stats: VirtualControllerStats = {
    commands: 0,
    events: 0,
    aclIn: 0,
    aclOut: 0,
    droppedAcl: 0,
    bufferOverflows: 0,
    framingErrors: 0,
    unknownCommands: 0,
    badLengthCommands: 0,
    internalErrors: 0,
  };

  private readonly random: RandomSource;
  private readonly falSize: number;
  private readonly rlSize: number;
  private readonly handlers: HandlerTable;
  /** Commands the firmware answers (the rest get Unknown HCI Command). */
  private readonly answered: ReadonlySet<CommandName>;
  private transport: Transport | undefined;
  private framer: H4Framer | undefined;
  private readonly onData = (chunk: Uint8Array): void => this.receive(chunk);
  private readonly onClose = (): void => this.detachTransport();
  private powered = true;
  /** {@link hang}: input swallowed, nothing sent. */
  private hung = false;
  /** Options.publicAddress given: Zephyr Read Static Addresses reports none. */
  private noStaticAddress = false;

  // ---- state cleared by HCI Reset ----
  /** Public address; the DK has none (all zeros) unless Zephyr Write BD_ADDR set one (survives Reset). */
  publicAddress = ZERO_ADDRESS;
  eventMask = DEFAULT_EVENT_MASK;
  eventMask2 = 0n;
  leEventMask = DEFAULT_LE_EVENT_MASK;
  randomAddress: string | undefined;
  advertising: AdvertisingParams = defaultAdvertising();
  advertisingData = new Uint8Array(0);
  scanResponseData = new Uint8Array(0);
  advertisingEnabled = false;
  /** Clock time advertising was enabled (high duty cycle directed advertising times out). */
  advertisingSince = 0;
  scan: ScanParams = defaultScan();
  scanEnabled = false;
  filterDuplicates = false;
  /** Duplicate filter: `type/address/eventType` seen since scanning was enabled. */
  readonly seenReports = new Set<string>();
  initiating: CreateConnectionParams | undefined;
  readonly filterAcceptList = new Set<string>();
  readonly resolvingList = new Map<string, { peerIrk: Uint8Array; localIrk: Uint8Array }>();
  addressResolution = false;
  rpaTimeout = 900;
  suggestedTxOctets = 27;
  suggestedTxTime = 328;
  /** LE Set Default PHY preferences; bit 0 of allPhys: no TX preference, bit 1: no RX preference. */
  defaultPhy = { allPhys: 0x03, txPhys: 0x03, rxPhys: 0x03 };
  private readonly links = new Map<number, LinkEnd>();
  private aclInUse = 0;

  constructor(
    readonly air: VirtualAir,
    opts: VirtualControllerOptions = {},
  ) {
    this.name = opts.name ?? 'ctrl';
    this.seed = opts.seed ?? toHex(air.random.bytes(16));
    this.log = (opts.log ?? air.log ?? silentLogger()).child({ controller: this.name });
    this.random = opts.random ?? air.random;
    const base = firmwareProfile(opts.firmware ?? air.options.firmware);
    this.firmware = {
      ...base,
      ...(opts.aclBuffers !== undefined ? { aclBuffers: opts.aclBuffers } : {}),
      ...(opts.aclBufferSize !== undefined ? { aclBufferSize: opts.aclBufferSize } : {}),
      ...(opts.maxDataLength !== undefined ? { maxDataLength: opts.maxDataLength } : {}),
      ...(opts.llPrivacy !== undefined ? { llPrivacy: opts.llPrivacy } : {}),
      version: {
        ...base.version,
        ...(opts.hciSubversion !== undefined ? { hciSubversion: opts.hciSubversion } : {}),
        ...(opts.lmpSubversion !== undefined ? { lmpSubversion: opts.lmpSubversion } : {}),
      },
    };
    const fw = this.firmware;
    this.aclBuffers = fw.aclBuffers;
    this.aclBufferSize = fw.aclBufferSize;
    this.maxDataLength = fw.maxDataLength;
    this.falSize = opts.filterAcceptListSize ?? 8;
    this.rlSize = opts.resolvingListSize ?? 8;
    this.maxConnections = opts.maxConnections ?? 4;
    this.hciSubversion = fw.version.hciSubversion;
    this.lmpSubversion = fw.version.lmpSubversion;
    this.publicAddress = fw.publicAddress;
    // Identity material, stable across resets: static address (two top bits 0b11), roots.
    const a = sha256('wearable-host sim static address', this.seed).subarray(0, 6);
    a[5] = (a[5] as number) | 0xc0;
    this.staticAddress = addressFromWire(a);
    this.identityRoot = sha256('wearable-host sim identity root', this.seed).slice(0, 16);
    this.ir = sha256('wearable-host sim IR', this.seed).slice(0, 16);
    this.er = sha256('wearable-host sim ER', this.seed).slice(0, 16);
    if (opts.publicAddress !== undefined) {
      this.publicAddress = opts.publicAddress.toUpperCase();
      this.noStaticAddress = true;
    }
    this.handlers = this.buildHandlers();
    this.answered = new Set<CommandName>([
      'ReadLocalSupportedCommands',
      ...fw.commands.filter((c) => fw.llPrivacy || !PRIVACY_COMMANDS.includes(c)),
      ...(fw.llPrivacy ? PRIVACY_COMMANDS : []),
      ...fw.vendorCommands,
    ]);
  }

  get description(): string {
    return `virtual controller ${this.name}`;
  }

  /** The transport currently attached, if any. */
  get attachedTransport(): Transport | undefined {
    return this.transport;
  }

  get isPowered(): boolean {
    return this.powered;
  }

  /** Supported Commands bitmap (Read Local Supported Commands): the bits of the commands this firmware answers. */
  supportedCommands(): Uint8Array {
    const bits: { [N in CommandName]?: readonly [number, number] } = {};
    for (const name of this.answered) {
      const pos = COMMAND_BITS[name];
      if (pos) bits[name] = pos;
    }
    return bitmapOf(bits);
  }

  /** Zephyr vendor Read Supported Commands bitmap. */
  vendorSupportedCommands(): Uint8Array {
    const bits: { [N in CommandName]?: readonly [number, number] } = {};
    for (const name of this.answered) {
      const pos = VENDOR_COMMAND_BITS[name];
      if (pos) bits[name] = pos;
    }
    return bitmapOf(bits);
  }

  /** LE features (LE Read Local Supported Features, LL_FEATURE_RSP), little-endian. Core 5.4 Vol 6 Part B 4.6. */
  leFeatures(): Uint8Array {
    const out = new Uint8Array(8);
    const bits = this.firmware.leFeatures.map((f) => LeFeature[f]);
    if (this.firmware.llPrivacy) bits.push(LeFeature.LlPrivacy);
    for (const bit of bits) out[bit >> 3] = (out[bit >> 3] as number) | (1 << (bit & 7));
    return out;
  }

  /** Names of the commands this controller answers (the rest get Unknown HCI Command). */
  implementedCommands(): CommandName[] {
    return (Object.keys(this.handlers) as CommandName[]).filter((n) => this.answered.has(n));
  }

  /** Names of every command the virtual controller can play, whatever the firmware profile answers. */
  handledCommands(): CommandName[] {
    return Object.keys(this.handlers) as CommandName[];
  }

  // ------------------------------------------------------------------ transport

  /**
   * Starts listening to a host on `transport`. Nothing is sent until the host speaks. A previous
   * transport is let go (not closed); the controller's radio state is untouched, as with a DK
   * whose serial port is reopened.
   */
  attach(transport: Transport): void {
    if (!this.powered) throw new Error(`${this.description} is powered off`);
    this.detachTransport();
    this.transport = transport;
    this.framer = new H4Framer({
      direction: 'controller',
      // hci_uart without CONFIG_BT_ISO takes commands and ACL only; any other type byte is skipped.
      accept: [H4Type.Command, H4Type.Acl],
      onPacket: (p) => this.onPacket(p),
      onError: (e) => this.onFramingError(e),
    });
    transport.on('data', this.onData);
    transport.on('close', this.onClose);
    this.log.debug({ transport: transport.description }, 'host attached');
  }

  /** Stops listening to the current transport (the controller keeps running on the air). */
  detachTransport(): void {
    const t = this.transport;
    if (!t) return;
    t.off('data', this.onData);
    t.off('close', this.onClose);
    this.transport = undefined;
    this.framer = undefined;
    this.log.debug({ transport: t.description }, 'host detached');
  }

  /**
   * Powers the controller off: it leaves the air (its peers see a supervision timeout) and stops
   * listening. It cannot be used afterwards.
   */
  powerOff(): void {
    if (!this.powered) return;
    this.detachTransport();
    this.air.removeController(this);
    this.powered = false;
  }

  /**
   * The firmware hangs (a stuck interrupt, a deadlock): bytes from the host are swallowed and
   * nothing is sent, the radio goes quiet (peers time out), the serial port stays open. It lasts
   * until {@link rebootSilently} (the RESET button, the controller's own watchdog) or {@link resume}.
   */
  hang(): void {
    this.hung = true;
    this.air.controllerReset(this);
    this.advertisingEnabled = false;
    this.scanEnabled = false;
    this.initiating = undefined;
  }

  /** A hang ends by itself: the firmware answers again with its state as it was (its links lost). */
  resume(): void {
    this.hung = false;
  }

  /**
   * The network core reboots (watchdog, brown-out, RESET) while the host keeps the serial port
   * open: every setting the host made is back at its power-up value, links are lost without a
   * Disconnection Complete, half-received bytes are forgotten. Nothing is sent to say so unless
   * `announce` (hci_uart built with CONFIG_BT_WAIT_NOP sends a Command Complete for opcode 0x0000
   * once up, Zephyr samples/bluetooth/hci_uart/src/main.c).
   */
  rebootSilently(opts: { announce?: boolean } = {}): void {
    this.hung = false;
    this.reset();
    const t = this.transport;
    if (t) this.attach(t);
    if (opts.announce) this.emit('CommandComplete', { numHciCommandPackets: 1, opcode: 0x0000, returnParameters: new Uint8Array(0) });
  }

  private receive(chunk: Uint8Array): void {
    if (this.hung) return;
    const f = this.framer;
    if (!f) return;
    try {
      f.push(chunk);
    } catch (err) {
      this.internalError(err, 'H:4 input');
    }
  }

  private onFramingError(e: H4FramerError): void {
    this.stats.framingErrors++;
    this.log.warn({ kind: e.kind, offset: e.offset }, `H:4 input: ${e.message}`);
  }

  private internalError(err: unknown, where: string): void {
    this.stats.internalErrors++;
    this.log.error({ err }, `internal error in the virtual controller (${where}); input dropped`);
  }

  private onPacket(packet: Uint8Array): void {
    try {
      const type = packet[0];
      const body = packet.subarray(1);
      if (type === H4Type.Command) this.onCommand(body);
      else if (type === H4Type.Acl) this.onAcl(body);
      else this.log.warn({ type }, `H:4 packet type ${type} is not accepted by this controller; dropped`);
    } catch (err) {
      this.internalError(err, 'packet handler');
    }
  }

  // ------------------------------------------------------------------ output

  private write(bytes: Uint8Array): void {
    if (this.hung) return;
    const t = this.transport;
    if (!t || !t.isOpen) return;
    t.write(bytes).catch((err: unknown) => this.log.debug({ err }, 'write to host failed'));
  }

  /** Sends an event if the host's event masks let it through. @internal */
  emit<N extends EventName>(name: N, params: EventParams<N>): void {
    const subevent = (Events[name] as { subevent?: number }).subevent;
    if (!eventAllowed(name, subevent, this)) {
      this.log.debug({ event: name }, 'event masked by the host');
      return;
    }
    this.stats.events++;
    if (this.log.isLevelEnabled('debug') && name !== 'CommandComplete') this.log.debug({ event: name, params }, 'event');
    this.write(encodeH4(H4Type.Event, encodeEvent(name, params)));
  }

  /** Whether the host would receive `name` (used where the LL acts differently when it is masked). @internal */
  wants(name: EventName): boolean {
    const subevent = (Events[name] as { subevent?: number }).subevent;
    return eventAllowed(name, subevent, this);
  }

  private commandComplete<N extends CommandName>(name: N, status: number, ret?: CommandReturn<N>): void {
    this.emit('CommandComplete', {
      numHciCommandPackets: 1,
      opcode: Commands[name].opcode,
      returnParameters: ret === undefined ? this.zeroReturn(name, status) : encodeReturn(name, status, ret),
    });
  }

  /** Status followed by zero-filled return parameters of the command's layout. */
  private zeroReturn(name: CommandName, status: number): Uint8Array {
    const codec = Commands[name].returns as Codec<unknown>;
    const out = new Uint8Array(1 + (codec.length ?? codec.minLength));
    out[0] = status;
    return out;
  }

  private commandStatus(opcode: number, status: number): void {
    this.emit('CommandStatus', { status, numHciCommandPackets: 1, opcode });
  }

  /** Sends received LL data to the host as one ACL packet: type, header and data in one buffer. @internal */
  deliverAcl(handle: number, start: boolean, data: Uint8Array): void {
    const n = data.length;
    const out = new Uint8Array(5 + n);
    out[0] = H4Type.Acl;
    const hf = (handle & 0x0fff) | ((start ? AclBoundary.FirstFlushable : AclBoundary.Continuing) << 12);
    out[1] = hf & 0xff;
    out[2] = hf >> 8;
    out[3] = n & 0xff;
    out[4] = n >> 8;
    out.set(data, 5);
    this.stats.aclOut++;
    this.write(out);
  }

  /** Packets acknowledged on `handle`: frees their buffers and reports them. @internal */
  packetsCompleted(handle: number, count: number): void {
    if (count <= 0) return;
    this.aclInUse = Math.max(0, this.aclInUse - count);
    this.emit('NumberOfCompletedPackets', { handles: [{ handle, count }] });
  }

  /** Buffers of a closed connection return without a NOCP (Core 5.4 Vol 4 Part E 4.3). @internal */
  buffersFlushed(count: number): void {
    this.aclInUse = Math.max(0, this.aclInUse - count);
  }

  // ------------------------------------------------------------------ links (called by the air)

  /** Lowest free connection handle, or undefined when at the connection limit. @internal */
  allocateHandle(): number | undefined {
    if (this.links.size >= this.maxConnections) return undefined;
    for (let h = 0; h <= 0x0eff; h++) if (!this.links.has(h)) return h;
    return undefined;
  }

  /** @internal */
  addLink(end: LinkEnd): void {
    this.links.set(end.handle, end);
  }

  /** @internal */
  removeLink(handle: number): void {
    this.links.delete(handle);
  }

  get connectionCount(): number {
    return this.links.size;
  }

  /** Handles of the open connections. */
  get connectionHandles(): number[] {
    return [...this.links.keys()];
  }

  /** The connection behind `handle`, for tests and the air. */
  connection(handle: number): AirConnection | undefined {
    return this.links.get(handle)?.conn;
  }

  /** Own address for an Own_Address_Type (0x02/0x03 fall back to public/random: no RPA generation). */
  ownAddress(ownAddressType: number): { type: number; address: string } {
    return (ownAddressType & 1) === 1
      ? { type: 1, address: this.randomAddress ?? ZERO_ADDRESS }
      : { type: 0, address: this.publicAddress };
  }

  inFilterAcceptList(type: number, address: string): boolean {
    return this.filterAcceptList.has(`${type & 1}/${address}`);
  }

  /** Called by the air when advertising stopped on its own (connection, directed timeout). @internal */
  advertisingStopped(): void {
    this.advertisingEnabled = false;
  }

  /** Called by the air when the pending LE Create Connection completed. @internal */
  initiatingStopped(): void {
    this.initiating = undefined;
  }

  // ------------------------------------------------------------------ commands

  private onCommand(body: Uint8Array): void {
    this.stats.commands++;
    const d = decodeCommand(body);
    if (!d.ok) {
      if (d.reason === 'unknown-opcode') {
        this.stats.unknownCommands++;
        this.log.info({ opcode: d.opcode }, `unknown command ${formatOpcode(d.opcode)}: 0x01 Unknown HCI Command`);
        this.emit('CommandComplete', { numHciCommandPackets: 1, opcode: d.opcode, returnParameters: Uint8Array.of(HciStatus.UnknownHciCommand) });
        return;
      }
      if (d.opcode < 0) {
        this.log.warn(`command packet too short (${d.detail}); dropped`);
        return;
      }
      this.stats.badLengthCommands++;
      this.log.warn({ opcode: d.opcode }, `${d.detail}: 0x12 Invalid HCI Command Parameters`);
      this.rejectCommand(d.opcode, HciStatus.InvalidHciCommandParameters);
      return;
    }
    const handler = this.answered.has(d.name) ? (this.handlers[d.name] as ((p: unknown, op: number) => void) | undefined) : undefined;
    if (!handler) {
      this.stats.unknownCommands++;
      this.log.info(`command ${formatOpcode(d.opcode)} (${d.name}) is not supported by the ${this.firmware.name} firmware: 0x01 Unknown HCI Command`);
      this.emit('CommandComplete', { numHciCommandPackets: 1, opcode: d.opcode, returnParameters: Uint8Array.of(HciStatus.UnknownHciCommand) });
      return;
    }
    if (this.log.isLevelEnabled('debug')) this.log.debug({ command: d.name, params: redacted(d.params) }, 'command');
    handler(d.params, d.opcode);
  }

  /** Answers `opcode` with `status` in the form the command uses (Complete or Status). */
  private rejectCommand(opcode: number, status: number): void {
    const name = commandNameOf(opcode);
    if (name && Commands[name].reply === 'status') this.commandStatus(opcode, status);
    else if (name) this.emit('CommandComplete', { numHciCommandPackets: 1, opcode, returnParameters: this.zeroReturn(name, status) });
    else this.emit('CommandComplete', { numHciCommandPackets: 1, opcode, returnParameters: Uint8Array.of(status) });
  }

  private link(handle: number): LinkEnd | undefined {
    return this.links.get(handle);
  }

  /** HCI Reset: LE state back to power-up values; connections are dropped (peers time out). */
  private reset(): void {
    this.air.controllerReset(this);
    this.links.clear();
    this.aclInUse = 0;
    this.eventMask = DEFAULT_EVENT_MASK;
    this.eventMask2 = 0n;
    this.leEventMask = DEFAULT_LE_EVENT_MASK;
    this.randomAddress = undefined;
    this.advertising = defaultAdvertising();
    this.advertisingData = new Uint8Array(0);
    this.scanResponseData = new Uint8Array(0);
    this.advertisingEnabled = false;
    this.scan = defaultScan();
    this.scanEnabled = false;
    this.filterDuplicates = false;
    this.seenReports.clear();
    this.initiating = undefined;
    this.filterAcceptList.clear();
    this.resolvingList.clear();
    this.addressResolution = false;
    this.rpaTimeout = 900;
    this.suggestedTxOctets = 27;
    this.suggestedTxTime = 328;
    this.defaultPhy = { allPhys: 0x03, txPhys: 0x03, rxPhys: 0x03 };
  }

  private buildHandlers(): HandlerTable {
    const ok = HciStatus.Success;
    const h: HandlerTable = {
      // ---------------- Controller & baseband
      Reset: () => {
        this.reset();
        this.commandComplete('Reset', ok, {});
      },
      SetEventMask: (p) => {
        this.eventMask = p.mask;
        this.commandComplete('SetEventMask', ok, {});
      },
      SetEventMaskPage2: (p) => {
        this.eventMask2 = p.mask;
        this.commandComplete('SetEventMaskPage2', ok, {});
      },
      ReadAuthenticatedPayloadTimeout: (p) => {
        // Default 30 s (3000 x 10 ms). Core 5.4 Vol 4 Part E 7.3.93.
        const l = this.link(p.handle);
        this.commandComplete('ReadAuthenticatedPayloadTimeout', l ? ok : HciStatus.UnknownConnectionIdentifier, { handle: p.handle, timeout: l ? 3000 : 0 });
      },

      // ---------------- Informational
      ReadLocalVersionInformation: () =>
        this.commandComplete('ReadLocalVersionInformation', ok, {
          hciVersion: this.firmware.version.hciVersion,
          hciSubversion: this.hciSubversion,
          lmpVersion: this.firmware.version.lmpVersion,
          companyId: this.firmware.version.companyId,
          lmpSubversion: this.lmpSubversion,
        }),
      ReadLocalSupportedCommands: () => this.commandComplete('ReadLocalSupportedCommands', ok, { commands: this.supportedCommands() }),
      ReadLocalSupportedFeatures: () => this.commandComplete('ReadLocalSupportedFeatures', ok, { features: LMP_FEATURES.slice() }),
      ReadBufferSize: () =>
        // LE-only: the shared ACL buffers; no synchronous buffers.
        this.commandComplete('ReadBufferSize', ok, {
          aclDataPacketLength: this.aclBufferSize,
          syncDataPacketLength: 0,
          totalNumAclDataPackets: this.aclBuffers,
          totalNumSyncDataPackets: 0,
        }),
      ReadBdAddr: () => this.commandComplete('ReadBdAddr', ok, { address: this.publicAddress }),

      // ---------------- Status
      ReadRssi: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('ReadRssi', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, rssi: 127 });
        this.commandComplete('ReadRssi', ok, { handle: p.handle, rssi: l.conn.rssiFor(l) });
      },
      ReadEncryptionKeySize: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('ReadEncryptionKeySize', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, keySize: 0 });
        // An unencrypted link has no key: Insufficient Security (Core 5.4 Vol 4 Part E 7.5.7).
        if (!l.conn.encrypted) return this.commandComplete('ReadEncryptionKeySize', HciStatus.InsufficientSecurity, { handle: p.handle, keySize: 0 });
        this.commandComplete('ReadEncryptionKeySize', ok, { handle: p.handle, keySize: l.conn.keySize });
      },

      // ---------------- LE
      LeSetEventMask: (p) => {
        this.leEventMask = p.mask;
        this.commandComplete('LeSetEventMask', ok, {});
      },
      LeReadBufferSize: () =>
        this.commandComplete('LeReadBufferSize', ok, { leAclDataPacketLength: this.aclBufferSize, totalNumLeAclDataPackets: this.aclBuffers }),
      LeReadBufferSizeV2: () =>
        this.commandComplete('LeReadBufferSizeV2', ok, {
          leAclDataPacketLength: this.aclBufferSize,
          totalNumLeAclDataPackets: this.aclBuffers,
          isoDataPacketLength: 0,
          totalNumIsoDataPackets: 0,
        }),
      LeReadLocalSupportedFeatures: () => this.commandComplete('LeReadLocalSupportedFeatures', ok, { features: this.leFeatures() }),
      LeReadSupportedStates: () => this.commandComplete('LeReadSupportedStates', ok, { states: SUPPORTED_STATES }),
      LeSetRandomAddress: (p) => {
        // Command Disallowed while advertising, scanning or initiating (Core 5.4 Vol 4 Part E 7.8.4;
        // Zephyr ll_addr_set refuses while advertising, active scanning or initiating).
        if (this.advertisingEnabled || this.scanEnabled || this.initiating) {
          return this.commandComplete('LeSetRandomAddress', HciStatus.CommandDisallowed, {});
        }
        this.randomAddress = p.address;
        this.commandComplete('LeSetRandomAddress', ok, {});
      },
      LeSetAdvertisingParameters: (p) => {
        // Disallowed while advertising (Core 5.4 Vol 4 Part E 7.8.5; Zephyr ll_adv_params_set).
        if (this.advertisingEnabled) return this.commandComplete('LeSetAdvertisingParameters', HciStatus.CommandDisallowed, {});
        const directedHigh = p.advertisingType === AdvType.AdvDirectIndHigh;
        const bad =
          p.advertisingType > 4 ||
          p.ownAddressType > 3 ||
          p.peerAddressType > 1 ||
          (p.channelMap & 0x07) === 0 ||
          p.channelMap > 0x07 ||
          p.filterPolicy > 3 ||
          (!directedHigh && (p.intervalMin < 0x0020 || p.intervalMax > 0x4000 || p.intervalMin > p.intervalMax));
        if (bad) return this.commandComplete('LeSetAdvertisingParameters', HciStatus.InvalidHciCommandParameters, {});
        this.advertising = { ...p };
        this.commandComplete('LeSetAdvertisingParameters', ok, {});
      },
      LeReadAdvertisingPhysicalChannelTxPower: () => this.commandComplete('LeReadAdvertisingPhysicalChannelTxPower', ok, { txPowerLevel: 0 }),
      LeSetAdvertisingData: (p) => {
        this.advertisingData = p.data.slice();
        this.commandComplete('LeSetAdvertisingData', ok, {});
      },
      LeSetScanResponseData: (p) => {
        this.scanResponseData = p.data.slice();
        this.commandComplete('LeSetScanResponseData', ok, {});
      },
      LeSetAdvertisingEnable: (p) => {
        if (!p.enable) {
          this.advertisingEnabled = false;
          this.air.advertisingChanged(this);
          return this.commandComplete('LeSetAdvertisingEnable', ok, {});
        }
        const a = this.advertising;
        // Own address random but none set: Invalid HCI Command Parameters (Core 5.4 Vol 4 Part E 7.8.9).
        if ((a.ownAddressType & 1) === 1 && this.randomAddress === undefined) {
          return this.commandComplete('LeSetAdvertisingEnable', HciStatus.InvalidHciCommandParameters, {});
        }
        const connectable = a.advertisingType === AdvType.AdvInd || a.advertisingType === AdvType.AdvDirectIndHigh || a.advertisingType === AdvType.AdvDirectIndLow;
        // No room for another connection: Memory Capacity Exceeded (Zephyr ll_adv_enable).
        if (connectable && this.links.size >= this.maxConnections) {
          return this.commandComplete('LeSetAdvertisingEnable', HciStatus.MemoryCapacityExceeded, {});
        }
        if (!this.advertisingEnabled) {
          this.advertisingEnabled = true;
          this.advertisingSince = this.air.clock.now();
          this.air.advertisingChanged(this);
        }
        this.commandComplete('LeSetAdvertisingEnable', ok, {});
      },
      LeSetScanParameters: (p) => {
        // Disallowed while scanning (Core 5.4 Vol 4 Part E 7.8.10).
        if (this.scanEnabled) return this.commandComplete('LeSetScanParameters', HciStatus.CommandDisallowed, {});
        const bad =
          p.scanType > 1 ||
          p.interval < 0x0004 ||
          p.interval > 0x4000 ||
          p.window < 0x0004 ||
          p.window > p.interval ||
          p.ownAddressType > 3 ||
          p.filterPolicy > 3;
        if (bad) return this.commandComplete('LeSetScanParameters', HciStatus.InvalidHciCommandParameters, {});
        this.scan = { ...p };
        this.commandComplete('LeSetScanParameters', ok, {});
      },
      LeSetScanEnable: (p) => {
        if (p.enable) {
          if ((this.scan.ownAddressType & 1) === 1 && this.randomAddress === undefined) {
            return this.commandComplete('LeSetScanEnable', HciStatus.InvalidHciCommandParameters, {});
          }
          // Enabling again only updates Filter_Duplicates (Core 5.4 Vol 4 Part E 7.8.11).
          if (!this.scanEnabled || p.filterDuplicates !== this.filterDuplicates) this.seenReports.clear();
          this.scanEnabled = true;
          this.filterDuplicates = p.filterDuplicates;
        } else {
          this.scanEnabled = false;
          this.seenReports.clear();
        }
        this.commandComplete('LeSetScanEnable', ok, {});
      },
      LeCreateConnection: (p, opcode) => {
        // One pending LE Create Connection at a time (Zephyr ll_create_connection / ull_central.c).
        if (this.initiating) return this.commandStatus(opcode, HciStatus.CommandDisallowed);
        const bad =
          p.scanInterval < 0x0004 ||
          p.scanInterval > 0x4000 ||
          p.scanWindow < 0x0004 ||
          p.scanWindow > p.scanInterval ||
          p.initiatorFilterPolicy > 1 ||
          p.peerAddressType > 3 ||
          p.ownAddressType > 3 ||
          !connectionParamsValid({ intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout }) ||
          ((p.ownAddressType & 1) === 1 && this.randomAddress === undefined);
        if (bad) return this.commandStatus(opcode, HciStatus.InvalidHciCommandParameters);
        if (this.links.size >= this.maxConnections) return this.commandStatus(opcode, HciStatus.MemoryCapacityExceeded);
        this.initiating = { ...p };
        this.commandStatus(opcode, ok);
        this.air.initiatingChanged(this);
      },
      LeCreateConnectionCancel: () => {
        // Nothing pending: Command Disallowed (Core 5.4 Vol 4 Part E 7.8.13; Zephyr ll_connect_disable).
        const pending = this.initiating;
        if (!pending) return this.commandComplete('LeCreateConnectionCancel', HciStatus.CommandDisallowed, {});
        this.initiating = undefined;
        this.air.initiatingChanged(this);
        this.commandComplete('LeCreateConnectionCancel', ok, {});
        // Then the connection complete event with Unknown Connection Identifier (7.8.13).
        this.connectionComplete({
          status: HciStatus.UnknownConnectionIdentifier,
          handle: 0,
          role: 0,
          peerAddressType: pending.peerAddressType,
          peerAddress: pending.peerAddress,
          connInterval: 0,
          connLatency: 0,
          supervisionTimeout: 0,
          centralClockAccuracy: 0,
        });
      },
      LeReadFilterAcceptListSize: () => this.commandComplete('LeReadFilterAcceptListSize', ok, { size: this.falSize }),
      LeClearFilterAcceptList: () => {
        if (this.filterListInUse()) return this.commandComplete('LeClearFilterAcceptList', HciStatus.CommandDisallowed, {});
        this.filterAcceptList.clear();
        this.commandComplete('LeClearFilterAcceptList', ok, {});
      },
      LeAddDeviceToFilterAcceptList: (p) => {
        if (this.filterListInUse()) return this.commandComplete('LeAddDeviceToFilterAcceptList', HciStatus.CommandDisallowed, {});
        if (p.addressType > 1 && p.addressType !== 0xff) return this.commandComplete('LeAddDeviceToFilterAcceptList', HciStatus.InvalidHciCommandParameters, {});
        const key = `${p.addressType & 1}/${p.address}`;
        if (!this.filterAcceptList.has(key) && this.filterAcceptList.size >= this.falSize) {
          return this.commandComplete('LeAddDeviceToFilterAcceptList', HciStatus.MemoryCapacityExceeded, {});
        }
        this.filterAcceptList.add(key);
        this.commandComplete('LeAddDeviceToFilterAcceptList', ok, {});
      },
      LeRemoveDeviceFromFilterAcceptList: (p) => {
        if (this.filterListInUse()) return this.commandComplete('LeRemoveDeviceFromFilterAcceptList', HciStatus.CommandDisallowed, {});
        this.filterAcceptList.delete(`${p.addressType & 1}/${p.address}`);
        this.commandComplete('LeRemoveDeviceFromFilterAcceptList', ok, {});
      },
      LeEncrypt: (p) => {
        // On the HCI wire key, plaintext and result are little-endian (least significant octet
        // first); AES (FIPS-197) works on big-endian blocks. Core 5.4 Vol 4 Part E 7.8.22.
        const out = ecb(reversed(p.key), { disablePadding: true }).encrypt(reversed(p.plaintext));
        this.commandComplete('LeEncrypt', ok, { encrypted: reversed(out) });
      },
      LeRand: () => this.commandComplete('LeRand', ok, { random: this.random.bytes(8) }),
      LeReadSuggestedDefaultDataLength: () =>
        this.commandComplete('LeReadSuggestedDefaultDataLength', ok, { maxTxOctets: this.suggestedTxOctets, maxTxTime: this.suggestedTxTime }),
      LeWriteSuggestedDefaultDataLength: (p) => {
        if (p.maxTxOctets < 0x1b || p.maxTxOctets > 0xfb || p.maxTxTime < 0x148 || p.maxTxTime > 0x4290) {
          return this.commandComplete('LeWriteSuggestedDefaultDataLength', HciStatus.InvalidHciCommandParameters, {});
        }
        this.suggestedTxOctets = Math.min(p.maxTxOctets, this.maxDataLength);
        this.suggestedTxTime = p.maxTxTime;
        this.commandComplete('LeWriteSuggestedDefaultDataLength', ok, {});
      },
      LeReadMaximumDataLength: () => {
        const t = (this.maxDataLength + 14) * 8;
        this.commandComplete('LeReadMaximumDataLength', ok, { maxTxOctets: this.maxDataLength, maxTxTime: t, maxRxOctets: this.maxDataLength, maxRxTime: t });
      },
      LeAddDeviceToResolvingList: (p) => {
        if (this.addressResolution && (this.advertisingEnabled || this.scanEnabled || this.initiating)) {
          return this.commandComplete('LeAddDeviceToResolvingList', HciStatus.CommandDisallowed, {});
        }
        const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
        if (!this.resolvingList.has(key) && this.resolvingList.size >= this.rlSize) {
          return this.commandComplete('LeAddDeviceToResolvingList', HciStatus.MemoryCapacityExceeded, {});
        }
        this.resolvingList.set(key, { peerIrk: p.peerIrk.slice(), localIrk: p.localIrk.slice() });
        this.commandComplete('LeAddDeviceToResolvingList', ok, {});
      },
      LeRemoveDeviceFromResolvingList: (p) => {
        const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
        // Not in the list: Unknown Connection Identifier (Core 5.4 Vol 4 Part E 7.8.39).
        if (!this.resolvingList.delete(key)) return this.commandComplete('LeRemoveDeviceFromResolvingList', HciStatus.UnknownConnectionIdentifier, {});
        this.commandComplete('LeRemoveDeviceFromResolvingList', ok, {});
      },
      LeClearResolvingList: () => {
        this.resolvingList.clear();
        this.commandComplete('LeClearResolvingList', ok, {});
      },
      LeReadResolvingListSize: () => this.commandComplete('LeReadResolvingListSize', ok, { size: this.rlSize }),
      LeSetAddressResolutionEnable: (p) => {
        if (this.advertisingEnabled || this.scanEnabled || this.initiating) {
          return this.commandComplete('LeSetAddressResolutionEnable', HciStatus.CommandDisallowed, {});
        }
        this.addressResolution = p.enable;
        this.commandComplete('LeSetAddressResolutionEnable', ok, {});
      },
      LeSetResolvablePrivateAddressTimeout: (p) => {
        if (p.timeout < 1 || p.timeout > 0x0e10) return this.commandComplete('LeSetResolvablePrivateAddressTimeout', HciStatus.InvalidHciCommandParameters, {});
        this.rpaTimeout = p.timeout;
        this.commandComplete('LeSetResolvablePrivateAddressTimeout', ok, {});
      },
      LeSetPrivacyMode: (p) => {
        const key = `${p.peerIdentityAddressType & 1}/${p.peerIdentityAddress}`;
        if (!this.resolvingList.has(key)) return this.commandComplete('LeSetPrivacyMode', HciStatus.UnknownConnectionIdentifier, {});
        if (p.privacyMode > 1) return this.commandComplete('LeSetPrivacyMode', HciStatus.InvalidHciCommandParameters, {});
        this.commandComplete('LeSetPrivacyMode', ok, {});
      },
      LeReadPhy: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeReadPhy', HciStatus.UnknownConnectionIdentifier, { handle: p.handle, txPhy: 0, rxPhy: 0 });
        const { txPhy, rxPhy } = l.conn.phyFor(l);
        this.commandComplete('LeReadPhy', ok, { handle: p.handle, txPhy, rxPhy });
      },
      LeSetDefaultPhy: (p) => {
        const noTx = (p.allPhys & 1) === 1;
        const noRx = (p.allPhys & 2) === 2;
        // A preference must name at least one PHY (Core 5.4 Vol 4 Part E 7.8.48).
        if (p.allPhys > 3 || (!noTx && p.txPhys === 0) || (!noRx && p.rxPhys === 0)) {
          return this.commandComplete('LeSetDefaultPhy', HciStatus.InvalidHciCommandParameters, {});
        }
        // Only LE 1M and LE 2M are modelled: a preference for Coded alone is unsupported.
        if ((!noTx && (p.txPhys & 0x03) === 0) || (!noRx && (p.rxPhys & 0x03) === 0)) {
          return this.commandComplete('LeSetDefaultPhy', HciStatus.UnsupportedFeatureOrParameterValue, {});
        }
        this.defaultPhy = { allPhys: p.allPhys, txPhys: p.txPhys, rxPhys: p.rxPhys };
        this.commandComplete('LeSetDefaultPhy', ok, {});
      },

      // ---------------- connection-bound commands: status first, then the LL does the rest
      Disconnect: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        if (!DISCONNECT_REASONS.has(p.reason)) return this.commandStatus(opcode, HciStatus.InvalidHciCommandParameters);
        this.commandStatus(opcode, l.conn.hostDisconnect(l, p.reason));
      },
      ReadRemoteVersionInformation: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        this.commandStatus(opcode, ok);
        l.conn.readRemoteVersion(l);
      },
      LeReadRemoteFeatures: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        this.commandStatus(opcode, ok);
        l.conn.readRemoteFeatures(l);
      },
      LeConnectionUpdate: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        if (!connectionParamsValid({ intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout })) {
          return this.commandStatus(opcode, HciStatus.InvalidHciCommandParameters);
        }
        this.commandStatus(opcode, l.conn.hostConnectionUpdate(l, { intervalMin: p.connIntervalMin, intervalMax: p.connIntervalMax, latency: p.maxLatency, timeout: p.supervisionTimeout }));
      },
      LeRemoteConnectionParameterRequestReply: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeRemoteConnectionParameterRequestReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
        if (!connectionParamsValid({ intervalMin: p.intervalMin, intervalMax: p.intervalMax, latency: p.maxLatency, timeout: p.timeout })) {
          return this.commandComplete('LeRemoteConnectionParameterRequestReply', HciStatus.InvalidHciCommandParameters, { handle: p.handle });
        }
        const status = l.conn.hostConnParamReply(l, { intervalMin: p.intervalMin, intervalMax: p.intervalMax, latency: p.maxLatency, timeout: p.timeout });
        this.commandComplete('LeRemoteConnectionParameterRequestReply', status, { handle: p.handle });
      },
      LeRemoteConnectionParameterRequestNegativeReply: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeRemoteConnectionParameterRequestNegativeReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
        const status = l.conn.hostConnParamReply(l, p.reason);
        this.commandComplete('LeRemoteConnectionParameterRequestNegativeReply', status, { handle: p.handle });
      },
      LeSetDataLength: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeSetDataLength', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
        if (p.txOctets < 0x1b || p.txOctets > 0xfb || p.txTime < 0x148 || p.txTime > 0x4290) {
          return this.commandComplete('LeSetDataLength', HciStatus.InvalidHciCommandParameters, { handle: p.handle });
        }
        this.commandComplete('LeSetDataLength', ok, { handle: p.handle });
        l.conn.setDataLength(l, Math.min(p.txOctets, this.maxDataLength));
      },
      LeSetPhy: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        const noTx = (p.allPhys & 1) === 1;
        const noRx = (p.allPhys & 2) === 2;
        if (p.allPhys > 3 || (!noTx && p.txPhys === 0) || (!noRx && p.rxPhys === 0)) return this.commandStatus(opcode, HciStatus.InvalidHciCommandParameters);
        // Only 1M and 2M are modelled: asking for nothing but Coded is an unsupported value.
        if ((!noTx && (p.txPhys & 0x03) === 0) || (!noRx && (p.rxPhys & 0x03) === 0)) return this.commandStatus(opcode, HciStatus.UnsupportedFeatureOrParameterValue);
        this.commandStatus(opcode, ok);
        l.conn.setPhy(l, { tx: noTx ? 0x03 : p.txPhys & 0x03, rx: noRx ? 0x03 : p.rxPhys & 0x03 });
      },
      LeEnableEncryption: (p, opcode) => {
        const l = this.link(p.handle);
        if (!l) return this.commandStatus(opcode, HciStatus.UnknownConnectionIdentifier);
        // Central role only (Core 5.4 Vol 4 Part E 7.8.24).
        if (l.role !== 'central') return this.commandStatus(opcode, HciStatus.CommandDisallowed);
        this.commandStatus(opcode, l.conn.startEncryption(l, p.ltk.slice(), p.rand, p.ediv));
      },
      LeLongTermKeyRequestReply: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeLongTermKeyRequestReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
        // No LTK request pending: Command Disallowed, as Zephyr's LL answers
        // (subsys/bluetooth/controller/ll_sw/ull_llcp.c ull_cp_ltk_req_reply).
        this.commandComplete('LeLongTermKeyRequestReply', l.conn.ltkReply(l, p.ltk.slice()), { handle: p.handle });
      },
      LeLongTermKeyRequestNegativeReply: (p) => {
        const l = this.link(p.handle);
        if (!l) return this.commandComplete('LeLongTermKeyRequestNegativeReply', HciStatus.UnknownConnectionIdentifier, { handle: p.handle });
        // Same rule as the reply (Zephyr ull_llcp.c ull_cp_ltk_req_neq_reply).
        this.commandComplete('LeLongTermKeyRequestNegativeReply', l.conn.ltkReply(l, undefined), { handle: p.handle });
      },

      // ---------------- Zephyr vendor commands (Zephyr include/zephyr/bluetooth/hci_vs.h)
      ZephyrReadVersionInfo: () => this.commandComplete('ZephyrReadVersionInfo', ok, { ...this.firmware.zephyrVersion }),
      ZephyrReadSupportedCommands: () => this.commandComplete('ZephyrReadSupportedCommands', ok, { commands: this.vendorSupportedCommands() }),
      ZephyrReadSupportedFeatures: () => this.commandComplete('ZephyrReadSupportedFeatures', ok, { features: new Uint8Array(8) }),
      ZephyrWriteBdAddr: (p) => {
        this.publicAddress = p.address;
        this.commandComplete('ZephyrWriteBdAddr', ok, {});
      },
      ZephyrReadStaticAddresses: () =>
        this.commandComplete('ZephyrReadStaticAddresses', ok, { addresses: this.noStaticAddress ? [] : [{ address: this.staticAddress, identityRoot: this.identityRoot.slice() }] }),
      ZephyrReadKeyHierarchyRoots: () => this.commandComplete('ZephyrReadKeyHierarchyRoots', ok, { ir: this.ir.slice(), er: this.er.slice() }),
    };
    return h;
  }

  /** The filter accept list may not change while a filter policy uses it (Core 5.4 Vol 4 Part E 7.8.16). */
  private filterListInUse(): boolean {
    return (
      (this.advertisingEnabled && this.advertising.filterPolicy !== 0) ||
      (this.scanEnabled && (this.scan.filterPolicy & 1) === 1) ||
      (this.initiating !== undefined && this.initiating.initiatorFilterPolicy === 1)
    );
  }

  /**
   * LE Connection Complete, or LE Enhanced Connection Complete when the host unmasked it
   * (Core 5.4 Vol 4 Part E 7.7.65.10: then only the enhanced one is sent). @internal
   */
  connectionComplete(p: EventParams<'LeConnectionComplete'>, localRpa = ZERO_ADDRESS, peerRpa = ZERO_ADDRESS): void {
    if (this.wants('LeEnhancedConnectionComplete')) {
      this.emit('LeEnhancedConnectionComplete', { ...p, localResolvablePrivateAddress: localRpa, peerResolvablePrivateAddress: peerRpa });
    } else {
      this.emit('LeConnectionComplete', p);
    }
  }

  /**
   * Encryption Change [v2] when the host unmasked it (Event Mask Page 2 bit 25), otherwise
   * Encryption Change [v1]. Core 5.4 Vol 4 Part E 7.7.8. @internal
   */
  encryptionChanged(handle: number, status: number, enabled: boolean): void {
    if (this.wants('EncryptionChangeV2')) {
      this.emit('EncryptionChangeV2', { status, handle, enabled: enabled ? 1 : 0, keySize: enabled ? (this.links.get(handle)?.conn.keySize ?? 16) : 0 });
    } else {
      this.emit('EncryptionChange', { status, handle, enabled: enabled ? 1 : 0 });
    }
  }

  // ------------------------------------------------------------------ ACL in

  private onAcl(body: Uint8Array): void {
    this.stats.aclIn++;
    const d = decodeAcl(body);
    if (!d.ok) {
      this.stats.droppedAcl++;
      this.log.warn(`ACL packet dropped: ${d.error}`);
      return;
    }
    const { handle, boundary, broadcast, data } = d.packet;
    if (data.length > this.aclBufferSize) {
      this.stats.droppedAcl++;
      this.log.warn({ handle, length: data.length }, `ACL packet of ${data.length} bytes exceeds the ${this.aclBufferSize}-byte buffer; dropped`);
      return;
    }
    if (broadcast !== 0 || (boundary !== AclBoundary.FirstNonFlushable && boundary !== AclBoundary.Continuing)) {
      this.stats.droppedAcl++;
      this.log.warn({ handle, boundary, broadcast }, 'ACL packet with PB flag 0b10/0b11 or broadcast flags from the host is not valid on LE; dropped');
      return;
    }
    if (this.aclInUse >= this.aclBuffers) {
      this.stats.droppedAcl++;
      this.stats.bufferOverflows++;
      this.log.warn({ handle }, `host sent ACL data with all ${this.aclBuffers} buffers in use (credits ignored): Data Buffer Overflow`);
      this.emit('DataBufferOverflow', { linkType: 0x01 });
      return;
    }
    const l = this.links.get(handle);
    if (!l) {
      this.stats.droppedAcl++;
      this.log.warn({ handle }, `ACL packet for unknown connection handle 0x${handle.toString(16).padStart(4, '0')}; dropped`);
      return;
    }
    this.aclInUse++;
    // The framer hands out views into transport chunks; keep a copy while it waits for the air.
    l.conn.enqueueAcl(l, data.slice(), boundary === AclBoundary.FirstNonFlushable);
  }
}
