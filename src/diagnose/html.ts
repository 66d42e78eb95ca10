/**
 * `diagnose --html FILE`: the session as a picture. One self-contained HTML file (inline CSS, no
 * script, no network: a Content-Security-Policy forbids every fetch), so it opens from file:// and
 * can be attached to a ticket. Per capture, per connection, a ladder diagram phone <-> accessory of
 * the security-relevant packets (frame number, time since the first packet, the decoded PDU), each
 * finding pinned at the packets that prove it and listed with its cause and fix. Several captures
 * (two files, or the logs of one archive) are drawn side by side.
 *
 * Everything that comes from a capture (device names, addresses, decoded values, file names) is
 * text an attacker in radio range may control: it only ever reaches the page through {@link html}'s
 * interpolation, which escapes it.
 */
import { describeEvent } from './describe.js';
import type { Finding, Report } from './diagnose.js';
import type { ConnectionRecord, Side, Timeline, TimelineEvent } from './timeline.js';

/** Markup that is already safe (built by {@link html}). */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

type Interpolation = string | number | SafeHtml | undefined | readonly Interpolation[];

function interpolate(v: Interpolation): string {
  if (v === undefined) return '';
  if (v instanceof SafeHtml) return v.value;
  if (Array.isArray(v)) return (v as readonly Interpolation[]).map(interpolate).join('');
  return escapeHtml(String(v));
}

/** A template tag that escapes every interpolated value unless it is {@link SafeHtml}. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += interpolate(values[i]) + (strings[i + 1] ?? '');
  return new SafeHtml(out);
}

/** What the ladder draws: events that say something about pairing and encryption. */
function onLadder(e: TimelineEvent): boolean {
  switch (e.kind) {
    case 'connection':
    case 'disconnection':
    case 'smp':
    case 'ltkRequest':
    case 'ltkReply':
    case 'startEncryption':
    case 'encryptionChange':
    case 'keySize':
    case 'serviceChanged':
    case 'commandFailed':
      return true;
    case 'att':
      // The error names the request it answers; discovery and ordinary reads are noise here.
      if (e.pdu.type === 'errorResponse') return e.pdu.errorCode !== 0x0a; // Attribute Not Found ends every discovery
      return e.pdu.type === 'exchangeMtuRequest' || e.pdu.type === 'exchangeMtuResponse';
    default:
      return false;
  }
}

/** Rows drawn per connection at most (the ATT traffic of a long session is summarised). */
const MAX_ROWS = 400;

type Lane = 'phone' | 'accessory' | 'air';

interface Row {
  number: number;
  time: number;
  text: string;
  /** An air PDU and who sent it, or an HCI exchange on the capturing device's side. */
  lane: Lane;
  from?: Side;
  findings: Finding[];
}

function rowOf(e: TimelineEvent, conn: ConnectionRecord): Row {
  const captured: Side = conn.localRole === 'central' ? 'phone' : 'accessory';
  const text = describeEvent(e);
  if ((e.kind === 'smp' || e.kind === 'att') && e.from) return { number: e.at.number, time: e.at.time, text, lane: 'air', from: e.from, findings: [] };
  if (e.kind === 'serviceChanged' && e.from) return { number: e.at.number, time: e.at.time, text, lane: 'air', from: e.from, findings: [] };
  return { number: e.at.number, time: e.at.time, text, lane: conn.localRole === undefined ? 'air' : captured, findings: [] };
}

const SEVERITY_CLASS = { error: 'sev-error', warning: 'sev-warning', hint: 'sev-hint' } as const;
const SEVERITY_LABEL = { error: 'Problem', warning: 'Warning', hint: 'Note' } as const;
const FIX_LABEL = { phone: 'On the phone', firmware: 'In the firmware', 'wearable-host': 'In wearable-host' } as const;

function since(t: number, first: number | undefined): string {
  return `+${((t - (first ?? t)) / 1000).toFixed(3)} s`;
}

function frameId(capture: number, number: number): string {
  return `c${capture}-f${number}`;
}

