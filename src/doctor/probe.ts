/**
 * One HCI Reset attempt over an open transport, judged from the raw bytes: the doctor's way of
 * telling "answers", "silent" and "garbage" apart before any driver is involved. A controller
 * running Zephyr `hci_uart` sends nothing until it gets a command (no start-up event, docs/field-notes.md),
 * so the only way to know it is there is to ask. Core 5.4 Vol 4 Part E 7.3.2 (Reset),
 * 7.7.14 (Command Complete).
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import { toHex } from '../util/bytes.js';
import type { Transport } from '../hci/transport.js';
import { H4Framer, H4Type, encodeH4 } from '../hci/h4.js';
import { Commands, encodeCommand } from '../hci/commands.js';
import { decodeEvent } from '../hci/events.js';
import { decodeZephyrVendorEvent } from '../hci/vendor-events.js';
import { errorMessage } from '../hci/transport-errors.js';
import type { LinkSettings, ProbeResult } from './types.js';

/** `01 03 0C 00`: H:4 command packet, HCI Reset, no parameters. */
export const HCI_RESET_PACKET: Uint8Array = encodeH4(H4Type.Command, encodeCommand('Reset', {}));

/**
 * Zero bytes sent before Reset when resynchronising: enough to complete any command (3 + 255)
 * or ACL packet (4 + 251) the controller may be half-way through; a zero is no packet type, so
 * the rest is skipped (samples/bluetooth/hci_uart/src/main.c).
 */
export const RESYNC_ZEROS = 300;

/** Vendor event code (Zephyr crash reports arrive as 0xFF). */
const VENDOR_EVENT = 0xff;

export interface ProbeOptions {
  clock: Clock;
  /** How long to wait for the answer. Default 1000 ms (the controller answers in well under 10 ms). */
  timeoutMs?: number;
  /** Send {@link RESYNC_ZEROS} zero bytes before Reset. */
  resync?: boolean;
}

/**
 * Sends HCI Reset on `transport` and waits for its Command Complete. Never throws: a write
 * failure or a closed transport comes back as an outcome with `error` set. Does not close the
 * transport.
 */
export async function probeReset(transport: Transport, settings: LinkSettings, opts: ProbeOptions): Promise<ProbeResult> {
  const result: ProbeResult = { settings, outcome: 'silent', bytesReceived: 0, framingErrors: 0, packets: 0 };
  if (opts.resync) result.resynced = true;
  const first: number[] = [];
  let timer: TimerHandle | undefined;
  let finish: (() => void) | undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let settled = false;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    opts.clock.clearTimeout(timer);
    finish?.();
  };

  const framer = new H4Framer({
    direction: 'host',
    onError: () => {
      result.framingErrors++;
    },
    onPacket: (packet) => {
      result.packets++;
      if (packet[0] !== H4Type.Event) return;
      const body = packet.subarray(1);
      if (body[0] === VENDOR_EVENT) {
        const v = decodeZephyrVendorEvent(body.subarray(2));
        if (v.fatal) {
          result.outcome = 'crashed';
          result.error = v.summary;
          settle();
        }
        return;
      }
      const d = decodeEvent(body);
      if (!d.ok || !d.event || d.event.name !== 'CommandComplete') return;
      if (d.event.params.opcode !== Commands.Reset.opcode) return;
      const status = d.event.params.returnParameters[0];
      if (status === undefined) return;
      result.status = status;
      result.outcome = status === 0 ? 'ok' : 'refused';
      settle();
    },
  });

  const onData = (chunk: Uint8Array): void => {
    result.bytesReceived += chunk.length;
    for (let i = 0; i < chunk.length && first.length < 32; i++) first.push(chunk[i] as number);
    try {
      framer.push(chunk);
    } catch {
      // onPacket does not throw; nothing to do.
    }
  };
  const onClose = (err: Error | undefined): void => {
    result.error = err ? errorMessage(err) : `${transport.description} closed during the probe`;
    settle();
  };
  transport.on('data', onData);
  transport.on('close', onClose);
  try {
    timer = opts.clock.setTimeout(settle, opts.timeoutMs ?? 1000);
    try {
      await transport.flushInput();
      if (opts.resync) await transport.write(new Uint8Array(RESYNC_ZEROS));
      await transport.write(HCI_RESET_PACKET);
    } catch (err) {
      result.error = errorMessage(err);
      settle();
    }
    await done;
  } finally {
    transport.off('data', onData);
    transport.off('close', onClose);
    opts.clock.clearTimeout(timer);
  }
  if (result.outcome === 'silent' && result.bytesReceived > 0) result.outcome = 'garbled';
  if (first.length > 0) result.firstBytes = toHex(Uint8Array.from(first), ' ');
  return result;
}
