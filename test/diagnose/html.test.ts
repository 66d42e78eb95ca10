import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { runDiagnose, type DiagnoseIo } from '../../src/cli/diagnose-command.js';
import { escapeHtml, html } from '../../src/diagnose/html.js';
import type { Report } from '../../src/diagnose/diagnose.js';
import { Scenario, cleanPairingThenReconnection } from './builders.js';

function io(): DiagnoseIo & { out: string; err: string } {
  const r = { out: '', err: '', stdout: { write: (s: string) => (r.out += s) }, stderr: { write: (s: string) => (r.err += s) } };
  return r;
}

function staleBond(): Scenario {
  const s = new Scenario('accessory');
  s.connect();
  s.wait(250);
  s.protectedRead(0x05);
  s.startEncryption();
  s.ltkReply(false);
  s.disconnect(0x13);
  return s;
}

/** A file name an attacker could choose (captures are mailed around). */
const HOSTILE = `x"><img src=x onerror=alert(1)><script>alert(2)<b>'.btsnoop`;

function chromium(): string | undefined {
  for (const c of ['chromium', 'chromium-browser', 'google-chrome']) {
    if (spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0) return c;
  }
  return undefined;
}
const CHROMIUM = chromium();
const SKIP = CHROMIUM ? false : 'chromium not installed (apt-get install chromium; .ci/run installs it)';

function headless(args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(CHROMIUM as string, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** RGBA pixels of an 8-bit RGB/RGBA PNG (what Chromium writes): chunks, zlib, the five row filters. */
function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'PNG signature');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.subarray(off + 4, off + 8).toString('latin1');
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      assert.ok(channels > 0, `colour type ${data[9]}`);
      assert.equal(data[12], 0, 'not interlaced');
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)] as number;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x] as number;
      const a = x >= channels ? (out[y * stride + x - channels] as number) : 0;
      const b = y > 0 ? (out[(y - 1) * stride + x] as number) : 0;
      const c = x >= channels && y > 0 ? (out[(y - 1) * stride + x - channels] as number) : 0;
      let p: number;
      if (f === 0) p = 0;
      else if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = (v + p) & 0xff;
    }
  }
  return { width, height, channels, pixels: out };
}

test('html: interpolated values are escaped, nested html is not escaped twice', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  const inner = html`<b>${'<i>'}</b>`;
  assert.equal(html`<p title="${'"q"'}">${inner}${['<', 1]}</p>`.value, '<p title="&quot;q&quot;"><b>&lt;i&gt;</b>&lt;1</p>');
});

test('diagnose --html writes one self-contained page: a ladder per capture, every evidence frame on it, capture text escaped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-html-'));
  return (async () => {
    const a = join(dir, HOSTILE);
    const b = join(dir, 'iphone.pklg');
    writeFileSync(a, staleBond().btsnoop());
    writeFileSync(b, cleanPairingThenReconnection('phone').pklg('little'));
    const out = join(dir, 'report.html');
    const o = io();
    assert.equal(await runDiagnose([a, b], { html: out, json: true }, o), 0, o.err);
    const reports = (JSON.parse(o.out) as { reports: Report[] }).reports;
    const page = readFileSync(out, 'utf8');
    assert.ok(!page.includes('<img') && !page.includes('<script'), 'no element from capture text');
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the hostile name is shown as text');
    assert.doesNotMatch(page, /(src|href)=["']?(https?:)?\/\//, 'nothing fetched from the network');
    assert.match(page, /Content-Security-Policy" content="default-src 'none'/);
    assert.equal((page.match(/class="capture"/g) ?? []).length, 2, 'two captures side by side');
    const evidence = reports.flatMap((r, i) => r.findings.flatMap((f) => f.evidence.map((e) => `c${i}-f${e.number}`)));
    assert.ok(evidence.length >= 3, `findings with evidence: ${evidence.join(' ')}`);
    for (const id of evidence) assert.match(page, new RegExp(`<tr id="${id}"`), id);
    // The ladder draws SMP of the clean pairing as arrows between phone and accessory.
    assert.match(page, /class="msg to-accessory"><span class="label">SMP Pairing Request/);
    assert.match(page, /class="msg to-phone"><span class="label">SMP Pairing Response/);
  })().finally(() => rmSync(dir, { recursive: true, force: true }));
});

test('diagnose --html renders in headless Chromium from file://: a non-blank screenshot and every evidence frame in the DOM', { skip: SKIP }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wh-html-chromium-'));
  try {
    const a = join(dir, HOSTILE);
    const b = join(dir, 'iphone.pklg');
    writeFileSync(a, staleBond().btsnoop());
    writeFileSync(b, cleanPairingThenReconnection('phone').pklg('little'));
    const out = join(dir, 'report.html');
    const o = io();
    assert.equal(await runDiagnose([a, b], { html: out, json: true }, o), 0, o.err);
    const reports = (JSON.parse(o.out) as { reports: Report[] }).reports;
    const url = `file://${out}`;

    const dom = headless(['--dump-dom', url]);
    assert.equal(dom.status, 0, String(dom.stderr));
    const text = String(dom.stdout);
    assert.match(text, /<div class="captures">/);
    assert.doesNotMatch(text, /<img|<script/i, 'the hostile file name did not become markup');
    for (const [i, r] of reports.entries()) {
      for (const f of r.findings) {
        for (const e of f.evidence) assert.match(text, new RegExp(`<tr id="c${i}-f${e.number}"[^>]*data-frame="${e.number}"`), `${f.rule} #${e.number}`);
      }
    }

    const png = join(dir, 'shot.png');
    const shot = headless([`--screenshot=${png}`, '--window-size=1280,900', url]);
    assert.equal(shot.status, 0, String(shot.stderr));
    const img = decodePng(readFileSync(png));
    assert.deepEqual([img.width, img.height], [1280, 900]);
    let ink = 0;
    for (let i = 0; i < img.pixels.length; i += img.channels) {
      if ((img.pixels[i] as number) < 200 || (img.pixels[i + 1] as number) < 200 || (img.pixels[i + 2] as number) < 200) ink++;
    }
    const share = ink / (img.width * img.height);
    assert.ok(share > 0.02, `the page rendered: ${(share * 100).toFixed(1)}% non-background pixels`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
