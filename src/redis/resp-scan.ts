/**
 * The read path for big single-key scans: a raw connection per Redis server whose RESP2 replies are parsed
 * straight into the binary `text[]` parameter bodies, with no JS string or Buffer per element.
 *
 * Why hand-written protocol code: measured (ARCHITECTURE.md "Big scans"), ioredis 6 spends 114–127 ms of
 * CPU decoding the 200,000 strings of a 100,000-field hash and 1.1–1.2 s for 1,000,000 fields — more than
 * the C FDW's whole backend — while everything the proxy does on top costs ~25 ms per 100,000. Every RESP
 * library (ioredis, redis-parser, node-redis) decodes into JS values first; none transcodes into Postgres's
 * array format. This module does only that: HSCAN / SSCAN / LRANGE / ZRANGE … WITHSCORES pages of one key.
 * ioredis stays the client for everything else (clusters, multi-key tables, pushdown, writes).
 *
 * A connection serves one request at a time and is reused only after its reply was read to the end; on a
 * cancel, a timeout, a handler error or a socket error it is destroyed, so no reply is ever misattributed.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import { describeConn, type RedisConnSpec } from './connection.js';
import { redisRecorder } from '../metrics/metrics.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { TextArrayBuilder } from '../protocol/text-array.js';
import { checkText } from './text.js';
import { SeenSet } from './types/cursor.js';
import { GiveWay } from '../executor/give-way.js';
import { WholeBulk } from './whole-bulk.js';

// ---- RESP2 reader ---------------------------------------------------------------------------------------

/** What a reader reports, in stream order. `depth` is the element's nesting (0 = the reply itself). */
export interface RespHandler {
  /** An array header; n = -1 for a nil array. An empty or nil array is itself a complete element. */
  array(n: number, depth: number): void;
  /** A whole bulk string, bytes src[start, end) (valid only during the call). */
  bulk(src: Buffer, start: number, end: number, depth: number): void;
  /** A bulk string that spans chunks: begin(len), then part()s adding up to len bytes, then end(). */
  begin(len: number, depth: number): void;
  part(src: Buffer, start: number, end: number): void;
  end(): void;
  /** A nil bulk string. */
  nil(depth: number): void;
  /** `+simple` or `:integer`, as text. */
  simple(text: string, depth: number): void;
  /** `-ERR …`, without the dash. */
  error(text: string, depth: number): void;
  /** The reply is complete. */
  done(): void;
  /** Optional: the buffer whose bytes from `from` on the calls that follow are about (until the next). */
  chunk?(buf: Buffer, from: number): void;
  /**
   * Optional, the hot loop of a big reply: whole bulk strings back to back at `depth` from src[i], at most
   * `max` of them (what the enclosing array has left), each as bulk() would take it but without a call
   * per element. Returns where it stopped and sets `taken`; it may take none, and it stops before anything
   * else (a header or value the chunk cuts, a nil), which the reader then parses as usual.
   */
  bulks?(src: Buffer, i: number, n: number, depth: number, max: number): number;
  readonly taken?: number;
}

const CR = 13;
const LF = 10;

/**
 * An incremental RESP2 parser: feed() it chunks split anywhere. Only an incomplete header line is carried
 * over (a few bytes); bulk data is handed on in place.
 */
export class RespReader {
  handler: RespHandler | undefined;
  /** Called after the handler's done(): the connection's own end of a request. */
  onDone: (() => void) | undefined;
  /** Remaining element counts of the open arrays. */
  private readonly stack: number[] = [];
  /** Bytes of a split bulk string still to come, then its CRLF bytes still to skip. */
  private bulkLeft = 0;
  private skip = 0;
  private carry: Buffer | undefined;

  /** True between replies (nothing half-read). */
  get idle(): boolean {
    return this.stack.length === 0 && this.bulkLeft === 0 && this.skip === 0 && this.carry === undefined;
  }

