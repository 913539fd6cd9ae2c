/**
 * Point lookups' Redis commands on one raw, pipelined connection per Redis server (`--redis-fast-lookup`).
 *
 * Why not ioredis: a point lookup is one small command, and measured under pgbench (bench/lookup.ts) the
 * ioredis call path (argument flattening, a Command object and its timer, the JS RESP decoder, reply
 * dispatch, and the pool's per-command wrappers) was a sizeable share of the proxy's CPU per lookup. Here a
 * command is bytes the caller built, replies are parsed by resp-scan's RespReader into Buffers cut from the
 * socket's chunk, and every session's commands of one event-loop turn leave in one write.
 *
 * What it keeps from the ioredis path:
 * - `--redis-timeout`: a command still unanswered after the command timeout fails with ioredis's wording
 *   ("Command timed out"), and so does everything behind it (the connection is reset: replies come in
 *   order, so nothing behind a silent command can be answered either).
 * - Cancel: the caller stops waiting (abortable); the command stays in the queue and its reply, when it
 *   comes, is read and dropped, so no reply is ever misattributed.
 * - Failures: a connection that can't be opened or drops is reported to its callers, who answer through the
 *   ioredis path instead (it owns reconnecting, its errors are the proxy's documented ones). After a
 *   failure, the pipe stays unused for RETRY_MS.
 * Only standalone servers get one (a cluster routes by slot; ioredis does that).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { RedisConnSpec } from './connection.js';
import { RespReader, type RespHandler } from './resp-scan.js';

/** A reply: bulk string (a Buffer, valid while the caller holds it), nil, simple or integer (as text), array, error. */
export type Reply = Buffer | null | string | Reply[] | RespError;

/** An error reply (`-WRONGTYPE …`), as a value: it answers one command, the connection is fine. */
export class RespError {
  constructor(readonly message: string) {}
}

export interface RespPipeOptions {
  connectTimeoutMs: number;
  /** A command unanswered for this long fails, with everything behind it (0 = no bound). */
  commandTimeoutMs: number;
  /** Sees each caller's command answered or failed, with its time in seconds (the pool's Redis metrics). */
  record?: (seconds: number, failed: boolean) => void;
}

interface Waiter {
  /** performance.now() when sent */
  at: number;
  /** A caller's command (the handshake's are not counted). */
  counted: boolean;
  resolve(r: Reply): void;
  reject(e: Error): void;
}

/** How long a pipe whose connection failed stays unused (its callers use ioredis meanwhile). */
const RETRY_MS = 1000;
const NO_PASSWORD_SET = /no password is set|without any password configured/i;

const closedError = (): Error => new Error('Connection is closed.');
const timeoutError = (): Error => new Error('Command timed out');

export class RespPipe {
  private sock: net.Socket | undefined;
  private waiters: (Waiter | undefined)[] = [];
  private head = 0;
  private out: Buffer[] = [];
  private flushQueued = false;
  /** When this turn's commands are sent, and when the chunk being read came: one clock read each, not per command. */
  private sentAt = 0;
  private readAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private closed = false;
  /** The reply being assembled: open arrays, innermost last. */
  private readonly stack: { items: Reply[]; left: number }[] = [];
  private parts: Buffer[] | undefined;
  private value: Reply = null;
  private readonly handler: RespHandler;

  constructor(
    readonly spec: RedisConnSpec,
    private readonly opts: RespPipeOptions,
  ) {
    this.handler = {
      array: (n) => {
        if (n <= 0) return this.put(n < 0 ? null : []);
        this.stack.push({ items: [], left: n });
      },
      bulk: (src, start, end) => this.put(src.subarray(start, end)),
      begin: () => {
        this.parts = [];
      },
      part: (src, start, end) => void this.parts!.push(src.subarray(start, end)),
      end: () => {
        const b = Buffer.concat(this.parts!);
        this.parts = undefined;
        this.put(b);
      },
      nil: () => this.put(null),
      simple: (text) => this.put(text),
      error: (text) => this.put(new RespError(text)),
      done: () => this.answer(),
    };
  }

  /** Whether commands may be sent now (not closed, not waiting out a failure). */
  get available(): boolean {
    return !this.closed && (this.sock !== undefined || Date.now() >= this.retryAt);
  }

  /** Commands sent and not yet answered (cancelled ones included). */
  get inFlight(): number {
    return this.waiters.length - this.head;
  }

  /**
   * Sends `cmd` (one RESP command, e.g. from encode) with the other commands of this turn. Rejects with a
   * connection error, or "Command timed out"; an error reply resolves as a RespError. A call that opens the
   * connection counts its handshake (AUTH, SELECT) into `stats`: the statement's slow-log line names every
   * command Redis saw for it.
   */
  call(cmd: Buffer, stats?: { count(name: string): void }): Promise<Reply> {
    if (!this.available) return Promise.reject(closedError());
    const sock = this.sock ?? this.connect(stats);
    return new Promise<Reply>((resolve, reject) => {
      if (!this.flushQueued) {
        this.flushQueued = true;
        this.sentAt = performance.now();
        setImmediate(() => this.flush(sock));
      }
      this.waiters.push({ at: this.sentAt, counted: true, resolve, reject });
      this.out.push(cmd);
      if (!this.timer && this.opts.commandTimeoutMs > 0) this.armTimer(this.opts.commandTimeoutMs);
    });
  }

