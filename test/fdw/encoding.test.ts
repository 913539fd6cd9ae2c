/**
 * client_encoding other than UTF8 (issue 11, item 7): the proxy converts as Postgres converts for a
 * real table. Every check runs the same statements on the Redis foreign table `h` and on its ordinary
 * twin `ht` (same rows), and compares the bytes the client gets: psql (simple protocol) in LATIN1,
 * node-postgres (extended protocol, binary parameters and results, so no driver decoding hides a
 * byte) in WIN1251 and LATIN1; reads, writes, and the 22P05 for a character the encoding lacks.
 * The conversion tables themselves are compared, byte by byte, with upstream's convert_from.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { codecFor, SUPPORTED_ENCODINGS } from '../../src/protocol/encoding.js';
import { statementsTotal } from '../../src/metrics/metrics.js';

/** Reads the proxy answered itself (the proxy runs in this process). */
async function fastReads(): Promise<number> {
  return (await statementsTotal.get()).values.find((v) => v.labels.kind === 'foreign_read_fast')?.value ?? 0;
}

let f: FdwFixture;
let c: pg.Client;
let d: pg.Client;

before(async () => {
  f = await fdwFixture('fdw_encoding', REDIS_DB.encoding);
  c = await connect(f.url);
  d = await connect(f.directUrl);
  await setupSupabase(c, f.redisUrl);
  await c.query(`create foreign table h (key text, value text) server redis_server options (src_type 'hash', src_key 'enc:h')`);
  await c.query('create table ht (key text, value text)');
});

after(async () => {
  await c?.end().catch(() => {});
  await d?.end().catch(() => {});
  await f?.close();
});

/** Both tables hold exactly `rows` (UTF-8, written through a UTF8 session). */
async function seed(rows: [string, string][]): Promise<void> {
  await c.query('delete from h');
  await c.query('delete from ht');
  for (const [k, v] of rows) {
    await c.query('insert into h values ($1, $2)', [k, v]);
    await c.query('insert into ht values ($1, $2)', [k, v]);
  }
}

/** psql's stdout and stderr for a script, as raw bytes, with PGCLIENTENCODING set. */
function psqlBytes(url: string, script: Buffer, encoding: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const child = execFile('psql', ['-X', '-At', '-d', url, '-f', '-'], { encoding: 'buffer', env: { ...process.env, PGCLIENTENCODING: encoding } }, (_e, stdout, stderr) => resolve(Buffer.concat([stdout, Buffer.from('--stderr--\n'), stderr])));
    child.stdin!.end(script);
  });
}

describe('conversion tables', () => {
  test('every byte of every supported encoding converts as upstream converts it (or fails where upstream fails)', async () => {
    await d.query(`create or replace function pg_temp.conv(enc text) returns table(b int, ch text) language plpgsql as $$
      begin
        for i in 128..255 loop
          b := i;
          begin ch := convert_from(decode(lpad(to_hex(i), 2, '0'), 'hex'), enc); exception when others then ch := null; end;
          return next;
        end loop;
      end $$`);
    for (const enc of SUPPORTED_ENCODINGS) {
      const codec = codecFor(enc)!;
      const upstream = (await d.query({ text: 'select b, ch from pg_temp.conv($1) order by b', values: [enc], rowMode: 'array' })).rows as [string, string | null][];
      const ours = upstream.map(([b]) => {
        try {
          return codec.decode(Uint8Array.of(Number(b)));
        } catch {
          return null;
        }
      });
      assert.deepEqual(ours, upstream.map(([, ch]) => ch), enc);
      // And back: every character a byte stands for encodes to that byte.
      for (const [b, ch] of upstream) if (ch !== null) assert.deepEqual([...codec.encode(ch)], [Number(b)], `${enc} ${b}`);
    }
  });
});

