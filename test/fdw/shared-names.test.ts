/**
 * Sessions that start alike share name resolutions (catalog/shared-resolutions.ts): a new connection's
 * first foreign-table read costs no upstream round trip once another session started with the same
 * StartupMessage has resolved the same names, while it has sent nothing but foreign-table statements.
 * A session that changed its search_path, or one started with other parameters, resolves on its own and
 * shares nothing: every read here is checked against the rows of the table it must name.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { CountingRelay } from '../support/counting-relay.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { dataRow, errorFields, msg, normalize, ProtoConn, urlParts } from '../support/proto-client.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let relay: CountingRelay;
let proxy: RunningProxy;

before(async () => {
  // The fixture's own proxy takes the upstream path for every read: no resolution cache of any kind. Each
  // statement below runs on a twin session there too, and the replies must be the same bytes.
  f = await fdwFixture('fdw_shared_names', REDIS_DB.sharedNames, { fastPath: false });
  const c = await connect(f.url);
  try {
    await setupSupabase(c, f.redisUrl);
    await c.query('create schema other');
    await c.query(`create foreign table public.t (key text, value text) server redis_server options (src_type 'hash', src_key 'in_public')`);
    await c.query(`create foreign table other.t (key text, value text) server redis_server options (src_type 'hash', src_key 'in_other')`);
    await c.query(`create foreign table other.only_other (key text, value text) server redis_server options (src_type 'hash', src_key 'in_other')`);
  } finally {
    await c.end();
  }
  await f.redis.hset('in_public', 'k', 'public');
  await f.redis.hset('in_other', 'k', 'other');
  const up = urlParts(f.directUrl);
  relay = await CountingRelay.start(up);
  // Resolutions stay good for the whole test (by default they are checked again every second).
  proxy = await startProxy(`postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${relay.port}/${f.db}`, {}, { recheckMs: 600_000 });
});

after(async () => {
  await proxy?.close();
  relay?.close();
  await f?.close();
});

interface Session {
  ours: ProtoConn;
  twin: ProtoConn;
}

/**
 * Runs `fn` on a new session of the proxy under test and a twin session of the fixture's proxy, both
 * started with the fixture's user and database and `params`; then closes both.
 */
async function inSession(fn: (s: Session) => Promise<void>, params?: Record<string, string>): Promise<void> {
  const up = urlParts(f.directUrl);
  const startup = { user: up.user, password: up.password, database: f.db, ...(params ? { params } : {}) };
  const s = { ours: await ProtoConn.open(proxy.port, startup), twin: await ProtoConn.open(f.proxy.port, startup) };
  try {
    await fn(s);
  } finally {
    s.ours.destroy();
    s.twin.destroy();
  }
}

/**
 * Runs one Query on both sessions; the replies must be the same bytes. Returns the first column of the
 * rows (or the error's SQLSTATE) and the upstream bytes it cost the proxy under test.
 */
async function query(s: Session, sql: string): Promise<{ rows: string[]; error?: string; sent: number }> {
  const start = relay.bytes;
  s.ours.write(msg.query(sql));
  const frames = await s.ours.readUntilReady();
  const sent = relay.bytes - start;
  s.twin.write(msg.query(sql));
  assert.deepEqual(normalize(frames), normalize(await s.twin.readUntilReady()), `${sql}: not upstream's reply`);
  const error = frames.find((fr) => fr.type === 'E');
  const rows = frames.filter((fr) => fr.type === 'D').map((fr) => dataRow(fr.body)[0]!.toString());
  return { rows, ...(error ? { error: errorFields(error.body).C! } : {}), sent };
}

describe('sessions started alike share name resolutions', () => {
  it("a new session's first read of a name another resolved costs no upstream bytes", async () => {
    await inSession(async (a) => {
      const first = await query(a, 'select value from t');
      assert.deepEqual(first.rows, ['public']);
      assert.ok(first.sent > 0, 'the first session resolves t upstream');
    });
    await inSession(async (b) => {
      const r = await query(b, 'select value from t');
      assert.deepEqual(r.rows, ['public']);
      assert.equal(r.sent, 0, 'resolved from the first session, no upstream round trip');
      // It stops sharing here (a statement upstream runs), but keeps what it was given, as its own.
      await query(b, 'select 1');
      const again = await query(b, 'select value from t');
      assert.deepEqual(again.rows, ['public']);
      assert.equal(again.sent, 0, "the shared resolution became the session's own");
    });
  });

  it('a session that set its search_path resolves by it and shares nothing', async () => {
    await inSession(async (c) => {
      await query(c, 'set search_path = other, public');
      assert.deepEqual((await query(c, 'select value from t')).rows, ['other']);
      assert.deepEqual((await query(c, 'select value from only_other')).rows, ['other']);
    });
    await inSession(async (d) => {
      const r = await query(d, 'select value from t');
      assert.deepEqual(r.rows, ['public'], "not the other session's other.t");
      assert.equal(r.sent, 0, "still the first pristine session's resolution");
      assert.equal((await query(d, 'select value from only_other')).error, '42P01', "only_other is not on this session's search_path");
    });
  });

  it('a statement other than a foreign-table one ends the sharing for that session', async () => {
    await inSession(async (e) => {
      // Anything upstream runs could have changed what names mean (a function setting search_path, say).
      await query(e, "select pg_catalog.set_config('search_path', 'other, public', false)");
      assert.deepEqual((await query(e, 'select value from t')).rows, ['other']);
      await query(e, 'select 1');
      assert.deepEqual((await query(e, 'select value from only_other')).rows, ['other']);
    });
    await inSession(async (g) => {
      assert.deepEqual((await query(g, 'select value from t')).rows, ['public']);
      assert.equal((await query(g, 'select value from only_other')).error, '42P01');
    });
  });

  it('a session started with other parameters resolves on its own', async () => {
    const options = { options: '-c search_path=other,public' };
    await inSession(async (h) => {
      const r = await query(h, 'select value from t');
      assert.deepEqual(r.rows, ['other']);
      assert.ok(r.sent > 0, 'its own resolution, asked upstream');
    }, options);
    await inSession(async (i) => {
      const r = await query(i, 'select value from t');
      assert.deepEqual(r.rows, ['other']);
      assert.equal(r.sent, 0, 'shared with the session started like it');
    }, options);
  });
});