  feed(chunk: Buffer): void {
    if (this.carry) {
      const nl = chunk.indexOf(LF);
      if (nl < 0) {
        this.carry = Buffer.concat([this.carry, chunk]);
        return;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl + 1)]);
      this.carry = undefined;
      this.run(line, 0);
      this.run(chunk, nl + 1);
      return;
    }
    this.run(chunk, 0);
  }

  private run(buf: Buffer, from: number): void {
    const n = buf.length;
    let i = from;
    this.handler?.chunk?.(buf, from);
    while (i < n) {
      if (this.bulkLeft > 0) {
        const take = Math.min(this.bulkLeft, n - i);
        this.handler!.part(buf, i, i + take);
        i += take;
        this.bulkLeft -= take;
        if (this.bulkLeft === 0) {
          this.handler!.end();
          this.skip = 2;
          this.leaf();
        }
        continue;
      }
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        i += take;
        this.skip -= take;
        continue;
      }
      const type = buf[i]!;
      const h = this.handler!;
      const depth = this.stack.length;
      if (type === 0x24 && depth > 0 && h.bulks) {
        const j = h.bulks(buf, i, n, depth, this.stack[depth - 1]!);
        const k = h.taken!;
        if (k > 0) {
          // leaf() counts the last one, closing what it completes.
          this.stack[depth - 1] = this.stack[depth - 1]! - (k - 1);
          i = j;
          this.leaf();
          continue;
        }
      }
      // The header line: find its CR; the whole line (with LF) must be in this buffer.
      let cr = i + 1;
      while (cr < n && buf[cr] !== CR) cr++;
      if (cr + 1 >= n) {
        this.carry = Buffer.from(buf.subarray(i));
        return;
      }
      if (buf[cr + 1] !== LF) throw protocolError('a header line not ended by CRLF');
      if (type === 0x24 /* $ */) {
        const len = parseInteger(buf, i + 1, cr);
        const s = cr + 2;
        if (len < 0) {
          h.nil(depth);
          i = s;
          this.leaf();
        } else if (s + len <= n) {
          h.bulk(buf, s, s + len, depth);
          i = s + len;
          this.skip = 2;
          this.leaf();
        } else {
          h.begin(len, depth);
          if (s < n) h.part(buf, s, n);
          this.bulkLeft = len - (n - s);
          i = n;
        }
      } else if (type === 0x2a /* * */) {
        const count = parseInteger(buf, i + 1, cr);
        i = cr + 2;
        h.array(count, depth);
        if (count > 0) this.stack.push(count);
        else this.leaf();
      } else if (type === 0x2b /* + */ || type === 0x3a /* : */) {
        h.simple(buf.toString('latin1', i + 1, cr), depth);
        i = cr + 2;
        this.leaf();
      } else if (type === 0x2d /* - */) {
        h.error(buf.toString('utf8', i + 1, cr), depth);
        i = cr + 2;
        this.leaf();
      } else {
        throw protocolError(`an unknown reply type byte 0x${type.toString(16)}`);
      }
    }
  }

  /** One element is complete: close the arrays it completes; the last one completes the reply. */
  private leaf(): void {
    const st = this.stack;
    while (st.length > 0) {
      const left = st[st.length - 1]! - 1;
      if (left > 0) {
        st[st.length - 1] = left;
        return;
      }
      st.pop();
    }
    this.handler!.done();
    this.onDone?.();
  }
}

function parseInteger(buf: Buffer, from: number, to: number): number {
  let i = from;
  const neg = buf[i] === 0x2d;
  if (neg) i++;
  if (i >= to) throw protocolError('an empty length');
  let v = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw protocolError('a malformed length');
    v = v * 10 + d;
  }
  return neg ? -v : v;
}

function protocolError(what: string): Error {
  return new Error(`Redis protocol error: ${what}`);
}

