/**
 * The per-session interceptor: what happens to statements the hook flagged. A simple Query with any
 * statement to intercept runs as the equivalent extended-protocol batch (one Parse/Bind/Describe/
 * Execute per statement, one Sync), its replies shaped back into simple-query form. Extended-protocol
 * statements over Redis foreign tables stay prepared upstream, with the Redis rows as extra
 * parameters bound at each Bind.
 */
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import type { ProxyConfig } from '../config/config.js';
import { Backend, Frontend } from '../protocol/codes.js';
import { BIND_COMPLETE, CLOSE_COMPLETE, decodeCommandTag, decodeParameterDescription, encodeCommandComplete, encodeDataRow, encodeError, encodeParameterDescription, encodeRowDescription, NO_DATA, type FieldDescription } from '../protocol/backend.js';
import { codecFor, encodeTextArray, type Codec } from '../protocol/encoding.js';
import { BYTEA_ARRAY_OID, TEXT_ARRAY_OID } from '../protocol/text-array.js';
import { bindStatementName, decodeBind, decodeParse, decodeTarget, decodeExecute, encodeBind, encodeParse, paramFormat, FLUSH, SYNC, type BindMessage } from '../protocol/frontend.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { fresh, SharedResolutions, type CachedResolution } from '../catalog/shared-resolutions.js';
import { CatalogCache, NAME_INDEX_SQL, qualifiedName, unionIndex } from '../catalog/catalog.js';
import { analyzeStatement, inner, type Node, type RangeVarRef, type StatementInfo } from '../sql/analyze.js';
import { EMPTY_INDEX, type Decision, type NameIndex } from '../sql/classify.js';
import { forgetUnpacked, unpackAhead } from '../sql/text-builder.js';
import { splitStatements } from '../sql/statements.js';
import type { ParamText } from '../sql/pushdown.js';
import { RedisPool, type RedisPoolOptions } from '../redis/pool.js';
import { forward, Req, type Capture } from '../session/expected-queue.js';
import type { RedisOp } from '../redis/write.js';
import type { Interceptor, SessionPort } from '../session/types.js';
import { closeOwnBatch, settleOwnBatch, failWith, runInternal } from '../upstream/internal-query.js';
import { abortable, throwIfCanceled } from '../session/cancel.js';
import { DDL_KINDS, passesThrough, planDdl, type DdlAction } from './ddl.js';
import { catalogReloadsTotal, hotCounts, stagedWritesTotal } from '../metrics/metrics.js';
import { recordRead, recordStatementInfo, recordWrite } from '../metrics/statement-kind.js';
import { attributedAccess, StatementStats } from '../metrics/statement-stats.js';
import { passCapture, retagExecute, simpleModeEntries, type PositionMap } from './replies.js';
import { evaluatesPurely, explainPlanOf, planWrite, type WritePlan } from './write.js';
import { simpleQueryParam } from './upstream-only.js';
import { clientRowDescription, evalCapture, fetchRows, writeParseError, prepareWrite, returningWidth, writeOutcome, type PreparedWrite, type SuspendedRows } from './dml.js';

/** An INSERT's write needs no rows read beforehand. */
const NO_SNAPSHOT: PreparedWrite = { extra: [], snapshot: [] };
import { applyCommitted, applyNow, applyStaged, sharesOf, TxWrites, txCommand, type TxCommand } from './transaction.js';
import { OwnConnections } from '../upstream/own-connection.js';
import { INSERT_SQL, Outbox, OUTBOX_DEFAULTS, type OutboxConfig, type OutboxPart } from './outbox.js';
import { closeIdle } from '../redis/exclusive.js';
import { DEFAULT_WHOLE_READ } from '../redis/resp-scan.js';
import { planTruncate, truncateOps, type TruncatePlan } from './truncate.js';
import type { ColumnUse } from '../sql/column-use.js';
import { withSources, carrierSetting, explainLines, fetchReadParams, planRead, resolveTables, checkPrivilege, type ForeignTable, type Privilege, type ReadPlan, type RedisAccess, type Resolution, type Resolver } from './select.js';
import { fastFields, fastParams, fastParamsProblem, fastShape, fastSyntax, NO_FAST_PARAMS, runFast, type FastParams, type FastResult, type FastShape, type FastStream } from './fast-path.js';
import { encodeHmget, planPoint, pointFields, pointResult, type PointLookup } from './point-lookup.js';
import type { Reply } from '../redis/resp-pipe.js';
import { isTimeout, mapRedisError } from '../redis/errors.js';
import { describeConn } from '../redis/connection.js';
import { fastWriteRows, fastWriteRowsGivingWay, fastWriteShape, fastWriteShapeGivingWay, type FastWriteShape } from './fast-write.js';
import { GiveWay } from './give-way.js';

/** A statement upstream runs that stands in for nothing (its tag is replaced). */
const NO_OP = 'DO $$BEGIN END$$';

/**
 * Simple-Query texts from this length up give way between the steps that each walk the whole
 * statement (about 100,000 characters of VALUES take a few milliseconds a step; the parse worker
 * takes texts from 256 KB).
 */
const GIVE_WAY_CHARS = 64 * 1024;
/** How long a prepared statement's privilege check stays good before Bind checks again. */
const PRIVILEGE_TTL_MS = 1000;

type Inspect = Decision & { kind: 'inspect' };

/**
 * What one intercepted statement is, decided once; the simple-query and extended-protocol adapters
 * both dispatch on it. 'plain' statements go upstream as the client wrote them.
 */
type StatementPlan =
  | { kind: 'plain' }
  | { kind: 'ddl'; action: DdlAction & { kind: 'tag' | 'text' } }
  | { kind: 'tx'; cmd: TxCommand }
  | { kind: 'truncate'; plan: TruncatePlan }
  | { kind: 'write'; plan: WritePlan }
  | { kind: 'read'; plan: ReadPlan }
  /** Upstream's error already answered the client. */
  | { kind: 'failed' };

const PLAIN: StatementPlan = { kind: 'plain' };
/** Statements that can't change how names resolve (unless they call set_config, checked apart). */
const DML_START = /^\s*(select|insert|update|delete|with|values|table|begin|start)\b/i;
const FAILED: StatementPlan = { kind: 'failed' };

/** Runs `fn`; a PgError it throws becomes the client's error (upstream made to fail with it) and `failed`. */
async function orFail<T, F>(port: SessionPort, failed: F, fn: () => Promise<T> | T): Promise<T | F> {
  try {
    return await fn();
  } catch (e) {
    if (!isPgError(e)) throw e;
    failWith(port, encodeError(e));
    return failed;
  }
}

/** A fast-path RowDescription for one list of result formats, kept with its statement for the next Bind. */
interface Described {
  formats: string;
  fields: FieldDescription[];
  bytes: Buffer;
}

type OwnedStatement =
  /** `generation`: the catalog's when planned; after DDL through this proxy the fast path leaves it to upstream. */
  | { kind: 'read'; plan: ReadPlan; checkedAt: number; fast: FastShape | string; generation: number; changed?: boolean; sql: string; point?: PointLookup; described?: Described }
  | { kind: 'tag'; tag: string }
  /** `confirmed`: upstream has answered its Parse (a fast write must not run a statement upstream refused). */
  | { kind: 'write'; plan: WritePlan; checkedAt: number; sql: string; fast: FastWriteShape | string; generation: number; changed?: boolean; confirmed: boolean }
  | { kind: 'tx'; cmd: TxCommand }
  | { kind: 'truncate'; plan: TruncatePlan };
type OwnedRead = OwnedStatement & { kind: 'read' };
/**
 * When a portal was bound: Postgres drops it at the end of its transaction, so one bound outside a
 * transaction block lives until the batch's Sync (`batch`: the session's count of Syncs and Queries).
 */
interface PortalLife {
  batch: number;
  inBlock: boolean;
}

type OwnedPortal =
  | { kind: 'tag'; tag: string }
  | { kind: 'explain'; lines: string[] }
  | { kind: 'read'; plan: ReadPlan }
  /** Answered by the fast path: exists only here until an Execute with a row limit makes it upstream's. */
  | { kind: 'fast'; plan: ReadPlan; bind: BindMessage; fields: FieldDescription[]; description: Buffer; result: FastResult }
  /** `early`: its batch began with it, so upstream's side may end with the proxy's own Sync (see runWrite). */
  | ({ kind: 'write'; plan: WritePlan; prepared: PreparedWrite; early: boolean; sql: string } & PortalLife)
  | { kind: 'suspended'; plan: WritePlan; rest: SuspendedRows }
  /** A write the fast write answers: its rows are computed, Redis gets them at Execute. Exists only here. */
  | ({ kind: 'fastwrite'; plan: WritePlan; shape: FastWriteShape; rows: (string | null)[][]; bind: BindMessage; sql: string } & PortalLife)
  /** A write without RETURNING that has run: Postgres won't run it again (55000). `upstream`: upstream has it too. */
  | ({ kind: 'spent'; upstream: boolean } & PortalLife)
  | { kind: 'tx'; cmd: TxCommand }
  | { kind: 'truncate'; plan: TruncatePlan };

