/**
 * LE connection parameters in HCI units, and the rules Apple publishes for accessories
 * (Accessory Design Guidelines, section 35.6 "Connection Parameters"; docs/field-notes.md). The same
 * check serves the peripheral's update request and the diagnosis of captured connections.
 */

/** Connection parameters in HCI units: interval in 1.25 ms, timeout in 10 ms. */
export interface ConnectionParameters {
  intervalMin: number;
  intervalMax: number;
  latency: number;
  timeout: number;
}

/** What the peripheral asks for by default: 15-30 ms, latency 4, 5 s supervision timeout. */
export const DEFAULT_PERIPHERAL_PARAMETERS: ConnectionParameters = Object.freeze({
  intervalMin: 12,
  intervalMax: 24,
  latency: 4,
  timeout: 500,
});

export const intervalMs = (units: number): number => units * 1.25;
export const timeoutMs = (units: number): number => units * 10;

/** One broken rule, phrased for a user. */
export interface ParameterViolation {
  rule: string;
  detail: string;
}

/**
 * Checks parameters against Apple's rules. Returns the rules broken (empty when compliant).
 * Apple Accessory Design Guidelines, "Connection Parameters" (R8 2022, section 35.6).
 */
export function checkAppleConnectionParameters(p: ConnectionParameters): ParameterViolation[] {
  const out: ParameterViolation[] = [];
  const minMs = intervalMs(p.intervalMin);
  const maxMs = intervalMs(p.intervalMax);
  const toMs = timeoutMs(p.timeout);
  if (p.intervalMin > p.intervalMax) out.push({ rule: 'interval-order', detail: `Interval Min ${minMs} ms exceeds Interval Max ${maxMs} ms` });
  if (minMs < 15) out.push({ rule: 'interval-min-15ms', detail: `Interval Min ${minMs} ms is below 15 ms` });
  if (minMs % 15 !== 0) out.push({ rule: 'interval-min-multiple-15ms', detail: `Interval Min ${minMs} ms is not a multiple of 15 ms` });
  if (p.latency > 30) out.push({ rule: 'latency-30', detail: `Peripheral Latency ${p.latency} exceeds 30` });
  if (toMs < 2000 || toMs > 6000) out.push({ rule: 'timeout-2-6s', detail: `Supervision Timeout ${toMs} ms is outside 2 s .. 6 s` });
  const effective = maxMs * (p.latency + 1);
  if (effective > 2000) out.push({ rule: 'max-interval-latency-2s', detail: `Interval Max x (Latency + 1) = ${effective} ms exceeds 2 s` });
  if (effective * 3 >= toMs) {
    out.push({ rule: 'timeout-3x', detail: `Interval Max x (Latency + 1) x 3 = ${effective * 3} ms is not below the timeout ${toMs} ms` });
  }
  return out;
}

/** Spec validity of a parameter set. Core 5.4 Vol 3 Part A 4.20 and Vol 4 Part E 7.8.18 ranges. */
export function isValidConnectionParameters(p: ConnectionParameters): boolean {
  if (p.intervalMin < 6 || p.intervalMax > 3200 || p.intervalMin > p.intervalMax) return false;
  if (p.latency > 499) return false;
  if (p.timeout < 10 || p.timeout > 3200) return false;
  // Supervision timeout (ms) > (1 + latency) * interval max (ms) * 2
  return timeoutMs(p.timeout) > (1 + p.latency) * intervalMs(p.intervalMax) * 2;
}

export function formatConnectionParameters(p: ConnectionParameters): string {
  return `interval ${intervalMs(p.intervalMin)}-${intervalMs(p.intervalMax)} ms, latency ${p.latency}, timeout ${timeoutMs(p.timeout)} ms`;
}
