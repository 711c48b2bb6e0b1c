//! Private database servers for the JavaScript suites: a MariaDB and a PostgreSQL, each in its own
//! temporary directory and listening on a unix socket there only (no TCP port at all), holding
//! database `herald` with Soketi's `apps` table (`tests/fixtures/app_store/*.sql`, the schema the
//! Rust suite `tests/app_store.rs` creates too). SQL goes through Debian's client programs
//! (`mariadb`, `psql`).
//!
//! As root (CI) the servers run as the `mysql` / `postgres` user through `runuser`: both refuse
//! to run as root. Each runs under a small shell that waits on its standard input, a pipe from
//! this process: when node exits, for whatever reason, the pipe closes and the shell stops the
//! server and removes the directory, so no server outlives the tests.

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { ROOT } from './herald_launcher.mjs';

/** How long a server may take to initialise its directory and accept connections. */
const STARTUP_MS = 60000;
const INSTALL = 'run scripts/install-test-deps (it installs mariadb-server and postgresql with their clients)';
const isRoot = process.getuid?.() === 0;

/** The path of `name`, from `dirs` or else PATH; throws naming the install script if absent. */
function program(name, dirs = []) {
  for (const dir of [...dirs, ...(process.env.PATH ?? '').split(':')]) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  throw new Error(`${name} not found: ${INSTALL}`);
}

/** PostgreSQL's programs: Debian keeps `initdb` and `postgres` under /usr/lib/postgresql/N/bin. */
function pgBinDirs() {
  const dirs = [];
  try {
    dirs.push(execFileSync('pg_config', ['--bindir'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
  } catch {
    // No pg_config: look for the newest installed version below.
  }
  if (existsSync('/usr/lib/postgresql')) {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  }
  return dirs;
}

/** `[command, args]` running `prog` as `user` when this process is root. */
function asUser(user, prog, args) {
  return isRoot ? ['runuser', ['-u', user, '--', prog, ...args]] : [prog, args];
}

/** Runs a program to completion with `input` on its stdin; rejects with its output unless it exits 0. */
function run(command, args, input = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.once('error', (err) => reject(new Error(`${command}: ${err.message} (${INSTALL})`)));
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr}${stdout}`));
    });
    child.stdin.end(input);
  });
}

/** A fresh directory the server's user owns. */
function serverDir(prefix, user) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  if (isRoot) execFileSync('chown', [`${user}:`, dir]);
  return dir;
}

// The server runs in the background; a watcher reading fd 3 (this process's pipe) stops it once
// the pipe closes, and the shell exits with the server, so an early death is seen at once.
const WRAPPER = `
  sig=$1; dir=$2; shift 2
  exec 3<&0
  "$@" </dev/null &
  pid=$!
  (read _ <&3; kill -"$sig" "$pid" 2>/dev/null) &
  watcher=$!
  wait "$pid"; code=$?
  kill "$watcher" 2>/dev/null
  rm -rf "$dir"
  exit "$code"
`;

/**
 * Starts `prog args` as `user` under the wrapper and resolves once a line of its stderr matches
 * `ready`. Returns `stop()`: closes the pipe and resolves when the server has exited.
 */
async function supervise({ user, dir, signal, prog, args, ready, what }) {
  const [command, commandArgs] = asUser(user, 'sh', ['-c', WRAPPER, 'sh', signal, dir, prog, ...args]);
  const child = spawn(command, commandArgs, { stdio: ['pipe', 'ignore', 'pipe'] });
  const log = [];
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`not ready within ${STARTUP_MS} ms`), STARTUP_MS);
    const fail = (why) => {
      clearTimeout(timer);
      child.stdin.end();
      reject(new Error(`${what} ${why}\n--- its log ---\n${log.slice(-30).join('\n')}`));
    };
    // Keep reading the log after start-up, or the server blocks on a full pipe.
    createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(line);
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code) => fail(`exited early (code ${code})`));
  });
  return {
    log,
    async stop() {
      child.stdin.end();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The schema both suites share. */
const fixture = (name) => readFileSync(path.join(ROOT, 'tests', 'fixtures', 'app_store', name), 'utf8');

/**
 * A private MariaDB (root without a password) holding database `herald` with Soketi's table.
 * Resolves `{ driver: 'mysql', url, sql(text), stop() }`; `sql` resolves with the client's
 * tab-separated output.
 */
export async function startMariaDb() {
  const client = program('mariadb');
  const installDb = program('mariadb-install-db');
  const server = program('mariadbd', ['/usr/sbin']);
  const dir = serverDir('herald-js-mariadb-', 'mysql');
  const socket = path.join(dir, 'mysqld.sock');
  await run(...asUser('mysql', installDb, [
    '--no-defaults', `--datadir=${dir}/data`, '--auth-root-authentication-method=normal', '--skip-test-db',
  ]));
  const proc = await supervise({
    user: 'mysql', dir, signal: 'TERM', prog: server, what: 'mariadbd', ready: /ready for connections/,
    args: [
      '--no-defaults', `--datadir=${dir}/data`, `--socket=${socket}`, `--pid-file=${dir}/mysqld.pid`,
      '--skip-networking', '--innodb-buffer-pool-size=16M', '--skip-log-bin',
    ],
  });
  const sql = (text, db = 'herald') =>
    run(client, ['--no-defaults', `--socket=${socket}`, '-uroot', '--batch', '--skip-column-names', db], text);
  await sql('CREATE DATABASE herald', 'mysql');
  await sql(fixture('mysql.sql'));
  return { driver: 'mysql', url: `mysql://root@localhost/herald?socket=${socket}`, sql, stop: proc.stop, log: proc.log };
}

/**
 * A private PostgreSQL (user `postgres`, trust authentication) holding database `herald` with
 * Soketi's table and the NOTIFY trigger. Resolves `{ driver: 'postgres', url, sql(text), stop() }`.
 */
export async function startPostgres() {
  const bins = pgBinDirs();
  const client = program('psql', bins);
  const initdb = program('initdb', bins);
  const server = program('postgres', bins);
  const dir = serverDir('herald-js-pg-', 'postgres');
  const data = path.join(dir, 'data');
  await run(...asUser('postgres', initdb, [
    '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions',
  ]));
  // Port 5432 only names the socket file (`.s.PGSQL.5432` in `dir`): nothing listens on TCP.
  const proc = await supervise({
    user: 'postgres', dir, signal: 'INT', prog: server, what: 'postgres', ready: /ready to accept connections/,
    args: ['-D', data, '-p', '5432', '-k', dir, '-c', 'listen_addresses=', '-c', 'fsync=off'],
  });
  const sql = (text, db = 'herald') =>
    run(client, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', '5432', '-U', 'postgres', '-d', db], text);
  await sql('CREATE DATABASE herald', 'postgres');
  await sql(fixture('postgres.sql'));
  return { driver: 'postgres', url: `host=${dir} port=5432 user=postgres dbname=herald`, sql, stop: proc.stop, log: proc.log };
}
