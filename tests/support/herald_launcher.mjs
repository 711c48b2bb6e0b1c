//! The one way the JavaScript suites start herald: a child process of the binary under test, on
//! 127.0.0.1 and port 0, from a config given as nested objects (rendered to TOML here).
//!
//! Nothing here sleeps to synchronise: `startHerald` resolves when herald printed the listening
//! lines it waits for, and rejects after a timeout with herald's stderr.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root (two levels above this file). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How long herald may take to print its listening lines, or a one-shot command to exit. */
export const STARTUP_MS = 20000;

/** Path of the herald binary under test: $HERALD_BIN, else $CARGO_TARGET_DIR/debug/herald, else target/. */
export function heraldBin() {
  if (process.env.HERALD_BIN) return process.env.HERALD_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(ROOT, 'target');
  return path.join(targetDir, 'debug', 'herald');
}

// --- TOML ----------------------------------------------------------------------------------------

const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTableArray = (v) => Array.isArray(v) && v.length > 0 && v.every(isTable);
const tomlKey = (k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));

/** A TOML value on one line (arrays of scalars; objects only inside arrays, as inline tables). */
function tomlValue(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  if (isTable(value)) {
    return `{ ${Object.entries(value).map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v)}`).join(', ')} }`;
  }
  throw new Error(`cannot write ${typeof value} as TOML`);
}

function tomlTable(keys, table, out, array = false) {
  if (keys.length > 0) {
    const name = keys.map(tomlKey).join('.');
    out.push(array ? `[[${name}]]` : `[${name}]`);
  }
  for (const [k, v] of Object.entries(table)) {
    if (!isTable(v) && !isTableArray(v)) out.push(`${tomlKey(k)} = ${tomlValue(v)}`);
  }
  out.push('');
  for (const [k, v] of Object.entries(table)) {
    if (isTable(v)) tomlTable([...keys, k], v, out);
    else if (isTableArray(v)) for (const row of v) tomlTable([...keys, k], row, out, true);
  }
}

/**
 * `{ server: {...}, apps: [{...}], listeners: [{...}] }` as herald's TOML config text: objects
 * are `[tables]` and arrays of objects `[[arrays of tables]]`, at any depth.
 */
export function toml(doc) {
  const out = [];
  tomlTable([], doc, out);
  return `${out.join('\n').trim()}\n`;
}

// --- the process ---------------------------------------------------------------------------------

/** Variables of the test environment that would configure herald behind the suite's back. */
const DROPPED_ENV = ['PUSHER_', 'HERALD_', 'REVERB_', 'SOKETI_', 'LARAVEL_WEBSOCKETS_'];

/** The caller's environment minus anything that would configure herald behind the test's back. */
function inheritedEnv() {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !DROPPED_ENV.some((prefix) => k.startsWith(prefix))),
  );
}

const LISTENING = /^herald listening on 127\.0\.0\.1:(\d+)(?: \((.*)\))?$/;

/** A running herald process. */
export class Herald {
  constructor(child, listening, dir, stderrLines) {
    this.child = child;
    /** Every listening line in order: `{ port, label }` (label null for the main listener). */
    this.listening = listening;
    this.port = listening.find((l) => l.label === null).port;
    this.dir = dir;
    this.stderrLines = stderrLines;
    this.host = '127.0.0.1';
    this.httpBase = `http://127.0.0.1:${this.port}`;
    /** Called (synchronously) when `stop()` begins, e.g. to close the suite's clients. */
    this.beforeStop = [];
    this.stopping = false;
    this.exitInfo = null;
    child.once('exit', (code, signal) => {
      this.exitInfo = { code, signal };
    });
  }

  /** Throws (with herald's stderr) if herald died on its own: run after every test. */
  assertAlive() {
    if (this.exitInfo && !this.stopping) {
      const tail = this.stderrLines.slice(-40).join('\n');
      throw new Error(`herald exited during the test (code ${this.exitInfo.code}, signal ${this.exitInfo.signal})\n--- herald stderr (tail) ---\n${tail}`);
    }
  }

  /** herald's standard error so far. */
  stderr() {
    return this.stderrLines.join('\n');
  }

  /** Stops herald: SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async stop() {
    this.stopping = true;
    for (const hook of this.beforeStop) hook();
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts `herald serve` on 127.0.0.1:0 and resolves once it printed `listeners` listening lines
 * (the main one included).
 *
 * `config`: an object written with `toml()` to a temporary config file (`null`: no `--config`).
 * `env`: extra environment; the caller's PUSHER_*, HERALD_*, REVERB_*, SOKETI_* and LARAVEL_WEBSOCKETS_* variables are never inherited.
 */
export async function startHerald({ config = null, env = {}, extraArgs = [], listeners = 1 } = {}) {
  const bin = heraldBin();
  if (!existsSync(bin)) {
    throw new Error(`herald binary not found at ${bin}: run \`cargo build -p herald-server\` or set HERALD_BIN`);
  }
  const args = ['serve', '--host', '127.0.0.1', '--port', '0'];
  let dir = null;
  const text = config === null ? '' : toml(config);
  if (config !== null) {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-js-'));
    const configPath = path.join(dir, 'herald.toml');
    writeFileSync(configPath, text);
    args.push('--config', configPath);
  }
  args.push(...extraArgs);

  const child = spawn(bin, args, { env: { ...inheritedEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderrLines = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderrLines.push(line));

  const listening = await new Promise((resolve, reject) => {
    const found = [];
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      // stderr may still be draining: give the pipe one turn of the loop.
      setImmediate(() => reject(new Error(`${why}\nherald ${args.join(' ')}\n--- config ---\n${text}--- herald stderr ---\n${stderrLines.join('\n')}`)));
    };
    const timer = setTimeout(
      () => fail(`herald printed ${found.length} of ${listeners} listening lines within ${STARTUP_MS} ms`),
      STARTUP_MS,
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = LISTENING.exec(line.trim());
      if (!m) return;
      found.push({ port: Number(m[1]), label: m[2] ?? null });
      if (found.length === listeners && found.some((l) => l.label === null)) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('error', (err) => fail(`could not start herald: ${err.message}`));
    child.once('exit', (code, signal) => fail(`herald exited early (code ${code}, signal ${signal})`));
  });
  return new Herald(child, listening, dir, stderrLines);
}

/**
 * Runs herald to completion with the given arguments (for exit-code checks such as
 * `config check`). Resolves `{ code, stdout, stderr }`.
 */
export function runHerald(args, { env = {}, timeout = STARTUP_MS } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(heraldBin(), args, { env: { ...inheritedEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`herald ${args.join(' ')} did not exit within ${timeout} ms\n${stderr}`));
    }, timeout);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
