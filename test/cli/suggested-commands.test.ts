/**
 * Every command line the program suggests to its user (in messages, help and comments that name
 * one: `wearable-host CMD --opt`) exists: the command is registered and each option is one it takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { startCli } from './fixtures/cli-process.js';

const ROOT = new URL('../../../', import.meta.url).pathname;

function files(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

function optionNames(cmd: Command): Set<string> {
  const names = new Set<string>(['--help', '-h', '--version', '-V']);
  for (let c: Command | null = cmd; c; c = c.parent) for (const o of c.options) for (const n of [o.long, o.short]) if (n) names.add(n);
  return names;
}

/** The suggested command lines in `text`: `wearable-host` after a backtick or an opening parenthesis. */
export function suggestions(text: string): string[] {
  const out: string[] = [];
  const re = /[`(]wearable-host((?:[ \t]+[^\s`'")|]+)*)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(`wearable-host${m[1]}`);
  return out;
}

/** Why a suggested line does not run, or undefined when it names a real command and real options. */
export function checkLine(program: Command, line: string): string | undefined {
  const tokens = line.split(/[ \t]+/).slice(1).filter((t) => !t.includes('${'));
  let cmd = program;
  let i = 0;
  // Command words: lower-case words right after the program (or a command with subcommands).
  while (i < tokens.length && /^[a-z][a-z-]*:?$/.test(tokens[i]!) && cmd.commands.length > 0) {
    const word = tokens[i]!;
    if (word.endsWith(':')) return undefined; // "wearable-host phone: ..." is a message prefix, not a command line
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) return cmd === program ? `no command "${word}"` : undefined;
    cmd = sub;
    i++;
  }
  const known = optionNames(cmd);
  for (const t of tokens.slice(i)) {
    const opt = /^\[?(--?[a-zA-Z][\w-]*)/.exec(t)?.[1];
    if (opt && !known.has(opt)) return `${cmd.name()} has no option ${opt}`;
  }
  return undefined;
}

test('every `wearable-host ...` command line suggested in src/, docs/ and the README names a registered command and its options', () => {
  const program = buildProgram();
  const sources = [...files(join(ROOT, 'src'), '.ts'), ...files(join(ROOT, 'docs'), '.md'), join(ROOT, 'README.md')];
  const bad: string[] = [];
  let checked = 0;
  for (const f of sources) {
    for (const line of suggestions(readFileSync(f, 'utf8'))) {
      checked++;
      const why = checkLine(program, line);
      if (why) bad.push(`${f.slice(ROOT.length)}: ${line}: ${why}`);
    }
  }
  assert.ok(checked > 20, `found ${checked} suggested command lines`);
  assert.deepEqual(bad, []);
});

test('the checker itself rejects the hint that named a command that does not exist', () => {
  const program = buildProgram();
  assert.equal(checkLine(program, 'wearable-host sim --serve tcp://127.0.0.1:1'), 'no command "sim"');
  assert.equal(checkLine(program, 'wearable-host doctor --nope'), 'doctor has no option --nope');
  assert.equal(checkLine(program, 'wearable-host bonds remove ADDRESS --bonds FILE'), undefined);
});

test('an unknown command is named as such, with the list of commands (not "too many arguments")', async () => {
  const cli = startCli(['frobnicate']);
  const r = await cli.exited;
  assert.notEqual(r.code, 0);
  assert.match(cli.output(), /unknown command "frobnicate"\. Commands: info, bonds, diagnose, doctor, sim-controller, phone/);
  assert.doesNotMatch(cli.output(), /too many arguments/);
});

test('--sim with options only a --port run reads (--bonds, --baud) says they would be ignored, and exits non-zero', async () => {
  const cli = startCli(['--sim', '--bonds', '/tmp/never-used.json', '--baud', '9600', '--scenario', 'first-pairing']);
  const r = await cli.exited;
  assert.notEqual(r.code, 0);
  assert.match(cli.output(), /--baud, --bonds apply to the wearable on a DK \(--port\) and would be ignored with --sim/);
  assert.match(cli.output(), /wearable-host sim-controller --tcp 0/);
});
