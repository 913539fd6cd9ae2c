/**
 * A callback session: upstream's postgres_fdw connected back to the proxy (reserved database, see
 * reserved.ts). It is answered by the proxy alone, never relayed: it authenticates the password
 * postgres_fdw presents against the user mappings of our servers, then answers postgres_fdw's remote
 * SQL (session SETs, transaction commands, DECLARE/FETCH/CLOSE cursors, plain SELECTs) from Redis.
 */
import type net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { OwnConnections } from '../upstream/own-connection.js';
import { Frontend } from '../protocol/codes.js';
import { BIND_COMPLETE, CLOSE_COMPLETE, encodeCommandComplete, encodeError, encodeReadyForQuery, NO_DATA, PARSE_COMPLETE, type TxStatus } from '../protocol/backend.js';
import { decodeBind, decodeExecute, decodeParse, decodeQuery, decodeTarget } from '../protocol/frontend.js';
import { forEachFrame, Framer, FrameError } from '../protocol/framer.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { MessageWriter } from '../protocol/writer.js';
import { parseSql } from '../sql/parser.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import type { RedisAccess } from '../executor/select.js';
import { CallbackCatalog } from './catalog.js';
import { evaluateSelect, explainEstimate, openStream, unsupported, type Bound, type EvalContext, type RowSet } from './evaluate.js';
import { directModify } from './modify.js';
import { truncateOps } from '../executor/truncate.js';
import { UpstreamLink } from './upstream-link.js';
import { CallbackTx } from './writes.js';
import type { CancelRegistry } from '../session/cancel.js';

export interface CallbackDeps {
  /** The proxy's own upstream connections (the --upstream credentials). */
  own: OwnConnections;
  /** Where the session registers its BackendKeyData, so a CancelRequest stops its statement. */
  cancels: Pick<CancelRegistry, 'register' | 'unregister'>;
  redis: RedisAccess;
  log: Logger;
  maxValueBytes: number;
}

interface Prepared {
  text: string;
  types: number[];
}
interface Portal {
  stmt: Prepared;
  values: (Buffer | null)[];
  /** Computed at Describe (to send its RowDescription), sent at Execute. */
  result?: Outcome;
}
type Outcome = { tag: string; set?: RowSet };
interface Cursor {
  rowDescription: Buffer;
  /** Up to n more rows (fewer only at the end); `signal`: the FETCH's cancel. */
  take(n: number, signal: AbortSignal): Promise<Buffer[]>;
  close(): void;
}

/** A cursor over rows computed at DECLARE (anything but a plain scan). */
function heldCursor(set: RowSet): Cursor {
  let pos = 0;
  return {
    rowDescription: set.rowDescription,
    take: async (n) => {
      const rows = set.rows.slice(pos, pos + n);
      pos += rows.length;
      return rows;
    },
    close: () => {},
  };
}

const TX_TAGS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK',
};

/** postgres_fdw's cursor declaration, always in this form (deparse.c / postgres_fdw.c). */
const DECLARE_RE = /^\s*DECLARE\s+(\w+)\s+CURSOR\s+FOR\s+/i;

export class CallbackSession {
  private readonly framer = new Framer();
  private link: UpstreamLink | undefined;
  private catalog: CallbackCatalog | undefined;
  private phase: 'password' | 'ready' | 'closed' = 'password';
  private tx: TxStatus = 'I';
  private skipToSync = false;
  private readonly statements = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  private readonly cursors = new Map<string, Cursor>();
  private chain: Promise<void> = Promise.resolve();
  private readonly writes: CallbackTx;
  /** BackendKeyData's payload (process id, secret), registered for cancel once logged in. */
  private readonly key = Buffer.alloc(8);
  /** The statement in progress: a CancelRequest aborts it. */
  private scope: AbortController | undefined;

  constructor(
    private readonly sock: net.Socket | tls.TLSSocket,
    private readonly database: string,
    private readonly deps: CallbackDeps,
    private readonly log: Logger,
  ) {
    this.writes = new CallbackTx(deps.redis, deps.maxValueBytes);
  }