function ladder(capture: number, timeline: Timeline, report: Report, conn: ConnectionRecord): SafeHtml {
  const findings = report.findings.filter((f) => f.connection === conn.id);
  const rows = new Map<number, Row>();
  let dropped = 0;
  for (const e of conn.events) {
    if (!onLadder(e)) continue;
    if (rows.size >= MAX_ROWS && e.kind === 'att') {
      dropped++;
      continue;
    }
    if (!rows.has(e.at.number)) rows.set(e.at.number, rowOf(e, conn));
  }
  // Every evidence packet is on the ladder, even one of a kind it does not draw.
  for (const f of findings) {
    for (const ev of f.evidence) {
      let r = rows.get(ev.number);
      if (!r) {
        r = { number: ev.number, time: ev.time, text: ev.what, lane: conn.localRole === 'central' ? 'phone' : conn.localRole === 'peripheral' ? 'accessory' : 'air', findings: [] };
        rows.set(ev.number, r);
      }
      if (!r.findings.includes(f)) r.findings.push(f);
    }
  }
  const sorted = [...rows.values()].sort((a, b) => a.number - b.number);
  const first = timeline.firstTime;
  const captured = conn.localRole === 'central' ? 'phone' : conn.localRole === 'peripheral' ? 'accessory' : 'unknown side';
  const body = sorted.map((r) => {
    const pins = r.findings.map((f) => html`<a class="pin ${SEVERITY_CLASS[f.severity]}" href="#${`c${capture}-finding-${report.findings.indexOf(f)}`}">${f.title}</a>`);
    const arrow =
      r.lane === 'air'
        ? html`<div class="msg ${r.from === 'accessory' ? 'to-phone' : 'to-accessory'}"><span class="label">${r.text}</span><span class="line"></span></div>`
        : html`<div class="msg local ${r.lane === 'phone' ? 'at-phone' : 'at-accessory'}"><span class="label">HCI: ${r.text}</span></div>`;
    return html`<tr id="${frameId(capture, r.number)}" class="${r.findings.length ? 'evidence' : ''}" data-frame="${r.number}">
<td class="frame">#${r.number}</td><td class="time">${since(r.time, first)}</td><td class="lane" colspan="3">${arrow}</td><td class="pins">${pins}</td></tr>`;
  });
  return html`<section class="conn"><h3>Connection ${conn.id} (handle 0x${conn.handle.toString(16).padStart(4, '0')}), captured on the ${captured}</h3>
<table class="ladder"><thead><tr><th>Frame</th><th>Time</th><th class="who">Phone (central)</th><th></th><th class="who">Accessory (peripheral)</th><th>Findings</th></tr></thead>
<tbody>${body}</tbody></table>${dropped ? html`<p class="more">${dropped} further ATT packet(s) not drawn.</p>` : ''}</section>`;
}

