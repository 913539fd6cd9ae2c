/**
 * The transactional outbox: a committed transaction's Redis writes survive a proxy crash or a Redis
 * outage.
 *
 * - Before upstream's COMMIT, the session INSERTs the staged commands into
 *   `redis_fdw_proxy.outbox` in the same transaction (pipelined with the COMMIT), so they commit or
 *   roll back with the user's data.
 * - After COMMIT, each Redis server's share is applied once, guarded by a marker key for the
 *   transaction (applyGuarded: WATCH, MULTI, the commands, SET marker, EXEC), then the row is deleted.
 * - Any proxy replays old-enough rows, at start and periodically: a share whose marker exists was
 *   applied already; the others are applied the same guarded way. A crash at any point leaves either
 *   the row (replayed later, exactly once) or nothing left to do.
 *
 * The table is created lazily, per database, through the proxy's own connection (the --upstream
 * credentials); the client's role only needs INSERT, which is granted to PUBLIC. Deleting and replaying
 * use the proxy's own connection too. If that connection can't create the table, the database's
 * transactions are applied without the outbox, as with --no-outbox.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { UpstreamTarget } from '../config/config.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { RedisConnSpec } from '../redis/connection.js';
import { isCluster, lease, release } from '../redis/exclusive.js';
import { applyPerSlot } from '../redis/slot-apply.js';
import { applyGuarded, describeFailures, type ApplyResult, type StagedOp } from '../redis/write.js';
import type { OwnClient, OwnConnections } from '../upstream/own-connection.js';
import { GiveWay } from './give-way.js';
import type { RedisAccess } from './select.js';

export interface OutboxConfig {
  enabled: boolean;
  /** How often a proxy looks for rows to replay; 0: only at start (and when asked). */
  replayIntervalMs: number;
  /** A row younger than this is left to the session that committed it. */
  replayAfterMs: number;
  /** How long a transaction's marker stays in Redis: replays must happen within it. */
  markerTtlS: number;
}

export const OUTBOX_DEFAULTS: OutboxConfig = { enabled: true, replayIntervalMs: 10_000, replayAfterMs: 5_000, markerTtlS: 7 * 24 * 3600 };

/** One Redis server's share of a committed transaction, in staging order. */
export interface OutboxPart {
  conn: RedisConnSpec;
  ops: StagedOp[];
}

export const SCHEMA = 'redis_fdw_proxy';
export const INSERT_SQL = `INSERT INTO ${SCHEMA}.outbox (txid, payload) VALUES ($1, $2)`;

