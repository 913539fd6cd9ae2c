// Fuzzing the running proxy over TCP: garbage startup packets, garbage frames after authentication.
// The proxy must never crash, must tell a client it drops why (an ErrorResponse, FATAL), and must not
// leak sessions.
//
// Reproduce a run with FUZZ_SEED=<seed>; scale it with FUZZ_STARTUP_CASES / FUZZ_SESSION_CASES.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { body, errorFields, fe, prng, rawFrame, splitFrames, startup } from '../support/frames.js';

const env = testEnv();

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5eed_f00d;
const STARTUP_CASES = Number(process.env.FUZZ_STARTUP_CASES ?? 240);
const SESSION_CASES = Number(process.env.FUZZ_SESSION_CASES ?? 120);
const PARALLEL = 12;
const hex = (n: number): string => `0x${n.toString(16)}`;

console.log(`[fuzz] seed=${hex(SEED)} startup cases=${STARTUP_CASES} session cases=${SESSION_CASES} (FUZZ_SEED=${hex(SEED)} reproduces)`);

/** Each case has its own generator, so a failing case reproduces alone. */
const caseRng = (kind: number, i: number): ReturnType<typeof prng> => prng((SEED ^ Math.imul(kind + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);

const SSL_CODE = 80877103;
const GSS_CODE = 80877104;
const CANCEL_CODE = 80877102;
const MAX_STARTUP = 10000;
const MAX_MESSAGE = 0x3fffffff;
/** Message types the proxy accepts from a ready client. */
const FRONTEND_TYPES = new Set('BCDEFHPQSXcdf'.split('').map((ch) => ch.charCodeAt(0)));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- raw connections ----

interface Conn {
  sock: net.Socket;
  data(): Buffer;
  closed(): boolean;
  /** Resolves true once pred(data) holds or the peer closed (pred checked last), false after ms. */
  until(pred: (data: Buffer) => boolean, ms: number): Promise<boolean>;
  destroy(): void;
}

function wrap(sock: net.Socket, initial: Buffer[] = []): Conn {
  const chunks: Buffer[] = [...initial];
  let isClosed = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  sock.on('data', (d: Buffer) => {
    chunks.push(d);
    wake();
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    isClosed = true;
    wake();
  });
  const data = (): Buffer => Buffer.concat(chunks);
  return {
    sock,
    data,
    closed: () => isClosed,
    until: (pred, ms) =>
      new Promise((resolve) => {
        const check = (): void => {
          if (pred(data())) finish(true);
          else if (isClosed) finish(false);
        };
        const timer = setTimeout(() => finish(false), ms);
        const finish = (v: boolean): void => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(v);
        };
        waiters.add(check);
        check();
      }),
    destroy: () => sock.destroy(),
  };
}

function rawConnect(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.off('error', reject);
      sock.setNoDelay(true);
      resolve(wrap(sock));
    });
  });
}