/** What every session shares: the catalog cache and the Redis clients. */
export class RedisFdw {
  readonly catalog: CatalogCache;
  readonly pool: RedisPool;
  readonly redis: RedisAccess = { client: (c) => this.pool.getClient(c) };
  /** Committed transactions' Redis writes, kept upstream until applied (see outbox.ts). */
  readonly outbox: Outbox;
  /** Resolutions that sessions with the same StartupMessage share while they are pristine. */
  readonly sharedResolutions: SharedResolutions<Resolution>;
  /** The proxy's own upstream connections (outbox, callback sessions); absent without --upstream. */
  readonly own: OwnConnections | undefined;

  constructor(
    readonly log: Logger,
    catalogTtlMs = 1000,
    /** Largest value a write may send to Redis, in bytes. */
    readonly maxValueBytes = 512 * 1024 * 1024,
    /** Whether the local fast path may answer reads (off: every read takes the upstream path). */
    readonly fastPath = true,
    /** How long a statement's name resolution and privilege check stay good before they are asked again. */
    readonly recheckMs = PRIVILEGE_TTL_MS,
    upstream?: ProxyConfig['upstream'],
    outbox: OutboxConfig = OUTBOX_DEFAULTS,
    poolOptions: RedisPoolOptions = {},
  ) {
    this.catalog = new CatalogCache(catalogTtlMs);
    this.sharedResolutions = new SharedResolutions(recheckMs);
    this.pool = new RedisPool(poolOptions);
    this.own = upstream ? new OwnConnections(upstream) : undefined;
    this.outbox = new Outbox(upstream!, this.redis, log, upstream ? outbox : { ...outbox, enabled: false }, this.own!);
  }

  interceptor = (port: SessionPort): Interceptor => new SessionInterceptor(this, port);

  async close(): Promise<void> {
    await this.outbox.close();
    await this.own?.close();
    closeIdle();
    await this.pool.close();
  }
}

/** `opts` lengthen the catalog's and privileges' re-check intervals (tests that count round trips). */
export function createRedisFdw(config: ProxyConfig, log: Logger, opts: { recheckMs?: number } = {}): RedisFdw {
  return new RedisFdw(log, opts.recheckMs ?? 1000, config.maxValueBytes, config.fastPath ?? true, opts.recheckMs, config.upstream, config.outbox ?? OUTBOX_DEFAULTS, { commandTimeoutMs: config.redisTimeoutMs, connectTimeoutMs: config.redisConnectTimeoutMs, fastScan: config.redisFastScan ?? true, fastLookup: config.redisFastLookup ?? true, wholeRead: config.redisWholeRead ?? DEFAULT_WHOLE_READ });
}

const textParam =
  (bind: BindMessage, types: readonly number[], codec: Codec | undefined): ParamText =>
  (n) => {
    const v = bind.params[n - 1];
    if (v === undefined) return undefined;
    if (v === null) return null;
    // Binary text is its bytes in the client's encoding; other binary types aren't compared as text.
    if (paramFormat(bind, n - 1) === 1 && ![0, 25, 1043, 19, 705].includes(types[n - 1] ?? 0)) return undefined;
    return codec ? codec.decode(v) : v.toString('utf8');
  };

const NO_PARAMS: ParamText = () => undefined;

/** Sends the statement's Execute (in whatever framing its protocol needs) with this capture as its entry. */
type SendExecute = (execute: Capture) => void;

type ExecuteResult = { kind: 'done'; tag: string } | { kind: 'failed' };

/**
 * Sends an Execute, then a Flush, and waits for upstream's answer. Errors go to the client as they
 * are; the command tag is kept from the client with `keepTag: false`, for the caller to send its own.
 */
function awaitExecute(port: SessionPort, send: SendExecute, opts: { keepTag: boolean }): Promise<ExecuteResult> {
  return new Promise((resolve) => {
    let tag: string | undefined;
    send({
      kind: 'capture',
      req: Req.Execute,
      onFrame(code, buf, start, end) {
        if (code === Backend.CommandComplete) {
          tag = decodeCommandTag(buf, start, end);
          if (!opts.keepTag) return null;
        }
        return Buffer.from(buf.subarray(start, end));
      },
      // An error ends the entry without a tag; 'skipped' means upstream discarded the Execute.
      onDone: (outcome) => resolve(outcome === 'done' && tag !== undefined ? { kind: 'done', tag } : { kind: 'failed' }),
    });
    port.send(FLUSH, []);
  });
}

class SessionInterceptor implements Interceptor {
  private readonly created = new Set<string>();
  private readonly statements = new Map<string, OwnedStatement>();
  private readonly portals = new Map<string, OwnedPortal>();
  private namesCache: { base: NameIndex | undefined; size: number; index: NameIndex } | undefined;
  private readonly tx = new TxWrites();
  /** Inside a simple Query of several statements: its implicit transaction holds writes until it ends. */
  private implicitQuery = false;
  private implicitWrites = false;
  /** The proxy's own COMMIT/ROLLBACK is in flight: the tag watcher leaves it to that path. */
  private owningTx = false;
  /** EXPLAIN of a write, planned as the read of its evaluating SELECT: whether the write takes the fast path. */
  private readonly explainedWrites = new WeakMap<ReadPlan, string>();
  /** Name resolutions (with privileges) for the fast path, good for `recheckMs` as prepared statements' are. */
  private readonly resolutions = new Map<string, CachedResolution<Resolution>>();
  /**
   * Nothing but foreign-table statements so far, none naming search_path or set_config: the role,
   * search_path and temporary tables are still what the StartupMessage made them, so this session may
   * share resolutions with others started alike (catalog/shared-resolutions.ts).
   */
  private pristine = true;
  /** extra_float_digits as last read upstream, and the session's upstream write count then. */
  private floatDigits: { value: number; at: number } | undefined;

  /** The current statement's Redis commands and rows, for the slow-statement log. */
  private readonly stats = new StatementStats();
  private readonly redis: RedisAccess;

  constructor(
    private readonly fdw: RedisFdw,
    private readonly port: SessionPort,
  ) {
    this.redis = attributedAccess(fdw.redis, this.stats);
  }

  get names(): NameIndex {
    const base = this.fdw.catalog.index(this.port.database);
    const c = this.namesCache;
    if (c && c.base === base && c.size === this.created.size) return c.index;
    const index = this.created.size === 0 ? (base ?? EMPTY_INDEX) : unionIndex(base, this.created);
    this.namesCache = { base, size: this.created.size, index };
    return index;
  }

  get inspectAll(): boolean {
    return this.tx.active;
  }

  get ownsAny(): boolean {
    return this.statements.size > 0 || this.portals.size > 0;
  }

  owns(kind: 'S' | 'P', name: string): boolean {
    return kind === 'S' ? this.statements.has(name) : this.portals.has(name);
  }

  forget(kind: 'S' | 'P', name: string): void {
    if (kind === 'S') this.statements.delete(name);
    else this.portals.delete(name);
  }

  wantsRefresh(): boolean {
    return this.fdw.catalog.stale(this.port.database);
  }

  async refresh(port: SessionPort): Promise<void> {
    const gen = this.fdw.catalog.currentGeneration;
    const r = await runInternal(port, NAME_INDEX_SQL, [], { errorIsReply: false, sync: true });
    catalogReloadsTotal.inc();
    // On error (e.g. no access to the catalog) remember nothing: statements are then forwarded as is.
    this.fdw.catalog.store(port.database, r.kind === 'rows' ? r.rows.map((row) => row[0]!.toString('utf8')) : [], gen);
    this.created.clear();
  }

  get cachesNames(): boolean {
    return this.pristine || this.resolutions.size > 0;
  }

  /** A client statement went upstream as it is: the session is no longer pristine. */
  passedThrough(text: string): void {
    this.pristine = false;
    this.mayChangeNames(text);
  }

  /**
   * Name resolution depends on search_path, temporary tables and the role, which only a statement
   * that isn't plain DML can change (SET, CREATE TEMP, SET ROLE, a COMMIT or ROLLBACK undoing a SET
   * LOCAL...) or one that calls set_config: those drop the cached resolutions.
   */
  private mayChangeNames(text: string): void {
    if (!DML_START.test(text) || /search_path|set_config/i.test(text)) {
      this.resolutions.clear();
      this.pristine = false;
    }
  }

  close(): void {
    this.resolutions.clear();
    this.statements.clear();
    this.portals.clear();
  }

  // ---- simple Query ----

  async onQuery(port: SessionPort, text: string, d: Inspect, raw: Buffer): Promise<void> {
    this.syncTx(port);
    // A big text's statements give way between the steps that each walk all of it (from the analysis
    // on); an ordinary one's run as they always have, without a look at the clock.
    const giveWay = text.length >= GIVE_WAY_CHARS ? new GiveWay(() => port.signal) : undefined;
    const stmts = splitStatements(text, d.tree).map((s) => ({ ...s, node: s.node as Node }));
    const infos = stmts.map((s) => analyzeStatement(s.node));
    if (!infos.some((i) => this.needsInterception(i))) {
      hotCounts.passthrough++;
      for (const i of infos) this.notePassthroughDdl(i);
      port.send(raw, [forward(Req.Query)]);
      return;
    }
    this.implicitQuery = stmts.length > 1;
    this.implicitWrites = false;
    let local: 'local' | undefined;
    try {
      local = await this.simpleStatements(port, stmts, infos, giveWay);
      if (this.implicitWrites) await this.endImplicit(port);
    } finally {
      this.implicitQuery = false;
      this.implicitWrites = false;
    }
    if (!local) port.send(SYNC, [forward(Req.Sync)]);
  }