function findingList(capture: number, report: Report): SafeHtml {
  if (report.findings.length === 0) return html`<p class="clean">No problem found on ${report.connections.length} connection(s).</p>`;
  const items = report.findings.map(
    (f, i) => html`<li id="c${capture}-finding-${i}" class="finding ${SEVERITY_CLASS[f.severity]}">
<div class="title"><strong>${SEVERITY_LABEL[f.severity]}:</strong> ${f.title} <code>${f.rule}</code> (connection ${f.connection})</div>
${f.detail ? html`<p>${f.detail}</p>` : ''}
<p class="evidence">Evidence: ${f.evidence.map((e, k) => html`${k ? ', ' : ''}<a href="#${frameId(capture, e.number)}" data-evidence="${e.number}">#${e.number}</a> ${e.what}`)}</p>
<details><summary>Likely cause and fix</summary>
<p><em>Likely cause:</em> ${f.cause}</p>
<ul class="fixes">${f.fixes.map((x) => html`<li><em>${FIX_LABEL[x.where]}:</em> ${x.text}</li>`)}</ul>
<p class="sources">Sources: ${f.sources.join('; ')}</p></details></li>`,
  );
  return html`<ol class="findings">${items}</ol>`;
}

function captureColumn(index: number, c: { name: string; timeline: Timeline; report: Report }): SafeHtml {
  const r = c.report;
  const taken = r.perspective === 'accessory' ? 'taken on the accessory' : r.perspective === 'phone' ? 'taken on the phone' : 'taken on an unknown side';
  const conns = c.timeline.connections;
  return html`<div class="capture" data-capture="${index}">
<h2>${c.name}</h2>
<p class="meta">${r.source?.description ?? ''}; ${r.packets} HCI packet(s); ${taken}${r.firstTime !== undefined ? html`; starts ${new Date(r.firstTime).toISOString()}` : ''}</p>
${(r.source?.warnings ?? []).map((w) => html`<p class="warning">Warning: ${w}</p>`)}
${findingList(index, r)}
${conns.length === 0 ? html`<p>No connection in this capture.</p>` : conns.map((conn) => ladder(index, c.timeline, r, conn))}
</div>`;
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1b1f24;background:#fff}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:0 0 4px;word-break:break-all}h3{font-size:14px;margin:16px 0 4px}
.captures{display:flex;gap:24px;align-items:flex-start}.capture{flex:1 1 0;min-width:0;border:1px solid #d0d7de;border-radius:6px;padding:12px}
.meta{color:#57606a;margin:0 0 8px}.warning{background:#fff8c5;border-left:4px solid #d4a72c;padding:4px 8px;margin:4px 0}
.clean{background:#dafbe1;border-left:4px solid #2da44e;padding:4px 8px}
.findings{padding-left:20px}.finding{margin:0 0 10px;padding:6px 8px;border-left:4px solid #999;background:#f6f8fa}
.finding p{margin:4px 0}summary{cursor:pointer;color:#0969da;font-size:12px}.fixes{margin:4px 0;padding-left:18px}.sources{color:#57606a;font-size:12px}
.sev-error{border-color:#cf222e}.sev-warning{border-color:#d4a72c}.sev-hint{border-color:#0969da}
table.ladder{border-collapse:collapse;width:100%;table-layout:fixed}
.ladder th{font-size:12px;text-align:left;color:#57606a;border-bottom:1px solid #d0d7de;padding:2px 4px}
.ladder th.who{text-align:center}.ladder col{width:auto}
.ladder td{padding:1px 4px;vertical-align:middle;font-size:12px}
.ladder td.frame{width:56px;font-family:ui-monospace,monospace}.ladder td.time{width:72px;font-family:ui-monospace,monospace;color:#57606a}
.ladder th:nth-child(1){width:56px}.ladder th:nth-child(2){width:72px}.ladder th:nth-child(6){width:22%}
.ladder td.lane{border-left:3px solid #8c959f;border-right:3px solid #8c959f;padding:2px 0}
.msg{position:relative;margin:0 6px;min-height:28px}
.msg .label{display:block;text-align:center;font-size:11.5px;padding:0 4px;word-break:break-word}
.msg .line{display:block;height:0;border-top:2px solid #0969da;position:relative;margin-top:2px}
.msg.to-accessory .line::after{content:"";position:absolute;right:-1px;top:-7px;border:6px solid transparent;border-left:10px solid #0969da}
.msg.to-phone .line{border-color:#8250df}
.msg.to-phone .line::before{content:"";position:absolute;left:-1px;top:-7px;border:6px solid transparent;border-right:10px solid #8250df}
.msg.local .label{display:inline-block;background:#eaeef2;border-radius:4px;padding:2px 6px;max-width:70%}
.msg.at-phone{text-align:left}.msg.at-accessory{text-align:right}
tr.evidence td{background:#ffebe9}
.pin{display:inline-block;margin:1px 2px;padding:1px 6px;border-radius:10px;font-size:11px;color:#fff;text-decoration:none;background:#cf222e}
.pin.sev-warning{background:#9a6700}.pin.sev-hint{background:#0969da}
.more{color:#57606a;font-size:12px}
code{font-size:12px}
`;

/** The whole report page for one or more diagnosed captures. */
export function renderHtml(captures: readonly { name: string; timeline: Timeline; report: Report }[], title = 'wearable-host diagnose'): string {
  const page = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${new SafeHtml(CSS)}</style></head>
<body><h1>${title}</h1>
<p class="meta">Frame numbers are the capture viewer's (Wireshark, PacketLogger); times are since each capture's first packet. Arrows are PDUs over the air; grey boxes are HCI exchanges on the capturing device.</p>
<div class="captures">${captures.map((c, i) => captureColumn(i, c))}</div>
</body></html>
`;
  return page.value;
}
