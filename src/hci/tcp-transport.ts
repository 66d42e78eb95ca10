/**
 * The same H:4 byte stream over TCP (`tcp://host:port`): to reach the virtual controller served
 * by `wearable-host sim-controller --tcp`, or a controller bridged by another tool. Plus {@link serveTcp}, the
 * server side the simulator uses.
 */
import { createConnection, createServer, type LookupFunction, type Server, type Socket } from 'node:net';
import { TypedEmitter } from '../util/emitter.js';
import { RealClock, type Clock } from '../util/clock.js';
import type { Transport, TransportEvents } from './transport.js';
import { TransportError, errnoCode, errorMessage } from './transport-errors.js';

export interface TcpTransportOptions {
  /** Give up connecting after this long. Default 5000 ms. */
  connectTimeoutMs?: number;
  clock?: Clock;
  /** Host name resolver (node:net's `lookup` option); default the OS resolver. */
  lookup?: LookupFunction;
}

/** Parses `tcp://host:port` (IPv6 hosts in brackets: `tcp://[::1]:9000`). Throws a 'not-found' TransportError on anything else. */
export function parseTcpUrl(url: string): { host: string; port: number } {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(url);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new TransportError('not-found', url, `not a TCP address: ${JSON.stringify(url)} (expected tcp://host:port, e.g. tcp://127.0.0.1:9000)`);
  }
  let host = m[1] as string;
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port };
}

function formatUrl(host: string, port: number): string {
  return host.includes(':') ? `tcp://[${host}]:${port}` : `tcp://${host}:${port}`;
}

/** One TCP connection carrying H:4. Create with {@link TcpTransport.connect} or get one from {@link serveTcp}. */
export class TcpTransport extends TypedEmitter<TransportEvents> implements Transport {
  private closed = false;
  private closeAsked = false;
  private lastError: Error | undefined;
  bytesWritten = 0;
  bytesReceived = 0;

  /** @internal use {@link TcpTransport.connect} */
  constructor(
    private readonly socket: Socket,
    readonly description: string,
  ) {
    super();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      this.emit('data', chunk);
    });
    socket.on('error', (err) => {
      this.lastError = err;
    });
    // The peer ended its side: end ours too, which leads to 'close'.
    socket.on('end', () => socket.end());
    socket.on('close', () => this.onSocketClose());
  }

  /** Connects to `tcp://host:port`. Rejects with 'not-found' (refused, unknown host), 'timeout' or 'io'. */
  static connect(url: string, opts: TcpTransportOptions = {}): Promise<TcpTransport> {
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseTcpUrl(url));
    } catch (err) {
      return Promise.reject(err);
    }
    const clock = opts.clock ?? new RealClock();
    const timeoutMs = opts.connectTimeoutMs ?? 5000;
    return new Promise<TcpTransport>((resolve, reject) => {
      const socket = opts.lookup ? createConnection({ host, port, lookup: opts.lookup }) : createConnection({ host, port });
      const timer = clock.setTimeout(() => {
        socket.destroy();
        reject(new TransportError('timeout', url, `no answer from ${url} within ${timeoutMs} ms: is the host reachable and the port open?`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clock.clearTimeout(timer);
        socket.destroy();
        reject(explainConnectError(url, err));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clock.clearTimeout(timer);
        socket.off('error', onError);
        resolve(new TcpTransport(socket, url));
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed && !this.closeAsked;
  }

  write(data: Uint8Array): Promise<void> {
    if (!this.isOpen) {
      return Promise.reject(new TransportError('closed', this.description, `${this.description} is closed: cannot write`));
    }
    this.bytesWritten += data.length;
    return new Promise<void>((resolve, reject) => {
      this.socket.write(data, (err) => {
        if (err) reject(new TransportError('lost', this.description, `write to ${this.description} failed: ${errorMessage(err)}`, { cause: err }));
        else resolve();
      });
    });
  }

  /** TCP cannot take back bytes the kernel already received; nothing to do. */
  flushInput(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closeAsked = true;
    return new Promise<void>((resolve) => {
      this.once('close', () => resolve());
      // Flush what was written, then close; destroy anyway if the peer never answers.
      this.socket.end(() => this.socket.destroy());
    });
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.closeAsked) {
      this.emit('close', undefined);
      return;
    }
    const cause = this.lastError;
    const err = new TransportError(
      'lost',
      this.description,
      cause
        ? `connection to ${this.description} lost: ${errorMessage(cause)}`
        : `connection to ${this.description} closed by peer`,
      cause ? { cause } : undefined,
    );
    this.emit('close', err);
  }
}

function explainConnectError(url: string, err: Error): TransportError {
  const code = errnoCode(err);
  switch (code) {
    case 'ECONNREFUSED':
      return new TransportError('not-found', url, `connection refused by ${url}: nothing listens there. Is the simulator running (\`wearable-host sim-controller --tcp PORT\` serves one)?`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new TransportError('not-found', url, `host not found for ${url} (${code}): check the host name`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new TransportError('not-found', url, `${url} is unreachable (${code}): check the address and the network`, { cause: err });
    case 'ETIMEDOUT':
      return new TransportError('timeout', url, `connecting to ${url} timed out: is the host reachable and the port open?`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new TransportError('permission', url, `not allowed to connect to ${url} (${code})`, { cause: err });
    default:
      return new TransportError('io', url, `cannot connect to ${url}: ${errorMessage(err)}`, { cause: err });
  }
}

export interface TcpServer {
  /** `tcp://host:port` clients can connect to (the real port when 0 was asked). */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Stops listening and closes every connection still open. */
  close(): Promise<void>;
}

/**
 * Listens on `host:port` (port 0 picks a free one) and hands each connection to
 * `onConnection` as a {@link TcpTransport}. Rejects with 'busy' when the port is taken.
 */
export function serveTcp(port: number, host: string, onConnection: (transport: TcpTransport) => void): Promise<TcpServer> {
  const connections = new Set<TcpTransport>();
  const server: Server = createServer((socket) => {
    const desc = formatUrl(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const t = new TcpTransport(socket, desc);
    connections.add(t);
    t.once('close', () => connections.delete(t));
    onConnection(t);
  });
  return new Promise<TcpServer>((resolve, reject) => {
    const where = formatUrl(host, port);
    const onError = (err: Error): void => {
      const code = errnoCode(err);
      if (code === 'EADDRINUSE') reject(new TransportError('busy', where, `cannot listen on ${where}: the port is in use; pick another with --serve tcp://${host}:<port>`, { cause: err }));
      else if (code === 'EACCES') reject(new TransportError('permission', where, `not allowed to listen on ${where}: ports below 1024 need privileges`, { cause: err }));
      else reject(new TransportError('io', where, `cannot listen on ${where}: ${errorMessage(err)}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address();
      const realPort = typeof addr === 'object' && addr ? addr.port : port;
      const url = formatUrl(host, realPort);
      let closing: Promise<void> | undefined;
      resolve({
        url,
        port: realPort,
        host,
        close(): Promise<void> {
          closing ??= new Promise<void>((res) => {
            server.close(() => res());
            for (const c of connections) void c.close();
          });
          return closing;
        },
      });
    });
  });
}
