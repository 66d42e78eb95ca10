/**
 * The LL control procedures of a connection on the virtual air, besides encryption: host
 * Disconnect, connection parameter update (with the Connection Parameters Request), Data Length
 * Update, PHY Update, and the remote version and feature exchanges. Each runs as LL PDUs on
 * connection events, one procedure at a time. Core 5.4 Vol 6 Part B 5.1.
 */
import { HciStatus } from '../../hci/status.js';
import { EncryptedLink } from './encryption.js';
import type { ConnParams, LinkEnd, Side } from './link.js';

/** connMaxTxTime reported for `octets` (LE 1M with MIC). Core 5.4 Vol 6 Part B 4.5.10. */
function octetsToTime(octets: number): number {
  return (octets + 14) * 8;
}

interface UpdateProcedure {
  initiator: Side;
  params: ConnParams;
  /** The side whose host must answer an LE Remote Connection Parameter Request. */
  awaiting: Side | undefined;
}

/** A connection between two controllers. */
export class AirConnection extends EncryptedLink {
  private update: UpdateProcedure | undefined;

  /** Called once the connection exists: autonomous Data Length Update if a host asked for more than 27 octets. */
  start(): void {
    if (this.central.txPref > 27 || this.peripheral.txPref > 27) {
      this.enqueueProc(() => this.atEvent(1, () => this.dataLengthExchange()));
    }
  }

  // ---- disconnection

  /** Host Disconnect: LL_TERMINATE_IND on the next event. Returns the Command Status code. */
  hostDisconnect(end: LinkEnd, reason: number): number {
    if (this.terminating || this.closed) return HciStatus.CommandDisallowed;
    this.terminating = true;
    const s = this.side(end);
    this.atEvent(1, () => {
      // The initiator's host hears "terminated by local host", the peer's host the reason sent.
      this.closeWith(
        s.role === 'central' ? HciStatus.ConnectionTerminatedByLocalHost : reason,
        s.role === 'central' ? reason : HciStatus.ConnectionTerminatedByLocalHost,
      );
    });
    return HciStatus.Success;
  }

  // ---- connection parameters (Core 5.4 Vol 6 Part B 5.1.1 and 5.1.7)

  /** LE Connection Update from either host. Returns the Command Status code. */
  hostConnectionUpdate(end: LinkEnd, params: ConnParams): number {
    if (this.update || this.terminating || this.closed) return HciStatus.CommandDisallowed;
    const u: UpdateProcedure = { initiator: this.side(end), params, awaiting: undefined };
    this.update = u;
    this.enqueueProc(() => this.atEvent(1, () => this.connParamRequestArrives(u)));
    return HciStatus.Success;
  }

  /** LL_CONNECTION_PARAM_REQ reaches the responder. */
  private connParamRequestArrives(u: UpdateProcedure): void {
    const resp = u.initiator.peer;
    if (resp.ctrl.wants('LeRemoteConnectionParameterRequest')) {
      u.awaiting = resp;
      resp.ctrl.emit('LeRemoteConnectionParameterRequest', {
        handle: resp.handle,
        intervalMin: u.params.intervalMin,
        intervalMax: u.params.intervalMax,
        maxLatency: u.params.latency,
        timeout: u.params.timeout,
      });
      this.startResponseTimer();
      return;
    }
    // Event masked: the responder rejects with Unsupported Remote Feature (Zephyr hci.c
    // le_conn_param_req). A central initiator then falls back to the Connection Update procedure.
    if (u.initiator.role === 'central') this.scheduleInstant(u, u.params);
    else this.atEvent(1, () => this.finishUpdate(u, HciStatus.UnsupportedRemoteFeature));
  }

  /** LE Remote Connection Parameter Request Reply (params) or Negative Reply (reason). */
  hostConnParamReply(end: LinkEnd, answer: ConnParams | number): number {
    const u = this.update;
    const s = this.side(end);
    if (!u || u.awaiting !== s || this.closed) return HciStatus.CommandDisallowed;
    u.awaiting = undefined;
    this.stopResponseTimer();
    if (typeof answer === 'number') this.atEvent(1, () => this.finishUpdate(u, answer));
    else this.scheduleInstant(u, answer);
    return HciStatus.Success;
  }

  /** LL_CONNECTION_UPDATE_IND goes out; the new parameters apply at the instant 6 events later. */
  private scheduleInstant(u: UpdateProcedure, p: ConnParams): void {
    this.atEvent(1, () =>
      this.atEvent(6, () => {
        const before = { interval: this.interval, latency: this.latency, timeout: this.timeout };
        const oldMs = this.intervalMs();
        this.interval = p.intervalMax;
        this.latency = p.latency;
        this.timeout = p.timeout;
        const newMs = this.intervalMs();
        if (oldMs > 0 && newMs > 0) this.anchor = this.clock.now() - this.counter * newMs;
        const changed = before.interval !== this.interval || before.latency !== this.latency || before.timeout !== this.timeout;
        this.update = undefined;
        for (const s of [this.central, this.peripheral]) {
          if (s === u.initiator || changed) {
            s.ctrl.emit('LeConnectionUpdateComplete', {
              status: HciStatus.Success,
              handle: s.handle,
              connInterval: this.interval,
              connLatency: this.latency,
              supervisionTimeout: this.timeout,
            });
          }
        }
        this.procDone();
      }),
    );
  }

