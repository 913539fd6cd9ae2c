// Authentication is relayed untouched: every pg_hba method works through the proxy with real clients,
// the server's authentication requests are the same as without the proxy, and failures are reported
// with exactly upstream's ErrorResponse.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { authAvailable, authUsers, testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { describeFrame, ProtoConn, ServerError, urlParts, type Frame, type StartupOptions } from '../support/proto-client.js';
import { psql, withCredentials } from '../support/proto-tools.js';

const env = testEnv();
const up = urlParts(env.pgUrl);
const skip = !authAvailable && 'external Postgres: the auth users and pg_hba lines are not ours';
let proxy: RunningProxy;

before(async () => {
  proxy = await startProxy(env.pgUrl);
});
after(async () => {
  await proxy?.close();
});

type Method = keyof typeof authUsers;
const METHODS = Object.keys(authUsers) as Method[];

const directUrl = (user: string, password: string, db = 'postgres'): string => withCredentials(env.pgUrl, user, password, db);
const proxyUrl = (user: string, password: string, db = 'postgres'): string => proxy.url(user, password, db);

/** The authentication requests as comparable strings (md5's salt is random per connection). */
function authShape(frames: Frame[]): string[] {
  return frames.map((f) => (f.body.readInt32BE(0) === 5 ? 'R auth=5 <salt>' : f.body.readInt32BE(0) === 11 || f.body.readInt32BE(0) === 12 ? `R auth=${f.body.readInt32BE(0)} <scram data>` : describeFrame(f)));
}

/** Startup via the raw client; returns the auth requests and either the session's first frames or the error. */
async function rawLogin(port: number, host: string, opts: StartupOptions): Promise<{ auth: string[]; error?: Record<string, string>; afterAuth?: string[]; closedAfterError: boolean }> {
  const c = await ProtoConn.connect(port, host);
  try {
    try {
      const frames = await c.startup(opts);
      const rows = await c.rows('select current_user, session_user');
      return { auth: authShape(c.authLog), afterAuth: [...frames.map(describeFrame).filter((f) => !f.startsWith('K')), JSON.stringify(rows)], closedAfterError: false };
    } catch (e) {
      if (!(e instanceof ServerError)) throw e;
      const more = await c.readUntilClose(5000).catch(() => [{ type: '?', body: Buffer.alloc(0) }]);
      return { auth: authShape(c.authLog), error: e.fields, closedAfterError: more.length === 0 };
    }
  } finally {
    c.destroy();
  }
}

async function bothRaw(opts: StartupOptions): Promise<Awaited<ReturnType<typeof rawLogin>>> {
  const direct = await rawLogin(up.port, up.host, opts);
  const proxied = await rawLogin(proxy.port, '127.0.0.1', opts);
  assert.deepEqual(proxied, direct, 'login through the proxy differs from upstream');
  return proxied;
}