  /**
   * The statements of a simple Query ran without BEGIN: they were one implicit transaction, and its
   * Redis writes apply now if it is ending well (no error, no BEGIN turned it into a block). A Redis
   * failure fails the Query, so upstream rolls its part back too.
   */
  private async endImplicit(port: SessionPort): Promise<void> {
    const barrier = await runInternal(port, 'SELECT 1', [], { errorIsReply: false });
    if (barrier.kind !== 'rows') {
      this.tx.clear();
      return;
    }
    if (port.inTransactionBlock) return;
    await orFail(port, undefined, () => applyStaged(this.redis, this.tx.take()));
  }

  /** Runs the statements of an intercepted simple Query; 'local' when the fast path answered all of it. */
  private async simpleStatements(port: SessionPort, stmts: { node: Node; text: string; base: number; offset: number }[], infos: StatementInfo[], giveWay: GiveWay | undefined): Promise<'local' | undefined> {
    for (let i = 0; i < stmts.length; i++) {
      if (port.inFailedBatch) break;
      const s = stmts[i]!;
      const map: PositionMap = (p) => p + s.offset;
      this.stats.reset();
      const t0 = process.hrtime.bigint();
      const ok = await orFail(port, false, () => this.simpleStatement(port, s.text, s.base, infos[i]!, map, stmts.length === 1, giveWay));
      if (ok !== false) recordStatementInfo(infos[i]!, this.names, t0, s.text, port.log, ok === 'local', this.stats);
      if (ok === 'local') return 'local';
      if (!ok) break;
    }
    return undefined;
  }

  /** DDL forwarded as is still changes what the name index should hold. */
  private notePassthroughDdl(i: StatementInfo): void {
    if (!DDL_KINDS.has(i.kind)) return;
    this.fdw.catalog.bump();
    // A renamed foreign table must be readable under its new name at once, even before commit.
    if (i.kind === 'RenameStmt' && (i.node.renameType === 'OBJECT_FOREIGN_TABLE' || i.node.renameType === 'OBJECT_TABLE')) this.created.add(String(i.node.newname));
  }

  private needsInterception(i: StatementInfo): boolean {
    if (DDL_KINDS.has(i.kind)) return !passesThrough(i.kind, i.node);
    if (i.kind === 'TransactionStmt') return this.tx.active;
    const names = this.names;
    if (i.reads.some((r) => names.has(r.relname)) || i.targets.some((r) => names.has(r.relname))) return true;
    // EXPLAIN of a write: its target is no read.
    return i.kind === 'ExplainStmt' && explainedWrite(i, names) !== undefined;
  }

  /** Pending writes outlived their transaction block (it ended by a path the proxy didn't own). */
  private syncTx(port: SessionPort): void {
    if (this.tx.active && !port.inTransactionBlock) {
      port.log.warn({ writes: this.tx.count }, 'transaction block ended unseen; pending Redis writes dropped');
      this.tx.clear();
    }
  }

  private get pending(): TxWrites | undefined {
    return this.tx.count > 0 ? this.tx : undefined;
  }

  /** Stages a statement's writes in the open transaction block, or applies them now outside one. */
  private async commitOrStage(port: SessionPort, target: ForeignTable, ops: RedisOp[]): Promise<void> {
    if (port.inTransactionBlock || this.implicitQuery) {
      if (!port.inTransactionBlock) this.implicitWrites = true;
      this.tx.stage(target, ops);
      stagedWritesTotal.inc(ops.length);
      this.watchTxEnd(port);
    } else {
      await applyNow(this.redis, target, ops, () => port.signal);
    }
  }

  /**
   * Redis access for the statement in progress: its reads stop with 57014 when it is cancelled.
   * Writes use `this.redis`, without the signal: the apply itself takes the cancel only until EXEC is
   * sent (applyOps); once sent, a MULTI/EXEC applies whole, so the statement waits for it.
   */
  private readsFor(port: SessionPort): RedisAccess {
    const signal = port.signal;
    return signal ? { client: (c) => abortable(this.redis.client(c), signal), signal, stats: this.redis.stats } : this.redis;
  }

  /** A COMMIT the proxy didn't see coming (a named prepared COMMIT) still applies the writes. */
  private watchTxEnd(port: SessionPort): void {
    port.onTxEnd = (tag) => {
      if (this.owningTx || !this.tx.active) return;
      if (tag !== 'COMMIT') {
        this.tx.clear();
        return;
      }
      const staged = this.tx.take();
      void applyCommitted(this.fdw.redis, staged).then((warnings) => {
        for (const w of warnings) port.reply(encodeError(new PgError(SqlState.FdwError, w, { severity: 'WARNING' }), true));
      });
    };
  }

  /** Runs a write: Execute (already framed by `send`), then Redis, then the client's rows and tag. */
  private async runWrite(port: SessionPort, plan: WritePlan, prepared: PreparedWrite, map: PositionMap | undefined, send: SendExecute, page?: { portal: string; maxRows: number }, early = false): Promise<boolean> {
    const { capture, result } = evalCapture(plan, map, codecFor(port.clientEncoding), () => port.canceled === true);
    send(capture);
    // A write whose evaluation changes nothing upstream, alone in its batch so far, ends upstream's
    // side with a Sync of its own: upstream's answer and ReadyForQuery come in one round trip, and
    // the client's Sync, if next, is answered locally (two hops instead of three).
    if (early) {
      port.send(SYNC, [passCapture(Req.Sync, [Backend.ReadyForQuery], undefined)]);
      port.syncedUpstream();
    } else port.send(FLUSH, []);
    const r = await result;
    if (r.kind !== 'rows') {
      // Upstream discarded what followed the error only until that Sync; Postgres discards until the client's.
      if (early) failWith(port, Buffer.alloc(0));
      return false;
    }
    return orFail(port, false, async () => {
      // Cancelled while upstream's rows came in: they weren't all kept (evalCapture).
      if (port.canceled) throwIfCanceled(port.signal);
      const out = await writeOutcome(this.redis, this.pending, plan, prepared, r, this.fdw.maxValueBytes, () => port.signal);
      this.stats.addRows(Number(/\d+$/.exec(out.tag)?.[0] ?? 0));
      // A cancel takes the statement back whole until EXEC is sent (applyNow checks up to there); past it, all is applied.
      throwIfCanceled(port.signal);
      await this.commitOrStage(port, plan.target, out.ops);
      const { reply, rest } = fetchRows(out.returning, out.tag, plan.returning ? (page?.maxRows ?? 0) : 0);
      if (rest && page) this.portals.set(page.portal, { kind: 'suspended', plan, rest });
      port.reply(reply);
      return true;
    });
  }

  /** TRUNCATE: upstream runs a no-op (so transaction state stays Postgres's), then the keys go. */
  private async runTruncate(port: SessionPort, plan: TruncatePlan, send: SendExecute): Promise<boolean> {
    const r = await awaitExecute(port, send, { keepTag: false });
    if (r.kind !== 'done') return false;
    return orFail(port, false, async () => {
      throwIfCanceled(port.signal);
      for (const t of plan.tables) await this.commitOrStage(port, t, truncateOps(t));
      port.reply(encodeCommandComplete('TRUNCATE TABLE'));
      return true;
    });
  }

  /** Runs a transaction-control statement while writes wait: COMMIT applies them, the others adjust them. */
  private async runTx(port: SessionPort, cmd: TxCommand, send: SendExecute): Promise<boolean> {
    if (cmd.kind === 'prepare' && this.tx.count > 0) {
      failWith(port, encodeError(new PgError(SqlState.FeatureNotSupported, 'cannot PREPARE a transaction that has written to Redis foreign tables', { hint: 'Redis writes are applied at COMMIT; two-phase commit cannot include them.' })));
      return false;
    }
    const isEnd = cmd.kind === 'commit';
    const outboxed = isEnd && this.tx.count > 0 ? await this.toOutbox(port) : undefined;
    this.owningTx = true;
    let r: ExecuteResult;
    try {
      // COMMIT's tag waits until Redis has had the writes; the others' go through at once.
      r = await awaitExecute(port, send, { keepTag: !isEnd });
    } finally {
      this.owningTx = false;
    }
    if (r.kind !== 'done') {
      // A failed COMMIT ended the block (rolled back); a failed ROLLBACK TO etc. leaves things as they were.
      if (isEnd && !port.inTransactionBlock) this.tx.clear();
      return false;
    }
    if (!isEnd) {
      this.tx.note(cmd);
      return true;
    }
    const tag = r.tag;
    let notices = Buffer.alloc(0);
    if (tag === 'COMMIT') {
      const warnings = outboxed ? await this.fdw.outbox.applyCommitted(port.database, outboxed.txid, outboxed.parts) : await applyCommitted(this.redis, this.tx.peek());
      this.tx.clear();
      notices = Buffer.concat(warnings.map((w) => encodeError(new PgError(SqlState.FdwError, w, { severity: 'WARNING' }), true)));
    } else this.tx.clear();
    port.reply(Buffer.concat([notices, encodeCommandComplete(tag)]));
    return true;
  }