  private finishUpdate(u: UpdateProcedure, status: number): void {
    this.update = undefined;
    const s = u.initiator;
    s.ctrl.emit('LeConnectionUpdateComplete', {
      status,
      handle: s.handle,
      connInterval: this.interval,
      connLatency: this.latency,
      supervisionTimeout: this.timeout,
    });
    this.procDone();
  }

  // ---- data length (Core 5.4 Vol 6 Part B 5.1.9)

  /** LE Set Data Length: LL_LENGTH_REQ/RSP, then Data Length Change where something changed. */
  setDataLength(end: LinkEnd, txOctets: number): void {
    this.side(end).txPref = txOctets;
    this.enqueueProc(() => this.atEvent(1, () => this.dataLengthExchange()));
  }

  private dataLengthExchange(): void {
    const c = this.central;
    const p = this.peripheral;
    const c2p = Math.min(c.txPref, c.ctrl.maxDataLength, p.ctrl.maxDataLength);
    const p2c = Math.min(p.txPref, p.ctrl.maxDataLength, c.ctrl.maxDataLength);
    if (c2p !== this.c2pOctets || p2c !== this.p2cOctets) {
      this.c2pOctets = c2p;
      this.p2cOctets = p2c;
      c.ctrl.emit('LeDataLengthChange', { handle: c.handle, maxTxOctets: c2p, maxTxTime: octetsToTime(c2p), maxRxOctets: p2c, maxRxTime: octetsToTime(p2c) });
      p.ctrl.emit('LeDataLengthChange', { handle: p.handle, maxTxOctets: p2c, maxTxTime: octetsToTime(p2c), maxRxOctets: c2p, maxRxTime: octetsToTime(c2p) });
    }
    this.procDone();
  }

  // ---- PHY (Core 5.4 Vol 6 Part B 5.1.10)

  /** LE Set PHY with the host's TX/RX PHY masks (bit 0 LE 1M, bit 1 LE 2M). */
  setPhy(end: LinkEnd, pref: { tx: number; rx: number }): void {
    const s = this.side(end);
    this.enqueueProc(() =>
      this.atEvent(1, () => {
        const d = s.peer.ctrl.defaultPhy;
        const peerTx = (d.allPhys & 1) === 1 ? 0x03 : d.txPhys & 0x03;
        const peerRx = (d.allPhys & 2) === 2 ? 0x03 : d.rxPhys & 0x03;
        const pick = (m: number): number => ((m & 2) === 2 ? 2 : 1);
        const myTx = pick(pref.tx & peerRx);
        const myRx = pick(pref.rx & peerTx);
        const c2p = s.role === 'central' ? myTx : myRx;
        const p2c = s.role === 'central' ? myRx : myTx;
        const report = (x: Side): void => {
          const v = this.phyFor(x);
          x.ctrl.emit('LePhyUpdateComplete', { status: HciStatus.Success, handle: x.handle, txPhy: v.txPhy, rxPhy: v.rxPhy });
        };
        if (c2p === this.c2pPhy && p2c === this.p2cPhy) {
          // Nothing changes: no instant; only the initiating host hears about it.
          report(s);
          this.procDone();
          return;
        }
        this.atEvent(6, () => {
          this.c2pPhy = c2p;
          this.p2cPhy = p2c;
          report(this.central);
          report(this.peripheral);
          this.procDone();
        });
      }),
    );
  }

  // ---- remote information

  /** Read Remote Version Information: LL_VERSION_IND exchange. */
  readRemoteVersion(end: LinkEnd): void {
    const s = this.side(end);
    this.atEvent(1, () =>
      s.ctrl.emit('ReadRemoteVersionInformationComplete', {
        status: HciStatus.Success,
        handle: s.handle,
        version: s.peer.ctrl.firmware.version.lmpVersion,
        companyId: s.peer.ctrl.firmware.version.companyId,
        subversion: s.peer.ctrl.lmpSubversion,
      }),
    );
  }

  /** LE Read Remote Features: LL_FEATURE_REQ (or LL_PERIPHERAL_FEATURE_REQ) exchange. */
  readRemoteFeatures(end: LinkEnd): void {
    const s = this.side(end);
    this.atEvent(1, () =>
      s.ctrl.emit('LeReadRemoteFeaturesComplete', { status: HciStatus.Success, handle: s.handle, features: s.peer.ctrl.leFeatures() }),
    );
  }
}