describe('each pg_hba method through the proxy', { skip }, () => {
  for (const method of METHODS) {
    const { user, password } = authUsers[method];

    test(`${method}: node-postgres logs in`, async () => {
      const client = new pg.Client({ connectionString: proxyUrl(user, password) });
      await client.connect();
      try {
        const r = await client.query('select current_user as u, 1 + 1 as two');
        assert.deepEqual(r.rows, [{ u: user, two: 2 }]);
      } finally {
        await client.end();
      }
    });

    test(`${method}: psql logs in with PGPASSWORD`, async () => {
      const url = proxy.url(user, '', 'postgres');
      const r = await psql(url, 'select current_user;\n', ['-tA', '-w'], { env: password ? { PGPASSWORD: password } : {} });
      assert.equal(r.stderr, '');
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `${user}\n`);
    });

    test(`${method}: the server asks for the same authentication with and without the proxy`, async () => {
      const r = await bothRaw({ user, password, database: 'postgres' });
      assert.equal(r.error, undefined);
      const expected = { scram: 'R auth=10', md5: 'R auth=5 <salt>', password: 'R auth=3', trust: 'R auth=0' }[method];
      assert.ok(r.auth[0]?.startsWith(expected), `${method} starts with ${expected}: ${r.auth.join(' / ')}`);
      if (method === 'scram') assert.deepEqual(r.auth, [`R auth=10 0x${Buffer.from('SCRAM-SHA-256\0\0').toString('hex')}`, 'R auth=11 <scram data>', 'R auth=12 <scram data>', 'R auth=0']);
    });

    if (method !== 'trust') {
      test(`${method}: a wrong password gives upstream's exact ErrorResponse (28P01)`, async () => {
        const r = await bothRaw({ user, password: 'wrong-password', database: 'postgres' });
        assert.equal(r.error?.C, '28P01');
        assert.equal(r.error?.S, 'FATAL');
        assert.equal(r.error?.M, `password authentication failed for user "${user}"`);
        assert.equal(r.closedAfterError, true, 'connection closed after the FATAL');

        // And as node-postgres and psql see it.
        const seen = async (url: string): Promise<Record<string, unknown>> => {
          const c = new pg.Client({ connectionString: url });
          c.on('error', () => {});
          const err = (await c.connect().then(() => undefined, (e: unknown) => e)) as (Error & Record<string, unknown>) | undefined;
          assert.ok(err, 'login must fail');
          return { code: err.code, severity: err.severity, message: err.message, routine: err.routine, file: err.file };
        };
        assert.deepEqual(await seen(proxyUrl(user, 'wrong-password')), await seen(directUrl(user, 'wrong-password')));
        const p = await psql(proxy.url(user, '', 'postgres'), 'select 1;\n', ['-w'], { env: { PGPASSWORD: 'wrong-password' } });
        const d = await psql(directUrl(user, ''), 'select 1;\n', ['-w'], { env: { PGPASSWORD: 'wrong-password' } });
        assert.equal(p.code, 2);
        const fatal = (s: string): string => s.slice(s.indexOf('FATAL:'));
        assert.equal(fatal(p.stderr), fatal(d.stderr));
        assert.match(p.stderr, /FATAL: {2}password authentication failed/);
      });

      test(`${method}: no password at all: the client gives up as it would upstream`, async () => {
        const p = await psql(proxy.url(user, '', 'postgres'), 'select 1;\n', ['-w']);
        const d = await psql(directUrl(user, ''), 'select 1;\n', ['-w']);
        assert.equal(p.code, 2);
        const tail = (s: string): string => s.replace(/^.*failed: /s, '');
        assert.equal(tail(p.stderr), tail(d.stderr));
        assert.match(p.stderr, /no password supplied/);
      });
    }

    test(`${method}: an unknown database gives 3D000 like upstream`, async () => {
      const r = await bothRaw({ user, password, database: 'no_such_database_auth' });
      assert.equal(r.error?.C, '3D000');
      assert.equal(r.error?.M, 'database "no_such_database_auth" does not exist');
      const seen = async (url: string): Promise<unknown> => {
        const c = new pg.Client({ connectionString: url });
        c.on('error', () => {});
        const err = (await c.connect().then(() => undefined, (e: unknown) => e)) as (Error & Record<string, unknown>) | undefined;
        return err && { code: err.code, message: err.message, severity: err.severity };
      };
      const viaProxy = await seen(proxyUrl(user, password, 'no_such_database_auth'));
      assert.deepEqual(viaProxy, await seen(directUrl(user, password, 'no_such_database_auth')));
      assert.deepEqual(viaProxy, { code: '3D000', message: 'database "no_such_database_auth" does not exist', severity: 'FATAL' });
    });
  }

  test('an unknown role fails exactly like upstream (SCRAM mock authentication)', async () => {
    const r = await bothRaw({ user: 'no_such_role_auth', password: 'whatever', database: 'postgres' });
    assert.equal(r.error?.C, '28P01');
  });

  test('many concurrent logins of all methods', async () => {
    const logins = Array.from({ length: 40 }, (_, i) => {
      const { user, password } = authUsers[METHODS[i % METHODS.length]!];
      return (async () => {
        const c = new pg.Client({ connectionString: proxyUrl(user, password) });
        await c.connect();
        try {
          return (await c.query('select current_user as u')).rows[0].u as string;
        } finally {
          await c.end();
        }
      })();
    });
    const users = await Promise.all(logins);
    assert.deepEqual(users, Array.from({ length: 40 }, (_, i) => authUsers[METHODS[i % METHODS.length]!].user));
  });
});

test('the configured upstream user (SCRAM) logs in through the proxy like directly', async () => {
  const r = await bothRaw({ user: up.user, password: up.password, database: up.database });
  assert.equal(r.error, undefined);
  const wrong = await bothRaw({ user: up.user, password: `${up.password}-nope`, database: up.database });
  // bothRaw has shown it is what upstream says. Only the harness's own server is known to ask for a
  // password; an external one given by TEST_PG_URL may trust this user.
  if (env.pgOwned) assert.equal(wrong.error?.C, '28P01');
});