  /**
   * Puts the staged writes into the outbox row, in the transaction, just before its COMMIT (the INSERT
   * is pipelined: no round trip of its own). An INSERT error is the COMMIT's error; the block then
   * stays open and aborted, with its writes, until the client rolls back.
   */
  private async toOutbox(port: SessionPort): Promise<{ txid: string; parts: OutboxPart[] } | undefined> {
    // A failed transaction's COMMIT answers ROLLBACK: nothing to record.
    if (port.txStatus === 'E' || !(await this.fdw.outbox.ready(port.database))) return undefined;
    const parts = await sharesOf(this.tx.peek());
    if (parts.length === 0) return undefined;
    const { txid, payload } = await this.fdw.outbox.record(parts);
    void runInternal(port, INSERT_SQL, [txid, payload], { errorIsReply: true });
    return { txid, parts };
  }

  /**
   * Plans one intercepted statement: DDL, transaction control, TRUNCATE, write or read, in that order.
   * Catalog reads and privilege checks happen here; a PgError thrown is the client's error.
   */
  private async planStatement(port: SessionPort, text: string, info: StatementInfo, clientTypes: readonly number[], base: number, resolve?: Resolver): Promise<StatementPlan> {
    if (this.cachesNames) this.mayChangeNames(text);
    if (passesThrough(info.kind, info.node)) {
      this.pristine = false;
      this.notePassthroughDdl(info);
      return PLAIN;
    }
    if (DDL_KINDS.has(info.kind)) {
      const action = await planDdl(port, info.kind, info.node);
      this.noteDdl(action);
      if (action.kind === 'failed') return FAILED;
      return action.kind === 'plain' ? PLAIN : { kind: 'ddl', action };
    }
    if (info.kind === 'TransactionStmt') {
      const cmd = txCommand(info.node);
      return cmd ? { kind: 'tx', cmd } : PLAIN;
    }
    if (info.kind === 'TruncateStmt') {
      const tp = await planTruncate(port, this.names, info);
      if (tp === 'failed') return FAILED;
      return tp === undefined ? PLAIN : { kind: 'truncate', plan: tp };
    }
    const write = await planWrite(port, this.names, text, info, clientTypes, base, resolve);
    if (write === 'failed') return FAILED;
    if (write !== undefined) return { kind: 'write', plan: write };
    const explained = info.kind === 'ExplainStmt' ? explainedWrite(info, this.names) : undefined;
    if (explained) {
      if (explainOptions(info)?.analyze) throw new PgError(SqlState.FeatureNotSupported, 'EXPLAIN ANALYZE of a write to a Redis foreign table is not supported', { hint: 'ANALYZE would have to perform the write; EXPLAIN without it shows the plan and whether the write takes the fast path.' });
      const w = await planWrite(port, this.names, text, explained, clientTypes, base, resolve);
      if (w === 'failed') return FAILED;
      if (w !== undefined) {
        const plan = explainPlanOf(info, w);
        const fast = this.fdw.fastPath ? fastWriteShape(w, text, base) : 'off';
        this.explainedWrites.set(plan, typeof fast === 'string' ? `no (${fast})` : 'yes');
        return { kind: 'read', plan };
      }
    }
    const read = await planRead(port, this.names, text, info, clientTypes, base, resolve);
    if (read === 'failed') return FAILED;
    return read === undefined ? PLAIN : { kind: 'read', plan: read };
  }

  /** Runs one statement of an intercepted simple Query. False when it failed (the rest is skipped). */
  private async simpleStatement(port: SessionPort, text: string, base: number, info: StatementInfo, map: PositionMap, sole: boolean, giveWay?: GiveWay): Promise<boolean | 'local'> {
    // A statement that may take the fast path resolves its names from the cache, as prepared ones do.
    const mayBeFast = sole && this.fdw.fastPath && info.kind === 'SelectStmt' && fastSyntax(info.node) === undefined;
    const mayBeFastWrite = sole && this.fdw.fastPath && info.kind === 'InsertStmt';
    const noParam = simpleQueryParam(info, (byte) => map(Buffer.from(text).subarray(0, byte - base).toString('utf8').length) + 1);
    if (noParam) throw noParam;
    // Only a big text's GiveWay: an ordinary statement takes no extra await.
    const turn = giveWay?.maybe();
    if (turn) await turn;
    // Planning walks the statement's tokens: a big text's are unpacked first, giving way as they are.
    if (giveWay) await unpackAhead(text, () => giveWay.maybe());
    let p: StatementPlan;
    try {
      p = await this.planStatement(port, text, info, [], base, mayBeFast ? this.cachedResolve : mayBeFastWrite ? this.cachedWriteResolve : undefined);
    } finally {
      if (giveWay) forgetUnpacked(text);
    }
    switch (p.kind) {
      case 'failed':
        return false;
      case 'plain':
        sendSimple(port, text, [], [], map);
        return true;
      case 'ddl':
        if (p.action.kind === 'tag') sendSimple(port, NO_OP, [], [], map, retagExecute(p.action.tag, map));
        else sendSimple(port, p.action.text, [], [], undefined);
        return true;
      case 'tx':
        if (!this.tx.active) {
          sendSimple(port, text, [], [], map);
          return true;
        }
        return this.runTx(port, p.cmd, (execute) => sendSimple(port, text, [], [], map, execute));
      case 'truncate':
        return this.runTruncate(port, p.plan, (execute) => sendSimple(port, NO_OP, [], [], map, execute));
      case 'write': {
        const write = p.plan;
        if (mayBeFastWrite) {
          const tag = await this.simpleFastWrite(port, write, text, base, giveWay);
          if (tag !== undefined) {
            // As a fast read: an internal query (names) may have opened a batch upstream; close it first.
            if (port.sentSinceSync) closeOwnBatch(port);
            port.replyReady(encodeCommandComplete(tag));
            return 'local';
          }
        }
        const prepared = await prepareWrite(this.readsFor(port), write, NO_PARAMS, this.pending);
        const wmap: PositionMap = (pos) => map(write.toOriginal(pos));
        const describe = passCapture(Req.Describe, [Backend.NoData], wmap, { rewrite: (c, buf, st, e) => (c === Backend.RowDescription ? clientRowDescription(write, buf, st, e) : undefined) });
        const parseError = writeParseError(write);
        return this.runWrite(port, write, prepared, wmap, (execute) => sendSimple(port, write.text, write.paramTypes, prepared.extra, wmap, execute, describe, parseError && passCapture(Req.Parse, [Backend.ParseComplete], wmap, { rewrite: parseError })));
      }
      case 'read': {
        const plan = p.plan;
        // Not after extended-protocol messages still in flight: if one fails, upstream discards this Query.
        if (mayBeFast && port.upstreamIdle) {
          const fast = await this.fastAnswer(port, fastShape(plan), NO_FAST_PARAMS, [], undefined, true);
          if (fast?.result.streamed) {
            // RowDescription and the rows are out (or queued behind what went upstream mid-stream: the
            // statement_timeout probe of a read running 250 ms, whose batch is closed here as below).
            if (port.sentSinceSync) void this.endOwnBatch(port);
            port.replyReady(fast.result.complete);
            return 'local';
          }
          if (fast) {
            // Answered here, but an internal query (names, the statement_timeout probe) may have opened a
            // batch upstream meanwhile: close it first, so the reply leaves with upstream idle again.
            if (port.sentSinceSync) void this.endOwnBatch(port);
            // The rows go as the buffers they were written into: a big result is never copied into one.
            port.reply(fast.described.bytes);
            for (const chunk of fast.result.rows) port.reply(chunk);
            port.replyReady(fast.result.complete);
            return 'local';
          }
        }
        const explain = explainOptions(info);
        const params = await fetchReadParams(this.readsFor(port), plan, NO_PARAMS, { empty: explain !== undefined && !explain.analyze, pending: this.pending });
        const rmap: PositionMap = (pos) => map(plan.rewritten.toOriginal(pos));
        const execute = explain?.text ? explainCapture(explainLines(plan, NO_PARAMS, this.fastExplain(plan)), rmap) : undefined;
        const describe = passCapture(Req.Describe, [Backend.NoData], rmap, { rewrite: (c, buf, s, e) => (c === Backend.RowDescription ? withSources(plan, buf, s, e) : undefined) });
        if (plan.carrier === 'settings') setCarriers(port, plan, params);
        sendSimple(port, plan.rewritten.text, plan.paramTypes, plan.carrier === 'settings' ? [] : params, rmap, execute, describe);
        return true;
      }
    }
  }

  private noteDdl(action: DdlAction): void {
    if (action.kind === 'failed') return;
    this.fdw.catalog.bump();
    if (action.kind === 'plain' && action.createdTable) {
      this.created.add(action.createdTable);
    }
  }

  // ---- the local fast path ----