describe('psql in LATIN1 (simple protocol)', () => {
  test('writes store UTF-8 in Redis, reads come back in LATIN1, and a character LATIN1 lacks is 22P05, all as for the twin table', async () => {
    await seed([
      ['utf', 'caf\u00e9 na\u00efve'],
      ['macron', '\u0101 (a with macron)'],
    ]);
    const script = (t: string): Buffer =>
      Buffer.from(
        [
          `insert into ${t} values ('latin', 'caf\u00e9 \u00f1 \u00ff \u00a4');`,
          `update ${t} set value = value || ' \u00e0' where key = 'latin';`,
          `select key, value, length(value) from ${t} where key in ('utf', 'latin') order by key;`,
          `select value from ${t} where value = 'caf\u00e9 na\u00efve';`,
          `select * from ${t} where key = 'macron';`,
          `select count(*) from ${t} where value like '%\u00e9%';`,
          `delete from ${t} where value = 'caf\u00e9 na\u00efve' returning value;`,
          `select key from ${t} order by key;`,
          // Upstream's error, quoting the client's text, with its position mapped back by the proxy.
          `select key, 'caf\u00e9'::int from ${t};`,
        ].join('\n'),
        'latin1',
      );
    const viaProxy = await psqlBytes(f.url, script('h'), 'LATIN1');
    const direct = await psqlBytes(f.directUrl, script('ht'), 'LATIN1');
    // psql echoes the statement's line with an error: the table's name is the one difference.
    const out = viaProxy.toString('latin1');
    assert.equal(out.replaceAll(' from h;', ' from ht;'), direct.toString('latin1'));
    assert.match(out, /latin\|caf\u00e9 \u00f1 \u00ff \u00a4 \u00e0\|/);
    assert.match(out, /ERROR: {2}character with byte sequence 0xc4 0x81 in encoding "UTF8" has no equivalent in encoding "LATIN1"/);
    assert.equal(await f.redis.hget('enc:h', 'latin'), 'caf\u00e9 \u00f1 \u00ff \u00a4 \u00e0');
    assert.equal(await f.redis.hget('enc:h', 'utf'), null);
    assert.match(out, /invalid input syntax for type integer: "caf\u00e9"/);
  });

  test("the proxy's own errors reach the client in its encoding", async () => {
    await c.query(`create foreign table hk (key text, value text) server redis_server options (src_type 'hash', src_key 'enc:cl\u00e9')`);
    await f.redis.hset(Buffer.from('enc:cl\u00e9', 'utf8'), 'k', Buffer.from([0x78, 0xff]));
    const out = (await psqlBytes(f.url, Buffer.from('select * from hk;', 'latin1'), 'LATIN1')).toString('latin1');
    assert.match(out, /ERROR: {2}invalid byte sequence for encoding "UTF8" in Redis key "enc:cl\u00e9"/);
  });
});

