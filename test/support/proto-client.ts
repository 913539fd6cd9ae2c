/**
 * A tiny raw PostgreSQL v3 client for differential protocol tests.
 *
 * It is written independently of src/protocol on purpose: a bug shared by the proxy's codec and the
 * test's codec could otherwise hide itself. It encodes frontend messages, cuts the backend byte stream
 * into frames, handles startup + authentication (trust, cleartext, md5, SCRAM-SHA-256), and turns frames
 * into readable strings so two runs (upstream directly vs. through the proxy) can be compared with
 * deepEqual and a readable diff.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';

export interface Frame {
  /** The type byte as a one-letter string ('Z', 'D', ...). */
  type: string;
  /** The message body without type byte and length. */
  body: Buffer;
}

// ---------------------------------------------------------------- frontend message encoders

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}
function i16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
function i32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
function typed(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type, 'latin1'), i32(body.length + 4), body]);
}

export type Param = string | Buffer | null;

export const msg = {
  startup(params: Record<string, string>): Buffer {
    const body = Buffer.concat([i32(196608), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0])]);
    return Buffer.concat([i32(body.length + 4), body]);
  },
  sslRequest: (): Buffer => Buffer.concat([i32(8), i32(80877103)]),
  gssencRequest: (): Buffer => Buffer.concat([i32(8), i32(80877104)]),
  cancelRequest: (pid: number, key: number | Buffer): Buffer => Buffer.concat([i32(16), i32(80877102), i32(pid), typeof key === 'number' ? i32(key) : key]),
  password: (pw: string): Buffer => typed('p', cstr(pw)),
  saslInitial: (mech: string, data: Buffer): Buffer => typed('p', cstr(mech), i32(data.length), data),
  saslResponse: (data: Buffer): Buffer => typed('p', data),
  query: (sql: string): Buffer => typed('Q', cstr(sql)),
  parse: (name: string, sql: string, oids: number[] = []): Buffer => typed('P', cstr(name), cstr(sql), i16(oids.length), ...oids.map(i32)),
  /** formats: one per param (or a single one for all); resultFormats likewise. */
  bind(portal: string, stmt: string, params: Param[] = [], formats: number[] = [], resultFormats: number[] = []): Buffer {
    const ps = params.flatMap((p) => (p === null ? [i32(-1)] : [i32(Buffer.byteLength(p)), Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8')]));
    return typed('B', cstr(portal), cstr(stmt), i16(formats.length), ...formats.map(i16), i16(params.length), ...ps, i16(resultFormats.length), ...resultFormats.map(i16));
  },
  describe: (kind: 'S' | 'P', name: string): Buffer => typed('D', Buffer.from(kind), cstr(name)),
  execute: (portal: string, maxRows = 0): Buffer => typed('E', cstr(portal), i32(maxRows)),
  close: (kind: 'S' | 'P', name: string): Buffer => typed('C', Buffer.from(kind), cstr(name)),
  sync: (): Buffer => typed('S'),
  flush: (): Buffer => typed('H'),
  terminate: (): Buffer => typed('X'),
  copyData: (data: Buffer | string): Buffer => typed('d', Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8')),
  copyDone: (): Buffer => typed('c'),
  copyFail: (why: string): Buffer => typed('f', cstr(why)),
  functionCall(oid: number, args: Param[], argFormats: number[] = [], resultFormat = 0): Buffer {
    const as = args.flatMap((p) => (p === null ? [i32(-1)] : [i32(Buffer.byteLength(p)), Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8')]));
    return typed('F', i32(oid), i16(argFormats.length), ...argFormats.map(i16), i16(args.length), ...as, i16(resultFormat));
  },
};

// ---------------------------------------------------------------- backend message decoding

/** ErrorResponse / NoticeResponse fields keyed by their one-letter code. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const code = String.fromCharCode(body[off]!);
    const end = body.indexOf(0, off + 1);
    out[code] = body.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return out;
}

/** Column values of a DataRow (null for SQL NULL). */
export function dataRow(body: Buffer): (Buffer | null)[] {
  const n = body.readInt16BE(0);
  const out: (Buffer | null)[] = [];
  let off = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(off);
    off += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.subarray(off, off + len));
      off += len;
    }
  }
  return out;
}

const printable = (b: Buffer): boolean => {
  for (const c of b) if (c < 0x20 && c !== 0x0a && c !== 0x09) return false;
  return b.toString('utf8').indexOf('\ufffd') < 0;
};
const show = (b: Buffer): string => (printable(b) ? JSON.stringify(b.toString('utf8')) : `0x${b.toString('hex')}`);

/** A readable, complete rendering of one frame (every byte is represented). */
export function describeFrame(f: Frame): string {
  const b = f.body;
  try {
    switch (f.type) {
      case 'R': {
        const code = b.readInt32BE(0);
        return `R auth=${code}${b.length > 4 ? ` ${show(b.subarray(4))}` : ''}`;
      }
      case 'S': {
        const k = b.indexOf(0);
        return `S ${b.toString('utf8', 0, k)}=${b.toString('utf8', k + 1, b.length - 1)}`;
      }
      case 'K':
        return `K pid=${b.readInt32BE(0)} key=${b.subarray(4).toString('hex')}`;
      case 'Z':
        return `Z ${String.fromCharCode(b[0]!)}`;
      case 'C':
        return `C ${b.toString('utf8', 0, b.length - 1)}`;
      case 'E':
      case 'N':
        return `${f.type} ${Object.entries(errorFields(b)).map(([k, v]) => `${k}=${v}`).join(' | ')}`;
      case 'D':
        return `D [${dataRow(b).map((v) => (v === null ? 'NULL' : show(v))).join(', ')}]`;
      case 'T': {
        const n = b.readInt16BE(0);
        const cols: string[] = [];
        let off = 2;
        for (let i = 0; i < n; i++) {
          const end = b.indexOf(0, off);
          const name = b.toString('utf8', off, end);
          off = end + 1;
          cols.push(`${name}(table=${b.readInt32BE(off)} att=${b.readInt16BE(off + 4)} type=${b.readInt32BE(off + 6)} len=${b.readInt16BE(off + 10)} mod=${b.readInt32BE(off + 12)} fmt=${b.readInt16BE(off + 16)})`);
          off += 18;
        }
        return `T ${cols.join(', ')}`;
      }
      case 't': {
        const n = b.readInt16BE(0);
        return `t [${Array.from({ length: n }, (_, i) => b.readInt32BE(2 + 4 * i)).join(', ')}]`;
      }
      case 'A': {
        const pid = b.readInt32BE(0);
        const ch = b.indexOf(0, 4);
        return `A pid=${pid} ${b.toString('utf8', 4, ch)} ${show(b.subarray(ch + 1, b.length - 1))}`;
      }
      case 'd':
        return `d ${show(b)}`;
      default:
        return b.length ? `${f.type} 0x${b.toString('hex')}` : f.type;
    }
  } catch {
    return `${f.type} (malformed) 0x${b.toString('hex')}`;
  }
}

export interface NormalizeOptions {
  /** Replace BackendKeyData values (they differ per backend). Default true. */
  maskKeyData?: boolean;
  /** Replace the pid in NotificationResponse. Default true. */
  maskNotifyPid?: boolean;
  /** Runs of at least this many consecutive D or d frames collapse to a count + sha256. Default 20. */
  collapseRuns?: number;
  /** Replace RowDescription table OIDs (temp tables get a new OID per session). Default false. */
  maskTableOids?: boolean;
}

/**
 * Frames → comparable strings: BackendKeyData masked, each contiguous run of ParameterStatus sorted
 * (their order is not part of the protocol), long DataRow/CopyData runs summarised by a digest.
 */
export function normalize(frames: Frame[], opts: NormalizeOptions = {}): string[] {
  const { maskKeyData = true, maskNotifyPid = true, collapseRuns = 20, maskTableOids = false } = opts;
  const out: string[] = [];
  let i = 0;
  while (i < frames.length) {
    const f = frames[i]!;
    if (f.type === 'S') {
      const run: string[] = [];
      while (i < frames.length && frames[i]!.type === 'S') run.push(describeFrame(frames[i++]!));
      out.push(...run.sort());
      continue;
    }
    if (f.type === 'D' || f.type === 'd') {
      let j = i;
      while (j < frames.length && frames[j]!.type === f.type) j++;
      if (j - i >= collapseRuns) {
        const h = createHash('sha256');
        let bytes = 0;
        for (let k = i; k < j; k++) {
          h.update(i32(frames[k]!.body.length));
          h.update(frames[k]!.body);
          bytes += frames[k]!.body.length;
        }
        out.push(`${f.type} x${j - i} bytes=${bytes} sha256=${h.digest('hex')}`);
        i = j;
        continue;
      }
    }
    if (f.type === 'K' && maskKeyData) out.push('K <masked>');
    else if (f.type === 'A' && maskNotifyPid) out.push(describeFrame(f).replace(/^A pid=\d+/, 'A pid=<masked>'));
    else if (f.type === 'T' && maskTableOids) out.push(describeFrame(f).replace(/table=\d+/g, 'table=<oid>'));
    else out.push(describeFrame(f));
    i++;
  }
  return out;
}

// ---------------------------------------------------------------- the connection

export class ServerError extends Error {
  constructor(readonly fields: Record<string, string>, readonly frames: Frame[]) {
    super(`${fields.S ?? 'ERROR'} ${fields.C ?? '?????'}: ${fields.M ?? '(no message)'}`);
  }
  get code(): string | undefined {
    return this.fields.C;
  }
}

export interface StartupOptions {
  user: string;
  database?: string;
  password?: string;
  /** Extra startup parameters (application_name, options, ...). */
  params?: Record<string, string>;
}

const DEFAULT_TIMEOUT = 15_000;

export class ProtoConn {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;
  /** Every frame read so far, in order (for debugging failures). */
  readonly log: Frame[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.notify();
        resolve();
      });
    });
    socket.on('error', () => {
      /* surfaced as a close */
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<ProtoConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      s.setNoDelay(true);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new ProtoConn(s));
      });
    });
  }

  /** Connects and authenticates; returns the frames after authentication up to the first ReadyForQuery. */
  static async open(port: number, opts: StartupOptions, host = '127.0.0.1'): Promise<ProtoConn> {
    const c = await ProtoConn.connect(port, host);
    try {
      c.startupFrames = await c.startup(opts);
    } catch (e) {
      c.destroy();
      throw e;
    }
    return c;
  }

  /** Frames of the successful startup (AuthenticationOk .. ReadyForQuery), when opened by open(). */
  startupFrames: Frame[] = [];
  /** Every Authentication* request the server sent during the last startup, in order. */
  authLog: Frame[] = [];

  get isClosed(): boolean {
    return this.ended;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async waitData(deadline: number, what: string): Promise<void> {
    if (this.ended) throw new Error(`connection closed while waiting for ${what}; frames so far: ${this.tail()}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}; frames so far: ${this.tail()}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private tail(): string {
    return JSON.stringify(this.log.slice(-12).map(describeFrame));
  }

  write(...parts: Buffer[]): void {
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  /** Raw bytes (for the one-byte answers to SSLRequest/GSSENCRequest). */
  async readBytes(n: number, timeoutMs = DEFAULT_TIMEOUT): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) await this.waitData(deadline, `${n} raw byte(s)`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The next whole frame. */
  async next(timeoutMs = DEFAULT_TIMEOUT): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length >= 1 + len) {
          const f = { type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
          this.buf = this.buf.subarray(1 + len);
          this.log.push(f);
          return f;
        }
      }
      await this.waitData(deadline, 'a frame');
    }
  }

  /** A frame if one arrives within `ms`, else undefined (for "nothing more is sent" checks). */
  async maybeNext(ms: number): Promise<Frame | undefined> {
    try {
      return await this.next(ms);
    } catch (e) {
      if (this.ended) return undefined;
      if (e instanceof Error && e.message.startsWith('timed out')) return undefined;
      throw e;
    }
  }

  /** Frames up to and including the first one matching `pred`. */
  async readUntil(pred: (f: Frame) => boolean, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      out.push(f);
      if (pred(f)) return out;
    }
  }

  /** Frames up to and including the n-th ReadyForQuery. */
  async readUntilReady(n = 1, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame[]> {
    let seen = 0;
    return this.readUntil((f) => f.type === 'Z' && ++seen === n, timeoutMs);
  }

  /** Frames until the server closes the connection. */
  async readUntilClose(timeoutMs = DEFAULT_TIMEOUT): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Frame[] = [];
    for (;;) {
      try {
        out.push(await this.next(Math.max(1, deadline - Date.now())));
      } catch (e) {
        if (this.ended && this.buf.length < 5) return out;
        throw e;
      }
    }
  }

  /** Simple query; frames up to ReadyForQuery. */
  async query(sql: string, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame[]> {
    this.write(msg.query(sql));
    return this.readUntilReady(1, timeoutMs);
  }

  /** Simple query returning text rows; throws ServerError on ErrorResponse. */
  async rows(sql: string): Promise<(string | null)[][]> {
    const frames = await this.query(sql);
    const err = frames.find((f) => f.type === 'E');
    if (err) throw new ServerError(errorFields(err.body), frames);
    return frames.filter((f) => f.type === 'D').map((f) => dataRow(f.body).map((v) => (v === null ? null : v.toString('utf8'))));
  }

  /** Sends the StartupMessage and runs authentication. Throws ServerError on an ErrorResponse. */
  async startup(opts: StartupOptions): Promise<Frame[]> {
    this.write(msg.startup({ user: opts.user, database: opts.database ?? opts.user, ...opts.params }));
    return this.authenticate(opts);
  }

  /** Runs authentication after the StartupMessage was sent; returns frames from AuthenticationOk to ReadyForQuery. */
  async authenticate(opts: StartupOptions): Promise<Frame[]> {
    let scram: { nonce: string; clientFirstBare: string; serverSignature?: Buffer } | undefined;
    const authFrames: Frame[] = [];
    this.authLog = authFrames;
    for (;;) {
      const f = await this.next();
      if (f.type === 'E') throw new ServerError(errorFields(f.body), [...authFrames, f]);
      if (f.type === 'N') continue;
      if (f.type !== 'R') throw new Error(`unexpected frame during authentication: ${describeFrame(f)}`);
      authFrames.push(f);
      const code = f.body.readInt32BE(0);
      const pw = opts.password ?? '';
      if (code === 0) break;
      if (code === 3) this.write(msg.password(pw));
      else if (code === 5) {
        const salt = f.body.subarray(4, 8);
        const inner = createHash('md5').update(pw + opts.user).digest('hex');
        this.write(msg.password('md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')));
      } else if (code === 10) {
        const mechs = f.body.toString('utf8', 4).split('\0').filter(Boolean);
        if (!mechs.includes('SCRAM-SHA-256')) throw new Error(`no supported SASL mechanism in ${mechs.join(', ')}`);
        const nonce = randomBytes(18).toString('base64');
        const clientFirstBare = `n=*,r=${nonce}`;
        scram = { nonce, clientFirstBare };
        this.write(msg.saslInitial('SCRAM-SHA-256', Buffer.from(`n,,${clientFirstBare}`)));
      } else if (code === 11) {
        if (!scram) throw new Error('SASLContinue before SASL');
        const serverFirst = f.body.toString('utf8', 4);
        const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
        if (!attrs.r?.startsWith(scram.nonce)) throw new Error('SCRAM: server nonce does not extend ours');
        const salted = pbkdf2Sync(pw.normalize('NFKC'), Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
        const clientKey = createHmac('sha256', salted).update('Client Key').digest();
        const storedKey = createHash('sha256').update(clientKey).digest();
        const finalNoProof = `c=biws,r=${attrs.r}`;
        const authMessage = `${scram.clientFirstBare},${serverFirst},${finalNoProof}`;
        const sig = createHmac('sha256', storedKey).update(authMessage).digest();
        const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
        const serverKey = createHmac('sha256', salted).update('Server Key').digest();
        scram.serverSignature = createHmac('sha256', serverKey).update(authMessage).digest();
        this.write(msg.saslResponse(Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`)));
      } else if (code === 12) {
        const v = f.body.toString('utf8', 4);
        if (!scram?.serverSignature || v !== `v=${scram.serverSignature.toString('base64')}`) throw new Error('SCRAM: bad server signature');
      } else throw new Error(`unsupported authentication request ${code}`);
    }
    // After AuthenticationOk the server may still refuse (unknown database, too many clients): E, then close.
    const rest = await this.readUntil((f) => f.type === 'Z' || f.type === 'E');
    const err = rest.find((f) => f.type === 'E');
    if (err) throw new ServerError(errorFields(err.body), rest);
    return [authFrames[authFrames.length - 1]!, ...rest];
  }

  /** Sends Terminate and closes. */
  async end(): Promise<void> {
    if (!this.ended) {
      this.socket.end(msg.terminate());
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    }
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Host/port/user/password/database of a postgres:// URL. */
export function urlParts(url: string): { host: string; port: number; user: string; password: string; database: string } {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username),
  };
}