  /**
   * The fast path's answer to a read, or undefined when the upstream path must answer: the shape or
   * the parameters aren't the fast path's, or the session's state leaves the bytes uncertain.
   */
  private async fastAnswer(
    port: SessionPort,
    shape: FastShape | string,
    params: FastParams | string,
    formats: readonly number[],
    /** A prepared statement, where its RowDescription is kept for the next Bind. */
    st?: { described?: Described },
    /** A simple Query: a whole-key read may send RowDescription and its rows as they are made. */
    streamable = false,
  ): Promise<{ described: Described; result: FastResult } | undefined> {
    if (typeof shape === 'string' || typeof params === 'string' || !this.fastAllowed(port, shape.read.table)) return undefined;
    const described = this.describe(shape, formats, st);
    if (!described) return undefined;
    const codec = codecFor(port.clientEncoding);
    // RowDescription's names are the proxy's strings: only ASCII ones read the same in every encoding.
    if (codec && described.fields.some((f) => /[^\x00-\x7f]/.test(f.name))) return undefined;
    if (shape.types.some((t) => t.shortestFloat) && !((await this.extraFloatDigits(port)) > 0)) return undefined;
    // An internal query (names and privileges, re-checked once a second; the timeout probe) leaves a batch
    // open upstream. A read that may stream closes it and waits for its end (one round trip) first: the
    // rows could not stream behind it, and a big read then waited for its whole parse (~40 ms for 100,000
    // rows) once a second.
    if (streamable && port.sentSinceSync) await this.endOwnBatch(port);
    // Only while nothing is owed before it: an internal query (names, the timeout probe) leaves its batch
    // to close first, and then the rows wait their turn as usual.
    let streaming: boolean | undefined;
    const stream: FastStream | undefined = streamable ? {
      begin: () => (streaming = !port.sentSinceSync && port.replyNow(described.bytes)),
      // Something sent upstream mid-stream (the statement_timeout probe of a statement running 250 ms)
      // is owed before anything queued after it: the rest of the rows then wait their turn behind it.
      chunk: (rows) => {
        if (!port.replyNow(rows)) port.reply(rows);
      },
    } : undefined;
    try {
      // A value the client's encoding lacks throws 22P05: the upstream path reports it if it is shown.
      const result = await runFast(this.readsFor(port), shape, params, described.fields, codec, stream);
      if (typeof result === 'string') return undefined;
      this.stats.rows = result.rowCount;
      // Said of whole-key reads checked whole (those that may stream): did the rows leave as they were made?
      this.stats.streamed = streaming;
      return { described, result };
    } catch (e) {
      // Rows are out: the client gets the error after them, as from a Postgres scan that fails half-way.
      if (streaming) throw e;
      // The upstream path meets the same failure and reports it the way it always has; but a Redis
      // that did not answer, or a cancel, fails now: trying again would double the wait.
      if (isPgError(e) && e.code !== SqlState.FdwUnableToEstablishConnection && e.code !== SqlState.QueryCanceled) return undefined;
      throw e;
    }
  }

  /** The fast path's RowDescription for these result formats; a prepared statement keeps the last one. */
  private describe(shape: FastShape, formats: readonly number[], prepared?: { described?: Described }): Described | undefined {
    const key = formats.length === 0 ? '' : formats.join(',');
    const kept = prepared?.described;
    if (kept?.formats === key) return kept;
    const fields = fastFields(shape, formats);
    if (!fields) return undefined;
    const d = { formats: key, fields, bytes: encodeRowDescription(fields) };
    if (prepared) prepared.described = d;
    return d;
  }

  /**
   * Whether upstream's answer is certain not to depend on upstream's state: no failed transaction
   * (its 25P02 stands), no earlier batch still in flight (its outcome could be one), no staged writes
   * on the table (read-your-writes is the upstream path's), text crossing the wire as UTF-8 bytes or in
   * a single-byte client encoding the proxy converts.
   */
  private fastAllowed(port: SessionPort, table: ForeignTable): boolean {
    if (!this.fdw.fastPath || this.owningTx) return false;
    if (port.txStatus === 'E' || port.inFailedBatch || !port.upstreamSettled || !port.textConvertible) return false;
    return this.tx.count === 0 || this.tx.on(table).length === 0;
  }

  /**
   * Closes the batch the proxy's own queries left open upstream (settleOwnBatch), resolved once upstream
   * has answered. That Sync ends only the proxy's own queries: a setting read among them still holds.
   */
  private endOwnBatch(port: SessionPort): Promise<void> {
    const before = port.upstreamWrites;
    const done = settleOwnBatch(port);
    if (this.floatDigits?.at === before) this.floatDigits.at = port.upstreamWrites;
    return done;
  }

  /**
   * The session's extra_float_digits (not a reported setting): asked of upstream, then kept while the
   * session sends upstream nothing else, since only something run there can change it.
   */
  private async extraFloatDigits(port: SessionPort): Promise<number> {
    const hit = this.floatDigits;
    if (hit && hit.at === port.upstreamWrites) return hit.value;
    const r = await runInternal(port, "SELECT pg_catalog.current_setting('extra_float_digits')", [], { errorIsReply: false });
    const value = r.kind === 'rows' ? Number(r.rows[0]?.[0]?.toString('latin1')) : NaN;
    if (Number.isInteger(value)) this.floatDigits = { value, at: port.upstreamWrites };
    return Number.isInteger(value) ? value : 0;
  }

  private fastExplain(plan: ReadPlan): string {
    const write = this.explainedWrites.get(plan);
    if (write !== undefined) return write;
    if (!this.fdw.fastPath) return 'no (off)';
    const shape = fastShape(plan);
    return typeof shape === 'string' ? `no (${shape})` : 'yes';
  }

  private readonly cachedResolve: Resolver = (port, refs) => this.resolveCached(port, refs, (t) => t.resolved.privileges.select);

  /** For a sole INSERT that may take the fast write: its target must allow INSERT, anything else it reads SELECT. */
  private readonly cachedWriteResolve: Resolver = (port, refs) => this.resolveCached(port, refs, (t, i) => (i === 0 ? t.resolved.privileges.insert : t.resolved.privileges.select));

  private async resolveCached(port: SessionPort, refs: Parameters<Resolver>[1], may: (t: ForeignTable, i: number) => boolean): Promise<Resolution> {
    const key = refs.map((r) => qualifiedName(r.schemaname, r.relname)).join(',');
    const generation = this.fdw.catalog.currentGeneration;
    const hit = this.resolutions.get(key);
    // A denial isn't cached: a GRANT must apply at once, as it does for statements planned afresh.
    const allowed = (r: Resolution): boolean => r.kind === 'tables' && r.tables.every((t, i) => !t || may(t, i));
    if (hit && fresh(hit, generation, this.fdw.recheckMs) && allowed(hit.res)) return hit.res;
    const shared = this.pristine ? this.fdw.sharedResolutions.get(port.startupKey, key, generation) : undefined;
    if (shared && allowed(shared.res)) {
      // The session's own from now on: it stays good for it after the session stops sharing.
      if (this.resolutions.size >= 256) this.resolutions.clear();
      this.resolutions.set(key, shared);
      return shared.res;
    }
    const res = await resolveTables(port, refs);
    if (res.kind === 'tables') {
      if (this.resolutions.size >= 256) this.resolutions.clear();
      const entry = { at: Date.now(), generation, res };
      this.resolutions.set(key, entry);
      if (this.pristine && allowed(res)) this.fdw.sharedResolutions.set(port.startupKey, key, entry);
    }
    return res;
  }

  // ---- the local fast write ----

  /**
   * Whether the fast write may answer now: upstream owes nothing (so the transaction status and any
   * error of the batch are known), no failed transaction (upstream's 25P02 stands), text crosses the
   * wire as the fast path converts it, and no implicit transaction of a multi-statement Query.
   */
  private writeAllowed(port: SessionPort): boolean {
    if (!this.fdw.fastPath || this.owningTx || this.implicitQuery) return false;
    return port.upstreamIdle && port.txStatus !== 'E' && !port.inFailedBatch && port.textConvertible;
  }

  /** A prepared write's Bind answered locally, its rows computed: true, or false for the upstream path. */
  private async bindFastWrite(port: SessionPort, m: BindMessage, st: OwnedStatement & { kind: 'write' }): Promise<boolean> {
    const shape = st.fast;
    if (typeof shape === 'string' || !st.confirmed || st.changed || st.generation !== this.fdw.catalog.currentGeneration || !this.writeAllowed(port)) return false;
    // A big statement's casts give way (as a simple Query's do); an ordinary one takes no extra await.
    const codec = codecFor(port.clientEncoding);
    const rows = st.sql.length >= GIVE_WAY_CHARS ? await fastWriteRowsGivingWay(shape, new GiveWay(() => port.signal), m, codec) : fastWriteRows(shape, m, codec);
    if (typeof rows === 'string') return false;
    // Only while nothing changed meanwhile (a big statement gave way to other work).
    if (!this.writeAllowed(port)) return false;
    this.portals.set(m.portal, { kind: 'fastwrite', plan: st.plan, shape, rows, bind: m, batch: port.batches, inBlock: port.inTransactionBlock, sql: st.sql });
    port.reply(BIND_COMPLETE);
    return true;
  }

