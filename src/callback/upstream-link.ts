/**
 * The proxy's own connection to upstream, for callback sessions: they have no client session to
 * borrow, so they log in with the credentials of `--upstream` (cleartext, MD5 or SCRAM-SHA-256) to
 * read the catalog and to evaluate what a remote query asks beyond a plain scan. It only ever sends
 * statements over pg_catalog and over derived tables the proxy built, never a foreign table, so it
 * can't call the proxy back.
 */
import crypto from 'node:crypto';
import { serialize } from 'pg-protocol';
import type { UpstreamTarget } from '../config/config.js';
import { Backend } from '../protocol/codes.js';
import { decodeCommandTag, decodeErrorFields, type UpstreamError } from '../protocol/backend.js';
import { forEachFrame, Framer, FrameError } from '../protocol/framer.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { connectUpstream, type UpstreamSocket } from '../upstream/connect.js';

export interface LinkResult {
  /** The RowDescription message, whole, when the statement returns rows. */
  rowDescription: Buffer | undefined;
  /** DataRow messages, whole (type byte included), in text format. */
  rows: Buffer[];
  tag: string;
}

type Pending = { resolve: (r: LinkResult) => void; reject: (e: unknown) => void; result: LinkResult; error?: UpstreamError };

export class UpstreamLink {
  private readonly framer = new Framer();
  private readonly queue: Pending[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly sock: UpstreamSocket,
    /** Upstream's server_version, which postgres_fdw reads from the callback session. */
    readonly serverVersion: string,
  ) {
    sock.on('data', (b: Buffer) => this.onData(b));
    sock.on('error', () => {});
    sock.on('close', () => this.fail(new PgError(SqlState.ConnectionFailure, 'the proxy lost its catalog connection to upstream')));
  }

  static async open(t: UpstreamTarget, database: string): Promise<UpstreamLink> {
    const sock = await connectUpstream(t, 10_000);
    const params = await login(sock, t, database);
    return new UpstreamLink(sock, params.get('server_version') ?? '15.0');
  }

  /** The role statements run as: the link's own ('none'), or one it switched to. */
  private role = 'none';

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Runs one statement (extended protocol, text results). Buffers are sent as binary parameters.
   * `as`: run it as this role (SET ROLE), so what a callback asks upstream to evaluate has only the
   * rights of whoever could read the secret it presented; absent: as the link's own role (catalog reads).
   */
  async query(sql: string, params: (string | Buffer | null)[] = [], types: number[] = [], as = 'none'): Promise<LinkResult> {
    if (as !== this.role) {
      await this.send("SELECT pg_catalog.set_config('role', $1, false)", [as], []);
      this.role = as;
    }
    return this.send(sql, params, types);
  }

  private send(sql: string, params: (string | Buffer | null)[], types: number[]): Promise<LinkResult> {
    const run = (): Promise<LinkResult> =>
      new Promise((resolve, reject) => {
        if (this.closed) return reject(new PgError(SqlState.ConnectionFailure, 'the proxy lost its catalog connection to upstream'));
        this.queue.push({ resolve, reject, result: { rowDescription: undefined, rows: [], tag: '' } });
        this.sock.write(Buffer.concat([serialize.parse({ text: sql, types }), serialize.bind({ values: params }), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()]));
      });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.end(Buffer.from([0x58, 0, 0, 0, 4]));
  }

  private onData(chunk: Buffer): void {
    const r = this.framer.push(chunk);
    if (r instanceof FrameError) return this.fail(new PgError(SqlState.ProtocolViolation, r.message));
    forEachFrame(r.buf, r.end, (code, off, next) => {
      const p = this.queue[0];
      if (!p) return;
      if (code === Backend.RowDescription) p.result.rowDescription = Buffer.from(r.buf.subarray(off, next));
      else if (code === Backend.DataRow) p.result.rows.push(Buffer.from(r.buf.subarray(off, next)));
      else if (code === Backend.CommandComplete) p.result.tag = decodeCommandTag(r.buf, off, next);
      else if (code === Backend.ErrorResponse) p.error ??= decodeErrorFields(r.buf, off, next);
      else if (code === Backend.ReadyForQuery) {
        this.queue.shift();
        if (p.error) p.reject(upstreamError(p.error));
        else p.resolve(p.result);
      }
    });
  }

  private fail(e: unknown): void {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(e);
    this.sock.destroy();
  }
}

