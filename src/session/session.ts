/**
 * One client connection and its upstream connection.
 *
 * Phases: `startup` reads untyped packets (SSL/GSSENC negotiation, cancel, StartupMessage);
 * `auth` relays authentication both ways untouched; `ready` frames messages, passes each Query and
 * Parse through the statement hook, and otherwise forwards the original bytes. Client messages are
 * handled strictly in order: an intercepted one pauses the stream until its effects are queued.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/config.js';
import { Backend, Frontend } from '../protocol/codes.js';
import { encodeError } from '../protocol/backend.js';
import { forEachFrame, Framer, FrameError } from '../protocol/framer.js';
import { decodeTarget, SYNC, TERMINATE } from '../protocol/frontend.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { decodeStartupPacket, startupPacketLength } from '../protocol/startup.js';
import { EMPTY_INDEX, encodingRefusal, statementText, type Decision, type StatementHook } from '../sql/classify.js';
import { connectUpstream, sendCancel, type UpstreamSocket } from '../upstream/connect.js';
import { failWith, runInternal } from '../upstream/internal-query.js';
import { CancelSource, parseStatementTimeout, StatementScope, type CancelRegistry } from './cancel.js';
import { ExpectedQueue, forward, Req, type Entry } from './expected-queue.js';
import { hotCounts } from '../metrics/metrics.js';
import type { Interceptor, SessionPort } from './types.js';

/** How much upstream data handling (ms of CPU) a session does before it lets other work in (as GiveWay does). */
const UPSTREAM_SLICE_MS = 4;

/** What libuv reads from a socket at once: a shorter read means the socket is drained for now. */
const FULL_READ = 64 * 1024;

export interface SessionDeps {
  config: ProxyConfig;
  log: Logger;
  hook: StatementHook;
  secureContext: tls.SecureContext | undefined;
  /** Builds the per-session interceptor, once the session knows its user and database. */
  interceptor?: (port: SessionPort) => Interceptor;
  /** For a reserved database (never relayed upstream): what takes the connection over. */
  reserved?: (params: Map<string, string>) => ((socket: net.Socket | tls.TLSSocket, rest: Buffer) => void) | undefined;
  /** The address upstream's postgres_fdw reaches this proxy at, when known. */
  advertise?: () => string | undefined;
  /** Sessions by BackendKeyData, so a CancelRequest also stops the proxy's own part of a statement. */
  cancels?: CancelRegistry;
}

type Phase = 'startup' | 'connecting' | 'auth' | 'ready' | 'closed';

const SSL_NO = Buffer.from('N');
const UNNAMED_PORTAL: ['S' | 'P', string] = ['P', ''];
const EMPTY = Buffer.alloc(0);
const SSL_YES = Buffer.from('S');

/** Messages the client may send once ready, and which reply each awaits. -1: no reply. */
const REQ_OF: Int8Array = (() => {
  const t = new Int8Array(256).fill(-2); // -2: not a frontend message
  t[Frontend.Parse] = Req.Parse;
  t[Frontend.Bind] = Req.Bind;
  t[Frontend.Describe] = Req.Describe;
  t[Frontend.Execute] = Req.Execute;
  t[Frontend.Close] = Req.Close;
  t[Frontend.Sync] = Req.Sync;
  t[Frontend.Query] = Req.Query;
  t[Frontend.FunctionCall] = Req.FunctionCall;
  t[Frontend.Flush] = -1;
  t[Frontend.CopyData] = -1;
  t[Frontend.CopyDone] = -1;
  t[Frontend.CopyFail] = -1;
  t[Frontend.Terminate] = -1;
  return t;
})();

