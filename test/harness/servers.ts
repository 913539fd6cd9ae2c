// Real, throwaway Postgres and Redis servers for tests. Never mocks: the proxy
// speaks the wire protocol to both, so only real servers exercise it honestly.
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';

export interface PgInstance {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  bindir: string;
  /** Directory of its Unix socket (`.s.PGSQL.<port>`). */
  socketDir: string;
  stop(): Promise<void>;
  /** Immediate shutdown (like a crash: no checkpoint, sessions dropped); the data dir is kept for start(). */
  kill(): Promise<void>;
  /** Start again on the same port after kill(). */
  start(): Promise<void>;
}

export interface RedisInstance {
  url: string;
  host: string;
  port: number;
  password?: string;
  /** Temp dir (--dir); removed by stop(). */
  dir: string;
  /** Graceful stop; also removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL the server (for fault tests); the temp dir is kept for restart(). */
  kill(): Promise<void>;
  /** Start again on the same port (after kill()). */
  restart(): Promise<void>;
  /** Sends a signal to the server process (SIGSTOP/SIGCONT for fault tests). */
  signal(sig: NodeJS.Signals): void;
  /** SIGSTOP: the server keeps its sockets but answers nothing (a hung, not crashed, server). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

const HOST = '127.0.0.1';

/** A currently free TCP port on 127.0.0.1 (racy by nature, but good enough for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface RunResult { code: number | null; signal: NodeJS.Signals | null; output: string }

function run(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

async function mustRun(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<void> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${r.code ?? r.signal}):\n${r.output}`);
  }
}

function findPgBindir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  } catch { /* no pg_config: try the Debian layout, then PATH */ }
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(path.join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(base, versions[0], 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, 'initdb'))) return dir;
  }
  throw new Error('initdb not found (tried pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); install postgresql');
}

/** uid/gid of the `postgres` OS user, because postgres (and pgbouncer) refuse to run as root. */
export function postgresOsUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('running as root, but there is no "postgres" OS user to run the server as');
  }
}

/** os.tmpdir() unless some ancestor is not world-traversable (then the postgres user could not reach it). */
function tempBase(asOtherUser: boolean): string {
  const base = os.tmpdir();
  if (!asOtherUser) return base;
  for (let dir = base; ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return '/tmp';
    if (dir === path.dirname(dir)) return base;
  }
}

export const PG_AUTH_USERS = {
  scram: { user: 'scram_user', password: 'scram_pass' },
  md5: { user: 'md5_user', password: 'md5_pass' },
  password: { user: 'plain_user', password: 'plain_pass' },
  trust: { user: 'trust_user', password: '' },
} as const;

export async function startPostgres(): Promise<PgInstance> {
  const bindir = findPgBindir();
  const owner = postgresOsUser();
  const root = await mkdtemp(path.join(tempBase(owner !== undefined), 'fdwproxy-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'postgres.log');
  // cwd=root: pg tools complain if they cannot read the current directory as the postgres user.
  const asPg: SpawnOptions = { cwd: root, ...(owner ?? {}) };
  const pgCtl = path.join(bindir, 'pg_ctl');
  let started = false;

  const stop = async (): Promise<void> => {
    if (started) {
      started = false;
      await run(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], asPg);
    }
    await rm(root, { recursive: true, force: true });
  };

  try {
    if (owner) await chown(root, owner.uid, owner.gid);
    const pwfile = path.join(root, 'pwfile');
    await writeFile(pwfile, 'postgres\n', { mode: 0o644 });
    await mustRun(path.join(bindir, 'initdb'), [
      '-D', dataDir, '-U', 'postgres', `--pwfile=${pwfile}`,
      '--auth-local=trust', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C',
    ], asPg);

    const port = await freePort();
    // Appended settings win over initdb's defaults earlier in the file.
    await appendFile(path.join(dataDir, 'postgresql.conf'), [
      '',
      `listen_addresses = '${HOST}'`,
      `port = ${port}`,
      `unix_socket_directories = '${root}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 200',
      'shared_buffers = 32MB',
      "password_encryption = 'scram-sha-256'",
      '',
    ].join('\n'));
    // First match wins, so the per-user lines must precede the catch-all scram line.
    await writeFile(path.join(dataDir, 'pg_hba.conf'), [
      'local all all trust',
      `host all trust_user ${HOST}/32 trust`,
      `host all md5_user ${HOST}/32 md5`,
      `host all plain_user ${HOST}/32 password`,
      `host all all ${HOST}/32 scram-sha-256`,
      '',
    ].join('\n'));

    const r = await run(pgCtl, ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], asPg);
    started = true; // even a failed start may leave a postmaster behind; stop() copes with none
    if (r.code !== 0) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed:\n${r.output}\n${log}`);
    }

    const url = `postgres://postgres:postgres@${HOST}:${port}/postgres`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const users = Object.values(PG_AUTH_USERS).map((u) => u.user);
      await client.query(`CREATE ROLE scram_user LOGIN PASSWORD 'scram_pass'`);
      // md5_user needs an md5 hash on disk, or md5 auth against it fails.
      await client.query(`SET password_encryption = 'md5'`);
      await client.query(`CREATE ROLE md5_user LOGIN PASSWORD 'md5_pass'`);
      await client.query(`RESET password_encryption`);
      await client.query(`CREATE ROLE plain_user LOGIN PASSWORD 'plain_pass'`);
      await client.query(`CREATE ROLE trust_user LOGIN`);
      await client.query(`GRANT CREATE ON DATABASE postgres TO ${users.join(', ')}`);
      await client.query(`GRANT CREATE ON SCHEMA public TO ${users.join(', ')}`);
    } finally {
      await client.end();
    }
    const kill = async (): Promise<void> => {
      await run(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], asPg);
    };
    const start = async (): Promise<void> => {
      await mustRun(pgCtl, ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], asPg);
    };
    return { url, host: HOST, port, dataDir, bindir, socketDir: root, stop, kill, start };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

