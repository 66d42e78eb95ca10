/**
 * GATT caching for one client on one connection (Core 5.4 Vol 3 Part G 2.5.2): whether the client
 * is change-aware of our database, the robust caching rules while it is not (Database Out Of Sync,
 * commands ignored, only Service Changed sent), and Service Changed itself (Vol 3 Part G 7.1):
 * indicated to a client that missed a change, and to a bonded client only once the link is
 * encrypted. Whether a bonded client is aware persists in its bond record (the database hash it
 * last saw), through its {@link ClientConfiguration}.
 */
import type { Logger } from '../util/log.js';
import type { BondRecord } from '../bonds/types.js';
import { AttErrorCode, encodeErrorResponse, type AttRequest } from '../att/pdu.js';
import type { GattConnection, GattDatabase } from './database.js';
import { GattUuid } from './uuid.js';
import type { ClientConfiguration } from './client-config.js';

/** What caching needs of the connection's server: the client, its link, and a way to indicate. */
export interface CachingConnection extends Pick<GattConnection, 'peer' | 'identity' | 'security' | 'isSubscribed'> {
  indicate(valueHandle: number, value: Uint8Array): Promise<boolean>;
}

export interface ChangeAwarenessOptions {
  db: GattDatabase;
  client: ClientConfiguration;
  connection: CachingConnection;
  log: Logger;
  /** The client became change-aware of the current database. */
  onChangeAware(): void;
}

export class ChangeAwareness {
  private readonly db: GattDatabase;
  private readonly client: ClientConfiguration;
  private readonly connection: CachingConnection;
  private readonly log: Logger;
  private readonly onChangeAware: () => void;

  private _changeAware = true;
  /** Database Out Of Sync was sent since the client became change-unaware. */
  private outOfSyncSent = false;
  /** The client read the Database Hash while change-unaware. */
  private hashReadWhileUnaware = false;
  private serviceChangedDeferred = false;

  constructor(opts: ChangeAwarenessOptions) {
    this.db = opts.db;
    this.client = opts.client;
    this.connection = opts.connection;
    this.log = opts.log;
    this.onChangeAware = opts.onChangeAware;
    // A bonded client starts change-unaware when the database changed since it last saw it
    // (Core 5.4 Vol 3 Part G 2.5.2.1). Identity comes from address resolution.
    const bond = this.client.bond();
    if (bond) {
      // An unknown last-seen hash (bond older than caching) counts as aware; a matching hash
      // explicitly marked change-unaware (e.g. by the application after a change) does not.
      const seen = bond.gatt.databaseHash;
      this._changeAware = seen === undefined || (seen === this.db.hashHex && bond.gatt.changeAware !== false);
    }
  }

  /** Whether the client is change-aware of this database. Core 5.4 Vol 3 Part G 2.5.2.1. */
  get changeAware(): boolean {
    return this._changeAware;
  }

  /**
   * The client is change-unaware and uses robust caching: it gets nothing but Service Changed and
   * its commands are ignored. Core 5.4 Vol 3 Part G 2.5.2.1.
   */
  get restricted(): boolean {
    return !this._changeAware && this.client.robustCaching;
  }

  /** The client read the Database Hash. */
  onHashRead(): void {
    if (!this._changeAware) this.hashReadWhileUnaware = true;
  }

  /**
   * The link is encrypted (`bond` is the client's bond, its CCCDs just restored): record the
   * database an aware client now sees, and indicate Service Changed when it missed a change (or
   * one was deferred until encryption). Never before encryption: iOS drops a link that gets
   * Service Changed before it encrypted (docs/field-notes.md, weliem/bluez_inc #117).
   */
  onEncrypted(bond: BondRecord | undefined): void {
    if (bond) {
      if (this._changeAware) {
        if (bond.gatt.databaseHash !== this.db.hashHex || bond.gatt.clientFeatures !== this.client.features || !bond.gatt.changeAware) {
          this.client.persistGatt({ databaseHash: this.db.hashHex, changeAware: true });
        }
      } else {
        this.serviceChangedDeferred = true;
      }
    }
    if (this.serviceChangedDeferred) {
      this.serviceChangedDeferred = false;
      this.sendServiceChanged();
    }
  }

