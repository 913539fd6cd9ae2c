/**
 * The Redis servers the catalog configures, for /ready: every foreign server of a wrapper marked as
 * ours, in each database the proxy has seen, read with the proxy's own upstream login. The list is
 * cached for a while (a readiness probe every few seconds must not cost a catalog query each time);
 * the PINGs are not.
 */
import pg from 'pg';
import { readFileSync } from 'node:fs';
import type { UpstreamTarget } from '../config/config.js';
import { OUR_FDW_SQL } from '../catalog/catalog.js';
import { connKey, fromConnUrl, fromHostPort, type RedisConnSpec } from '../redis/connection.js';

const LIST_TTL_MS = 30_000;
const QUERY_TIMEOUT_MS = 2000;

const opts = (col: string): string => `(SELECT pg_catalog.json_object_agg(o.option_name, o.option_value) FROM pg_catalog.pg_options_to_table(${col}) o)`;

/** Each of our servers with its options and the user mapping the proxy's login would use (for a password). */
const SERVERS_SQL = `SELECT s.srvname, ${opts('s.srvoptions')}::text AS options,
  (SELECT ${opts('um.umoptions')} FROM pg_catalog.pg_user_mappings um
     WHERE um.srvid = s.oid AND um.umuser IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user))
     ORDER BY um.umuser DESC LIMIT 1)::text AS mapping
 FROM pg_catalog.pg_foreign_server s JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE ${OUR_FDW_SQL}`;

export interface ConfiguredServer {
  /** `database/server` for every catalog entry that names this connection. */
  names: string[];
  spec: RedisConnSpec;
}

export interface ServerList {
  servers: ConfiguredServer[];
  /** Databases whose catalog could not be read (dropped since, or the proxy's login is refused there). */
  unreadable: { database: string; error: string }[];
}

type Options = Record<string, string>;

/** The connection a server's options describe; undefined when they describe none we can PING (conn_url_id, missing options). */
export function specOf(server: Options, mapping: Options | null): RedisConnSpec | undefined {
  const m = mapping ?? {};
  if (server.conn_url !== undefined) return fromConnUrl(server.conn_url);
  if (server.host_port !== undefined) return fromHostPort(server.host_port, server.database, m.password ?? server.password, m.username ?? m.user ?? server.username);
  return undefined;
}

async function listDatabase(t: UpstreamTarget, database: string): Promise<{ name: string; spec: RedisConnSpec }[]> {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database,
    application_name: 'redis-fdw-proxy ready',
    connectionTimeoutMillis: QUERY_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    ssl: t.sslmode === 'disable' || t.sslmode === 'prefer' ? false : t.sslmode === 'require' ? { rejectUnauthorized: false } : { ca: t.sslrootcert ? readFileSync(t.sslrootcert) : undefined, checkServerIdentity: t.sslmode === 'verify-ca' ? () => undefined : undefined },
  });
  c.on('error', () => {});
  await c.connect();
  try {
    const out: { name: string; spec: RedisConnSpec }[] = [];
    for (const r of (await c.query<{ srvname: string; options: string | null; mapping: string | null }>(SERVERS_SQL)).rows) {
      try {
        const spec = specOf(JSON.parse(r.options ?? '{}') as Options, JSON.parse(r.mapping ?? 'null') as Options | null);
        if (spec) out.push({ name: `${database}/${r.srvname}`, spec });
      } catch {
        // A server whose options don't parse fails its queries with the right error; it isn't a readiness matter.
      }
    }
    return out;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Lists, and caches for LIST_TTL_MS, the Redis connections configured in the databases given. */
export class ConfiguredServers {
  private cached: { at: number; key: string; list: Promise<ServerList> } | undefined;

  constructor(private readonly upstream: () => UpstreamTarget) {}

  /** `generation`: the catalog's; DDL seen through the proxy bumps it, and the list is read again. */
  list(databases: readonly string[], generation = 0): Promise<ServerList> {
    const key = `${generation}\0${[...databases].sort().join('\0')}`;
    const c = this.cached;
    if (c && c.key === key && Date.now() - c.at < LIST_TTL_MS) return c.list;
    const list = this.read(databases);
    this.cached = { at: Date.now(), key, list };
    // A failed read is not kept: the next probe tries again.
    list.catch(() => (this.cached = undefined));
    return list;
  }

  /** Forgets the cached list (RELOAD, or DDL seen through the proxy). */
  flush(): void {
    this.cached = undefined;
  }

  private async read(databases: readonly string[]): Promise<ServerList> {
    const byKey = new Map<string, ConfiguredServer>();
    const unreadable: ServerList['unreadable'] = [];
    await Promise.all(
      databases.map((db) =>
        listDatabase(this.upstream(), db).then(
          (rows) => {
            for (const r of rows) {
              const k = connKey(r.spec);
              const e = byKey.get(k);
              if (e) e.names.push(r.name);
              else byKey.set(k, { names: [r.name], spec: r.spec });
            }
          },
          (e: unknown) => unreadable.push({ database: db, error: e instanceof Error ? e.message : String(e) }),
        ),
      ),
    );
    return { servers: [...byKey.values()], unreadable };
  }
}
