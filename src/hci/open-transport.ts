/**
 * One entry point for `--port`: `tcp://host:port` opens a TCP connection, anything else a serial
 * port (`/dev/serial/by-id/...`, `/dev/ttyACM0`, `COM3`; an optional `serial:` prefix is allowed).
 */
import type { Transport } from './transport.js';
import { SerialTransport, type SerialTransportOptions } from './serial-transport.js';
import { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
import { TransportError } from './transport-errors.js';

export type OpenTransportOptions = SerialTransportOptions & TcpTransportOptions;

export type TransportSpec = { kind: 'tcp'; url: string } | { kind: 'serial'; path: string };

/** Says which transport a `--port` value names, without opening anything. */
export function parseTransportSpec(spec: string): TransportSpec {
  const s = spec.trim();
  if (s === '') throw new TransportError('not-found', spec, 'no port given: pass --port /dev/serial/by-id/... or --port tcp://host:port');
  if (/^tcp:\/\//i.test(s)) return { kind: 'tcp', url: 'tcp://' + s.slice(6) };
  if (/^serial:/i.test(s)) return { kind: 'serial', path: s.slice(7) };
  return { kind: 'serial', path: s };
}

export async function openTransport(spec: string, opts: OpenTransportOptions = {}): Promise<Transport> {
  const parsed = parseTransportSpec(spec);
  if (parsed.kind === 'tcp') return TcpTransport.connect(parsed.url, opts);
  return SerialTransport.open(parsed.path, opts);
}