export class Session implements SessionPort {
  readonly log: Logger;
  user = '';
  database = '';
  startupKey = '';
  private phase: Phase = 'startup';
  private client: net.Socket | tls.TLSSocket;
  private upstream: UpstreamSocket | undefined;
  private startupBuf: Buffer = Buffer.alloc(0);
  private readonly clientFramer = new Framer();
  private readonly upstreamFramer = new Framer();
  private readonly queue: ExpectedQueue;
  private interceptor: Interceptor | undefined;
  /** Client bytes received but not yet handled, because an intercepted message is in progress. */
  private inbox: { buf: Buffer; off: number; end: number }[] = [];
  private busy = false;
  private openBatch = false;
  /** Something went upstream since the last Sync: that Sync must go too (else it is answered locally). */
  sentSinceSync = false;
  upstreamWrites = 0;
  /** Syncs and Queries the client has sent: a batch's number. */
  batches = 0;
  private upstreamBlocked = false;
  private upstreamCorked = false;
  private clientCorked = false;
  /** Client output held until the turn ends, while clientCorked. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private clientBlocked = false;
  /**
   * Time spent handling upstream data in this turn's run of full reads (ms), and whether reading is
   * paused now: after 4 ms of it, reading pauses for one turn. libuv reads a
   * busy socket up to 32 times (64 kB each) before the loop turns, and decoding a write's evaluated rows
   * held the loop for 20-50 ms that way.
   */
  private upstreamSpent = 0;
  private upstreamYielding = false;
  /** Upstream refused the login (any error during authentication is its last word). */
  private authFailed = false;
  /** Upstream's BackendKeyData frame, to cancel a running query when the client vanishes. */
  private backendKey: Buffer | undefined;
  private closeWhenIdle = false;
  /** The intercepted message in progress, which a CancelRequest or statement_timeout can abort. */
  private scope: StatementScope | undefined;
  /** A client statement is being handled: statementScope() may make its scope. */
  private inStatement = false;
  private readonly cancelSource = new CancelSource();
  /**
   * A CancelRequest arrived while this batch of client messages was being handled: like Postgres's
   * pending cancel, it stops the next statement of the batch that waits (a Parse is intercepted but
   * the Redis read happens at Bind), and lapses once the session waits for the client again.
   */
  private cancelPending = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    socket: net.Socket,
    private readonly deps: SessionDeps,
    readonly id: number,
  ) {
    this.client = socket;
    this.log = deps.log;
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    this.queue = new ExpectedQueue(
      (b) => this.toClient(b),
      () => this.onUpstreamIdle(),
      (bs) => this.toClientMany(bs),
    );
    socket.setNoDelay(true);
    this.attachClient(socket);
  }

  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get inTransactionBlock(): boolean {
    return this.queue.inBlock;
  }

  set onTxEnd(f: ((tag: string) => void) | undefined) {
    this.queue.onTxEnd = f;
  }

  get txStatus(): 'I' | 'T' | 'E' {
    return String.fromCharCode(this.queue.txStatus) as 'I' | 'T' | 'E';
  }

  get inFailedBatch(): boolean {
    return this.queue.inFailedBatch;
  }

  get batchOpen(): boolean {
    return this.openBatch;
  }

  get signal(): AbortSignal | undefined {
    return this.statementScope()?.signal;
  }

  /**
   * The scope of the client statement being handled, made when first asked for: a message answered at
   * once (a fast portal's Describe or Execute) never needs one, and nothing could cancel it anyway.
   */
  private statementScope(): StatementScope | undefined {
    if (!this.scope && this.inStatement) {
      const scope = (this.scope = new StatementScope(this.probeStatementTimeout, this.cancelSource));
      if (this.cancelPending) scope.cancel();
    }
    return this.scope;
  }

  get canceled(): boolean {
    return this.scope?.canceled ?? false;
  }

  get upstreamSettled(): boolean {
    return !this.queue.batchPending;
  }

  get upstreamIdle(): boolean {
    return this.queue.idle;
  }

  get textConvertible(): boolean {
    return this.queue.textConvertible;
  }

  get clientEncoding(): string {
    return this.queue.clientEncoding;
  }

  /** Idle: between transactions with nothing in flight, so closing loses nothing. */
  get idle(): boolean {
    return this.phase !== 'ready' || (this.queue.idle && !this.busy && this.inbox.length === 0 && this.queue.txStatus === 0x49);
  }

  // ---- client side ----

  private attachClient(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (chunk: Buffer) => this.onClientData(chunk));
    s.on('drain', () => {
      this.clientBlocked = false;
      if (!this.upstreamYielding) this.upstream?.resume();
    });
    s.on('error', (e) => this.log.debug({ err: e.message }, 'client socket error'));
    // A client may half-close after its last message and still read the replies (as with Postgres):
    // pass the half-close on once everything it sent has been forwarded, and close when upstream does.
    s.on('end', () => this.onClientEnd());
    s.on('close', () => this.shutdown('client closed'));
  }

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'startup') return this.onStartupData(chunk);
    if (this.phase === 'closed' || this.phase === 'connecting') return;
    const r = this.clientFramer.push(chunk);
    if (r instanceof FrameError) return this.protocolViolation(`invalid frontend message: ${r.message}`);
    if (r.end === 0) return;
    if (this.phase === 'auth') {
      // Authentication messages go through untouched; nothing is owed for them yet.
      this.toUpstream(r.end === r.buf.length ? r.buf : r.buf.subarray(0, r.end));
      return;
    }
    this.inbox.push({ buf: r.buf, off: 0, end: r.end });
    if (!this.busy) this.drainInbox();
  }

  private clientEnded = false;

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.phase !== 'ready' && this.phase !== 'auth') return this.shutdown('client closed');
    this.endUpstreamIfDrained();
  }

  private endUpstreamIfDrained(): void {
    if (this.clientEnded && !this.busy && this.inbox.length === 0 && this.upstream?.writable) this.upstream.end();
  }

  private onStartupData(chunk: Buffer): void {
    this.startupBuf = this.startupBuf.length === 0 ? chunk : Buffer.concat([this.startupBuf, chunk]);
    let len: number;
    try {
      len = startupPacketLength(this.startupBuf);
    } catch (e) {
      return this.fail(e);
    }
    if (len < 0 || this.startupBuf.length < len) return;
    const raw = this.startupBuf.subarray(0, len);
    const rest = this.startupBuf.subarray(len);
    this.startupBuf = Buffer.alloc(0);
    let packet;
    try {
      packet = decodeStartupPacket(raw);
    } catch (e) {
      return this.fail(e);
    }
    switch (packet.kind) {
      case 'gssenc':
        this.client.write(SSL_NO);
        if (rest.length) this.onStartupData(rest);
        return;
      case 'ssl':
        if (this.deps.secureContext === undefined || this.client instanceof tls.TLSSocket || rest.length) {
          this.client.write(SSL_NO);
          // Bytes sent before our answer would bypass encryption (CVE-2021-23214): refuse them, as Postgres does, after answering.
          if (rest.length) {
            return this.fail(new PgError(SqlState.ProtocolViolation, 'received unencrypted data after SSL request', { severity: 'FATAL', detail: 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.' }));
          }
          return;
        }
        return this.upgradeToTls();
      case 'cancel':
        this.phase = 'closed';
        // The proxy's own wait (Redis) stops here; upstream's part stops by the relayed request.
        this.deps.cancels?.cancel(packet.raw.subarray(8));
        sendCancel(this.deps.config.upstream, Buffer.from(packet.raw))
          .catch((e: unknown) => this.log.warn({ err: String(e) }, 'cancel request failed'))
          .finally(() => this.client.destroy());
        return;
      case 'startup': {
        this.user = packet.params.get('user') ?? '';
        this.database = packet.params.get('database') ?? this.user;
        this.startupKey = JSON.stringify([...packet.params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        if (this.handOffReserved(packet.params, rest)) return;
        if (this.deps.config.tlsRequired && !(this.client instanceof tls.TLSSocket)) {
          // As Postgres answers a client that no hostssl line admits without encryption.
          return this.fail(new PgError('28000', `no pg_hba.conf entry for host "${this.client.remoteAddress ?? ''}", user "${this.user}", database "${this.database}", no encryption`, { severity: 'FATAL' }));
        }
        this.startUpstream(Buffer.from(packet.raw), rest);
        return;
      }
    }
  }

  /** A reserved database (callback sessions) is served without upstream: hand the socket over. */
  private handOffReserved(params: Map<string, string>, rest: Buffer): boolean {
    const take = this.deps.reserved?.(params);
    if (!take) return false;
    const c = this.client;
    for (const ev of ['data', 'close', 'drain', 'end', 'error'] as const) c.removeAllListeners(ev);
    this.phase = 'closed';
    this.resolveClosed();
    take(c, rest);
    return true;
  }

  get callbackAddress(): string | undefined {
    return this.deps.advertise?.();
  }

  /** Logged in: the login timeout no longer applies. */
  get loggedIn(): boolean {
    return this.phase === 'ready';
  }

  get upstreamOpen(): boolean {
    return this.upstream !== undefined && !this.upstream.destroyed;
  }

  private upgradeToTls(): void {
    const raw = this.client;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('drain');
    raw.write(SSL_YES);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.deps.secureContext });
    this.client = secure;
    this.attachClient(secure);
    raw.on('close', () => this.shutdown('client closed'));
  }

  private startUpstream(startup: Buffer, rest: Buffer): void {
    this.phase = 'connecting';
    this.client.pause();
    connectUpstream(this.deps.config.upstream).then(
      (up) => {
        if (this.phase === 'closed') {
          up.destroy();
          return;
        }
        this.upstream = up;
        this.attachUpstream(up);
        this.phase = 'auth';
        up.write(startup);
        this.client.resume();
        if (rest.length) this.onClientData(rest);
      },
      (e: unknown) => this.fail(e),
    );
  }

  /** Handles client messages in order until one needs async work; resumes after it. */
  private drainInbox(): void {
    const hook = this.deps.hook;
    while (this.inbox.length > 0 && !this.busy && this.phase === 'ready') {
      const item = this.inbox[0]!;
      const { buf, end } = item;
      let runStart = item.off;
      let off = item.off;
      while (off < end) {
        const code = buf[off]!;
        const next = off + 1 + buf.readInt32BE(off + 1);
        const req = REQ_OF[code]!;
        if (req === -2) {
          this.flushRun(buf, runStart, off);
          return this.protocolViolation(`invalid frontend message type ${code}`);
        }
        let intercept: (() => Promise<void> | void) | undefined;
        try {
          const ic = this.interceptor;
          if (code === Frontend.Query || code === Frontend.Parse) {
            if (ic?.wantsRefresh() && !this.openBatch && this.queue.idle && this.queue.txStatus === 0x49) {
              // Read the catalog again first; this same message is handled right after.
              this.flushRun(buf, runStart, off);
              item.off = off;
              if (!this.runIntercepted(() => ic.refresh(this), false, false) || this.phase !== 'ready') return;
              runStart = off;
            }
            const d = hook.classifyFrame(code, buf, off, next, ic ? ic.names : EMPTY_INDEX, ic !== undefined, ic?.inspectAll, this.queue.clientEncoding);
            if (ic && (d instanceof Promise || d.kind === 'inspect')) {
              const raw = buf.subarray(off, next);
              intercept = d instanceof Promise ? () => d.then((later) => this.dispatch(ic, code, raw, later, req)) : () => this.dispatch(ic, code, raw, d, req);
            } else {
              hotCounts.passthrough++;
              if (code === Frontend.Parse && ic?.ownsAny) ic.forget('S', buf.toString('utf8', off + 5, buf.indexOf(0, off + 5)));
              if (ic?.cachesNames) ic.passedThrough(statementText(code, buf, off, next));
            }
          } else if (ic?.ownsAny && (code === Frontend.Bind || code === Frontend.Describe || code === Frontend.Execute || code === Frontend.Close)) {
            const [kind, name] = this.target(code, buf, off, next);
            if (ic.owns(kind, name)) {
              const raw = buf.subarray(off, next);
              intercept = () => ic.onExtended(this, code, raw);
            } else if (code === Frontend.Bind) ic.forget('P', buf.toString('utf8', off + 5, buf.indexOf(0, off + 5)));
          }
        } catch (e) {
          // A message too malformed to read goes to upstream as it is: Postgres's own answer (often a
          // plain ERROR, after which the session goes on) is the one the client must get.
          if (!(e instanceof RangeError) && !isPgError(e)) throw e;
          intercept = undefined;
        }
        if (code === Frontend.Sync || code === Frontend.Query) {
          this.openBatch = false;
          this.batches++;
        } else if (req >= 0 || code === Frontend.Flush) this.openBatch = true;
        if (intercept) {
          this.flushRun(buf, runStart, off);
          item.off = next;
          // Handled at once (a fast portal's Describe or Execute): on with the next message.
          if (!this.runIntercepted(intercept, code === Frontend.Query) || this.phase !== 'ready') return;
          runStart = off = next;
          continue;
        }
        if (code === Frontend.Sync && !this.sentSinceSync && this.interceptor && next - off === 5) {
          // Nothing of this batch went upstream (the fast path answered it): neither does its Sync.
          this.flushRun(buf, runStart, off);
          this.replyReady(EMPTY);
          runStart = off = next;
          continue;
        }
        // A simple Query neither opens an extended batch nor surely closes one (inside a failed batch it is discarded).
        if (code !== Frontend.Query) this.sentSinceSync = code !== Frontend.Sync;
        if (req >= 0) this.queue.push(forward(req));
        else if (code === Frontend.CopyDone || code === Frontend.CopyFail) this.queue.markCopyEnd();
        if (code === Frontend.Terminate) {
          // What came before it goes on; shutdown() sends upstream its own Terminate.
          this.flushRun(buf, runStart, off);
          return this.shutdown('client terminated');
        }
        off = next;
      }
      this.flushRun(buf, runStart, end);
      this.inbox.shift();
    }
    if (!this.busy && this.inbox.length === 0) this.cancelPending = false;
    this.updateClientFlow();
    this.endUpstreamIfDrained();
  }

  /** A Query or Parse the hook decided on: to the interceptor, or (decided off-thread) on upstream. */
  private dispatch(ic: Interceptor, code: number, raw: Buffer, d: Decision, req: number): Promise<void> | void {
    if (d.kind === 'inspect') {
      const refused = encodingRefusal(d, ic.names, this.queue.clientEncoding);
      if (refused) throw refused;
      return code === Frontend.Query ? ic.onQuery(this, d.text, d, raw) : ic.onParse(this, raw, d);
    }
    if (code === Frontend.Parse && ic.ownsAny) ic.forget('S', raw.toString('utf8', 5, raw.indexOf(0, 5)));
    if (ic.cachesNames) ic.passedThrough(statementText(code, raw, 0, raw.length));
    this.send(raw, [forward(req)]);
  }

  /** The statement or portal a Bind/Describe/Execute/Close names. */
  private target(code: number, buf: Buffer, off: number, next: number): ['S' | 'P', string] {
    // The unnamed portal (Execute), what most drivers bind: no string to decode.
    if (code === Frontend.Execute && buf[off + 5] === 0 && off + 5 < next) return UNNAMED_PORTAL;
    if (code === Frontend.Describe || code === Frontend.Close) {
      const t = decodeTarget(buf, off, next);
      return [t.kind, t.name];
    }
    // A name must end inside its own frame; otherwise the frame is malformed and goes upstream as it is.
    const nul = (from: number): number => {
      const z = buf.indexOf(0, from);
      if (z < 0 || z >= next) throw new RangeError('unterminated string');
      return z;
    };
    if (code === Frontend.Execute) return ['P', buf.toString('utf8', off + 5, nul(off + 5))];
    // Bind: portal name, then statement name.
    const portalEnd = nul(off + 5);
    return ['S', buf.toString('utf8', portalEnd + 1, nul(portalEnd + 1))];
  }

  private onCancelRequest(): void {
    if (this.scope) this.scope.cancel();
    // Messages of the same batch still to handle: the cancel is theirs.
    if (this.busy || this.inbox.length > 0) this.cancelPending = true;
  }

  /**
   * `query`: fn handles a simple Query, which is owed a ReadyForQuery even when it fails.
   * `statement`: the message is a client statement, subject to cancel and statement_timeout.
   * True when fn finished synchronously: the caller goes on with the next message itself. Otherwise the
   * client stream is paused until fn settles, and the inbox is drained again then.
   */
  private runIntercepted(fn: () => Promise<void> | void, query = false, statement = true): boolean {
    this.busy = true;
    this.scope = undefined;
    this.inStatement = statement;
    const finish = (): void => {
      const scope = this.scope;
      scope?.end();
      // One cancel fails one statement, as in Postgres.
      if (scope?.tookEffect) this.cancelPending = false;
      this.scope = undefined;
      this.inStatement = false;
      this.busy = false;
    };
    // A statement-level error (a malformed message, say) fails that statement as Postgres would,
    // and the session goes on; anything else costs the connection.
    const failed = (e: unknown): boolean => {
      if (!isPgError(e) || e.severity !== 'ERROR') {
        this.internalFailure(e);
        return false;
      }
      failWith(this, encodeError(e));
      if (query) this.send(SYNC, [forward(Req.Sync)]);
      return true;
    };
    let p: Promise<void> | void;
    try {
      p = fn();
    } catch (e) {
      const goOn = failed(e);
      finish();
      return goOn;
    }
    if (!p) {
      finish();
      return true;
    }
    // It waits from here: cancellable, and statement_timeout counts.
    this.statementScope();
    this.updateClientFlow();
    p.then(
      () => {
        finish();
        this.drainInbox();
      },
      (e: unknown) => {
        if (!failed(e)) return;
        finish();
        this.drainInbox();
      },
    );
    return false;
  }

  /**
   * The session's statement_timeout, asked of upstream only for a statement still running in the
   * proxy after PROBE_AFTER_MS (it is not a reported GUC, and asking every time would cost a round
   * trip per statement). It ends with Flush: a client batch, or the proxy's simple-query batch, is
   * open around every intercepted statement, and its Sync closes it.
   */
  private readonly probeStatementTimeout = async (): Promise<number | undefined> => {
    if (this.phase !== 'ready' || this.queue.inFailedBatch) return undefined;
    const r = await runInternal(this, "SELECT pg_catalog.current_setting('statement_timeout')", [], { errorIsReply: false });
    const text = r.kind === 'rows' ? r.rows[0]?.[0]?.toString('utf8') : undefined;
    return text === undefined ? undefined : parseStatementTimeout(text);
  };

  /** An interceptor bug must cost one connection, never the process. */
  private internalFailure(e: unknown): void {
    if (isPgError(e) && e.severity === 'FATAL') return this.fail(e);
    this.log.error({ err: e instanceof Error ? e.stack : String(e) }, 'internal error while handling a statement');
    this.fail(new PgError(SqlState.InternalError, `redis-fdw-proxy internal error: ${e instanceof Error ? e.message : String(e)}`, { severity: 'FATAL' }));
  }

  private flushRun(buf: Buffer, from: number, to: number): void {
    if (from < to) this.toUpstream(from === 0 && to === buf.length ? buf : buf.subarray(from, to));
  }

  private updateClientFlow(): void {
    if (this.phase === 'closed') return;
    if (this.busy || this.upstreamBlocked || this.inbox.length > 0) this.client.pause();
    else this.client.resume();
  }

  // ---- SessionPort ----

  send(bytes: Buffer | Buffer[], entries: Entry[]): void {
    const all = Array.isArray(bytes) ? bytes : [bytes];
    this.sentSinceSync = batchOpenAfter(all, this.sentSinceSync);
    for (const e of entries) this.queue.push(e);
    this.corkUpstreamForTurn();
    let size = 0;
    for (const b of all) size += b.length;
    // Small messages in one buffer; a big one (an outbox payload in pieces) as its pieces, which the
    // corked socket writes in one writev without joining them first.
    if (all.length === 1 || size > 64 * 1024) for (const b of all) this.toUpstream(b);
    else if (all.length > 1) this.toUpstream(Buffer.concat(all, size));
  }

  syncedUpstream(): void {
    this.sentSinceSync = false;
  }

  reply(bytes: Buffer, endsBatch = false): void {
    this.corkClientForTurn();
    this.queue.push({ kind: 'local', bytes, endsBatch });
  }

  replyNow(bytes: Buffer): boolean {
    if (!this.queue.idle || this.phase === 'closed') return false;
    // What the turn held was owed first.
    this.flushClient();
    this.toClient(bytes);
    return true;
  }

  replyReady(bytes: Buffer): void {
    this.corkClientForTurn();
    this.queue.push({ kind: 'local', bytes, endsBatch: true, ready: true });
  }

  /**
   * Local replies (the fast path's BindComplete, RowDescription, rows, ReadyForQuery) leave in one
   * client write per turn of the event loop rather than one each, as corkUpstreamForTurn does upstream.
   * They are held here rather than in a corked socket: one write of one buffer costs the stream less
   * than five buffered writes and a writev.
   */
  private corkClientForTurn(): void {
    if (this.clientCorked || this.phase === 'closed') return;
    this.clientCorked = true;
    setImmediate(() => this.flushClient());
  }

  /** Writes what the turn held for the client (also before anything written past the queue). */
  private flushClient(): void {
    this.clientCorked = false;
    const out = this.held;
    if (out.length === 0) return;
    this.held = [];
    const bytes = this.heldBytes;
    this.heldBytes = 0;
    if (out.length === 1) return this.toClient(out[0]!);
    // Small pieces are copied into one buffer; a big forwarded result keeps its buffers (a writev).
    if (bytes <= 16 * 1024) return this.toClient(Buffer.concat(out, bytes));
    this.toClientMany(out);
  }

  // ---- upstream side ----

  private attachUpstream(up: UpstreamSocket): void {
    up.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    up.on('drain', () => {
      this.upstreamBlocked = false;
      this.updateClientFlow();
    });
    up.on('error', (e) => this.log.debug({ err: e.message }, 'upstream socket error'));
    up.on('close', () => this.onUpstreamClosed());
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    const r = this.upstreamFramer.push(chunk);
    if (r instanceof FrameError) {
      this.log.error({ err: r.message }, 'upstream sent an invalid message');
      return this.fail(new PgError(SqlState.ProtocolViolation, `upstream server sent an invalid message: ${r.message}`, { severity: 'FATAL' }));
    }
    if (r.end === 0) return;
    if (this.phase === 'auth') this.watchAuth(r.buf, r.end);
    const t0 = performance.now();
    this.queue.consume(r.buf, r.end);
    this.upstreamSpent += performance.now() - t0;
    if (this.upstreamSpent >= UPSTREAM_SLICE_MS) this.yieldUpstream();
    // A read short of libuv's buffer drained the socket: no more of it this turn, so the slice starts
    // again. Time carried over from earlier turns (a reply every few hundred µs adds up) paused sessions
    // that held nothing up, splitting their replies into extra writes.
    else if (chunk.length < FULL_READ) this.upstreamSpent = 0;
  }

  /**
   * Lets other sessions in after a slice of upstream data: reading pauses until the next turn. What
   * arrives meanwhile waits in the socket's buffer, in order, as it does for a slow client.
   */
  private yieldUpstream(): void {
    this.upstreamSpent = 0;
    if (this.upstreamYielding || !this.upstream) return;
    this.upstreamYielding = true;
    this.upstream.pause();
    setImmediate(() => {
      this.upstreamYielding = false;
      // A blocked client resumes upstream when it drains.
      if (!this.clientBlocked && this.phase !== 'closed') this.upstream?.resume();
    });
  }

  /** During authentication, looks for the first ReadyForQuery (the session is ready) and failures. */
  private watchAuth(buf: Buffer, end: number): void {
    forEachFrame(buf, end, (code, off, next) => {
      if (code === Backend.ReadyForQuery && this.phase === 'auth') {
        this.phase = 'ready';
        this.interceptor = this.deps.interceptor?.(this);
        this.log.debug({ user: this.user, database: this.database }, 'session ready');
        queueMicrotask(() => this.drainInbox());
      } else if (code === Backend.ErrorResponse) this.authFailed = true;
      else if (code === Backend.BackendKeyData) {
        this.backendKey = Buffer.from(buf.subarray(off + 5, next));
        this.deps.cancels?.register(this.backendKey, () => this.onCancelRequest());
      }
    });
  }

  private onUpstreamIdle(): void {
    if (this.closeWhenIdle && this.idle) this.terminateForShutdown();
  }

  private onUpstreamClosed(): void {
    if (this.phase === 'closed') return;
    // Upstream sends a FATAL before it hangs up on purpose; then the client is owed no error of ours.
    if (!this.authFailed && !this.queue.fatalSeen && !this.clientEnded && (this.phase === 'ready' || this.phase === 'auth')) {
      this.flushClient();
      this.client.write(encodeError(new PgError(SqlState.ConnectionFailure, 'server closed the connection unexpectedly', { severity: 'FATAL', detail: 'The upstream PostgreSQL server terminated the connection abnormally.' })));
    }
    this.queue.clear();
    this.shutdown('upstream closed');
  }

  // ---- output and teardown ----

  private toClient(b: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.clientCorked) {
      this.held.push(b);
      this.heldBytes += b.length;
      return;
    }
    if (!this.client.write(b) && !this.clientBlocked) {
      // A slow client must not make us buffer a whole result: stop reading upstream until it drains.
      this.clientBlocked = true;
      this.upstream?.pause();
    }
  }

  /** Several pieces of one reply, in one syscall (a writev once uncorked). */
  private toClientMany(bs: Buffer[]): void {
    if (this.phase === 'closed') return;
    if (this.clientCorked) {
      for (const b of bs) this.toClient(b);
      return;
    }
    this.client.cork();
    for (const b of bs) this.toClient(b);
    this.client.uncork();
  }

  /**
   * Holds upstream writes until this turn of the event loop ends. An intercepted statement sends its
   * pieces one message at a time (the rewritten Bind once Redis has answered, then Describe, Execute,
   * and the client's own Sync behind them); corked, they leave in one syscall instead of four. Nothing
   * can wait on upstream's answer before the turn ends, since that answer needs the next I/O poll.
   */
  private corkUpstreamForTurn(): void {
    const up = this.upstream;
    if (!up || this.upstreamCorked) return;
    this.upstreamCorked = true;
    up.cork();
    setImmediate(() => {
      this.upstreamCorked = false;
      up.uncork();
    });
  }

  private toUpstream(b: Buffer): void {
    const up = this.upstream;
    if (!up || this.phase === 'closed') return;
    this.upstreamWrites++;
    if (!up.write(b) && !this.upstreamBlocked) {
      this.upstreamBlocked = true;
      this.client.pause();
    }
  }

  private protocolViolation(message: string): void {
    this.fail(new PgError(SqlState.ProtocolViolation, message, { severity: 'FATAL' }));
  }

  /** Tells the client why (when it can be told) and closes both sides. */
  private fail(e: unknown): void {
    if (this.phase === 'closed') return;
    const err = isPgError(e) ? e : new PgError(SqlState.InternalError, String(e), { severity: 'FATAL' });
    this.log.info({ code: err.code, err: err.message }, 'closing session');
    this.queue.flushGathered(); // replies already owed go out before the error, as they arrived
    this.flushClient();
    this.client.write(encodeError(err));
    this.shutdown(err.message);
  }

  /** Graceful shutdown: close now if idle, else as soon as the session is between transactions. */
  requestShutdown(): void {
    this.closeWhenIdle = true;
    if (this.idle) this.terminateForShutdown();
  }

  terminateForShutdown(): void {
    if (this.phase === 'closed') return;
    this.fail(new PgError(SqlState.AdminShutdown, 'terminating connection due to administrator command', { severity: 'FATAL' }));
  }

  private cancelRunningQuery(key: Buffer): void {
    const packet = Buffer.alloc(8 + key.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(80877102, 4);
    key.copy(packet, 8);
    sendCancel(this.deps.config.upstream, packet).catch((e: unknown) => this.log.debug({ err: String(e) }, 'cancel after client loss failed'));
  }

  private shutdown(reason: string): void {
    if (this.phase === 'closed') {
      this.resolveClosed();
      return;
    }
    // A client that vanished mid-query leaves a backend running it; Postgres would only notice when it
    // next writes. Cancel it so it stops now (then the Terminate below ends the session).
    if (this.phase === 'ready' && !this.queue.idle && !this.clientEnded && this.backendKey && reason === 'client closed') this.cancelRunningQuery(this.backendKey);
    this.flushClient();
    this.phase = 'closed';
    if (this.backendKey) this.deps.cancels?.unregister(this.backendKey);
    this.scope?.cancel();
    this.log.debug({ reason }, 'session closed');
    this.interceptor?.close();
    this.queue.clear();
    const up = this.upstream;
    if (up && !up.destroyed) {
      // Client frames are only ever forwarded whole, so a Terminate here lands on a message boundary.
      if (up.writable) up.end(TERMINATE);
      setTimeout(() => up.destroy(), 1000).unref();
    }
    this.client.end();
    setTimeout(() => this.client.destroy(), 1000).unref();
    this.resolveClosed();
  }
}

/**
 * Whether an extended batch is open upstream after these messages: a Sync closes it, a simple Query
 * leaves it as it was (inside a failed batch the Query is discarded), anything else opens it. Walks
 * frame headers only.
 */
function batchOpenAfter(bufs: readonly Buffer[], open: boolean): boolean {
  // Messages back to back across the buffers; one may span several (its header never does: the
  // senders keep each message's first five bytes together).
  let skip = 0;
  for (const b of bufs) {
    let off = skip;
    for (; off + 5 <= b.length; off += 1 + b.readInt32BE(off + 1)) {
      const code = b[off]!;
      if (code !== Frontend.Query) open = code !== Frontend.Sync;
    }
    skip = off - b.length;
  }
  return open;
}