/** A command as RESP2 bytes. */
export function encodeCommand(args: readonly (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`, 'latin1'), b, CRLF_BYTES);
  }
  return Buffer.concat(parts);
}
const CRLF_BYTES = Buffer.from('\r\n', 'latin1');

// ---- connection -----------------------------------------------------------------------------------------

/** --redis-whole-read's default: a key this size is one reply (~35 ms of Redis CPU for a hash). */
export const DEFAULT_WHOLE_READ = 100_000;

export interface RawScanOptions {
  connectTimeoutMs: number;
  /** A key of at most this many members is read with one command (HGETALL, SMEMBERS, LRANGE/ZRANGE 0 -1). */
  wholeRead?: number;
  /** A request whose reply is not complete within this long fails (0 = no bound), as --redis-timeout. */
  commandTimeoutMs: number;
}

/** Why a request failed at the connection level; read.ts maps these as it maps ioredis's. */
const closedError = (): Error => new Error('Connection is closed.');
const timeoutError = (): Error => new Error('Command timed out');

/**
 * Bytes read from a raw connection land in one buffer the connection keeps, rather than a new 64 kB
 * Buffer per read: a 100,000-field reply is ~80 reads, and their allocations were most of the external
 * memory that made V8 run a full collection per big read. Safe because nothing keeps a reference into a
 * chunk past its feed(): values are copied into their targets, a split header line into `carry`.
 */
const READ_BUFFER = 64 * 1024;

class RawConn {
  private readonly reader = new RespReader();
  private readonly queue: Pending[] = [];
  private broken: unknown;

  private constructor(private readonly sock: net.Socket, reused: boolean) {
    sock.setNoDelay(true);
    this.reader.onDone = () => this.replied();
    // TLS sockets have no onread: their chunks arrive as 'data'.
    if (!reused) sock.on('data', (chunk: Buffer) => this.feed(chunk));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(closedError()));
  }

  /** Sees every chunk read before it is parsed (a whole-key read keeping its reply, scanKey). */
  tap: ((chunk: Buffer) => void) | undefined;

  private feed(chunk: Buffer): void {
    try {
      this.tap?.(chunk);
      this.reader.feed(chunk);
    } catch (e) {
      this.fail(e);
    }
  }

  static open(spec: RedisConnSpec, opts: RawScanOptions): Promise<RawConn> {
    return new Promise<RawConn>((resolve, reject) => {
      let conn: RawConn | undefined;
      const onread = {
        buffer: Buffer.allocUnsafe(READ_BUFFER),
        callback: (n: number, buf: Uint8Array): boolean => {
          conn?.feed((buf as Buffer).subarray(0, n));
          return true;
        },
      };
      const onConnect = (): void => {
        clearTimeout(timer);
        sock.off('error', onError);
        conn = new RawConn(sock, !spec.tls);
        resolve(conn);
      };
      const onError = (e: Error): void => {
        clearTimeout(timer);
        sock.destroy();
        reject(e);
      };
      let sock: net.Socket;
      if (spec.path) sock = net.connect({ path: spec.path, onread }, onConnect);
      else if (spec.tls) {
        const tlsOpts: tls.ConnectionOptions = { host: spec.host, port: spec.port, ...(spec.tlsInsecure ? { rejectUnauthorized: false } : { servername: spec.host }) };
        sock = tls.connect(tlsOpts, onConnect);
      } else sock = net.connect({ host: spec.host, port: spec.port, onread }, onConnect);
      sock.once('error', onError);
      const timer = setTimeout(() => onError(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })), opts.connectTimeoutMs);
    });
  }

  get usable(): boolean {
    return this.broken === undefined && this.queue.length === 0 && this.reader.idle;
  }

  /**
   * Sends one command; resolves once `handler` has seen its whole reply. Requests may be pipelined:
   * replies come in order, each to its own handler (a scan asks for its next page while this one is
   * still arriving, so Redis builds it meanwhile).
   */
  request(args: readonly (string | number | Buffer)[], handler: RespHandler, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    if (signal?.aborted) {
      this.fail(signal.reason);
      return Promise.reject(signal.reason);
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => this.fail(signal!.reason);
      const req: Pending = {
        handler,
        resolve,
        reject,
        timer: timeoutMs > 0 ? setTimeout(() => this.fail(timeoutError()), timeoutMs) : undefined,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(req);
      // The handler is called directly, element by element: only the end of a reply needs the queue.
      if (this.queue.length === 1) this.reader.handler = handler;
      this.sock.ref();
      this.sock.write(encodeCommand(args));
    });
  }

  /** The reply at the head of the queue is complete: the next request's handler reads on. */
  private replied(): void {
    const done = this.queue.shift();
    this.reader.handler = this.queue[0]?.handler;
    if (!done) return;
    clearTimeout(done.timer);
    done.cleanup();
    done.resolve();
  }

  /** Idle in the pool: does not keep the process alive. */
  park(): void {
    this.sock.unref();
  }

  /** The connection is unusable from here on: every request in flight fails with `e`. */
  fail(e: unknown): void {
    if (this.broken === undefined) this.broken = e;
    this.sock.destroy();
    this.reader.handler = undefined;
    for (const r of this.queue.splice(0)) {
      clearTimeout(r.timer);
      r.cleanup();
      r.reject(e);
    }
  }
}

interface Pending {
  handler: RespHandler;
  resolve: () => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  cleanup: () => void;
}

/** Collects a simple reply (the handshake's AUTH and SELECT), turning an error reply into a rejection. */
class StatusReply implements RespHandler {
  err: string | undefined;
  array(): void {}
  bulk(): void {}
  begin(): void {}
  part(): void {}
  end(): void {}
  nil(): void {}
  simple(): void {}
  error(text: string): void {
    this.err ??= text;
  }
  done(): void {}
}

const MAX_IDLE = 4;
const NO_PASSWORD_SET = /no password is set|without any password configured/i;

/** Raw connections to one server (one per concurrent scan, a few kept idle). */
export class RawScanPool {
  private readonly idle: RawConn[] = [];
  private closed = false;

  constructor(
    readonly spec: RedisConnSpec,
    readonly opts: RawScanOptions,
  ) {}

  /** Runs `use` on a connection; the connection goes back to the pool only if its reply was read whole. */
  async with<T>(signal: AbortSignal | undefined, use: (conn: RawConn) => Promise<T>, note?: CommandNote): Promise<T> {
    const conn = await this.acquire(note);
    try {
      return await use(conn);
    } finally {
      if (!this.closed && conn.usable && this.idle.length < MAX_IDLE) {
        conn.park();
        this.idle.push(conn);
      } else conn.fail(closedError());
      void signal;
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.fail(closedError());
  }

  private async acquire(note: CommandNote | undefined): Promise<RawConn> {
    if (this.closed) throw closedError();
    for (let c = this.idle.pop(); c; c = this.idle.pop()) if (c.usable) return c;
    const conn = await RawConn.open(this.spec, this.opts);
    try {
      const bound = this.opts.connectTimeoutMs + this.opts.commandTimeoutMs;
      if (this.spec.password !== undefined) {
        const auth = this.spec.username ? ['AUTH', this.spec.username, this.spec.password] : ['AUTH', this.spec.password];
        note?.('AUTH');
        await this.handshake(conn, auth, bound);
      }
      if (this.spec.db !== 0) {
        note?.('SELECT');
        await this.handshake(conn, ['SELECT', this.spec.db], bound);
      }
    } catch (e) {
      conn.fail(closedError());
      throw e;
    }
    return conn;
  }

  private async handshake(conn: RawConn, args: (string | number)[], timeoutMs: number): Promise<void> {
    const r = new StatusReply();
    await conn.request(args, r, undefined, timeoutMs);
    // As ioredis does: AUTH to a server without a password is only a warning there, so not fatal here.
    if (r.err !== undefined && !NO_PASSWORD_SET.test(r.err)) throw new Error(r.err);
  }
}

// ---- registry: which ioredis clients have a raw scan pool (the one switch: --redis-fast-scan) -------------

const pools = new WeakMap<object, RawScanPool>();

/** Gives `client` (a standalone ioredis client for `spec`) a raw scan pool. */
export function registerFastScan(client: object, spec: RedisConnSpec, opts: RawScanOptions): void {
  pools.set(client, new RawScanPool(spec, opts));
}

/**
 * The raw scan pool of `client`, or of the pooled client a session's view derives from (a session reaches
 * Redis through an object whose prototype is the shared client: metrics/statement-stats.ts).
 */
export function fastScanFor(client: object): RawScanPool | undefined {
  for (let c: object | null = client, depth = 0; c && depth < 3; c = Object.getPrototypeOf(c) as object | null, depth++) {
    const pool = pools.get(c);
    if (pool) return pool;
  }
  return undefined;
}

export function closeFastScan(client: object): void {
  pools.get(client)?.close();
  pools.delete(client);
}

// ---- scanning one key into text[] bodies ------------------------------------------------------------------

export type ScanKind = 'hash' | 'set' | 'list' | 'zset';

/**
 * Where each reply element goes. Elements come in pairs for hash (field, value) and zset (member, score),
 * singly for set and list. `first` receives fields/members, `second` values/scores; either may be absent
 * (the table has no such column; then the bytes are only skipped). Hash and set scans deduplicate on
 * `first`, which they therefore require.
 */
export interface ScanTargets {
  first: ScanTarget | undefined;
  second: ScanTarget | undefined;
}

/**
 * Where a scan writes values in place: a `text[]` body (TextArrayBuilder) or DataRow messages
 * (protocol/data-row-target.ts, one object as both targets). Values are written at the offsets the
 * pushes return, in one buffer, so they can be checked and deduplicated where they lie.
 */
export type ScanTarget = Pick<TextArrayBuilder, 'length' | 'buffer' | 'bytes' | 'pushRange' | 'begin' | 'append' | 'dropLast'> & {
  /** Turns the value of column `slot` just written at `at` into its output form; returns where it starts. */
  settle?(at: number, slot: number): number;
  /** Whole bulk strings as RespHandler.bulks takes them, each written and settled as pushRange and settle would. */
  takeBulks?(src: Buffer, i: number, n: number, max: number): number;
  readonly taken?: number;
};

/**
 * The member column of a hash or set that a read doesn't show: each member is kept only while the scan
 * checks it and, between pages, drops a repeat. Reading through it keeps such a read on the raw scan, in
 * the same order as one that shows the members.
 */
export class DiscardTarget implements ScanTarget {
  length = 0;
  buffer = Buffer.allocUnsafe(256);
  bytes = 0;
  private fill = 0;

  pushRange(src: Buffer, start: number, end: number): number {
    this.room(end - start);
    src.copy(this.buffer, 0, start, end);
    this.bytes = end - start;
    this.length++;
    return 0;
  }

  begin(n: number): number {
    this.room(n);
    this.fill = 0;
    this.bytes = n;
    this.length++;
    return 0;
  }

  append(src: Buffer, start: number, end: number): void {
    src.copy(this.buffer, this.fill, start, end);
    this.fill += end - start;
  }

  dropLast(): void {
    this.length--;
  }

  private room(n: number): void {
    if (n > this.buffer.length) this.buffer = Buffer.allocUnsafe(Math.max(n, this.buffer.length * 2));
  }
}

/** Told each command a raw connection sends for a statement (the slow log's per-statement count). */
export type CommandNote = (name: string) => void;

export interface ScanRequest {
  kind: ScanKind;
  key: string;
  /** For 22021 messages. */
  table: string;
  /** Page sizes: the first page, then the others (COUNT for HSCAN/SSCAN, window for LRANGE/ZRANGE). */
  firstBatch: number;
  batch: number;
  signal?: AbortSignal | undefined;
  note?: CommandNote | undefined;
  /**
   * Asks for a key that fits one reply to be read whole and checked as valid text throughout before any
   * of it is written to the targets; this runs when it is, before the first value is written. The fast
   * path then streams the rows to its client: nothing can fail once the first one is out. Lists and
   * zsets are measured first (LLEN, ZCARD), as hashes and sets always are.
   */
  checkedWhole?: WholeCheck;
  /** Overrides the pool's --redis-whole-read: a read with a page size of its own reads no more at once. */
  wholeRead?: number | undefined;
}

/** checkedWhole: what runs once the reply is known good, and what else each element must pass first. */
export interface WholeCheck {
  checked(): void;
  /** Per element slot (member, value/score): a check each element of that slot must pass. */
  values?: readonly (((buf: Buffer, start: number, end: number) => boolean) | undefined)[];
}

/** A Redis error reply to a scan command (WRONGTYPE …), for read.ts to map as it maps ioredis's. */
export class RedisReplyError extends Error {
  override name = 'ReplyError';
}

/**
 * Reads the whole key into `targets`; returns the number of rows (elements, or pairs).
 *
 * A hash or set that fits in the first page is read with HGETALL / SMEMBERS after its HLEN / SCARD:
 * measured over a 100,000-field hash, Redis spends ~35 ms of CPU on HGETALL against ~55 ms on HSCAN
 * COUNT 100000 (the scan's bucket walk and its cursor page), and a whole-key reply has no duplicates to
 * drop. The extra round trip is tens of microseconds. Bigger keys are paged with HSCAN / SSCAN, so what a
 * read holds at once stays bounded; lists and zsets are paged by index.
 */
export async function scanKey(pool: RawScanPool, req: ScanRequest, targets: ScanTargets): Promise<number> {
  const scan = req.kind === 'hash' || req.kind === 'set';
  if (scan && !targets.first) throw new Error('a hash or set scan needs the member column');
  const record = redisRecorder(describeConn(pool.spec));
  const pairs = req.kind === 'hash' || req.kind === 'zset';
  return pool.with(req.signal, async (conn) => {
    const timeout = pool.opts.commandTimeoutMs;
    const send = async (cmd: (string | number)[], handler: RespHandler & { errorText: string | undefined }): Promise<void> => {
      if (req.signal?.aborted) throw req.signal.reason;
      req.note?.(cmd[0] as string);
      const t0 = process.hrtime.bigint();
      try {
        await conn.request(cmd, handler, req.signal, timeout);
      } catch (e) {
        record(Number(process.hrtime.bigint() - t0) / 1e9, true);
        throw e;
      }
      // Counted with the pooled clients' commands (redis_fdw_proxy_redis_commands_total).
      record(Number(process.hrtime.bigint() - t0) / 1e9, false);
      if (handler.errorText !== undefined) throw new RedisReplyError(handler.errorText);
    };
    const wholeRead = req.wholeRead ?? pool.opts.wholeRead ?? req.firstBatch;
    let members = 0;
    if (scan || req.checkedWhole) {
      const len = new IntegerReply();
      await send([LENGTH[req.kind], req.key], len);
      members = len.value;
      if (members === 0) return 0;
      if (members <= wholeRead) {
        const whole = new PageHandler(req, targets, false, pairs);
        const cmd = WHOLE[req.kind].map((a) => (a === KEY ? req.key : a));
        if (!req.checkedWhole) {
          await send(cmd, whole);
          return whole.rows;
        }
        // The reply is kept as read, its structure followed by a reader that writes nothing, then checked
        // natively; only then is it parsed into the targets.
        const kept = new KeptReply();
        try {
          const skim = new Skim(pairs, req.checkedWhole.values);
          const plain = new PlainText();
          conn.tap = (chunk) => {
            kept.append(chunk);
            plain.feed(chunk);
          };
          try {
            await send(cmd, skim);
          } finally {
            conn.tap = undefined;
          }
          if (skim.passed && plain.ok) req.checkedWhole.checked();
          // Parsed a block at a time, giving way between them: a big reply (--redis-whole-read) takes a while.
          const reader = new RespReader();
          reader.handler = whole;
          const giveWay = new GiveWay(req.signal);
          for (const block of kept.blocks()) {
            reader.feed(block);
            const turn = giveWay.maybe();
            if (turn) await turn;
          }
          return whole.rows;
        } finally {
          kept.release();
        }
      }
    }
    // Pages are pipelined: the next page is asked for as soon as this one's reply begins (a scan's
    // cursor comes first; a full window of a list or zset says there may be more), so Redis builds
    // it while this one is parsed. At most one page is ahead.
    const page = new PageHandler(req, targets, scan, pairs, members);
    const inflight: Promise<void>[] = [];
    const ask = (cmd: (string | number)[]): void => {
      const p = send(cmd, page);
      p.catch(() => {}); // awaited in order below; a later page's failure must not go unhandled meanwhile
      inflight.push(p);
    };
    let start = 0;
    const window = (size: number): (string | number)[] =>
      req.kind === 'list' ? ['LRANGE', req.key, start, start + size - 1] : ['ZRANGE', req.key, start, start + size - 1, 'WITHSCORES'];
    if (scan) {
      page.onCursor = (cursor) => {
        if (cursor !== '0') ask([req.kind === 'hash' ? 'HSCAN' : 'SSCAN', req.key, cursor, 'COUNT', req.batch]);
      };
      // HLEN/SCARD said the key is bigger than a whole read: every page is `batch`, the first too.
      ask([req.kind === 'hash' ? 'HSCAN' : 'SSCAN', req.key, '0', 'COUNT', req.batch]);
    } else {
      let size = Math.max(req.firstBatch, wholeRead);
      page.onReply = (n) => {
        // A reply as long as the window asked: the key may go on.
        if (n < (pairs ? 2 : 1) * size) return;
        start += size;
        size = req.batch;
        ask(window(size));
      };
      ask(window(size));
    }
    for (let i = 0; i < inflight.length; i++) await inflight[i];
    return page.rows;
  }, req.note);
}

const KEY = Symbol('key');
const LENGTH: Record<ScanKind, string> = { hash: 'HLEN', set: 'SCARD', list: 'LLEN', zset: 'ZCARD' };
/** A whole key in one reply, in the order the pages would give it. */
const WHOLE: Record<ScanKind, (string | number | typeof KEY)[]> = {
  hash: ['HGETALL', KEY],
  set: ['SMEMBERS', KEY],
  list: ['LRANGE', KEY, 0, -1],
  zset: ['ZRANGE', KEY, 0, -1, 'WITHSCORES'],
};

/**
 * Whether a reply's bytes, split anywhere into chunks, hold no NUL and only valid UTF-8: then every
 * value in it is valid text (RESP's own bytes are ASCII, so they never split a character). Checked
 * natively as the chunks come, each up to its last ASCII byte; a character cut by a chunk's end is
 * checked with the next.
 */
export class PlainText {
  private tail: Buffer | undefined;
  private bad = false;

  feed(c: Buffer): void {
    if (this.bad) return;
    if (c.indexOf(0) >= 0) {
      this.bad = true;
      return;
    }
    const buf = this.tail ? Buffer.concat([this.tail, c]) : c;
    let k = buf.length - 1;
    while (k >= 0 && buf[k]! >= 0x80) k--;
    if (!isUtf8(buf.subarray(0, k + 1))) this.bad = true;
    this.tail = k + 1 < buf.length ? Buffer.from(buf.subarray(k + 1)) : undefined;
    if (this.tail && this.tail.length > 64) this.bad = true; // no character is that long
  }

  get ok(): boolean {
    return !this.bad && (this.tail === undefined || isUtf8(this.tail));
  }
}

export function isPlainText(chunks: readonly Buffer[]): boolean {
  const p = new PlainText();
  for (const c of chunks) p.feed(c);
  return p.ok;
}

/**
 * A whole reply kept as read, in 256 kB blocks that go back to a small shared pool once it is parsed:
 * a new Buffer per socket chunk made a 100,000-member read ~5 MB of short-lived external memory, which
 * V8 pays for with a full collection every few reads.
 */
class KeptReply {
  private static readonly pool: Buffer[] = [];
  private static readonly BLOCK = 256 * 1024;
  private static readonly POOLED = 32;
  private readonly full: Buffer[] = [];
  private block: Buffer | undefined;
  private used = 0;

  append(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.block || this.used === this.block.length) this.next();
      const n = chunk.copy(this.block!, this.used, at);
      this.used += n;
      at += n;
    }
  }

  /** The bytes kept, in order. */
  blocks(): Buffer[] {
    const out = this.full.map((b) => b);
    if (this.block && this.used > 0) out.push(this.block.subarray(0, this.used));
    return out;
  }

  release(): void {
    const pool = KeptReply.pool;
    for (const b of this.full) if (pool.length < KeptReply.POOLED) pool.push(b);
    if (this.block && pool.length < KeptReply.POOLED) pool.push(this.block);
    this.full.length = 0;
    this.block = undefined;
  }

  private next(): void {
    if (this.block) this.full.push(this.block);
    this.block = KeptReply.pool.pop() ?? Buffer.allocUnsafe(KeptReply.BLOCK);
    this.used = 0;
  }
}

/**
 * Follows a whole-key reply's structure, writing nothing: it keeps whether the reply is an error, and
 * whether every element passed its slot's check (an element split across chunks counts as failing).
 */
class Skim implements RespHandler {
  errorText: string | undefined;
  passed = true;
  private pos = 0;
  /** A checked value that spans socket chunks, gathered until its end (scores are a few dozen bytes). */
  private split: { check: (buf: Buffer, start: number, end: number) => boolean; bytes: Buffer; at: number } | undefined;

  constructor(
    private readonly pairs: boolean,
    private readonly checks: readonly (((buf: Buffer, start: number, end: number) => boolean) | undefined)[] = [],
  ) {}

  taken = 0;
  private readonly whole = new WholeBulk();

  array(): void {}
  bulks(src: Buffer, i: number, n: number, depth: number, max: number): number {
    let k = 0;
    if (depth > 0) {
      const b = this.whole;
      const checks = this.checks;
      for (; k < max && b.at(src, i, n); k++) {
        if (checks.length > 0) {
          const check = checks[this.pairs ? this.pos & 1 : 0];
          this.pos++;
          if (check && !check(src, b.start, b.end)) this.passed = false;
        }
        i = b.end + 2;
      }
    }
    this.taken = k;
    return i;
  }
  bulk(src: Buffer, start: number, end: number, depth: number): void {
    if (depth === 0 || this.checks.length === 0) return;
    const check = this.checks[this.pairs ? this.pos & 1 : 0];
    this.pos++;
    if (check && !check(src, start, end)) this.passed = false;
  }
  begin(len: number, depth: number): void {
    if (depth === 0 || this.checks.length === 0) return;
    const check = this.checks[this.pairs ? this.pos & 1 : 0];
    this.pos++;
    // A reply is cut into socket chunks anywhere, so some value of a big one always spans two.
    if (check) this.split = { check, bytes: Buffer.allocUnsafe(len), at: 0 };
  }
  part(src: Buffer, start: number, end: number): void {
    const s = this.split;
    if (s) s.at += src.copy(s.bytes, s.at, start, end);
  }
  end(): void {
    const s = this.split;
    if (!s) return;
    this.split = undefined;
    if (!s.check(s.bytes, 0, s.at)) this.passed = false;
  }
  nil(): void {}
  simple(): void {}
  error(text: string, depth: number): void {
    if (depth === 0) this.errorText = text;
  }
  done(): void {}
}

/** An integer reply (HLEN, SCARD), or the error reply in its place. */
class IntegerReply implements RespHandler {
  value = 0;
  errorText: string | undefined;
  array(): void {
    throw protocolError('an array where an integer was expected');
  }
  bulk(): void {
    throw protocolError('a bulk string where an integer was expected');
  }
  begin(): void {
    throw protocolError('a bulk string where an integer was expected');
  }
  part(): void {}
  end(): void {}
  nil(): void {
    throw protocolError('a nil where an integer was expected');
  }
  simple(text: string): void {
    this.value = Number(text);
  }
  error(text: string): void {
    this.errorText = text;
  }
  done(): void {}
}

/** Routes one page's reply elements into the builders, validating text and deduplicating on the way. */
class PageHandler implements RespHandler {
  rows = 0;
  cursor = '0';
  errorText: string | undefined;
  private pos = 0;
  private skipNext = false;
  private readonly seen: SeenSet | undefined;
  /** The current element, while it spans chunks. */
  private splitTo: ScanTarget | undefined;
  private splitStart = 0;
  private splitSlot = 0;
  private splitSkip = false;
  /**
   * The current chunk is ASCII with no NUL byte, so every value in it is valid text: judged natively
   * once per chunk (a few µs for 64 kB) instead of byte by byte per value. A split value is clean only
   * if every chunk it spans is.
   */
  private clean = false;
  private splitClean = false;
  /** Where elements sit: depth 2 in [cursor, [elements]] of SCAN replies, depth 1 in LRANGE/ZRANGE's. */
  private readonly elementDepth: number;

  constructor(
    private readonly req: ScanRequest,
    private readonly targets: ScanTargets,
    scan: boolean,
    private readonly pairs: boolean,
    /** HLEN/SCARD before a paged scan: a key paged is bigger than a page, so the set is needed from the start. */
    members = 0,
  ) {
    this.elementDepth = scan ? 2 : 1;
    if (scan) {
      this.seen = new SeenSet();
      this.seen.enable(members);
    }
  }

  chunk(buf: Buffer, from: number): void {
    this.clean = isAscii(buf) && buf.indexOf(0, from) < 0;
  }

  private startPage(): void {
    this.pos = 0;
    this.skipNext = false;
    this.errorText = undefined;
  }

  /** The first element of a scan reply, its cursor, is in. */
  onCursor: ((cursor: string) => void) | undefined;
  /** A reply of `n` elements begins. */
  onReply: ((n: number) => void) | undefined;

  array(n: number, depth: number): void {
    if (depth !== 0) return;
    this.startPage();
    this.onReply?.(n);
  }

  taken = 0;

  /**
   * A clean chunk's run of elements straight into a target that writes them itself (DataRowTarget): no
   * call per element. Not while a rehash dedupe runs or a repeat's value is being dropped.
   */
  bulks(src: Buffer, i: number, n: number, depth: number, max: number): number {
    this.taken = 0;
    const to = this.targets.first;
    if (depth !== this.elementDepth || !this.clean || this.seen || this.skipNext || !to?.takeBulks || (this.pairs && this.targets.second !== to)) return i;
    const j = to.takeBulks(src, i, n, max);
    const k = to.taken!;
    // Rows are counted at their first element: the even positions among those taken, when in pairs.
    this.rows += this.pairs ? ((this.pos + k + 1) >> 1) - ((this.pos + 1) >> 1) : k;
    this.pos += k;
    this.taken = k;
    return j;
  }

  bulk(src: Buffer, start: number, end: number, depth: number): void {
    if (depth < this.elementDepth) {
      this.cursor = src.toString('latin1', start, end);
      this.onCursor?.(this.cursor);
      return;
    }
    const slot = this.nextSlot();
    if (this.skipNext) {
      this.skipNext = false;
      return;
    }
    const to = slot === 0 ? this.targets.first : this.targets.second;
    if (!to) {
      if (slot === 0) this.rows++;
      return;
    }
    const at = to.pushRange(src, start, end);
    this.finishValue(to, at, slot, this.clean);
  }

  begin(len: number, depth: number): void {
    if (depth < this.elementDepth) throw protocolError('a split cursor');
    const slot = this.nextSlot();
    this.splitSlot = slot;
    this.splitSkip = this.skipNext;
    this.skipNext = false;
    const to = this.splitSkip ? undefined : slot === 0 ? this.targets.first : this.targets.second;
    this.splitTo = to;
    this.splitClean = this.clean;
    if (to) this.splitStart = to.begin(len);
    else if (slot === 0 && !this.splitSkip) this.rows++;
  }

  part(src: Buffer, start: number, end: number): void {
    this.splitClean &&= this.clean;
    this.splitTo?.append(src, start, end);
  }

  end(): void {
    const to = this.splitTo;
    this.splitTo = undefined;
    if (to) this.finishValue(to, this.splitStart, this.splitSlot, this.splitClean);
  }

  nil(): void {
    throw protocolError('a nil element in a scan reply');
  }

  simple(text: string, depth: number): void {
    if (depth < this.elementDepth) {
      this.cursor = text;
      this.onCursor?.(text);
    }
    else throw protocolError('a non-bulk element in a scan reply');
  }

  error(text: string, depth: number): void {
    if (depth !== 0) throw protocolError('a nested error reply');
    this.errorText = text;
  }

  done(): void {}

  private nextSlot(): number {
    const slot = this.pairs ? this.pos & 1 : 0;
    this.pos++;
    return slot;
  }

  /** The value's bytes are in `to` from `at`: check them as text, and drop a member a rehash repeated. */
  private finishValue(to: ScanTarget, at: number, slot: number, clean: boolean): void {
    if (!clean) checkTextRange(to.buffer, at, to.bytes, this.req.key, this.req.table);
    // The value as its declared type prints it (DataRowTarget's fixes), once its text is known good.
    const from = to.settle ? to.settle(at, slot) : at;
    if (slot !== 0) return;
    if (this.seen && !this.seen.addRange(to.buffer, from, to.bytes)) {
      to.dropLast(from);
      if (this.pairs) this.skipNext = true;
      return;
    }
    this.rows++;
  }
}

/** checkText on bytes in place: short ASCII is checked here, anything else by checkText (same errors). */
function checkTextRange(buf: Buffer, start: number, end: number, key: string, table: string): void {
  if (end - start <= 64) {
    let k = start;
    for (; k < end; k++) {
      const c = buf[k]!;
      if (c === 0 || c > 0x7f) break;
    }
    if (k === end) return;
  }
  checkText(buf.subarray(start, end), key, table);
}

/** A PgError for callers that want 57014 without a signal reason. */
export const canceled = (): PgError => new PgError(SqlState.QueryCanceled, 'canceling statement due to user request');