  /** Postgres still has the portal: its batch goes on, or the transaction block it was bound in. */
  private live(port: SessionPort, p: PortalLife): boolean {
    return p.batch === port.batches || (p.inBlock && port.inTransactionBlock);
  }

  private async executeFastWrite(port: SessionPort, name: string, portal: OwnedPortal & { kind: 'fastwrite' }, raw: Buffer): Promise<void> {
    // An earlier message of the batch failed: upstream discards until Sync, and Postgres would not run it.
    if (port.inFailedBatch) return;
    if (!this.live(port, portal)) {
      this.portals.delete(name);
      return port.send(raw, [forward(Req.Execute)]);
    }
    this.portals.set(name, { kind: 'spent', upstream: false, batch: portal.batch, inBlock: portal.inBlock });
    const t0 = process.hrtime.bigint();
    this.stats.reset();
    try {
      if (!port.upstreamIdle) {
        // Something went upstream since the Bind, and could yet fail the batch: the portal becomes upstream's.
        const { plan, bind } = portal;
        const prepared: PreparedWrite = { extra: [], snapshot: [] };
        this.portals.set(name, { kind: 'write', plan, prepared, early: false, sql: portal.sql, batch: portal.batch, inBlock: portal.inBlock });
        port.send(encodeBind({ ...bind, resultFormats: writeResultFormats(plan, bind.resultFormats) }), [passCapture(Req.Bind, [Backend.BindComplete], undefined)]);
        await this.runWrite(port, plan, prepared, undefined, (execute) => port.send(serialize.execute({ portal: name, rows: 0 }), [execute]));
        return;
      }
      const tag = await orFail(port, undefined, () => this.applyFastWrite(port, portal.plan, portal.rows));
      if (tag !== undefined) port.reply(encodeCommandComplete(tag));
    } finally {
      recordWrite(t0, portal.sql, port.log, this.stats);
    }
  }

  /** The computed rows to Redis, at once or staged in the open transaction block, as the upstream path does with upstream's rows. */
  private async applyFastWrite(port: SessionPort, plan: WritePlan, rows: (string | null)[][]): Promise<string> {
    const out = await writeOutcome(this.redis, this.pending, plan, NO_SNAPSHOT, { rows, returning: [] }, this.fdw.maxValueBytes, () => port.signal);
    this.stats.addRows(out.count);
    // A cancel takes the statement back whole until EXEC is sent (applyNow checks up to there); past it, all is applied.
    if (port.canceled) throwIfCanceled(port.signal);
    await this.commitOrStage(port, plan.target, out.ops);
    return out.tag;
  }

  /** A sole INSERT of a simple Query, answered locally: its command tag, or undefined for the upstream path. */
  private async simpleFastWrite(port: SessionPort, plan: WritePlan, text: string, base: number, giveWay: GiveWay | undefined): Promise<string | undefined> {
    if (!this.writeAllowed(port)) return undefined;
    let turn = giveWay?.maybe();
    if (turn) await turn;
    const shape = giveWay ? await fastWriteShapeGivingWay(plan, text, base, giveWay) : fastWriteShape(plan, text, base);
    if (typeof shape === 'string') return undefined;
    turn = giveWay?.maybe();
    if (turn) await turn;
    const rows = giveWay ? await fastWriteRowsGivingWay(shape, giveWay) : fastWriteRows(shape, undefined, codecFor(port.clientEncoding));
    if (typeof rows === 'string') return undefined;
    turn = giveWay?.maybe();
    if (turn) await turn;
    return this.applyFastWrite(port, plan, rows);
  }

  /** Makes a fast portal upstream's, for an Execute the fast path doesn't answer; its BindComplete was sent already. */
  private async materialize(port: SessionPort, name: string, portal: OwnedPortal & { kind: 'fast' }): Promise<void> {
    const { plan, bind } = portal;
    this.portals.set(name, { kind: 'read', plan });
    const extra = await fetchReadParams(this.readsFor(port), plan, textParam(bind, plan.paramTypes, codecFor(port.clientEncoding)), { pending: this.pending });
    const formats = bind.params.map((_, i) => paramFormat(bind, i));
    port.send(encodeBind({ ...bind, paramFormats: [...formats, ...extra.map(() => 1)], params: [...bind.params, ...rowParams(port, extra, plan.paramTypes)] }), [passCapture(Req.Bind, [Backend.BindComplete], undefined)]);
  }

  // ---- extended protocol ----

  async onParse(port: SessionPort, raw: Buffer, d: Inspect): Promise<void> {
    this.syncTx(port);
    const m = decodeParse(raw, 0, raw.length);
    this.statements.delete(m.name);
    const parsed = d.tree.stmts ?? [];
    if (parsed.length !== 1) return port.send(raw, [forward(Req.Parse)]);
    const info = analyzeStatement(parsed[0]!.stmt as Node);
    if (!this.needsInterception(info)) {
      hotCounts.passthrough++;
      this.notePassthroughDdl(info);
      return port.send(raw, [forward(Req.Parse)]);
    }
    // A big text gives way between the steps that walk all of it, as in a simple Query; an ordinary one
    // takes no extra await.
    const giveWay = d.text.length >= GIVE_WAY_CHARS ? new GiveWay(() => port.signal) : undefined;
    let p: StatementPlan;
    try {
      p = await orFail(port, FAILED, async () => {
        const turn = giveWay?.maybe();
        if (turn) await turn;
        if (giveWay) await unpackAhead(d.text, () => giveWay.maybe());
        return this.planStatement(port, d.text, info, m.paramTypes, 0);
      });
    } finally {
      if (giveWay) forgetUnpacked(d.text);
    }
    switch (p.kind) {
      case 'failed':
        return;
      case 'plain':
        return port.send(raw, [forward(Req.Parse)]);
      case 'ddl': {
        if (p.action.kind === 'tag') this.statements.set(m.name, { kind: 'tag', tag: p.action.tag });
        const text = p.action.kind === 'tag' ? NO_OP : p.action.text;
        return port.send(encodeParse({ name: m.name, text, paramTypes: [] }, codecFor(port.clientEncoding)), [forward(Req.Parse)]);
      }
      case 'tx':
        this.statements.set(m.name, { kind: 'tx', cmd: p.cmd });
        return port.send(raw, [forward(Req.Parse)]);
      case 'truncate':
        this.statements.set(m.name, { kind: 'truncate', plan: p.plan });
        return port.send(encodeParse({ name: m.name, text: NO_OP, paramTypes: [] }), [forward(Req.Parse)]);
      case 'write': {
        // The shape gives way without the cancel: the statement is planned, and Parse goes upstream either way.
        const fast = !this.fdw.fastPath ? 'off' : giveWay ? await fastWriteShapeGivingWay(p.plan, d.text, 0, new GiveWay()) : fastWriteShape(p.plan, d.text);
        const st: OwnedStatement & { kind: 'write' } = { kind: 'write', plan: p.plan, checkedAt: Date.now(), sql: d.text, fast, generation: this.fdw.catalog.currentGeneration, confirmed: false };
        this.statements.set(m.name, st);
        const parseError = writeParseError(p.plan);
        const rewrite = (code: number, buf: Buffer, start: number, end: number): Buffer | undefined => {
          if (code === Backend.ParseComplete) st.confirmed = true;
          return parseError?.(code, buf, start, end);
        };
        return port.send(encodeParse({ name: m.name, text: p.plan.text, paramTypes: p.plan.paramTypes }, codecFor(port.clientEncoding)), [passCapture(Req.Parse, [], p.plan.toOriginal, { rewrite })]);
      }
      case 'read':
        const fast = p.plan.info.kind === 'ExplainStmt' ? 'EXPLAIN' : fastShape(p.plan);
        const point = typeof fast === 'string' ? undefined : planPoint(fast);
        this.statements.set(m.name, { kind: 'read', plan: p.plan, checkedAt: Date.now(), fast, ...(point ? { point } : {}), generation: this.fdw.catalog.currentGeneration, sql: d.text });
        return port.send(encodeParse({ name: m.name, text: p.plan.rewritten.text, paramTypes: p.plan.paramTypes }, codecFor(port.clientEncoding)), [passCapture(Req.Parse, [], p.plan.rewritten.toOriginal)]);
    }
  }

  /** Synchronous where the answer is (a fast portal's Describe, Execute, Close): no promise, no turn lost. */
  onExtended(port: SessionPort, code: number, raw: Buffer): Promise<void> | void {
    switch (code) {
      case Frontend.Bind:
        return this.onBind(port, raw);
      case Frontend.Describe: {
        const t = decodeTarget(raw, 0, raw.length);
        const owner = t.kind === 'S' ? this.statements.get(t.name) : this.portals.get(t.name);
        if (owner?.kind === 'fast') return port.reply(owner.description);
        if (owner?.kind === 'fastwrite' || owner?.kind === 'spent') {
          // A write without RETURNING describes as NoData, run or not. Once Postgres would have dropped the
          // portal, upstream's answer stands (34000: it never had a fast one, and has dropped its own).
          if (!this.live(port, owner)) {
            this.portals.delete(t.name);
            return port.send(raw, [forward(Req.Describe)]);
          }
          return port.reply(NO_DATA);
        }
        if (owner?.kind === 'write' || owner?.kind === 'suspended') {
          const plan = owner.plan;
          return port.send(raw, [describeOwned(plan.clientParams, (buf, s, e) => clientRowDescription(plan, buf, s, e) ?? NO_DATA)]);
        }
        if (owner?.kind !== 'read') return port.send(raw, [forward(Req.Describe)]);
        const plan = owner.plan;
        return port.send(raw, [describeOwned(plan.clientParams, (buf, s, e) => withSources(plan, buf, s, e))]);
      }
      case Frontend.Execute:
        return this.onExecute(port, raw);
      case Frontend.Close: {
        const t = decodeTarget(raw, 0, raw.length);
        const owned = t.kind === 'P' ? this.portals.get(t.name) : undefined;
        const local = owned?.kind === 'fast' || owned?.kind === 'fastwrite' || (owned?.kind === 'spent' && !owned.upstream);
        this.forget(t.kind, t.name);
        // Upstream never had the fast portal; closing one that doesn't exist is no error there either.
        if (local) return port.reply(CLOSE_COMPLETE);
        return port.send(raw, [forward(Req.Close)]);
      }
    }
  }