const DDL = [
  'SELECT pg_advisory_xact_lock(hashtext($$redis_fdw_proxy.outbox$$))',
  `CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`,
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.outbox (txid text PRIMARY KEY, writer name NOT NULL DEFAULT current_user, created timestamptz NOT NULL DEFAULT clock_timestamp(), payload text NOT NULL)`,
  `REVOKE ALL ON ${SCHEMA}.outbox FROM PUBLIC`,
  `GRANT USAGE ON SCHEMA ${SCHEMA} TO PUBLIC`,
  // Column-level: a client can add rows, but not read others' pending writes or forge the writer.
  `GRANT INSERT (txid, payload) ON ${SCHEMA}.outbox TO PUBLIC`,
];

/** The Redis key that says a transaction's share for one server has been applied (on a cluster, per slot: this plus `:{tag}`). */
export const markerKey = (txid: string, part: number): string => `redis-fdw-proxy:tx:${txid}:${part}`;

/**
 * What became of one server's share, as applyShare reports it. `failed`: `missed` of its `total` writes
 * were not applied, or their outcome is unknown (`error` says which); on a Redis Cluster the others were.
 */
export type ShareOutcome = { kind: 'done'; warning?: string } | { kind: 'failed'; error: PgError; missed: number; total: number; slots?: number };

/** "its 12 Redis writes", or "5 of its 12 Redis writes" when a cluster applied the other slots. */
export const missedWrites = (o: { missed: number; total: number }): string => (o.missed === o.total ? `its ${o.total} Redis writes` : `${o.missed} of its ${o.total} Redis writes`);

/** "none of its 12 Redis writes to t were applied", or "5 of its 12 Redis writes to t were not applied (the rest were)". */
export const notApplied = (o: { missed: number; total: number }, where: string): string =>
  o.missed === o.total ? `none of its ${o.total} Redis writes to ${where} were applied` : `${o.missed} of its ${o.total} Redis writes to ${where} were not applied (the rest were)`;

/**
 * Applies one server's share of a committed transaction at most once, under `marker` (see
 * applyGuarded), on a connection of its own. On a Redis Cluster, where WATCH and MULTI can't span hash
 * slots, once per slot, each slot under a marker of its own in that slot (applyPerSlot).
 */
export async function applyShare(redis: RedisAccess, part: OutboxPart, marker: string, markerTtlS: number): Promise<ShareOutcome> {
  const table = part.ops[0]?.table ?? '';
  const all = { missed: part.ops.length, total: part.ops.length };
  try {
    const client = await redis.client(part.conn);
    let r: ApplyResult;
    if (isCluster(client)) {
      const s = await applyPerSlot(client as Cluster, part.ops, (tag) => `${marker}:{${tag}}`, markerTtlS, table);
      if (s.error) return { kind: 'failed', error: s.error, missed: s.missed, total: s.total, slots: s.missedSlots };
      r = s.result;
    } else {
      const conn = await lease(client);
      let clean = false;
      try {
        const g = await applyGuarded(conn, part.ops, marker, markerTtlS, table);
        clean = true;
        if (g.kind === 'already') return { kind: 'done' };
        r = g.result;
      } finally {
        release(client, conn, clean);
      }
    }
    if (r.failures.length) return { kind: 'done', warning: `the transaction committed, but ${describeFailures(r, part.ops.length)}` };
    return { kind: 'done' };
  } catch (e) {
    return { kind: 'failed', error: isPgError(e) ? e : new PgError(SqlState.FdwError, String(e)), ...all };
  }
}

/** What became of one server's share. */
type PartOutcome =
  | { kind: 'done'; warning?: string }
  /** Not applied now (Redis unreachable, or the outcome unknown): the row stays for a replay. */
  | { kind: 'queued'; reason: string; writes: string };

type DbState = { kind: 'ready' } | { kind: 'off'; until: number } | { kind: 'pending'; p: Promise<boolean> };

export interface ReplayReport {
  /** Transactions whose shares were all applied (now or before) and whose rows were deleted. */
  replayed: number;
  /** Rows left for later (Redis unreachable). */
  left: number;
}

export class Outbox {
  private readonly dbs = new Map<string, DbState>();
  private readonly toForget = new Map<string, string[]>();
  private forgetting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private replaying: Promise<ReplayReport> | undefined;
  private closed = false;

  constructor(
    private readonly upstream: UpstreamTarget,
    private readonly redis: RedisAccess,
    private readonly log: Logger,
    readonly cfg: OutboxConfig,
    /** The proxy's own connections (shared with callback sessions; closed by whoever made them). */
    private readonly own: OwnConnections,
  ) {}

  /** Whether `database`'s transactions go through the outbox; creates its table on first use. */
  ready(database: string): Promise<boolean> | boolean {
    if (!this.cfg.enabled || this.closed) return false;
    const s = this.dbs.get(database);
    if (s?.kind === 'ready') return true;
    if (s?.kind === 'pending') return s.p;
    if (s?.kind === 'off' && Date.now() < s.until) return false;
    const p = this.create(database).then(
      () => {
        this.dbs.set(database, { kind: 'ready' });
        return true;
      },
      (e: unknown) => {
        // Retried a minute later; meanwhile transactions apply as without the outbox.
        this.log.warn({ database, err: String(e) }, 'outbox unavailable: committed Redis writes in this database are not protected against a proxy crash');
        this.dbs.set(database, { kind: 'off', until: Date.now() + 60_000 });
        return false;
      },
    );
    this.dbs.set(database, { kind: 'pending', p });
    return p;
  }

  private create(database: string): Promise<void> {
    return this.own.use(database, async (c) => {
      await c.query('BEGIN');
      try {
        await c.query(DDL[0]!);
        // IF NOT EXISTS is not enough for a table made by someone else; only create what's missing.
        if ((await c.query(`SELECT to_regclass('${SCHEMA}.outbox') IS NOT NULL AS ok`)).rows[0].ok !== true) {
          for (const sql of DDL.slice(1)) await c.query(sql);
        }
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        throw e;
      }
    });
  }

  /**
   * A fresh transaction id and the row's payload (UTF-8 JSON), encoded in slices so a big one doesn't
   * stall other sessions; as bytes in pieces, so binding it upstream copies none of it in one go.
   */
  async record(parts: readonly OutboxPart[]): Promise<{ txid: string; payload: Buffer[] }> {
    const giveWay = new GiveWay();
    const bufs: Buffer[] = [];
    let piece: string[] = ['{"v":1,"parts":['];
    const flush = (): void => {
      bufs.push(Buffer.from(piece.join(''), 'utf8'));
      piece = [];
    };
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      piece.push(`${i ? ',' : ''}{"conn":${JSON.stringify(part.conn)},"ops":[`);
      for (let j = 0; j < part.ops.length; j++) {
        const o = part.ops[j]!;
        piece.push(`${j ? ',' : ''}{"op":${JSON.stringify(o.op)},"table":${JSON.stringify(o.table)}}`);
        if ((j & 511) === 511) {
          flush();
          const p = giveWay.maybe();
          if (p) await p;
        }
      }
      piece.push(']}');
    }
    piece.push(']}');
    flush();
    // In pieces: joining ~10 MB would hold the event loop; the Bind sends them as they are.
    return { txid: randomUUID(), payload: bufs };
  }

  /**
   * Applies a committed transaction's shares (its row is in the outbox). Returns warnings for the
   * client. The row is deleted once every share is done; otherwise a replay finishes the job.
   */
  async applyCommitted(database: string, txid: string, parts: readonly OutboxPart[]): Promise<string[]> {
    const warnings: string[] = [];
    let queued = false;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const out = await this.applyPart(part, txid, i);
      if (out.kind === 'queued') {
        queued = true;
        const tables = [...new Set(part.ops.map((o) => o.table))].join(', ');
        warnings.push(`the transaction committed; ${out.writes} to ${tables} could not be applied now and are queued in the outbox: they will be applied exactly once when Redis is reachable (${out.reason})`);
      } else if (out.warning) warnings.push(out.warning);
    }
    if (!queued) this.forget(database, txid);
    return warnings;
  }

  private async applyPart(part: OutboxPart, txid: string, index: number): Promise<PartOutcome> {
    const out = await applyShare(this.redis, part, markerKey(txid, index), this.cfg.markerTtlS);
    if (out.kind === 'done') return out;
    const e = out.error;
    if (e.code === SqlState.FdwUnableToEstablishConnection || e.code === SqlState.TransactionResolutionUnknown) return { kind: 'queued', reason: e.message, writes: missedWrites(out) };
    // Redis refused the transaction as a whole (EXECABORT): nothing applied, and a replay would fare no better.
    return { kind: 'done', warning: `the transaction committed, but ${notApplied(out, part.ops[0]?.table ?? '')}: ${e.message}` };
  }

  /** Deletes applied rows, batched: one statement per database for whatever piled up meanwhile. */
  private forget(database: string, txid: string): void {
    const list = this.toForget.get(database);
    if (list) list.push(txid);
    else this.toForget.set(database, [txid]);
    this.forgetting ??= this.flushForget().finally(() => (this.forgetting = undefined));
  }

  private async flushForget(): Promise<void> {
    while (this.toForget.size) {
      const [database, txids] = this.toForget.entries().next().value as [string, string[]];
      this.toForget.delete(database);
      try {
        await this.own.use(database, (c) => c.query(`DELETE FROM ${SCHEMA}.outbox WHERE txid = ANY($1)`, [txids]));
      } catch (e) {
        // The rows stay; a replay finds their markers and deletes them.
        this.log.warn({ database, err: String(e), rows: txids.length }, 'outbox: could not delete applied rows');
      }
    }
  }

  /** Starts replaying: once now (every database that has an outbox), then every replayIntervalMs. */
  start(): void {
    if (!this.cfg.enabled) {
      this.log.info('outbox off: committed Redis writes are not replayed after a crash');
      return;
    }
    void this.discover()
      .then(() => this.replayNow())
      .then((r) => this.log.info(r, 'outbox replay at start'));
    if (this.cfg.replayIntervalMs > 0) {
      this.timer = setInterval(() => void this.replayNow(), this.cfg.replayIntervalMs);
      this.timer.unref();
    }
  }

  /** Databases with an outbox table, found through the --upstream connection's database. */
  private async discover(): Promise<void> {
    try {
      const dbs = (await this.own.use(this.upstream.database, (c) => c.query('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate'))).rows.map((r) => String(r.datname));
      for (const db of dbs) {
        if (this.dbs.get(db)?.kind === 'ready') continue;
        try {
          const has = (await this.own.use(db, (dc) => dc.query(`SELECT to_regclass('${SCHEMA}.outbox') IS NOT NULL AS ok`))).rows[0].ok === true;
          if (has) this.dbs.set(db, { kind: 'ready' });
          else if (db !== this.upstream.database) this.drop(db);
        } catch {
          this.drop(db);
        }
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'outbox: could not list databases to replay');
    }
  }

  /** Replays every known database's old-enough rows; concurrent calls share one pass. */
  replayNow(): Promise<ReplayReport> {
    this.replaying ??= this.replayAll().finally(() => (this.replaying = undefined));
    return this.replaying;
  }

  private async replayAll(): Promise<ReplayReport> {
    const total: ReplayReport = { replayed: 0, left: 0 };
    for (const [db, s] of [...this.dbs]) {
      if (s.kind !== 'ready' || this.closed) continue;
      try {
        const r = await this.replayDb(db);
        total.replayed += r.replayed;
        total.left += r.left;
      } catch (e) {
        this.log.warn({ database: db, err: String(e) }, 'outbox replay failed; retried at the next interval');
        this.drop(db);
      }
    }
    if (total.replayed || total.left) this.log.info(total, 'outbox replay');
    return total;
  }

  private replayDb(database: string): Promise<ReplayReport> {
    return this.own.use(database, (c) => this.replayOn(c, database));
  }

  private async replayOn(c: OwnClient, database: string): Promise<ReplayReport> {
    const report: ReplayReport = { replayed: 0, left: 0 };
    for (;;) {
      await c.query('BEGIN');
      try {
        // SKIP LOCKED: two proxies replaying at once take different rows (and the marker guards the rest).
        const rows = (
          await c.query(`SELECT txid, payload FROM ${SCHEMA}.outbox WHERE created <= clock_timestamp() - make_interval(secs => $1) ORDER BY created LIMIT 50 FOR UPDATE SKIP LOCKED`, [this.cfg.replayAfterMs / 1000])
        ).rows as { txid: string; payload: string }[];
        const done: string[] = [];
        for (const row of rows) {
          const parts = (JSON.parse(row.payload) as { parts: OutboxPart[] }).parts;
          let all = true;
          for (let i = 0; i < parts.length; i++) {
            const out = await this.applyPart(parts[i]!, row.txid, i);
            if (out.kind === 'queued') all = false;
            else if (out.warning) this.log.warn({ database, txid: row.txid, warning: out.warning }, 'outbox replay: Redis refused some commands');
          }
          if (all) done.push(row.txid);
          else report.left++;
        }
        if (done.length) await c.query(`DELETE FROM ${SCHEMA}.outbox WHERE txid = ANY($1)`, [done]);
        await c.query('COMMIT');
        report.replayed += done.length;
        if (rows.length < 50 || done.length === 0) return report;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        throw e;
      }
    }
  }

  /** Closes `database`'s connections: nothing to replay there, or they failed. */
  private drop(database: string): void {
    void this.own.drop(database);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.replaying?.catch(() => {});
    await this.forgetting?.catch(() => {});
  }
}