/** Authenticates with node-postgres (SCRAM or trust, whatever upstream asks), then takes over its socket. */
async function authedConnect(proxy: RunningProxy): Promise<{ conn: Conn; client: pg.Client }> {
  const client = new pg.Client({ connectionString: proxy.url() });
  client.on('error', () => {});
  await client.connect();
  const sock = (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
  // From here on the bytes are ours: node-postgres must not parse the replies to our garbage.
  sock.removeAllListeners('data');
  return { conn: wrap(sock), client };
}

/** Whether the bytes end with a whole FATAL ErrorResponse (and are whole frames). */
function endsWithFatal(data: Buffer): boolean {
  const { frames, rest } = splitFrames(data);
  const last = frames[frames.length - 1];
  if (rest.length || !last || last.code !== 'E') return false;
  const f = new Map(errorFields(last.payload));
  return (f.get('V') ?? f.get('S')) === 'FATAL';
}

function lastError(data: Buffer): Map<string, string> | undefined {
  const { frames } = splitFrames(data);
  const last = frames[frames.length - 1];
  return last?.code === 'E' ? new Map(errorFields(last.payload)) : undefined;
}

/** Runs `fn` over 0..n-1 with at most `width` at a time. */
async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

async function selectOne(proxy: RunningProxy): Promise<void> {
  const client = new pg.Client({ connectionString: proxy.url() });
  await client.connect();
  try {
    const r = await client.query('select 1 as one');
    assert.equal(r.rows[0].one, 1);
  } finally {
    await client.end();
  }
}

async function waitSessions(proxy: RunningProxy, n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (proxy.server.sessionCount !== n && Date.now() < deadline) await sleep(20);
  assert.equal(proxy.server.sessionCount, n, `sessions still open after ${ms} ms`);
}

// ---- what the proxy must answer to a startup packet ----

type Expect =
  | { kind: 'fatal'; codes: string[] } // closed by the proxy after a FATAL with one of these codes
  | { kind: 'fatal-any' } // closed after a FATAL ErrorResponse (the proxy's or upstream's)
  | { kind: 'wait' } // nothing sent, connection kept open
  | { kind: 'silent-close' } // CancelRequest: closed without a reply
  | { kind: 'any' }; // anything, but a close must follow a FATAL ErrorResponse

/** The proxy's expected reaction to these bytes as the first thing on a connection (independent model). */
function predictStartup(b: Buffer): { prefix: Buffer; expect: Expect } {
  const none = Buffer.alloc(0);
  if (b.length < 4) return { prefix: none, expect: { kind: 'wait' } };
  const len = b.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP) return { prefix: none, expect: { kind: 'fatal', codes: ['08P01'] } };
  if (b.length < len) return { prefix: none, expect: { kind: 'wait' } };
  const code = b.readInt32BE(4);
  if (code === SSL_CODE) {
    // Data after an SSLRequest, before the answer, is refused (CVE-2021-23214) — after the 'N', as Postgres does.
    return b.length > 8 ? { prefix: Buffer.from('N'), expect: { kind: 'fatal', codes: ['08P01'] } } : { prefix: Buffer.from('N'), expect: { kind: 'wait' } };
  }
  if (code === GSS_CODE) {
    const next = predictStartup(b.subarray(8));
    return { prefix: Buffer.concat([Buffer.from('N'), next.prefix]), expect: next.expect };
  }
  if (code === CANCEL_CODE) return { prefix: none, expect: len < 16 ? { kind: 'fatal', codes: ['08P01'] } : { kind: 'silent-close' } };
  if (code >>> 16 !== 3) return { prefix: none, expect: { kind: 'fatal', codes: ['0A000'] } };
  return { prefix: none, expect: { kind: 'fatal-any' } };
}

type Rng = ReturnType<typeof prng>;

const printable = (r: Rng, n: number): string => Array.from({ length: n }, () => String.fromCharCode(r.int(0x21, 0x7e))).join('');