  private onExecute(port: SessionPort, raw: Buffer): Promise<void> | void {
    this.syncTx(port);
    const { portal: name, maxRows } = decodeExecute(raw, 0, raw.length);
    const portal = this.portals.get(name);
    if (portal?.kind === 'fast') {
      if (maxRows === 0) {
        this.portals.delete(name);
        const { rows, complete } = portal.result;
        for (const r of rows) port.reply(r);
        return port.reply(complete);
      }
      // A row limit suspends the portal: upstream's portal does that, so it is made there.
      return orFail(port, undefined, () => this.materialize(port, name, portal)).then(() => port.send(raw, [forward(Req.Execute)]));
    }
    if (portal?.kind === 'fastwrite') return this.executeFastWrite(port, name, portal, raw);
    if (portal?.kind === 'tag') return port.send(raw, [retagExecute(portal.tag, undefined)]);
    if (portal?.kind === 'explain') return port.send(raw, [explainCapture(portal.lines, undefined)]);
    if (portal?.kind === 'write') {
      // Upstream runs it whole (the Redis side can't stop half-way); a row limit pages the RETURNING rows here.
      const t0 = process.hrtime.bigint();
      return this.runWrite(port, portal.plan, portal.prepared, undefined, (execute) => port.send(serialize.execute({ portal: name, rows: 0 }), [execute]), { portal: name, maxRows }, portal.early && maxRows === 0)
        .finally(() => recordWrite(t0, portal.sql, port.log, this.stats))
        .then((ran) => {
          if (ran && !portal.plan.returning && this.portals.get(name) === portal) this.portals.set(name, { kind: 'spent', upstream: true, batch: portal.batch, inBlock: portal.inBlock });
        });
    }
    if (portal?.kind === 'spent') {
      if (port.inFailedBatch) return;
      if (!this.live(port, portal)) {
        this.portals.delete(name);
        return port.send(raw, [forward(Req.Execute)]);
      }
      return failWith(port, encodeError(new PgError(SqlState.ObjectNotInPrerequisiteState, `portal "${name}" cannot be run`)));
    }
    if (portal?.kind === 'suspended') {
      if (port.inFailedBatch) return;
      const { reply, rest } = fetchRows(portal.rest.rows, portal.rest.tag, maxRows, true);
      this.portals.set(name, { ...portal, rest: rest ?? { rows: [], tag: portal.rest.tag } });
      return port.reply(reply);
    }
    if (portal?.kind === 'tx') {
      if (!this.tx.active) return port.send(raw, [forward(Req.Execute)]);
      return this.runTx(port, portal.cmd, (execute) => port.send(raw, [execute])).then(() => {});
    }
    if (portal?.kind === 'truncate') return this.runTruncate(port, portal.plan, (execute) => port.send(raw, [execute])).then(() => {});
    return port.send(raw, [forward(Req.Execute)]);
  }

  private async bindWrite(port: SessionPort, m: BindMessage, st: OwnedStatement & { kind: 'write' }): Promise<void> {
    const plan = st.plan;
    this.stats.reset();
    await orFail(port, undefined, async () => {
      checkParamCount(m, plan.clientParams);
      const needs = [{ ref: plan.targetRef, table: plan.target, privileges: plan.targetPrivileges, uses: plan.targetUses }, ...plan.reads.map((r) => ({ ...r, privileges: ['select' as const], uses: { select: r.uses } }))];
      if (!(await privilegesHold(port, st, needs, this.fdw.recheckMs))) return;
      if (await this.bindFastWrite(port, m, st)) return;
      const prepared = await prepareWrite(this.readsFor(port), plan, textParam(m, plan.paramTypes, codecFor(port.clientEncoding)), this.pending);
      const early = !port.sentSinceSync && !port.inTransactionBlock && evaluatesPurely(plan);
      this.portals.set(m.portal, { kind: 'write', plan, prepared, early, sql: st.sql, batch: port.batches, inBlock: port.inTransactionBlock });
      const formats = m.params.map((_, i) => paramFormat(m, i));
      port.send(encodeBind({ ...m, paramFormats: [...formats, ...prepared.extra.map(() => 1)], params: [...m.params, ...rowParams(port, prepared.extra, plan.paramTypes)], resultFormats: writeResultFormats(plan, m.resultFormats) }), [forward(Req.Bind)]);
    });
  }

  private onBind(port: SessionPort, raw: Buffer): Promise<void> | void {
    // Upstream discards it (an earlier message failed): no Redis work, no error of ours.
    if (port.inFailedBatch) return port.send(raw, [forward(Req.Bind)]);
    const named = this.statements.get(bindStatementName(raw));
    const planned = named?.kind === 'read' || named?.kind === 'write' ? named.plan : undefined;
    // Malformed: Postgres's ERROR, in Postgres's order (PgError, failed by the session), never a FATAL.
    const m = decodeBind(raw, 0, raw.length, planned ? { params: planned.clientParams, failedTx: port.txStatus === 'E' } : {});
    const st = this.statements.get(m.statement);
    this.portals.delete(m.portal);
    if (st?.kind === 'tag') this.portals.set(m.portal, { kind: 'tag', tag: st.tag });
    if (st?.kind === 'tx') this.portals.set(m.portal, { kind: 'tx', cmd: st.cmd });
    if (st?.kind === 'truncate') this.portals.set(m.portal, { kind: 'truncate', plan: st.plan });
    if (st?.kind === 'write') return this.bindWrite(port, m, st);
    if (st?.kind !== 'read') return port.send(raw, [forward(Req.Bind)]);
    this.stats.reset();
    const t0 = process.hrtime.bigint();
    return (st.point && this.pointLane(port, raw, st, st.point, m, t0)) || this.bindRead(port, raw, st, m, t0);
  }

  private bindRead(port: SessionPort, raw: Buffer, st: OwnedRead, m: BindMessage, t0: bigint): Promise<void> {
    const plan = st.plan;
    return orFail(port, undefined, async () => {
      checkParamCount(m, plan.clientParams);
      if (!(await privilegesHold(port, st, plan.reads.map((r) => ({ ...r, privileges: ['select'], uses: { select: r.uses } })), this.fdw.recheckMs))) return;
      // Only the unnamed portal: a named one outlives the batch, and the fast path answers per batch.
      if (m.portal === '' && typeof st.fast !== 'string' && !st.changed && st.generation === this.fdw.catalog.currentGeneration) {
        const fast = await this.fastAnswer(port, st.fast, fastParams(st.fast, m, plan.paramTypes, codecFor(port.clientEncoding)), m.resultFormats, st);
        if (fast) return this.boundFast(port, st, m, fast.described, fast.result, t0);
      }
      const param = textParam(m, plan.paramTypes, codecFor(port.clientEncoding));
      const explain = explainOptions(plan.info);
      const extra = await fetchReadParams(this.readsFor(port), plan, param, { empty: explain !== undefined && !explain.analyze, pending: this.pending });
      this.portals.set(m.portal, explain?.text ? { kind: 'explain', lines: explainLines(plan, param, this.fastExplain(plan)) } : { kind: 'read', plan });
      recordRead('foreign_read_upstream', t0, st.sql, port.log, this.stats);
      if (plan.carrier === 'settings') {
        setCarriers(port, plan, extra);
        return port.send(raw, [forward(Req.Bind)]);
      }
      const formats = m.params.map((_, i) => paramFormat(m, i));
      port.send(encodeBind({ ...m, paramFormats: [...formats, ...extra.map(() => 1)], params: [...m.params, ...rowParams(port, extra, plan.paramTypes)] }), [forward(Req.Bind)]);
    });
  }

  /** The fast path answered a Bind: its portal holds the rows until Execute. */
  private boundFast(port: SessionPort, st: OwnedRead, m: BindMessage, described: Described, result: FastResult, t0: bigint): void {
    this.stats.rows = result.rowCount;
    this.portals.set(m.portal, { kind: 'fast', plan: st.plan, bind: m, fields: described.fields, description: described.bytes, result });
    recordRead('foreign_read_fast', t0, st.sql, port.log, this.stats);
    port.reply(BIND_COMPLETE);
  }

