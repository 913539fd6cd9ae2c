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
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
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

/** Redis's hash as rows, and the twin table's (read in UTF8), each sorted by key. */
async function bothTables(): Promise<{ redis: [string, string][]; twin: [string, string][] }> {
  const redis = Object.entries(await f.redis.hgetall('enc:h')).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const twin = (await d.query({ text: 'select key, value from ht order by key collate "C"', rowMode: 'array' })).rows as [string, string][];
  return { redis, twin };
}

describe('values the client encoding lacks, between Redis and upstream', () => {
  // '€' (LATIN1 has no euro sign) and '日本' are in Redis; the statements only pass them along or compute
  // with them, and a real table takes that in a LATIN1 session: only what is shown to the client converts.
  const rows: [string, string][] = [
    ['euro', '\u20ac'],
    ['jp', '\u65e5\u672c'],
    ['plain', 'caf\u00e9'],
  ];

  test('psql in LATIN1: UPDATE, INSERT … SELECT and DELETE over such values succeed, and only RETURNING or SELECT of one is 22P05, as on the twin', async () => {
    await seed(rows);
    const script = (t: string): Buffer =>
      Buffer.from(
        [
          `update ${t} set value = value || 'x' where key in ('euro', 'jp');`,
          `insert into ${t} select key || '2', value || '\u00e9' from ${t} where key in ('euro', 'jp');`,
          `insert into ${t} values ('computed', chr(8364) || chr(26085) || 'z');`,
          `update ${t} set key = key || '3' where key = 'jp2';`,
          `delete from ${t} where key = 'euro2';`,
          `insert into ${t} (key, value) values ('plain', 'caf\u00e9 au lait') on conflict (key) do update set value = excluded.value;`,
          `select key, length(value), value like '%' || chr(8364) || '%' from ${t} order by key collate "C";`,
          `update ${t} set value = value || 'y' where key = 'euro' returning value;`,
          `select value from ${t} where key = 'jp';`,
          `select key, value from ${t} where key = 'plain';`,
        ].join('\n'),
        'latin1',
      );
    // ON CONFLICT needs a unique key on the twin, as the hash field is on Redis.
    await d.query('create unique index if not exists ht_key on ht (key)');
    const viaProxy = await psqlBytes(f.url, script('h'), 'LATIN1');
    const direct = await psqlBytes(f.directUrl, script('ht'), 'LATIN1');
    assert.equal(viaProxy.toString('latin1'), direct.toString('latin1'));
    assert.equal(direct.toString('latin1').match(/ERROR: {2}character with byte sequence/g)?.length, 2, `only the two statements that show such a value fail: ${direct.toString('latin1')}`);
    const { redis, twin } = await bothTables();
    assert.deepEqual(redis, twin);
    assert.deepEqual(Object.fromEntries(redis), { computed: '\u20ac\u65e5z', euro: '\u20acx', jp: '\u65e5\u672cx', jp23: '\u65e5\u672cx\u00e9', plain: 'caf\u00e9 au lait' });
  });

  test('node-postgres in LATIN1 and WIN1251 (binary parameters and results): the same results and the same Redis contents as the twin', async () => {
    for (const enc of ['LATIN1', 'WIN1251']) {
      await seed(rows);
      const run = async (url: string, t: string): Promise<unknown[]> => {
        const k = await connect(url);
        const out: unknown[] = [];
        const q = async (sql: string, values: unknown[] = []): Promise<void> => {
          out.push(
            await k.query({ text: sql, values, rowMode: 'array', binary: true } as pg.QueryArrayConfig).then(
              (r: pg.QueryArrayResult) => [r.command, r.rowCount, r.rows],
              (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
            ),
          );
        };
        try {
          await k.query(`set client_encoding = '${enc}'`);
          await q(`update ${t} set value = value || $1 where key = $2`, [Buffer.from('!'), Buffer.from('euro')]);
          await q(`insert into ${t} select key || '2', value from ${t} where key = $1`, [Buffer.from('jp')]);
          await q(`insert into ${t} values ($1, chr(8364) || $2)`, [Buffer.from('computed'), Buffer.from('z')]);
          await q(`delete from ${t} where value = chr(8364) || 'z'`);
          await q(`update ${t} set value = value || 'w' where key = 'jp' returning key`);
          await q(`update ${t} set value = value || 'v' where key = 'jp' returning value`);
          await q(`select key, length(value) from ${t} order by key collate "C"`);
        } finally {
          await k.end();
        }
        return out;
      };
      const viaProxy = await run(f.url, 'h');
      const direct = await run(f.directUrl, 'ht');
      assert.deepEqual(viaProxy, direct, enc);
      assert.match(JSON.stringify(direct), /22P05/, `${enc}: RETURNING such a value fails on the twin too`);
      const { redis, twin } = await bothTables();
      assert.deepEqual(redis, twin, enc);
    }
  });

  test('what a typed column writes to Redis is its output, the same bytes whatever the client encoding; NULL is still NULL', async () => {
    await c.query(`create foreign table hb (key text, value bool) server redis_server options (src_type 'hash', src_key 'enc:hb')`);
    await c.query(`create foreign table hc (key text, value char(4)) server redis_server options (src_type 'hash', src_key 'enc:hc')`);
    const k = await connect(f.url);
    const nulls: unknown[] = [];
    try {
      for (const enc of ['UTF8', 'LATIN1']) {
        await k.query(`set client_encoding = '${enc}'`);
        await k.query(`insert into hb values ('${enc}', true)`);
        // Redis has no NULL: 23502 in either encoding, never an empty string written.
        nulls.push(await k.query(`insert into hb values ('${enc}-null', null)`).then(() => 'written', (e: { code?: string }) => e.code));
        await k.query(`insert into hc values ('${enc}', chr(233))`);
        await k.query(`update hc set value = value || 'b' where key = '${enc}'`);
      }
    } finally {
      await k.end();
    }
    assert.deepEqual(nulls, ['23502', '23502']);
    assert.deepEqual(await f.redis.hgetall('enc:hb'), { UTF8: 't', LATIN1: 't' });
    assert.deepEqual(await f.redis.hgetall('enc:hc'), { UTF8: '\u00e9b  ', LATIN1: '\u00e9b  ' });
  });
});

describe('COPY (SELECT … FROM a foreign table) TO STDOUT in a converted encoding', () => {
  test('psql in LATIN1: the twin table\'s bytes, and its 22P05 for a value LATIN1 lacks', async () => {
    await seed([
      ['caf\u00e9', 'cr\u00e8me \u00bd'],
      ['plain', 'x'],
    ]);
    const script = (t: string): Buffer =>
      Buffer.from(
        [
          `copy (select key, value from ${t} order by key collate "C") to stdout;`,
          `copy (select value, length(key) from ${t} where key = 'caf\u00e9') to stdout (format csv, header);`,
          `copy (select key from ${t} where value = 'cr\u00e8me \u00bd') to stdout;`,
          `insert into ${t} values ('euro', chr(8364));`,
          `copy (select count(*), max(length(value)) from ${t}) to stdout;`,
          `copy (select value from ${t} where key = 'euro') to stdout;`,
          `copy (select key, value from ${t} order by key collate "C") to stdout (format binary);`,
        ].join('\n'),
        'latin1',
      );
    const viaProxy = await psqlBytes(f.url, script('h'), 'LATIN1');
    const direct = await psqlBytes(f.directUrl, script('ht'), 'LATIN1');
    assert.equal(viaProxy.toString('latin1'), direct.toString('latin1'));
    assert.ok(direct.includes(Buffer.from('caf\u00e9\tcr\u00e8me \u00bd\n', 'latin1')), 'the LATIN1 bytes of the row');
    assert.match(direct.toString('latin1'), /ERROR: {2}character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1"/);
  });

  test('node-postgres (pg-copy-streams) in WIN1251: the twin table\'s bytes', async () => {
    await seed([
      ['\u0451\u0436', '\u041f\u0440\u0438\u0432\u0435\u0442 \u2116'],
      ['plain', 'x'],
    ]);
    const run = async (url: string, t: string): Promise<string> => {
      const k = await connect(url);
      try {
        await k.query(`set client_encoding = 'WIN1251'`);
        const chunks: Buffer[] = [];
        await pipeline(
          k.query(copyTo(`copy (select key, value, length(value) from ${t} order by key collate "C") to stdout`)),
          new Writable({
            write(chunk: Buffer, _enc, cb) {
              chunks.push(chunk);
              cb();
            },
          }),
        );
        return Buffer.concat(chunks).toString('hex');
      } finally {
        await k.end();
      }
    };
    const viaProxy = await run(f.url, 'h');
    const direct = await run(f.directUrl, 'ht');
    assert.equal(viaProxy, direct);
    assert.ok(Buffer.from(direct, 'hex').includes(codecFor('WIN1251')!.encode('\u0451\u0436\t\u041f\u0440\u0438\u0432\u0435\u0442 \u2116\t8\n')));
  });
});