  /**
   * Indicates Service Changed for 0x0001..0xFFFF (Core 5.4 Vol 3 Part G 7.1) if the client
   * subscribed; to a bonded client only once the link is encrypted (deferred until then).
   */
  indicateServiceChanged(): void {
    if (this.connection.identity && !this.connection.security.encrypted) {
      this.serviceChangedDeferred = true;
      return;
    }
    this.sendServiceChanged();
  }

  private sendServiceChanged(): void {
    const h = this.db.serviceChangedHandle;
    if (h === undefined || !this.connection.isSubscribed(h, 'indicate')) return;
    this.log.info({ peer: this.connection.peer.address }, 'database changed since this client last saw it: indicating Service Changed');
    this.connection.indicate(h, Uint8Array.of(0x01, 0x00, 0xff, 0xff)).catch((err: unknown) => {
      this.log.info({ err, peer: this.connection.peer.address }, 'Service Changed indication not confirmed');
    });
  }

  private becomeChangeAware(why: string): void {
    if (this._changeAware) return;
    this._changeAware = true;
    this.outOfSyncSent = false;
    this.hashReadWhileUnaware = false;
    this.log.info({ peer: this.connection.peer.address, why }, 'client is change-aware of the database');
    this.client.persistGatt({ databaseHash: this.db.hashHex, changeAware: true });
    this.onChangeAware();
  }

  /** Our indication was confirmed. */
  onConfirmation(handle: number): void {
    if (handle === this.db.serviceChangedHandle) this.becomeChangeAware('Service Changed confirmed');
  }

  /**
   * Robust caching (Core 5.4 Vol 3 Part G 2.5.2.1), before a request is answered: the ATT_ERROR_RSP
   * to send instead, or undefined to answer it. A change-unaware client becomes change-aware
   * when it sends a request after we sent it Database Out Of Sync, or after it read the Database
   * Hash. Until then a robust-caching client gets 0x12 (once) for requests at attribute handles,
   * and for Read By Type of anything but «Include»/«Characteristic» over a range other than
   * 0x0001..0xFFFF; discovery requests are served.
   */
  gate(req: AttRequest, opcode: number): Uint8Array | undefined {
    if (this._changeAware) return undefined;
    if (this.outOfSyncSent || this.hashReadWhileUnaware) {
      this.becomeChangeAware(this.outOfSyncSent ? 'request after Database Out Of Sync' : 'request after reading the Database Hash');
      return undefined;
    }
    if (!this.client.robustCaching) return undefined;
    let handle: number | undefined;
    switch (req.type) {
      case 'readRequest':
      case 'readBlobRequest':
      case 'writeRequest':
      case 'prepareWriteRequest':
        handle = req.handle;
        break;
      case 'readMultipleRequest':
      case 'readMultipleVariableRequest':
        handle = req.handles[0];
        break;
      case 'readByTypeRequest': {
        const t = req.attributeType.length === 2 ? (req.attributeType[0] as number) | ((req.attributeType[1] as number) << 8) : -1;
        const discovery = t === GattUuid.include || t === GattUuid.characteristic;
        const fullRange = req.startHandle === 0x0001 && req.endHandle === 0xffff;
        if (!discovery && !fullRange) handle = req.startHandle;
        break;
      }
      default:
        break;
    }
    if (handle === undefined) return undefined;
    this.outOfSyncSent = true;
    this.log.info({ peer: this.connection.peer.address }, 'change-unaware client: Database Out Of Sync');
    return encodeErrorResponse(opcode, handle, AttErrorCode.databaseOutOfSync);
  }
}