function upstreamError(e: UpstreamError): PgError {
  const detail = e.fields.get('D');
  const hint = e.fields.get('H');
  return new PgError(e.code, e.message, { ...(detail ? { detail } : {}), ...(hint ? { hint } : {}) });
}

/** Startup and authentication, as libpq does it for the methods Postgres offers over a password. */
function login(sock: UpstreamSocket, t: UpstreamTarget, database: string): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    const framer = new Framer();
    const params = new Map<string, string>();
    let scram: Scram | undefined;
    const done = (e?: unknown): void => {
      sock.removeListener('data', onData);
      clearTimeout(timer);
      if (e) {
        sock.destroy();
        reject(e);
      } else resolve(params);
    };
    const timer = setTimeout(() => done(new PgError(SqlState.ConnectionFailure, 'timeout logging in to upstream')), 10_000);
    const need = (): string => {
      if (t.password === undefined) throw new PgError('28P01', `upstream asks a password for "${t.user}", and --upstream gives none`, { hint: 'Callback sessions read the catalog with the --upstream credentials: put the password in the URL.' });
      return t.password;
    };
    const onData = (chunk: Buffer): void => {
      const r = framer.push(chunk);
      if (r instanceof FrameError) return done(new PgError(SqlState.ProtocolViolation, r.message));
      try {
        forEachFrame(r.buf, r.end, (code, off, next) => {
          const body = r.buf.subarray(off + 5, next);
          if (code === Backend.ErrorResponse) throw upstreamError(decodeErrorFields(r.buf, off, next));
          if (code === Backend.ReadyForQuery) return done();
          if (code === Backend.ParameterStatus) {
            const k = body.indexOf(0);
            params.set(body.toString('utf8', 0, k), body.toString('utf8', k + 1, body.indexOf(0, k + 1)));
          }
          if (code !== Backend.Authentication) return;
          const kind = body.readInt32BE(0);
          if (kind === 3) sock.write(serialize.password(need()));
          else if (kind === 5) {
            const inner = crypto.createHash('md5').update(need() + t.user).digest('hex');
            sock.write(serialize.password('md5' + crypto.createHash('md5').update(inner).update(body.subarray(4, 8)).digest('hex')));
          } else if (kind === 10) {
            scram = new Scram(need());
            sock.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.first));
          } else if (kind === 11) sock.write(serialize.sendSCRAMClientFinalMessage(scram!.final(body.subarray(4).toString('utf8'))));
          else if (kind === 12) scram!.verify(body.subarray(4).toString('utf8'));
          else if (kind !== 0) throw new PgError(SqlState.FeatureNotSupported, `upstream asks for an authentication method (${kind}) the proxy's catalog connection does not speak`);
        });
      } catch (e) {
        done(e);
      }
    };
    sock.on('data', onData);
    sock.write(serialize.startup({ user: t.user, database, application_name: 'redis-fdw-proxy callback catalog' }));
  });
}

/** SCRAM-SHA-256 (RFC 5802/7677) client side, without channel binding. */
class Scram {
  private readonly nonce = crypto.randomBytes(18).toString('base64');
  private authMessage = '';
  private salted: Buffer = Buffer.alloc(0);
  readonly first: string;

  constructor(private readonly password: string) {
    this.first = `n,,n=*,r=${this.nonce}`;
  }

  final(serverFirst: string): string {
    const a = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]));
    if (!a.r?.startsWith(this.nonce) || !a.s || !a.i) throw new PgError(SqlState.ProtocolViolation, 'invalid SCRAM server-first message from upstream');
    this.salted = crypto.pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(a.s, 'base64'), Number(a.i), 32, 'sha256');
    const clientKey = hmac(this.salted, 'Client Key');
    const withoutProof = `c=biws,r=${a.r}`;
    this.authMessage = `n=*,r=${this.nonce},${serverFirst},${withoutProof}`;
    const sig = hmac(crypto.createHash('sha256').update(clientKey).digest(), this.authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ sig[i]!;
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  verify(serverFinal: string): void {
    const v = /(?:^|,)v=([^,]+)/.exec(serverFinal)?.[1];
    const expected = hmac(hmac(this.salted, 'Server Key'), this.authMessage).toString('base64');
    if (v !== expected) throw new PgError('28000', 'upstream\'s SCRAM server signature does not match');
  }
}

const hmac = (key: Buffer, text: string): Buffer => crypto.createHmac('sha256', key).update(text).digest();
