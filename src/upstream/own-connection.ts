/**
 * The proxy's own connections to upstream, with the credentials of `--upstream`: one pg Pool per
 * database, shared by the outbox (its table, replays) and callback sessions (catalog reads, and what a
 * remote query asks upstream to evaluate). The one place that opens such connections; closed at
 * shutdown.
 *
 * A pooled client can be left switched to another role (a callback evaluates as the server's owner),
 * so every checkout states the role it needs and gets a client switched to it.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { UpstreamTarget } from '../config/config.js';

export type OwnClient = pg.PoolClient;

/** What each pooled client currently runs as: 'none' is the --upstream user itself. */
const roles = new WeakMap<pg.PoolClient, string>();

export class OwnConnections {
  private readonly pools = new Map<string, pg.Pool>();
  private closed = false;

  constructor(
    readonly upstream: UpstreamTarget,
    /** Clients per database; a callback holds one only while a statement runs. */
    private readonly max = 10,
  ) {}

  private pool(database: string): pg.Pool {
    let p = this.pools.get(database);
    if (!p) {
      p = new pg.Pool({ ...clientConfig(this.upstream, database), max: this.max, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000 });
      // An idle client that upstream drops is removed by the pool; nothing else to do.
      p.on('error', () => {});
      this.pools.set(database, p);
    }
    return p;
  }

  /** A client of `database` running as `as` ('none': the --upstream user). Release it when done. */
  async connect(database: string, as = 'none'): Promise<OwnClient> {
    if (this.closed) throw new Error('the proxy is shutting down');
    const c = await this.pool(database).connect();
    try {
      if ((roles.get(c) ?? 'none') !== as) {
        // set_config rather than SET ROLE: the role name is a parameter, never spliced into SQL.
        roles.delete(c);
        await c.query("SELECT pg_catalog.set_config('role', $1, false)", [as]);
        roles.set(c, as);
      }
    } catch (e) {
      c.release(true);
      throw e;
    }
    return c;
  }

  /** Runs `fn` on a client of `database` (as the --upstream user) and releases it (destroyed if `fn` threw). */
  async use<T>(database: string, fn: (c: OwnClient) => Promise<T>): Promise<T> {
    const c = await this.connect(database);
    try {
      const r = await fn(c);
      c.release();
      return r;
    } catch (e) {
      c.release(true);
      throw e;
    }
  }

  /** Closes `database`'s pool (its clients are reopened on next use). */
  async drop(database: string): Promise<void> {
    const p = this.pools.get(database);
    if (!p) return;
    this.pools.delete(database);
    await p.end().catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.keys()].map((db) => this.drop(db)));
  }
}

/** node-postgres settings for `database` from --upstream, TLS as its sslmode asks. */
export function clientConfig(t: UpstreamTarget, database: string): pg.ClientConfig {
  return {
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database,
    application_name: 'redis-fdw-proxy',
    ssl: t.sslmode === 'disable' || t.sslmode === 'prefer' ? false : t.sslmode === 'require' ? { rejectUnauthorized: false } : { ca: t.sslrootcert ? readFileSync(t.sslrootcert) : undefined, checkServerIdentity: t.sslmode === 'verify-ca' ? () => undefined : undefined },
  };
}
