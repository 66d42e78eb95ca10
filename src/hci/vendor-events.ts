/**
 * Zephyr vendor-specific events (event code 0xFF) that report a controller crash, decoded for the
 * log. Layouts (Zephyr include/zephyr/bluetooth/hci_vs.h, subsys/bluetooth/controller hci_vs_err,
 * samples/bluetooth/hci_uart):
 * - 0x01 stack frame: reason u32, cpu type u8, Cortex-M a1..a4 ip lr pc xpsr (u32 each);
 * - 0x02 controller assert: file name, NUL, line u32 (older Zephyr: pc u64 then text);
 * - 0x03 trace: pc u64, file name, NUL, line u32;
 * - 0xAA hci_uart's own assert handler: file name, NUL, line u32, after which the controller hangs.
 * Other subevents (scan request reports, IQ samples, Nordic SoftDevice Controller reports) are not faults.
 * Never throws: whatever the bytes, the result says what could be read.
 */
import { toHex } from '../util/bytes.js';

export type VendorEventKind = 'stack-frame' | 'assert' | 'trace' | 'hci-uart-assert' | 'other';

export interface VendorEvent {
  subevent: number | undefined;
  kind: VendorEventKind;
  /** A crash report: the controller is dead or about to hang; the host must re-initialise (or ask for a pin reset). */
  fatal: boolean;
  file?: string;
  line?: number;
  pc?: string;
  reason?: number;
  /** Cortex-M registers of a stack frame report, hex. */
  registers?: Record<string, string>;
  /** Printable ASCII runs (>= 3 characters) found anywhere in the payload. */
  text: string[];
  /** The whole payload (after the event header), hex. */
  hex: string;
  /** One line for the log. */
  summary: string;
}

const CORTEX_M_REGS = ['a1', 'a2', 'a3', 'a4', 'ip', 'lr', 'pc', 'xpsr'] as const;

function u32(d: Uint8Array, o: number): number {
  return ((d[o] as number) | ((d[o + 1] as number) << 8) | ((d[o + 2] as number) << 16)) + (d[o + 3] as number) * 0x1000000;
}

function u64hex(d: Uint8Array, o: number): string {
  let s = '';
  for (let i = 7; i >= 0; i--) s += (d[o + i] as number).toString(16).padStart(2, '0');
  return `0x${s.replace(/^0+(?=.)/, '')}`;
}

/** Printable ASCII runs of at least `min` characters. */
export function printableRuns(d: Uint8Array, min = 3): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < d.length; i++) {
    const c = d[i] as number;
    if (c >= 0x20 && c < 0x7f) cur += String.fromCharCode(c);
    else {
      if (cur.length >= min) out.push(cur);
      cur = '';
    }
  }
  if (cur.length >= min) out.push(cur);
  return out;
}

/** `file NUL line32` at `d[o..]`, when the bytes have that shape. */
function fileLine(d: Uint8Array, o: number): { file: string; line: number } | undefined {
  if (d.length - o < 5) return undefined;
  const nul = d.indexOf(0, o);
  if (nul < 0 || d.length - nul - 1 < 4) return undefined;
  let file = '';
  for (let i = o; i < nul; i++) {
    const c = d[i] as number;
    if (c < 0x20 || c >= 0x7f) return undefined;
    file += String.fromCharCode(c);
  }
  return { file, line: u32(d, nul + 1) };
}

/** Decodes the parameters of an 0xFF event (everything after the length byte). */
export function decodeZephyrVendorEvent(data: Uint8Array): VendorEvent {
  const hex = toHex(data);
  const text = printableRuns(data);
  const subevent = data[0];
  const rest = data.subarray(1);
  const base = { subevent, text, hex };
  const sub = subevent === undefined ? 'empty' : `0x${subevent.toString(16).padStart(2, '0')}`;
  switch (subevent) {
    case 0x01: {
      if (rest.length >= 5) {
        const reason = u32(rest, 0);
        const cpuType = rest[4] as number;
        const registers: Record<string, string> = {};
        if (cpuType === 0x01 && rest.length >= 5 + 32) {
          CORTEX_M_REGS.forEach((r, i) => (registers[r] = `0x${u32(rest, 5 + 4 * i).toString(16).padStart(8, '0')}`));
        }
        const pc = registers['pc'];
        return {
          ...base,
          kind: 'stack-frame',
          fatal: true,
          reason,
          registers,
          ...(pc ? { pc } : {}),
          summary: `controller fatal error (stack frame): reason ${reason}${pc ? `, pc ${pc}, lr ${registers['lr']}` : ''}`,
        };
      }
      return { ...base, kind: 'stack-frame', fatal: true, summary: `controller fatal error (stack frame, ${rest.length} bytes): ${hex}` };
    }
    case 0x02: {
      const fl = fileLine(rest, 0);
      if (fl) return { ...base, kind: 'assert', fatal: true, ...fl, summary: `controller assertion failed at ${fl.file}:${fl.line}` };
      if (rest.length >= 8) {
        const pc = u64hex(rest, 0);
        const t = printableRuns(rest.subarray(8)).join(' ');
        return { ...base, kind: 'assert', fatal: true, pc, summary: `controller fatal error at pc ${pc}${t ? `: ${t}` : ''}` };
      }
      return { ...base, kind: 'assert', fatal: true, summary: `controller assertion (${rest.length} bytes): ${hex}` };
    }
    case 0x03: {
      if (rest.length >= 8) {
        const pc = u64hex(rest, 0);
        const fl = fileLine(rest, 8);
        return {
          ...base,
          kind: 'trace',
          fatal: true,
          pc,
          ...(fl ?? {}),
          summary: `controller fatal error at pc ${pc}${fl ? ` (${fl.file}:${fl.line})` : ''}`,
        };
      }
      return { ...base, kind: 'trace', fatal: true, summary: `controller fatal error trace (${rest.length} bytes): ${hex}` };
    }
    case 0xaa: {
      const fl = fileLine(rest, 0);
      if (fl) {
        return { ...base, kind: 'hci-uart-assert', fatal: true, ...fl, summary: `controller assertion failed at ${fl.file}:${fl.line} (hci_uart halts; a pin reset is needed)` };
      }
      const line = rest.length >= 4 ? u32(rest, rest.length - 4) : undefined;
      return {
        ...base,
        kind: 'hci-uart-assert',
        fatal: true,
        ...(line !== undefined ? { line } : {}),
        summary: `controller assertion${line !== undefined ? ` at line ${line}` : ''} (hci_uart halts; a pin reset is needed)`,
      };
    }
    default:
      return { ...base, kind: 'other', fatal: false, summary: `vendor event subevent ${sub}${text.length ? `: ${text.join(' ')}` : ''}` };
  }
}