  /**
   * A prepared point lookup's Bind in one step (point-lookup.ts): everything decided synchronously, one
   * HMGET on the server's raw pipe, one continuation. Undefined when this Bind isn't one the lane can take
   * as it stands (privileges due for their re-check, no pipe yet, a parameter the fast path can't read,
   * ...): bindRead decides it as for any read. A reply the lane can't use goes to bindRead too, which
   * reads again through ioredis and answers or reports as it always has.
   */
  private pointLane(port: SessionPort, raw: Buffer, st: OwnedRead, point: PointLookup, m: BindMessage, t0: bigint): Promise<void> | undefined {
    const shape = st.fast;
    if (m.portal !== '' || typeof shape === 'string' || st.changed || st.generation !== this.fdw.catalog.currentGeneration) return undefined;
    if (m.params.length !== st.plan.clientParams || Date.now() - st.checkedAt > this.fdw.recheckMs) return undefined;
    if (!this.fastAllowed(port, shape.read.table) || codecFor(port.clientEncoding) !== undefined) return undefined;
    if (fastParamsProblem(shape, m, st.plan.paramTypes) !== undefined) return undefined;
    const described = this.describe(shape, m.resultFormats, st);
    if (!described) return undefined;
    const fields = pointFields(point, m);
    const table = shape.read.table;
    const pipe = fields.length === 0 ? undefined : this.fdw.pool.lookupPipe(table.conn);
    if (fields.length > 0 && !pipe?.available) return undefined;
    const sent: Promise<Reply> = pipe ? abortable(pipe.call(encodeHmget(point, fields), this.stats), port.signal) : Promise.resolve([]);
    if (pipe) this.stats.count('HMGET');
    return sent.then(
      (reply) => {
        const result = pointResult(point, fields, reply);
        if (!result) return this.bindRead(port, raw, st, m, t0);
        this.boundFast(port, st, m, described, result, t0);
      },
      (e: unknown) => {
        // The cancel's 57014; or a Redis that didn't answer in time (reading again would double the wait).
        if (isPgError(e)) return failWith(port, encodeError(e));
        if (isTimeout(e)) return failWith(port, encodeError(mapRedisError(e, { key: table.spec.key, table: table.display, server: describeConn(table.conn), expected: 'hash' })));
        return this.bindRead(port, raw, st, m, t0);
      },
    );
  }
}

/** The INSERT, UPDATE or DELETE an EXPLAIN shows, when its target is a Redis foreign table. */
function explainedWrite(info: StatementInfo, names: NameIndex): StatementInfo | undefined {
  const query = info.node.query as Node | undefined;
  if (!query || !['InsertStmt', 'UpdateStmt', 'DeleteStmt'].includes(Object.keys(query)[0] ?? '')) return undefined;
  const w = analyzeStatement(query);
  return w.targets.some((t) => names.has(t.relname)) ? w : undefined;
}

function checkParamCount(m: BindMessage, expected: number): void {
  if (m.params.length !== expected) {
    throw new PgError(SqlState.ProtocolViolation, `bind message supplies ${m.params.length} parameters, but prepared statement "${m.statement}" requires ${expected}`);
  }
}

/**
 * Whether a prepared statement's tables still allow what it does. Postgres checks privileges at every
 * execution; asking upstream each time would add a round trip to every Bind, so this asks at most once
 * per `ttlMs`. Resolves false when upstream's answer was an error (already sent on its way).
 */
async function privilegesHold(port: SessionPort, st: { checkedAt: number; changed?: boolean }, needs: { ref: RangeVarRef; table: ForeignTable; privileges: readonly Privilege[]; uses?: Partial<Record<Privilege, ColumnUse>> }[], ttlMs: number): Promise<boolean> {
  if (Date.now() - st.checkedAt <= ttlMs) return true;
  const res = await resolveTables(port, needs.map((n) => n.ref));
  if (res.kind === 'failed') return false;
  for (const n of needs) {
    const now = res.tables.find((t) => t?.resolved.oid === n.table.resolved.oid);
    if (!now) throw new PgError(SqlState.UndefinedTable, `foreign table ${n.table.display} no longer exists`, { hint: 'Prepare the statement again.' });
    for (const p of n.privileges) checkPrivilege(now, p, n.uses?.[p]);
    // Altered since planned (by any client): upstream's own answer (a replan, or an error) must decide.
    const shape = (t: ForeignTable): string => JSON.stringify([t.resolved.columns, t.resolved.table, t.resolved.server, t.resolved.mapping]);
    if (shape(now) !== shape(n.table)) st.changed = true;
  }
  st.checkedAt = Date.now();
  return true;
}

/**
 * Describe of a statement or portal the proxy rewrote: the client sees only its own statement's
 * parameters (not the ones carrying Redis rows), and the row description `rows` makes of upstream's.
 */
function describeOwned(clientParams: number, rows: (buf: Buffer, start: number, end: number) => Buffer | undefined): Capture {
  return passCapture(Req.Describe, [], undefined, {
    rewrite: (c, buf, s, e) => {
      if (c === Backend.ParameterDescription) return encodeParameterDescription(decodeParameterDescription(buf, s, e).slice(0, clientParams));
      if (c === Backend.RowDescription) return rows(buf, s, e);
      return undefined;
    },
  });
}

/** Result formats for the evaluating SELECT: text for the proxy's leading columns, the client's for RETURNING. */
function writeResultFormats(plan: WritePlan, client: readonly number[]): number[] {
  if (client.length === 0 || !plan.returning) return [];
  const width = returningWidth(plan);
  const rest = client.length === 1 ? new Array<number>(width).fill(client[0]!) : [...client];
  return [...new Array<number>(plan.leading).fill(0), ...rest];
}

/** Sets the transaction-local settings a COPY reads its rows from, in order, just before it runs. */
function setCarriers(port: SessionPort, plan: ReadPlan, literals: Buffer[]): void {
  let i = 0;
  for (const r of plan.reads) {
    for (let c = 0; c < r.table.spec.columns.length; c++) {
      // The literal's UTF-8 bytes as a bytea: a text parameter would be read in the client's encoding.
      // No result column: the value sent back would be converted to the client's encoding too (and cost a copy).
      void runInternal(port, "SELECT FROM pg_catalog.set_config($1, pg_catalog.convert_from($2::pg_catalog.bytea, 'UTF8'), true)", [carrierSetting(r.firstParam + c), literals[i++]!], { errorIsReply: true });
    }
  }
}

/**
 * The proxy's row parameters (binary text[] of UTF-8 values, the last of the statement's) as the
 * plan declared them (`types`: all the statement's parameter types). Declared bytea[] (a plan made
 * in a non-UTF-8 session, see rowArray): the same bytes, element type bytea. Declared text[] while
 * the session is in another encoding now: each value encoded into it (22P05 for one it lacks), as
 * upstream's array_recv reads text in the client's encoding.
 */
function rowParams(port: SessionPort, params: Buffer[], types: readonly number[]): Buffer[] {
  const codec = codecFor(port.clientEncoding);
  const first = types.length - params.length;
  return params.map((p, i) => {
    if (types[first + i] === BYTEA_ARRAY_OID && p.length >= 12 && p.readUInt32BE(8) === 25) p.writeUInt32BE(17, 8);
    else if (codec && types[first + i] === TEXT_ARRAY_OID) return encodeTextArray(p, codec);
    return p;
  });
}

/** Parse/Bind/Describe/Execute of one statement in simple-query form (no Sync: the caller ends the batch). */
function sendSimple(port: SessionPort, text: string, types: number[], params: Buffer[], map: PositionMap | undefined, execute?: Capture, describe?: Capture, parse?: Capture): void {
  const codec = codecFor(port.clientEncoding);
  const bind = encodeBind({ portal: '', statement: '', paramFormats: params.length ? [1] : [], params: rowParams(port, params, types), resultFormats: [] });
  const entries = simpleModeEntries(map, execute, describe);
  if (parse) entries[0] = parse;
  port.send([encodeParse({ name: '', text, paramTypes: types }, codec), bind, serialize.describe({ type: 'P', name: '' }), serialize.execute({ portal: '', rows: 0 })], entries);
}

function explainOptions(info: StatementInfo): { analyze: boolean; text: boolean } | undefined {
  if (info.kind !== 'ExplainStmt') return undefined;
  let analyze = false;
  let text = true;
  for (const o of (info.node.options as Node[] | undefined) ?? []) {
    const d = inner(o);
    const arg = d.arg ? inner(d.arg) : undefined;
    const v = arg ? String(arg.sval ?? arg.boolval ?? '') : 'true';
    if (d.defname === 'analyze') analyze = !['false', 'off', '0'].includes(v.toLowerCase());
    if (d.defname === 'format') text = v.toLowerCase() === 'text';
  }
  return { analyze, text };
}

/** Adds the Redis side of the plan to EXPLAIN's text output, just before its command tag. */
function explainCapture(lines: string[], map: PositionMap | undefined): Capture {
  return passCapture(Req.Execute, [], map, {
    rewrite: (code, buf, start, end) => (code === Backend.CommandComplete ? Buffer.concat([...lines.map((l) => encodeDataRow([Buffer.from(l)])), buf.subarray(start, end)]) : undefined),
  });
}
