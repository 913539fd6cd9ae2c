/**
 * Helpers for the foreign-table SQL tests: node-postgres clients that keep every value as the text
 * Postgres sent (so two answers compare byte for byte), error capture with SQLSTATE, Redis MONITOR
 * capture, and the Supabase-dialect setup most files share.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';

/** Raw text for every type: what Postgres sent is what is compared. */
const rawTypes = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

export async function connect(url: string, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: rawTypes, ...opts });
  c.on('error', () => {
    /* a dropped connection fails the test through its next query */
  });
  await c.connect();
  return c;
}

/** Rows as arrays of raw text (null for NULL). */
export async function rows(c: pg.Client, sql: string, params: unknown[] = []): Promise<(string | null)[][]> {
  const r = await c.query({ text: sql, values: params, rowMode: 'array', types: rawTypes });
  return r.rows as (string | null)[][];
}

export interface PgErr {
  code: string | undefined;
  message: string;
  detail: string | undefined;
  hint: string | undefined;
  /** message + detail + hint, for "does it name X anywhere" checks. */
  all: string;
}

/** The error `p` fails with; fails the test if it succeeds. */
export async function pgError(p: Promise<unknown>, what = 'statement'): Promise<PgErr> {
  try {
    const v = await p;
    assert.fail(`${what} succeeded but should have failed: ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x))?.slice(0, 500)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    const x = e as { code?: string; message?: string; detail?: string; hint?: string };
    const message = x.message ?? String(e);
    return { code: x.code, message, detail: x.detail, hint: x.hint, all: [message, x.detail, x.hint].filter(Boolean).join(' | ') };
  }
}

/** Sorted canonical rows, for queries whose row order is not defined. */
export function bag(rs: (string | null)[][]): string[] {
  return rs.map((r) => JSON.stringify(r)).sort();
}

/** `create extension wrappers; create fdw; create server <name>` (Supabase dialect). */
export async function setupSupabase(c: pg.Client, redisUrl: string, server = 'redis_server'): Promise<void> {
  await c.query('create extension if not exists wrappers with schema extensions');
  await c.query('create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator');
  await c.query(`create server ${server} foreign data wrapper redis_wrapper options (conn_url '${redisUrl}')`);
}

export interface MonitorCapture {
  /** Commands seen so far on `db` (upper-cased name first), e.g. ['HMGET', 'key', 'a']. */
  commands(): string[][];
  /** Commands whose first argument (the key) is `key`. */
  onKey(key: string): string[][];
  /** Resolves with the first command, past the first `skip` seen, that `match` accepts (now or later). */
  seen(match: (cmd: string[]) => boolean, skip?: number): Promise<string[]>;
  stop(): Promise<void>;
}

/** One MONITOR line's arguments: `+1700000000.123456 [6 127.0.0.1:5555] "hmget" "big" "f1"`. */
export function parseMonitorLine(line: string): { db: number; args: string[] } | undefined {
  const m = /^\+\d+\.\d+ \[(\d+) [^\]]*\] (.*)$/.exec(line);
  if (!m) return undefined;
  const args: string[] = [];
  const text = m[2]!;
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '"') {
      i++;
      continue;
    }
    i++;
    const bytes: number[] = [];
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        const n = text[i + 1];
        if (n === 'x') {
          bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
          i += 4;
          continue;
        }
        const esc: Record<string, number> = { n: 10, r: 13, t: 9, b: 8, a: 7, '"': 34, '\\': 92 };
        bytes.push(esc[n!] ?? n!.charCodeAt(0));
        i += 2;
        continue;
      }
      bytes.push(...Buffer.from(text[i]!, 'latin1'));
      i++;
    }
    i++;
    args.push(Buffer.from(bytes).toString('utf8'));
  }
  return { db: Number(m[1]), args };
}

/**
 * Records every command Redis runs on database `db`, through MONITOR on a raw socket of its own (no
 * client library: nothing reconnects behind our back, and stop() really closes it). Other test files
 * share the server, so callers filter by key.
 */
export async function monitorRedis(url: string, db: number): Promise<MonitorCapture> {
  const u = new URL(url);
  const socket = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
  socket.unref(); // a forgotten monitor must never keep the test process alive
  socket.setEncoding('latin1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const seen: string[][] = [];
  const waiters: { match: (cmd: string[]) => boolean; resolve: (cmd: string[]) => void }[] = [];
  let buf = '';
  let started = false;
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\r\n')) >= 0) {
      const line = Buffer.from(buf.slice(0, nl), 'latin1').toString('latin1');
      buf = buf.slice(nl + 2);
      if (line === '+OK') {
        started = true;
        continue;
      }
      const p = parseMonitorLine(line);
      if (p && p.db === db && p.args.length) {
        const cmd = [p.args[0]!.toUpperCase(), ...p.args.slice(1)];
        seen.push(cmd);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.match(cmd)) waiters.splice(i, 1)[0]!.resolve(cmd);
        }
      }
    }
  });
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  if (password) socket.write(`AUTH ${JSON.stringify(password)}\r\n`);
  socket.write('MONITOR\r\n');
  // MONITOR is live once its +OK arrived and it has seen a command of ours on this db.
  const probe = `__monitor_probe_${Math.random()}`;
  const r = new Redis(url);
  try {
    for (let i = 0; i < 200 && !(started && seen.some((c) => c[1] === probe)); i++) {
      await r.exists(probe);
      await new Promise((res) => setTimeout(res, 10));
    }
  } finally {
    r.disconnect();
  }
  if (!seen.some((c) => c[1] === probe)) {
    socket.destroy();
    throw new Error('MONITOR did not start');
  }
  return {
    commands: () => seen.slice(),
    onKey: (key) => seen.filter((c) => c[1] === key),
    seen: (match, skip = 0) => {
      const hit = seen.slice(skip).find(match);
      return hit ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ match, resolve }));
    },
    async stop() {
      socket.destroy();
    },
  };
}

/** Sends a CancelRequest for `client`'s session to the proxy listening on `port`, as libpq does (a fresh connection). */
export function cancelRequest(port: number, client: pg.Client): Promise<void> {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(packet));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

/** Waits a little for MONITOR lines still in flight. */
export const settle = (ms = 150): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