/** One random startup-phase input, from several families. */
function startupInput(r: Rng): { family: string; bytes: Buffer; expect?: Expect } {
  switch (r.int(0, 9)) {
    case 0:
      return { family: 'random bytes', bytes: r.bytes(r.int(0, 48)) };
    case 1: {
      const len = r.int(8, 300);
      const b = r.bytes(len);
      b.writeInt32BE(len, 0);
      return { family: 'random packet, valid length', bytes: b };
    }
    case 2: {
      const len = r.pick([-1, 0, 1, 4, 7, MAX_STARTUP + 1, 0x7fffffff, -0x80000000, r.int(MAX_STARTUP + 1, 0x7fffffff), -r.int(1, 0x7fffffff)]);
      const b = Buffer.concat([Buffer.alloc(4), r.bytes(r.int(0, 40))]);
      b.writeInt32BE(len, 0);
      return { family: 'bad startup length', bytes: b, expect: { kind: 'fatal', codes: ['08P01'] } };
    }
    case 3: {
      let major = r.pick([0, 1, 2, 4, 5, 0x7fff, 0xffff, r.int(0, 0xffff)]);
      if (major === 3 || major === 1234) major = 2;
      const params: Record<string, string> = { user: 'postgres', database: 'postgres' };
      return { family: `protocol ${major}.x`, bytes: startup.message(params, major, r.int(0, 0xffff)), expect: { kind: 'fatal', codes: ['0A000'] } };
    }
    case 4: {
      // Protocol 3.x with random parameters, maybe without the terminator, maybe with junk after it.
      const b = body().int16(3).int16(r.int(0, 3));
      for (let i = r.int(0, 4); i > 0; i--) b.cstring(printable(r, r.int(0, 12))).cstring(printable(r, r.int(0, 12)));
      if (r.int(0, 2) > 0) b.int8(0);
      if (r.int(0, 3) === 0) b.raw(r.bytes(r.int(1, 8)));
      return { family: 'v3, random parameters', bytes: b.packet() };
    }
    case 5:
      return { family: 'SSLRequest + data before the answer', bytes: Buffer.concat([startup.ssl(), r.bytes(r.int(1, 30))]) };
    case 6:
      return { family: 'GSSENCRequest + random', bytes: Buffer.concat([startup.gssenc(), r.bytes(r.int(0, 30))]) };
    case 7: {
      const m = startup.message({ user: 'postgres', database: 'postgres' });
      return { family: 'truncated StartupMessage', bytes: m.subarray(0, r.int(0, m.length - 1)), expect: { kind: 'wait' } };
    }
    case 8:
      return { family: 'CancelRequest, random key', bytes: startup.cancel(r.int(1, 0x7fffffff), [...r.bytes(4)]) };
    default: {
      // A valid StartupMessage, then garbage frames: in the auth relay or (trust) after it.
      const frames = Array.from({ length: r.int(1, 3) }, () => garbageFrame(r).bytes);
      return { family: 'StartupMessage + garbage frames', bytes: Buffer.concat([startup.message({ user: 'postgres', database: 'postgres' }), ...frames]), expect: { kind: 'any' } };
    }
  }
}

// ---- garbage for an authenticated session ----

type Garbage = { kind: string; bytes: Buffer; expect: 'protocol-violation' | 'wait' | 'survive' | 'terminate' };

/** A message type byte the proxy must refuse from a ready client. */
function unknownType(r: Rng): number {
  for (;;) {
    const c = r.int(0, 255);
    if (!FRONTEND_TYPES.has(c)) return c;
  }
}

function garbageFrame(r: Rng): Garbage {
  switch (r.int(0, 5)) {
    case 0:
      return { kind: 'unknown type', bytes: body().raw(r.bytes(r.int(0, 64))).frame(unknownType(r)), expect: 'protocol-violation' };
    case 1: {
      const len = r.pick([-1, 0, 1, 2, 3, MAX_MESSAGE + 1, 0x7fffffff, -r.int(1, 0x7fffffff), r.int(MAX_MESSAGE + 1, 0x7fffffff)]);
      return { kind: `invalid length ${len}`, bytes: rawFrame(r.int(0, 255), len, r.bytes(r.int(0, 16))), expect: 'protocol-violation' };
    }
    case 2: {
      // Declares more than it sends: the proxy must wait quietly for the rest.
      const declared = r.int(5, 1_000_000);
      return { kind: `truncated (declares ${declared})`, bytes: rawFrame(r.pick([...'QPBDESHdcf'].map((c) => c.charCodeAt(0))), declared, r.bytes(r.int(0, Math.min(declared - 5, 64)))), expect: 'wait' };
    }
    default: {
      // A known type with a random body. FunctionCall is left out: a random OID could call something real.
      const type = r.pick([...'QPBDECSHdcf']);
      const payload = type === 'Q' && r.int(0, 1) ? Buffer.concat([Buffer.from(printable(r, r.int(0, 40))), Buffer.from([0])]) : r.bytes(r.int(0, 80));
      return { kind: `type ${type}, random body`, bytes: body().raw(payload).frame(type), expect: 'survive' };
    }
  }
}