async function waitForPing(port: number, password: string | undefined, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}) before answering PING:\n${log}`);
    }
    const client = new Redis({
      host: HOST, port, password, lazyConnect: true,
      retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false,
    });
    client.on('error', () => {}); // connection refused is expected while it boots
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 15s`);
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRedis(opts: { password?: string } = {}): Promise<RedisInstance> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fdwproxy-redis-'));
  const port = await freePort();
  const logFile = path.join(dir, 'redis.log');
  const args = [
    '--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--databases', '32',
    '--dir', dir, '--daemonize', 'no', '--logfile', logFile,
    ...(opts.password ? ['--requirepass', opts.password] : []),
  ];
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const c = spawn('redis-server', args, { stdio: 'ignore' });
    child = c;
    await new Promise<void>((resolve, reject) => {
      c.once('spawn', resolve);
      c.once('error', (e) => reject(new Error(`cannot run redis-server (is it installed?): ${e.message}`)));
    });
    await waitForPing(port, opts.password, c, logFile);
  };
  const kill = async (): Promise<void> => {
    if (!child) return;
    const c = child;
    child = undefined;
    c.kill('SIGKILL');
    await waitExit(c);
  };
  const stop = async (): Promise<void> => {
    if (child) {
      const c = child;
      child = undefined;
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
      await waitExit(c);
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await launch();
  } catch (err) {
    await kill();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  return {
    url: `redis://${auth}${HOST}:${port}/0`,
    host: HOST,
    port,
    dir,
    ...(opts.password ? { password: opts.password } : {}),
    stop,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    signal: (sig) => void child?.kill(sig),
    pause: () => {
      child?.kill('SIGSTOP');
    },
    resume: () => {
      child?.kill('SIGCONT');
    },
  };
}

export interface RedisClusterInstance {
  /** A URL of the first node (db 0: a cluster has no other). */
  url: string;
  host: string;
  ports: number[];
  /** Sends a signal to one node (SIGSTOP/SIGCONT for fault tests). */
  signal(port: number, sig: NodeJS.Signals): void;
  /** SIGKILLs every node and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Whether `redis-cli` is installed: it creates the cluster. */
export const haveRedisCli = (): boolean => {
  try {
    execFileSync('redis-cli', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/**
 * A throwaway Redis Cluster of `masters` nodes without replicas, every slot assigned and the state ok.
 * `nodeTimeoutMs`: how long a silent node goes before the others mark it failed (and, with no replica
 * to promote, the whole cluster refuses commands until it is back): fault tests that pause a node raise it.
 */
export async function startRedisCluster(masters = 3, opts: { nodeTimeoutMs?: number } = {}): Promise<RedisClusterInstance> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fdwproxy-cluster-'));
  const nodes: { port: number; child: ChildProcess }[] = [];
  const stop = async (): Promise<void> => {
    const all = nodes.splice(0);
    for (const n of all) n.child.kill('SIGKILL');
    await Promise.all(all.map((n) => waitExit(n.child)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const logFile = path.join(dir, `redis-${port}.log`);
      const child = spawn('redis-server', [
        '--port', String(port), '--bind', HOST, '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir,
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', logFile,
        '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 15_000),
      ], { stdio: 'ignore' });
      nodes.push({ port, child });
      await waitForPing(port, undefined, child, logFile);
    }
    await mustRun('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${HOST}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const n of nodes) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const c = new Redis({ host: HOST, port: n.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => {});
        const info = await c.connect().then(() => c.cluster('INFO'), () => '').finally(() => c.disconnect());
        if (/cluster_state:ok/.test(String(info))) break;
        if (Date.now() > deadline) throw new Error(`Redis Cluster node ${n.port} not ok within 20 s: ${String(info)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const ports = nodes.map((n) => n.port);
  return {
    url: `redis://${HOST}:${ports[0]}/0`,
    host: HOST,
    ports,
    signal: (port, sig) => void nodes.find((n) => n.port === port)?.child.kill(sig),
    stop,
  };
}
