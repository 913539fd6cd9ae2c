// Reference relays for bench/passthrough: the same pgbench traffic through something that is not
// this proxy, in the same run, so the proxy's ratio can be read against what a relay can do at all
// on this machine.
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, postgresOsUser } from '../test/harness/servers.js';
import { onCleanup, startListener, type ProxyProcess } from './lib.js';

const NODE_RELAY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'node-relay.js');

/** bench/node-relay.ts in front of the upstream URL's TCP address (or `socketPath`). */
export async function startNodeRelay(upstreamUrl: string, socketPath?: string): Promise<ProxyProcess> {
  const u = new URL(upstreamUrl);
  const target = socketPath ?? `${u.hostname.replace(/^\[|\]$/g, '')}:${u.port || '5432'}`;
  const port = await freePort();
  return startListener('node relay', process.execPath, [NODE_RELAY, String(port), target], port, upstreamUrl);
}

/** The pgbouncer binary on this machine, if any (Debian puts it in /usr/sbin, outside a user's PATH). */
export function findPgbouncer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.map((d) => path.join(d, 'pgbouncer')).find((p) => existsSync(p));
}

/**
 * pgbouncer in session mode in front of the upstream: a mature C proxy (libevent, one thread) as the
 * yardstick. Clients are trusted (it listens on loopback only, for the bench); it logs in upstream with
 * the URL's own user and password.
 */
export async function startPgbouncer(bin: string, upstreamUrl: string, poolSize: number): Promise<ProxyProcess> {
  const u = new URL(upstreamUrl);
  const user = decodeURIComponent(u.username) || 'postgres';
  const password = decodeURIComponent(u.password);
  const owner = postgresOsUser(); // pgbouncer refuses to run as root
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fdwproxy-pgbouncer-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  await writeFile(path.join(dir, 'users.txt'), `${quote(user)} ${quote(password)}\n`);
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${u.hostname.replace(/^\[|\]$/g, '')} port=${u.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'pool_mode = session',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 200',
      'ignore_startup_parameters = extra_float_digits,options',
      '',
    ].join('\n'),
  );
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    for (const f of ['users.txt', 'pgbouncer.ini']) await chown(path.join(dir, f), owner.uid, owner.gid);
  }
  return startListener('pgbouncer', bin, [path.join(dir, 'pgbouncer.ini')], port, upstreamUrl, owner);
}