/** Valid frames to mix with garbage. */
function validFrames(r: Rng): Buffer[] {
  return r.pick([
    [fe.query('select 1')],
    [fe.parse('', 'select $1::int'), fe.bind('', '', [], [Buffer.from('5')], []), fe.describe('P', ''), fe.execute('', 0), fe.sync()],
    [fe.parse('', 'select 1'), fe.flush()],
    [fe.sync()],
    [fe.query('')],
    [fe.copyData(Buffer.from('x')), fe.copyDone()],
  ]);
}

// ---- the tests ----

describe('proxy fuzz', () => {
  let proxy: RunningProxy;
  before(async () => {
    proxy = await startProxy(env.pgUrl);
  });
  after(async () => {
    await proxy?.close();
  });

  test('startup phase: random and malformed first packets', async () => {
    const failures: string[] = [];
    await pool(STARTUP_CASES, PARALLEL, async (i) => {
      const r = caseRng(1, i);
      const input = startupInput(r);
      const predicted = predictStartup(input.bytes);
      const expect = input.expect ?? predicted.expect;
      const where = `startup case ${i} (${input.family}, seed ${hex(SEED)}): ${input.bytes.toString('hex').slice(0, 120)}`;
      const conn = await rawConnect(proxy.port);
      try {
        conn.sock.write(input.bytes);
        const strip = (d: Buffer): Buffer => (d.subarray(0, predicted.prefix.length).equals(predicted.prefix) ? d.subarray(predicted.prefix.length) : d);
        switch (expect.kind) {
          case 'fatal':
          case 'fatal-any': {
            const closed = await conn.until(() => false, 5000).then(() => conn.closed());
            if (!closed) return void failures.push(`${where}: expected a FATAL and a close, connection still open; got ${conn.data().toString('hex')}`);
            const data = strip(conn.data());
            if (!endsWithFatal(data)) return void failures.push(`${where}: closed without a FATAL ErrorResponse; got ${JSON.stringify(conn.data().toString('latin1'))}`);
            if (expect.kind === 'fatal') {
              const code = lastError(data)?.get('C');
              if (!expect.codes.includes(code ?? '')) failures.push(`${where}: SQLSTATE ${code}, expected ${expect.codes.join('/')}: ${lastError(data)?.get('M')}`);
              const { frames } = splitFrames(data);
              if (frames.length !== 1) failures.push(`${where}: expected exactly one ErrorResponse, got ${frames.map((f) => f.code).join('')}`);
            }
            return;
          }
          case 'wait': {
            await conn.until((d) => d.length > predicted.prefix.length, 300);
            if (conn.closed()) return void failures.push(`${where}: closed while it should wait for more bytes`);
            if (!conn.data().equals(predicted.prefix)) failures.push(`${where}: sent ${JSON.stringify(conn.data().toString('latin1'))} while it should wait`);
            return;
          }
          case 'silent-close': {
            await conn.until(() => false, 6000);
            if (!conn.closed()) failures.push(`${where}: a CancelRequest connection must be closed`);
            else if (conn.data().length) failures.push(`${where}: a CancelRequest gets no reply, got ${conn.data().toString('hex')}`);
            return;
          }
          case 'any': {
            await conn.until(() => false, 1500);
            if (conn.closed() && !endsWithFatal(strip(conn.data()))) failures.push(`${where}: closed without a FATAL ErrorResponse; got ${JSON.stringify(conn.data().toString('latin1'))}`);
            return;
          }
        }
      } finally {
        conn.destroy();
      }
    });
    assert.deepEqual(failures, [], failures.slice(0, 10).join('\n'));
    await selectOne(proxy);
    await waitSessions(proxy, 0, 5000);
  });

  test('after authentication: garbage frames', async () => {
    const failures: string[] = [];
    await pool(SESSION_CASES, PARALLEL, async (i) => {
      const r = caseRng(2, i);
      const { conn } = await authedConnect(proxy);
      const g = r.int(0, 9) === 0 ? ({ kind: 'Terminate', bytes: fe.terminate(), expect: 'terminate' } as Garbage) : garbageFrame(r);
      // Sometimes valid traffic rides in the same write, before the garbage.
      const lead = r.int(0, 2) === 0 ? Buffer.concat(validFrames(r)) : Buffer.alloc(0);
      const stream = Buffer.concat([lead, g.bytes]);
      const where = `session case ${i} (${g.kind}, seed ${hex(SEED)}): ${stream.toString('hex').slice(0, 160)}`;
      try {
        // Split the write at random points: the proxy must not care how the bytes arrive.
        for (let off = 0; off < stream.length; ) {
          const n = r.int(1, stream.length - off);
          conn.sock.write(stream.subarray(off, off + n));
          off += n;
          if (r.int(0, 3) === 0) await sleep(r.int(0, 5));
        }
        switch (g.expect) {
          case 'protocol-violation': {
            await conn.until(() => false, 5000);
            if (!conn.closed()) return void failures.push(`${where}: expected the proxy to close the connection`);
            const e = lastError(conn.data());
            if (!endsWithFatal(conn.data()) || e?.get('C') !== '08P01') failures.push(`${where}: expected FATAL 08P01 last, got ${JSON.stringify(conn.data().toString('latin1').slice(-200))}`);
            return;
          }
          case 'wait': {
            const before = conn.data().length;
            // Whatever the valid lead frames earn arrives; then silence while the frame is incomplete.
            await sleep(250);
            const settled = conn.data().length;
            await conn.until((d) => d.length > settled, 250);
            if (conn.closed()) failures.push(`${where}: closed while a frame was still incomplete`);
            else if (lead.length === 0 && conn.data().length !== before) failures.push(`${where}: replied to an incomplete frame`);
            return;
          }
          case 'terminate': {
            await conn.until(() => false, 3000);
            if (!conn.closed()) failures.push(`${where}: Terminate must close the connection`);
            return;
          }
          case 'survive': {
            // Either the connection still works (a probe query answers), or it was closed after a FATAL.
            const marker = `alive_${i}_${r.int(0, 1e9)}`;
            if (!conn.closed()) conn.sock.write(Buffer.concat([fe.sync(), fe.query(`select '${marker}'`)]));
            const alive = await conn.until((d) => d.includes(marker), 5000);
            if (alive) return;
            if (!conn.closed()) failures.push(`${where}: neither answered the probe nor closed`);
            else if (!endsWithFatal(conn.data())) failures.push(`${where}: closed without a FATAL ErrorResponse last; got ${JSON.stringify(conn.data().toString('latin1').slice(-200))}`);
            return;
          }
        }
      } finally {
        conn.destroy();
      }
    });
    assert.deepEqual(failures, [], failures.slice(0, 10).join('\n'));
    await selectOne(proxy);
    await waitSessions(proxy, 0, 5000);
  });

  test('after authentication: random mixes of valid and garbage frames', async () => {
    const failures: string[] = [];
    await pool(Math.ceil(SESSION_CASES / 2), PARALLEL, async (i) => {
      const r = caseRng(3, i);
      const { conn } = await authedConnect(proxy);
      const parts: Buffer[] = [];
      for (let k = r.int(2, 6); k > 0; k--) parts.push(...(r.int(0, 2) ? validFrames(r) : [garbageFrame(r).bytes]));
      const stream = Buffer.concat(parts);
      const where = `mix case ${i} (seed ${hex(SEED)}): ${stream.toString('hex').slice(0, 160)}`;
      try {
        for (let off = 0; off < stream.length; ) {
          const n = r.int(1, stream.length - off);
          conn.sock.write(stream.subarray(off, off + n));
          off += n;
        }
        await conn.until(() => false, 400);
        if (conn.closed() && !endsWithFatal(conn.data())) failures.push(`${where}: closed without a FATAL ErrorResponse last; got ${JSON.stringify(conn.data().toString('latin1').slice(-200))}`);
      } finally {
        conn.destroy();
      }
    });
    assert.deepEqual(failures, [], failures.slice(0, 10).join('\n'));
    await selectOne(proxy);
    await waitSessions(proxy, 0, 5000);
  });

  test('the server still accepts connections and no session leaked', async () => {
    await selectOne(proxy);
    await waitSessions(proxy, 0, 5000);
  });
});

