/**
 * A virtual nRF5340 network core running Zephyr's `hci_uart` sample with the SoftDevice
 * Controller, seen from its UART: H:4 in, H:4 out. It is a product, not a mock: the same host
 * code runs against it and against a DK, so it answers the way the real one does, including its
 * refusals. The radio side lives in {@link VirtualAir}; this class is the HCI front end: command
 * dispatch, events and their masks, ACL buffers and credits, the link table, and the fault hooks
 * (power-off, hang, resume, silent reboot). In src/sim/controller/: the UART with its H:4
 * framer (uart.ts), the command handlers (one module per area), the options and LE state types
 * (params.ts).
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
import { Commands, commandNameOf, decodeCommand, encodeReturn, formatOpcode, type CommandName, type CommandReturn } from '../hci/commands.js';
import { encodeEvent, Events, type EventName, type EventParams } from '../hci/events.js';
import { decodeAcl, AclBoundary } from '../hci/acl.js';
import { H4Type, encodeH4, type H4FramerError } from '../hci/h4.js';
import { HciStatus } from '../hci/status.js';
import type { Codec } from '../hci/codec.js';
import type { Transport } from '../hci/transport.js';
import { toHex } from '../util/bytes.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { RandomSource } from '../util/random.js';
import { COMMAND_BITS, DEFAULT_EVENT_MASK, DEFAULT_LE_EVENT_MASK, LeFeature, VENDOR_COMMAND_BITS, bitmapOf, eventAllowed } from './capabilities.js';
import { PRIVACY_COMMANDS, firmwareProfile, type FirmwareProfile } from './firmware.js';
import type { AirConnection, LinkEnd, VirtualAir } from './air.js';
import type { CommandContext, HandlerTable } from './controller/context.js';
import { infoHandlers } from './controller/info-commands.js';
import { leHandlers } from './controller/le-commands.js';
import { linkHandlers } from './controller/link-commands.js';
import { vendorHandlers } from './controller/vendor-commands.js';
import { ControllerUart } from './controller/uart.js';
import {
  ZERO_ADDRESS,
  controllerIdentity,
  defaultAdvertising,
  defaultScan,
  firmwareWithOverrides,
  type AdvertisingParams,
  type CreateConnectionParams,
  type ScanParams,
  type VirtualControllerOptions,
  type VirtualControllerStats,
} from './controller/params.js';

export { AdvType, connectionParamsValid } from './controller/params.js';
export type { AdvertisingParams, CreateConnectionParams, ScanParams, VirtualControllerOptions, VirtualControllerStats };

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
  private readonly uart: ControllerUart;
  private powered = true;
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
    this.uart = new ControllerUart(this.log, {
      onPacket: (p) => this.onPacket(p),
      onFramingError: (e) => this.onFramingError(e),
      onInputError: (err) => this.internalError(err, 'H:4 input'),
    });
    this.random = opts.random ?? air.random;
    this.firmware = firmwareWithOverrides(firmwareProfile(opts.firmware ?? air.options.firmware), opts);
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
    const id = controllerIdentity(this.seed);
    this.staticAddress = id.staticAddress;
    this.identityRoot = id.identityRoot;
    this.ir = id.ir;
    this.er = id.er;
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
    return this.uart.transport;
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
    this.uart.attach(transport);
  }

  /** Stops listening to the current transport (the controller keeps running on the air). */
  detachTransport(): void {
    this.uart.detach();
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
    this.uart.hung = true;
    this.air.controllerReset(this);
    this.advertisingEnabled = false;
    this.scanEnabled = false;
    this.initiating = undefined;
  }

  /** A hang ends by itself: the firmware answers again with its state as it was (its links lost). */
  resume(): void {
    this.uart.hung = false;
  }

  /**
   * The network core reboots (watchdog, brown-out, RESET) while the host keeps the serial port
   * open: every setting the host made is back at its power-up value, links are lost without a
   * Disconnection Complete, half-received bytes are forgotten. Nothing is sent to say so unless
   * `announce` (hci_uart built with CONFIG_BT_WAIT_NOP sends a Command Complete for opcode 0x0000
   * once up, Zephyr samples/bluetooth/hci_uart/src/main.c).
   */
  rebootSilently(opts: { announce?: boolean } = {}): void {
    this.uart.hung = false;
    this.reset();
    const t = this.uart.transport;
    if (t) this.attach(t);
    if (opts.announce) this.emit('CommandComplete', { numHciCommandPackets: 1, opcode: 0x0000, returnParameters: new Uint8Array(0) });
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

  /** Sends an event if the host's event masks let it through. @internal */
  emit<N extends EventName>(name: N, params: EventParams<N>): void {
    const subevent = (Events[name] as { subevent?: number }).subevent;
    if (!eventAllowed(name, subevent, this)) {
      this.log.debug({ event: name }, 'event masked by the host');
      return;
    }
    this.stats.events++;
    if (this.log.isLevelEnabled('debug') && name !== 'CommandComplete') this.log.debug({ event: name, params }, 'event');
    this.uart.write(encodeH4(H4Type.Event, encodeEvent(name, params)));
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
    this.uart.write(out);
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

  /** The command handlers, one table per area (src/sim/controller/), over what they may use of this class. */
  private buildHandlers(): HandlerTable {
    const cx: CommandContext = {
      ctrl: this,
      complete: (name, status, ret) => this.commandComplete(name, status, ret),
      status: (opcode, status) => this.commandStatus(opcode, status),
      link: (handle) => this.link(handle),
      reset: () => this.reset(),
      random: this.random,
      falSize: this.falSize,
      rlSize: this.rlSize,
      hasStaticAddress: () => !this.noStaticAddress,
    };
    return { ...infoHandlers(cx), ...leHandlers(cx), ...linkHandlers(cx), ...vendorHandlers(cx) };
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