  /** Starts after the StartupMessage; `rest` is whatever the client sent after it. */
  start(rest: Buffer): void {
    this.sock.on('data', (b: Buffer) => this.onData(b));
    this.sock.on('error', () => {});
    this.sock.on('close', () => this.close());
    if (!(this.sock instanceof tls.TLSSocket) && !isLoopback(this.sock.remoteAddress)) {
      return this.fatal(new PgError('28000', 'callback connections must come over loopback or TLS', { hint: 'Give the proxy --tls-cert/--tls-key, or run it beside upstream.' }));
    }
    // Cleartext: the channel is loopback or TLS, and the proxy must compare the secret itself.
    this.sock.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]));
    if (rest.length) this.onData(rest);
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    const r = this.framer.push(chunk);
    if (r instanceof FrameError) return this.fatal(new PgError(SqlState.ProtocolViolation, r.message));
    const frames: Buffer[] = [];
    forEachFrame(r.buf, r.end, (_code, off, next) => void frames.push(Buffer.from(r.buf.subarray(off, next))));
    for (const f of frames) this.chain = this.chain.then(() => this.handle(f)).catch((e: unknown) => this.fatal(e));
  }

  private async handle(m: Buffer): Promise<void> {
    if (this.phase === 'closed') return;
    const code = m[0]!;
    if (this.phase === 'password') {
      if (code !== 0x70) return this.fatal(new PgError(SqlState.ProtocolViolation, 'expected a password message'));
      return this.login(m.toString('utf8', 5, m.indexOf(0, 5)));
    }
    this.scope = new AbortController();
    this.link!.signal = this.scope.signal;
    try {
      await this.message(code, m);
    } finally {
      this.scope = undefined;
      this.link!.signal = undefined;
    }
  }

  /** A CancelRequest naming this session: stops the statement in progress with 57014, if any. */
  private cancel(): void {
    this.scope?.abort(new PgError(SqlState.QueryCanceled, 'canceling statement due to user request'));
  }

  private async message(code: number, m: Buffer): Promise<void> {
    if (code === Frontend.Sync) {
      this.skipToSync = false;
      return this.send(encodeReadyForQuery(this.tx));
    }
    if (code === Frontend.Terminate) return this.close();
    if (code === Frontend.Query) return this.simpleQuery(decodeQuery(m, 0, m.length));
    if (this.skipToSync || code === Frontend.Flush) return;
    try {
      this.send(await this.extended(code, m));
    } catch (e) {
      // Without its upstream link the session can answer nothing: postgres_fdw reconnects next time.
      if (this.link?.isClosed) return this.fatal(e);
      this.skipToSync = true;
      this.sendError(e);
    }
  }

  private async login(password: string): Promise<void> {
    try {
      this.link = await UpstreamLink.open(this.deps.own, this.database || this.deps.own.upstream.database);
      this.catalog = new CallbackCatalog(this.link);
      if (!(await this.catalog.authenticate(password))) throw new PgError('28P01', 'password authentication failed for the redis-fdw-proxy callback', { hint: 'The password must be that of a user mapping of a Redis foreign server.' });
    } catch (e) {
      return this.fatal(e);
    }
    this.phase = 'ready';
    const params: [string, string][] = [
      ['server_version', this.link.serverVersion],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO, MDY'],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
      ['TimeZone', 'GMT'],
    ];
    const out: Buffer[] = [Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])];
    for (const [k, v] of params) out.push(new MessageWriter(0x53, 64).cstring(k).cstring(v).finish());
    this.key.writeInt32BE(process.pid, 0);
    crypto.randomFillSync(this.key, 4, 4);
    this.deps.cancels.register(this.key, () => this.cancel());
    out.push(new MessageWriter(0x4b, 13).bytes(this.key).finish());
    out.push(encodeReadyForQuery('I'));
    this.send(Buffer.concat(out));
  }

  private async simpleQuery(text: string): Promise<void> {
    const out: Buffer[] = [];
    try {
      const stmts = parseSql(text).stmts ?? [];
      if (stmts.length === 0) out.push(Buffer.from([0x49, 0, 0, 0, 4]));
      for (const s of stmts) {
        const loc = s.stmt_location ?? 0;
        const piece = s.stmt_len ? text.slice(loc, loc + s.stmt_len) : text.slice(loc);
        const r = await this.run(piece, s.stmt as Node, { values: [], types: [] });
        if (r.set) out.push(r.set.rowDescription, ...r.set.rows);
        out.push(encodeCommandComplete(r.tag));
      }
    } catch (e) {
      if (this.link?.isClosed) return this.fatal(e);
      out.push(errorBytes(e));
      if (this.tx === 'T') this.tx = 'E';
    }
    out.push(encodeReadyForQuery(this.tx));
    this.send(Buffer.concat(out));
  }

  private async extended(code: number, m: Buffer): Promise<Buffer> {
    switch (code) {
      case Frontend.Parse: {
        const p = decodeParse(m, 0, m.length);
        this.statements.set(p.name, { text: p.text, types: p.paramTypes });
        return PARSE_COMPLETE;
      }
      case Frontend.Bind: {
        const b = decodeBind(m, 0, m.length);
        const stmt = this.statements.get(b.statement);
        if (!stmt) throw new PgError('26000', `prepared statement "${b.statement}" does not exist`);
        if (b.paramFormats.some((f) => f !== 0) || b.resultFormats.some((f) => f !== 0)) throw unsupported('binary parameters or results');
        this.portals.set(b.portal, { stmt, values: b.params });
        return BIND_COMPLETE;
      }
      case Frontend.Describe: {
        const t = decodeTarget(m, 0, m.length);
        if (t.kind === 'S') {
          const stmt = this.statements.get(t.name);
          if (!stmt) throw new PgError('26000', `prepared statement "${t.name}" does not exist`);
          throw unsupported('Describe of a prepared statement');
        }
        const p = this.portal(t.name);
        p.result ??= await this.runText(p.stmt.text, { values: p.values, types: p.stmt.types });
        return p.result.set ? p.result.set.rowDescription : NO_DATA;
      }
      case Frontend.Execute: {
        const e = decodeExecute(m, 0, m.length);
        const p = this.portal(e.portal);
        const r = p.result ?? (await this.runText(p.stmt.text, { values: p.values, types: p.stmt.types }));
        p.result = undefined;
        return Buffer.concat([...(r.set?.rows ?? []), encodeCommandComplete(r.tag)]);
      }
      case Frontend.Close: {
        const t = decodeTarget(m, 0, m.length);
        (t.kind === 'S' ? this.statements : this.portals).delete(t.name);
        return CLOSE_COMPLETE;
      }
      default:
        throw new PgError(SqlState.ProtocolViolation, `invalid frontend message type ${code}`);
    }
  }

  private portal(name: string): Portal {
    const p = this.portals.get(name);
    if (!p) throw new PgError('34000', `portal "${name}" does not exist`);
    return p;
  }

  private async runText(text: string, bound: Bound): Promise<Outcome> {
    const stmts = parseSql(text).stmts ?? [];
    if (stmts.length !== 1) throw new PgError(SqlState.SyntaxError, 'cannot insert multiple commands into a prepared statement');
    return this.run(text, stmts[0]!.stmt as Node, bound);
  }

  private async run(text: string, stmt: Node, bound: Bound): Promise<Outcome> {
    const kind = nodeKind(stmt);
    const n = inner(stmt);
    if (this.tx === 'E' && !(kind === 'TransactionStmt' && ['TRANS_STMT_ROLLBACK', 'TRANS_STMT_ROLLBACK_TO'].includes(String(n.kind)))) {
      throw new PgError(SqlState.InFailedTransaction, 'current transaction is aborted, commands ignored until end of transaction block');
    }
    switch (kind) {
      case 'VariableSetStmt':
        return { tag: 'SET' };
      case 'TransactionStmt': {
        const k = String(n.kind);
        const tag = TX_TAGS[k];
        if (!tag) throw unsupported(`${k.replace('TRANS_STMT_', '').toLowerCase()} transaction commands`);
        const savepoint = String(n.savepoint_name ?? '');
        if (k === 'TRANS_STMT_BEGIN' || k === 'TRANS_STMT_START') {
          this.tx = 'T';
          this.catalog!.forgetTables();
        }
        else if (k === 'TRANS_STMT_COMMIT' || k === 'TRANS_STMT_ROLLBACK') {
          const failed = this.tx === 'E';
          this.tx = 'I';
          this.closeCursors();
          if (k === 'TRANS_STMT_ROLLBACK' || failed) {
            this.writes.reset();
            return { tag: 'ROLLBACK' };
          }
          await this.writes.commit();
        } else if (k === 'TRANS_STMT_ROLLBACK_TO') {
          this.writes.rollbackTo(savepoint);
          this.tx = 'T';
        } else if (k === 'TRANS_STMT_SAVEPOINT') this.writes.savepoint(savepoint);
        else if (k === 'TRANS_STMT_RELEASE') this.writes.release(savepoint);
        return { tag };
      }
      case 'DeclareCursorStmt': {
        const m = DECLARE_RE.exec(text);
        if (!m) throw unsupported('this form of DECLARE');
        const select = text.slice(m[0].length);
        const parsed = parseSql(select).stmts?.[0]?.stmt as Node | undefined;
        if (!parsed || nodeKind(parsed) !== 'SelectStmt') throw unsupported('a cursor over anything but SELECT');
        const name = String(n.portalname);
        const streamed = await openStream(this.context(), parsed);
        const cursor: Cursor = streamed
          ? { rowDescription: streamed.rowDescription, take: (k, signal) => streamed.stream.take(k, signal), close: () => streamed.stream.close() }
          : heldCursor(await this.select(select, parsed, bound));
        this.cursors.get(name)?.close();
        this.cursors.set(name, cursor);
        return { tag: 'DECLARE CURSOR' };
      }
      case 'FetchStmt': {
        const c = this.cursors.get(String(n.portalname));
        if (!c) throw new PgError('34000', `cursor "${String(n.portalname)}" does not exist`);
        if ((n.direction ?? 'FETCH_FORWARD') !== 'FETCH_FORWARD') throw unsupported('FETCH other than FORWARD');
        const count = n.howMany === undefined ? 1 : Number(n.howMany);
        const rows = await c.take(count, this.scope!.signal);
        return { tag: `FETCH ${rows.length}`, set: { rowDescription: c.rowDescription, rows } };
      }
      case 'ClosePortalStmt':
        this.cursors.get(String(n.portalname))?.close();
        this.cursors.delete(String(n.portalname));
        return { tag: 'CLOSE CURSOR' };
      case 'DeallocateStmt':
        return { tag: 'DEALLOCATE' };
      case 'ExplainStmt': {
        const set = await explainEstimate(this.context(), n.query as Node);
        return { tag: 'EXPLAIN', set };
      }
      case 'SelectStmt': {
        const set = await this.select(text, stmt, bound);
        return { tag: `SELECT ${set.rows.length}`, set };
      }
      case 'InsertStmt':
        return this.writes.insert(this.catalog!, n, bound, this.tx === 'I');
      case 'TruncateStmt': {
        // postgres_fdw's TRUNCATE (PostgreSQL 14+) of foreign tables that Postgres truncates itself.
        for (const r of (n.relations as Node[] | undefined) ?? []) {
          const rel = inner(r);
          const t = await this.catalog!.table(rel.schemaname === undefined ? 'public' : String(rel.schemaname), String(rel.relname));
          await this.writes.stage(t, truncateOps(t), this.tx === 'I');
        }
        return { tag: 'TRUNCATE TABLE' };
      }
      case 'UpdateStmt':
      case 'DeleteStmt':
        return directModify(this.context(), this.writes, text, stmt, bound, this.tx === 'I', this.deps.maxValueBytes);
      default:
        throw unsupported(`${kind ?? 'this statement'}`);
    }
  }

  private select(text: string, stmt: Node, bound: Bound): Promise<RowSet> {
    return evaluateSelect(this.context(), text, stmt, bound);
  }

  private context(): EvalContext {
    const signal = this.scope?.signal;
    return { catalog: this.catalog!, redis: { client: (c) => this.deps.redis.client(c), signal }, link: this.link!, pending: this.writes, snapshots: this.writes.snapshots };
  }

  private send(b: Buffer): void {
    if (this.phase !== 'closed') this.sock.write(b);
  }

  private sendError(e: unknown): void {
    if (this.tx === 'T') this.tx = 'E';
    this.send(errorBytes(e));
  }

  private fatal(e: unknown): void {
    if (this.phase === 'closed') return;
    const err = isPgError(e) ? new PgError(e.code, e.message, { severity: 'FATAL', ...(e.hint ? { hint: e.hint } : {}), ...(e.detail ? { detail: e.detail } : {}) }) : new PgError(SqlState.InternalError, String(e), { severity: 'FATAL' });
    if (!isPgError(e)) this.log.error({ err: e instanceof Error ? e.stack : String(e) }, 'callback session failed');
    this.sock.end(encodeError(err));
    this.close();
  }

  private closeCursors(): void {
    for (const c of this.cursors.values()) c.close();
    this.cursors.clear();
  }

  close(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.deps.cancels.unregister(this.key);
    this.cancel();
    this.closeCursors();
    this.link?.close();
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }
}

function errorBytes(e: unknown): Buffer {
  return encodeError(isPgError(e) ? e : new PgError(SqlState.InternalError, `redis-fdw-proxy internal error: ${e instanceof Error ? e.message : String(e)}`));
}

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));
}