/** Graceful shutdown time: idle sessions close at once, busy ones hold it for the grace period. */
async function timedClose(proxy: RunningProxy, graceMs: number): Promise<number> {
  const t0 = Date.now();
  await proxy.server.close(graceMs);
  return Date.now() - t0;
}

/**
 * Runs fn with a dedicated proxy and one authenticated raw connection. A timer keeps the event loop
 * alive meanwhile: the proxy's teardown timers are unref'd, and a session whose client socket is paused
 * keeps no handle active, so a hung session would otherwise end the run with "event loop has already
 * resolved" instead of the assertion that explains it.
 */
async function withSession(fn: (proxy: RunningProxy, conn: Conn) => Promise<void>): Promise<void> {
  const keepAlive = setInterval(() => {}, 1000);
  const proxy = await startProxy(env.pgUrl);
  let conn: Conn | undefined;
  try {
    conn = (await authedConnect(proxy)).conn;
    await fn(proxy, conn);
  } finally {
    conn?.destroy();
    await proxy.close();
    clearInterval(keepAlive);
  }
}

describe('regressions found by fuzzing', () => {
  // A Flush with a body makes Postgres answer with an ErrorResponse (08P01, "invalid message format")
  // and discard messages until the next Sync. The proxy records no reply for a Flush, so when that
  // error arrives with nothing queued it is forwarded as unsolicited and the skip is not mirrored:
  // the next Parse (which Postgres ignores) stays at the head of the queue forever, and replies no
  // longer line up with entries. With the interceptor, the catalog refresh it runs before that Parse
  // is ignored too, its capture swallows the Sync's ReadyForQuery, and the session hangs.
  test('a malformed Flush does not desynchronize the reply queue', async () => {
    await withSession(async (proxy, conn) => {
      const frames = (code: string): number => splitFrames(conn.data()).frames.filter((f) => f.code === code).length;
      conn.sock.write(body().int8(1).frame('H'));
      assert.ok(await conn.until(() => frames('E') === 1, 3000), 'Postgres answers a Flush with a body with an error');
      conn.sock.write(fe.parse('', 'select 1'));
      await sleep(100);
      conn.sock.write(fe.sync());
      assert.ok(await conn.until(() => frames('Z') === 1, 3000), 'no ReadyForQuery for the Sync: the session hangs');
      conn.sock.write(fe.query("select 'probe'"));
      assert.ok(await conn.until((d) => d.includes('probe') && frames('Z') === 2, 3000), 'no answer to the next query');
      // Idle now (between transactions, nothing owed): a graceful shutdown closes it at once.
      const took = await timedClose(proxy, 4000);
      assert.ok(took < 2000, `graceful shutdown waited ${took} ms: the session still believed replies were owed`);
    });
  });

  test('a malformed Sync is answered and the session stays usable', async () => {
    await withSession(async (proxy, conn) => {
      conn.sock.write(body().raw([1, 2, 3]).frame('S'));
      assert.ok(await conn.until((d) => splitFrames(d).frames.some((f) => f.code === 'Z'), 3000));
      conn.sock.write(fe.query("select 'after'"));
      assert.ok(await conn.until((d) => d.includes('after'), 3000));
      const took = await timedClose(proxy, 4000);
      assert.ok(took < 2000, `graceful shutdown waited ${took} ms for an idle session`);
    });
  });
});