  close(): void {
    this.closed = true;
    this.fail(closedError());
  }

  private flush(sock: net.Socket): void {
    this.flushQueued = false;
    const out = this.out;
    if (out.length === 0 || sock !== this.sock) return;
    this.out = [];
    sock.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  private connect(stats?: { count(name: string): void }): net.Socket {
    const { spec } = this;
    let sock: net.Socket;
    const onConnect = (): void => clearTimeout(connectTimer);
    if (spec.path) sock = net.connect({ path: spec.path }, onConnect);
    else if (spec.tls) sock = tls.connect({ host: spec.host, port: spec.port, ...(spec.tlsInsecure ? { rejectUnauthorized: false } : { servername: spec.host }) }, onConnect);
    else sock = net.connect({ host: spec.host, port: spec.port }, onConnect);
    // Events of a socket this pipe has already given up on change nothing.
    const failIfCurrent = (e: Error): void => {
      clearTimeout(connectTimer);
      if (sock === this.sock) this.fail(e);
    };
    const connectTimer = setTimeout(() => failIfCurrent(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })), this.opts.connectTimeoutMs);
    sock.setNoDelay(true);
    // Sessions' client sockets keep the process alive; an idle pipe must not.
    sock.unref();
    this.sock = sock;
    const reader = new RespReader();
    reader.handler = this.handler;
    sock.on('data', (chunk: Buffer) => {
      if (sock !== this.sock) return;
      this.readAt = performance.now();
      try {
        reader.feed(chunk);
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
      }
    });
    sock.on('error', (e) => failIfCurrent(e));
    sock.on('close', () => failIfCurrent(closedError()));
    // Written before any caller's command (the socket holds them until connected), so answered first.
    const check = (reply: Reply): void => {
      if (reply instanceof RespError && !NO_PASSWORD_SET.test(reply.message)) failIfCurrent(new Error(reply.message));
    };
    const handshake = (args: string[]): void => {
      this.waiters.push({ at: performance.now(), counted: false, resolve: check, reject: () => {} });
      sock.write(encode(args));
      stats?.count(args[0]!);
    };
    if (spec.password !== undefined) handshake(spec.username ? ['AUTH', spec.username, spec.password] : ['AUTH', spec.password]);
    if (spec.db !== 0) handshake(['SELECT', String(spec.db)]);
    return sock;
  }

  private put(v: Reply): void {
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      this.value = v;
      return;
    }
    top.items.push(v);
    if (--top.left > 0) return;
    this.stack.pop();
    this.put(top.items);
  }

  private answer(): void {
    const w = this.waiters[this.head];
    const v = this.value;
    this.value = null;
    if (!w) return this.fail(new Error('Redis protocol error: a reply no command asked for'));
    this.waiters[this.head++] = undefined;
    if (this.head === this.waiters.length) {
      this.waiters.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
    if (w.counted) this.opts.record?.((this.readAt - w.at) / 1000, v instanceof RespError);
    w.resolve(v);
  }

  /** One timer for the whole queue: when it fires, the oldest command unanswered decides. */
  private armTimer(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const oldest = this.waiters[this.head];
      if (!oldest) return;
      const left = oldest.at + this.opts.commandTimeoutMs - performance.now();
      if (left > 0) return this.armTimer(left);
      this.fail(timeoutError());
    }, ms);
    this.timer.unref();
  }

  /** The connection is unusable: every command in flight fails with `e`; the next call after RETRY_MS reconnects. */
  private fail(e: Error): void {
    const sock = this.sock;
    if (sock) {
      this.sock = undefined;
      this.retryAt = Date.now() + RETRY_MS;
      sock.destroy();
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.out = [];
    this.stack.length = 0;
    this.parts = undefined;
    const waiters = this.waiters;
    const head = this.head;
    this.waiters = [];
    this.head = 0;
    const now = performance.now();
    for (let i = head; i < waiters.length; i++) {
      const w = waiters[i];
      if (!w) continue;
      if (w.counted) this.opts.record?.((now - w.at) / 1000, true);
      w.reject(e);
    }
  }
}

/** A command as RESP2 bytes, in one buffer. */
export function encode(args: readonly (string | Buffer)[]): Buffer {
  let size = 0;
  const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a, 'utf8') : a));
  size += 3 + String(args.length).length;
  for (const b of bufs) size += 5 + String(b.length).length + b.length;
  const out = Buffer.allocUnsafe(size);
  let o = out.write(`*${args.length}\r\n`, 0, 'latin1');
  for (const b of bufs) {
    o += out.write(`$${b.length}\r\n`, o, 'latin1');
    o += b.copy(out, o);
    out[o++] = 13;
    out[o++] = 10;
  }
  return out;
}
