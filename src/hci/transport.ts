/**
 * A byte-stream transport carrying H:4 (UART transport, Core 5.4 Vol 4 Part A): serial port,
 * TCP socket or in-memory pipe. It moves raw bytes only; framing is the H:4 framer's job.
 */
import type { TypedEmitter } from '../util/emitter.js';

export type TransportEvents = {
  /** Bytes received, in arrival order, chunked arbitrarily. */
  data: [Uint8Array];
  /** The transport closed; `error` is set when it was not asked to (USB unplug, peer closed, I/O error). */
  close: [Error | undefined];
};

export interface Transport extends TypedEmitter<TransportEvents> {
  /** Human-readable, names the port: `/dev/ttyACM0 @ 1000000 baud`, `tcp://127.0.0.1:9000`, `memory:a`. */
  readonly description: string;
  readonly isOpen: boolean;
  /** Writes bytes; resolves once they were handed to the OS (or the peer, in memory). Rejects when closed. */
  write(data: Uint8Array): Promise<void>;
  /** Discards bytes received and not yet delivered, where the transport can (stale input before HCI Reset). */
  flushInput(): Promise<void>;
  close(): Promise<void>;
}
