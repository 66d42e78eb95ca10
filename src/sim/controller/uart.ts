/**
 * The virtual controller's UART to the host, as hci_uart has it: the attached transport, the H:4
 * framer cutting its bytes into command and ACL packets (other type bytes are skipped), the
 * bytes sent back, and the silence of a hung firmware (input swallowed, nothing sent).
 */
import { H4Framer, H4Type, type H4FramerError } from '../../hci/h4.js';
import type { Transport } from '../../hci/transport.js';
import type { Logger } from '../../util/log.js';

/** What the UART hands to the controller. */
export interface UartHandlers {
  /** One complete H:4 packet, type byte first (a view into the transport's chunk). */
  onPacket(packet: Uint8Array): void;
  onFramingError(e: H4FramerError): void;
  /** The framer threw on a chunk: the controller counts and logs it. */
  onInputError(err: unknown): void;
}

export class ControllerUart {
  /** The firmware hangs: bytes from the host are swallowed and nothing is sent. */
  hung = false;
  private current: Transport | undefined;
  private framer: H4Framer | undefined;
  private readonly onData = (chunk: Uint8Array): void => this.receive(chunk);
  private readonly onClose = (): void => this.detach();

  constructor(
    private readonly log: Logger,
    private readonly handlers: UartHandlers,
  ) {}

  /** The transport currently attached, if any. */
  get transport(): Transport | undefined {
    return this.current;
  }

  /** Listens to `transport` with a fresh framer; a previous transport is let go (not closed). */
  attach(transport: Transport): void {
    this.detach();
    this.current = transport;
    this.framer = new H4Framer({
      direction: 'controller',
      // hci_uart without CONFIG_BT_ISO takes commands and ACL only; any other type byte is skipped.
      accept: [H4Type.Command, H4Type.Acl],
      onPacket: (p) => this.handlers.onPacket(p),
      onError: (e) => this.handlers.onFramingError(e),
    });
    transport.on('data', this.onData);
    transport.on('close', this.onClose);
    this.log.debug({ transport: transport.description }, 'host attached');
  }

  /** Stops listening to the current transport. */
  detach(): void {
    const t = this.current;
    if (!t) return;
    t.off('data', this.onData);
    t.off('close', this.onClose);
    this.current = undefined;
    this.framer = undefined;
    this.log.debug({ transport: t.description }, 'host detached');
  }

  /** Sends `bytes` to the host unless hung or nothing is attached and open. */
  write(bytes: Uint8Array): void {
    if (this.hung) return;
    const t = this.current;
    if (!t || !t.isOpen) return;
    t.write(bytes).catch((err: unknown) => this.log.debug({ err }, 'write to host failed'));
  }

  private receive(chunk: Uint8Array): void {
    if (this.hung) return;
    const f = this.framer;
    if (!f) return;
    try {
      f.push(chunk);
    } catch (err) {
      this.handlers.onInputError(err);
    }
  }
}