describe('node-postgres (extended protocol, binary parameters and results)', () => {
  for (const [enc, label, lacking] of [
    ['WIN1251', 'windows-1251', 'caf\u00e9'],
    ['LATIN1', 'latin1', '\u0416'],
  ] as const) {
    test(`${enc}: the same bytes as the twin table for reads, writes and a value the encoding lacks`, async () => {
      const text = enc === 'WIN1251' ? '\u041f\u0440\u0438\u0432\u0435\u0442 \u0451\u0436 \u2116' : 'gr\u00fc\u00df \u00e9t\u00e9 \u00bd';
      const inEnc = codecFor(enc)!.encode(text);
      assert.equal(new TextDecoder(label).decode(inEnc), text);
      await seed([['lacking', lacking]]);
      const run = async (url: string, t: string): Promise<unknown[]> => {
        const k = await connect(url);
        const out: unknown[] = [];
        const q = async (sql: string, values: unknown[] = []): Promise<void> => {
          out.push(
            // Binary results: the driver hands back each value's bytes as they came.
            await k.query({ text: sql, values, rowMode: 'array', binary: true } as pg.QueryArrayConfig).then(
              (r: pg.QueryArrayResult) => r.rows,
              (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
            ),
          );
        };
        try {
          await k.query(`set client_encoding = '${enc}'`);
          await q(`insert into ${t} values ($1, $2)`, [Buffer.from('w'), inEnc]);
          // node-postgres sends statement text as UTF-8 whatever the encoding: literals stay ASCII here (psql covers the rest).
          await q(`insert into ${t} values ('lit', 'lit-' || $1)`, [inEnc]);
          await q(`update ${t} set value = value || $1 where key = $2`, [inEnc, Buffer.from('w')]);
          await q(`select key, value from ${t} where key = $1`, [Buffer.from('w')]);
          await q(`select key, value from ${t} where value = $1 order by key`, [Buffer.concat([inEnc, inEnc])]);
          await q(`select value from ${t} where key = 'lacking'`);
          await q(`select count(*) from ${t} where key = 'lacking'`);
          await q(`update ${t} set value = $1 where key = 'lit' returning key, value`, [inEnc]);
          await q(`select key, value from ${t} order by key`);
        } finally {
          await k.end();
        }
        return out;
      };
      const viaProxy = await run(f.url, 'h');
      const direct = await run(f.directUrl, 'ht');
      assert.deepEqual(viaProxy, direct);
      assert.match(JSON.stringify(viaProxy), /22P05/);
      assert.equal(await f.redis.hget('enc:h', 'w'), text + text);
      assert.equal(await f.redis.hget('enc:h', 'lit'), text);
    });
  }
});

describe('the local fast path in a converted encoding', () => {
  test('LATIN1 point reads are answered locally with the same bytes as the twin table; a value LATIN1 lacks falls back to upstream for its 22P05', async () => {
    await seed([
      ['caf\u00e9', '\u00e9t\u00e9 \u00bd'],
      ['plain', 'x'],
      ['macron', '\u0101'],
    ]);
    // Simple protocol (psql), a literal in LATIN1 bytes as the pin.
    const script = (t: string): Buffer => Buffer.from([`select value from ${t} where key = 'caf\u00e9';`, `select key, value from ${t} where key in ('plain', 'caf\u00e9') order by key;`].join('\n'), 'latin1');
    const before = await fastReads();
    const viaProxy = await psqlBytes(f.url, script('h'), 'LATIN1');
    assert.equal(await fastReads(), before + 1, 'the single-statement point read was answered locally');
    assert.equal(viaProxy.toString('latin1'), (await psqlBytes(f.directUrl, script('ht'), 'LATIN1')).toString('latin1'));
    assert.match(viaProxy.toString('latin1'), /^\u00e9t\u00e9 \u00bd$/m);
    // Extended protocol, binary parameter and results.
    const run = async (url: string, t: string): Promise<unknown[]> => {
      const k = await connect(url);
      const out: unknown[] = [];
      try {
        await k.query(`set client_encoding = 'LATIN1'`);
        for (const key of ['caf\u00e9', 'macron', 'plain']) {
          for (const binary of [true, false]) {
            out.push(
              await k.query({ text: `select key, value from ${t} where key = $1`, values: [Buffer.from(key, 'latin1')], rowMode: 'array', binary } as pg.QueryArrayConfig).then(
                (r: pg.QueryArrayResult) => (binary ? r.rows : r.rows.map((row) => row.map((v) => Buffer.from(String(v), 'latin1')))),
                (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
              ),
            );
          }
        }
      } finally {
        await k.end();
      }
      return out;
    };
    const fastBefore = await fastReads();
    const viaProxyExt = await run(f.url, 'h');
    // café twice and plain twice are local; the macron row's 22P05 comes from the upstream path.
    assert.equal(await fastReads(), fastBefore + 4);
    assert.deepEqual(viaProxyExt, await run(f.directUrl, 'ht'));
    assert.match(JSON.stringify(viaProxyExt), /22P05/);
    // Typed columns: a varchar(n)'s text is encoded, an integer's binary form is left alone.
    for (const [t, type, v] of [['hi', 'int8', '-300'], ['hv', 'varchar(8)', '\u00e9t\u00e9 \u00bd']] as const) {
      await c.query(`create foreign table ${t} (key text, value ${type}) server redis_server options (src_type 'hash', src_key 'enc:${t}')`);
      await c.query(`create table ${t}t (key text, value ${type})`);
      for (const into of [t, `${t}t`]) await c.query(`insert into ${into} values ('\u00e9t\u00e9', $1)`, [v]);
      const typed = async (url: string, from: string): Promise<unknown[]> => {
        const k = await connect(url);
        try {
          await k.query(`set client_encoding = 'LATIN1'`);
          const out: unknown[] = [];
          for (const binary of [true, false]) {
            out.push((await k.query({ text: `select key, value from ${from} where key = $1`, values: [Buffer.from('\u00e9t\u00e9', 'latin1')], rowMode: 'array', binary } as pg.QueryArrayConfig)).rows);
          }
          return out;
        } finally {
          await k.end();
        }
      };
      const typedBefore = await fastReads();
      const typedProxy = await typed(f.url, t);
      assert.equal(await fastReads(), typedBefore + 2, type);
      assert.deepEqual(typedProxy, await typed(f.directUrl, `${t}t`), type);
    }
  });
});
