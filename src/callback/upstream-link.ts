/**
 * What a callback session asks upstream itself: it has no client session to borrow, so it uses the
 * proxy's own connections (own-connection.ts, the --upstream credentials) to read the catalog and to
 * evaluate what a remote query asks beyond a plain scan. It only ever sends statements over pg_catalog
 * and over derived tables the proxy built, never a foreign table, so it can't call the proxy back.
 */
import pg from 'pg';
import { encodeDataRow, encodeRowDescription } from '../protocol/backend.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { sendCancel } from '../upstream/connect.js';
import type { OwnClient, OwnConnections } from '../upstream/own-connection.js';

export interface LinkResult {
  /** The RowDescription message, whole, when the statement returns rows. */
  rowDescription: Buffer | undefined;
  /** DataRow messages, whole (type byte included), in text format. */
  rows: Buffer[];
  tag: string;
}

/** Values as upstream sent them (text): the proxy relays them, it never interprets them. */
const asText = (v: string): string => v;

export class UpstreamLink {
  private closed = false;
  /** The client running this link's statement, to cancel it. */
  private running: OwnClient | undefined;
  /** The callback statement in progress: once it is cancelled, what the link runs for it is too. */
  signal: AbortSignal | undefined;

  private constructor(
    private readonly own: OwnConnections,
    private readonly database: string,
    /** Upstream's server_version, which postgres_fdw reads from the callback session. */
    readonly serverVersion: string,
  ) {}

  static async open(own: OwnConnections, database: string): Promise<UpstreamLink> {
    const version = await own.use(database, (c) => c.query<{ v: string }>("SELECT pg_catalog.current_setting('server_version') AS v")).catch((e: unknown) => {
      throw isPgError(e) ? e : pgError(e);
    });
    return new UpstreamLink(own, database, version.rows[0]?.v ?? '15.0');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Runs one statement (extended protocol, text results). Buffers are sent as binary parameters.
   * `as`: run it as this role (set_config('role')), so what a callback asks upstream to evaluate has
   * only the rights of whoever could read the secret it presented; absent: as the --upstream user
   * (catalog reads).
   */
  async query(sql: string, params: (string | Buffer | null)[] = [], types: number[] = [], as = 'none'): Promise<LinkResult> {
    if (this.closed) throw new PgError(SqlState.ConnectionFailure, 'the callback session is closed');
    let c: OwnClient;
    try {
      c = await this.own.connect(this.database, as);
    } catch (e) {
      throw pgError(e);
    }
    const signal = this.signal;
    if (signal?.aborted) {
      c.release();
      throw signal.reason as Error;
    }
    const onAbort = (): void => void this.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.running = c;
    try {
      // pg sends `types` as Parse's parameter types and asks it for each column's parser: an array
      // with getTypeParser is both.
      const r = await c.query({ text: sql, values: params, rowMode: 'array', types: Object.assign([...types], { getTypeParser: () => asText }) } as unknown as pg.QueryConfig);
      c.release();
      return toLinkResult(r as unknown as pg.QueryArrayResult<(string | null)[]>);
    } catch (e) {
      // An error upstream leaves the client usable; anything else (a lost connection) does not.
      c.release(!(e instanceof pg.DatabaseError));
      throw pgError(e);
    } finally {
      this.running = undefined;
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Asks upstream to cancel the statement this link is running, if any. */
  async cancel(): Promise<void> {
    const c = this.running as (OwnClient & { processID: number | null; secretKey: number | null }) | undefined;
    if (!c || c.processID === null || c.secretKey === null) return;
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(c.processID, 8);
    packet.writeInt32BE(c.secretKey, 12);
    await sendCancel(this.own.upstream, packet).catch(() => {});
  }

  close(): void {
    this.closed = true;
  }
}

function toLinkResult(r: pg.QueryArrayResult<(string | null)[]>): LinkResult {
  const fields = r.fields ?? [];
  const rowDescription = fields.length
    ? encodeRowDescription(fields.map((f) => ({ name: f.name, tableOid: f.tableID, attnum: f.columnID, typeOid: f.dataTypeID, typeLen: f.dataTypeSize, typeMod: f.dataTypeModifier, format: 0 })))
    : undefined;
  const rows = r.rows.map((row) => encodeDataRow(row.map((v) => (v === null ? null : Buffer.from(v, 'utf8')))));
  const tag = r.command === 'INSERT' ? `INSERT 0 ${r.rowCount ?? 0}` : r.rowCount === null ? (r.command ?? '') : `${r.command} ${r.rowCount}`;
  return { rowDescription, rows, tag };
}

/** Upstream's error as the client should see it; a lost connection as 08006. */
function pgError(e: unknown): PgError {
  if (isPgError(e)) return e;
  if (e instanceof pg.DatabaseError) {
    return new PgError(e.code ?? SqlState.InternalError, e.message, { ...(e.detail ? { detail: e.detail } : {}), ...(e.hint ? { hint: e.hint } : {}) });
  }
  return new PgError(SqlState.ConnectionFailure, `the proxy lost its catalog connection to upstream: ${e instanceof Error ? e.message : String(e)}`);
}
