/**
 * The local fast path, differentially: seeded random single-table reads (plain columns, `*` or
 * `count(*)`) over every Redis type and both seed dialects run through a proxy with the fast path on
 * and one with it off (`fastPath: false`, the upstream path), and the reply bytes must be identical,
 * frame for frame. The fast proxy reaches
 * Postgres through a counting relay, so the test also knows which statements cost an upstream round
 * trip: those the fast path should answer must send upstream nothing at all, Sync included.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect } from '../support/fdw-sql.js';
import { CountingRelay } from '../support/counting-relay.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { msg, ProtoConn, urlParts, type Frame, type Param } from '../support/proto-client.js';
import { prng } from '../support/frames.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { PROBE_AFTER_MS } from '../../src/session/cancel.js';

const DB = REDIS_DB.fastPath;
const SEED = Number(process.env.FAST_PATH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const STATEMENTS = 360;

let f: FdwFixture;
let fast: RunningProxy;
/** Counts the bytes the fast proxy sends to Postgres. */
let relay: CountingRelay;
let setup: pg.Client;

interface Table {
  name: string;
  /** Declared columns; `fast` when every one is text or varchar. */
  cols: { name: string; type: string }[];
  /** The column a WHERE may pin exactly (hash field, or a multi-key table's key), and values to try. */
  pin?: { col: string; values: string[] };
  /** Typed columns whose values are all canonical (so fast); false: some must fall back upstream. */
  canonical?: boolean;
}

const tables: Table[] = [];
/** Multi-key tables with a row per element: only a read counts them (the others count keys). */
const ROW_PER_ELEMENT = new Set(['rs_ghash', 'rs_gset', 'rs_glist']);

/** Values that look binary or foreign: control characters, a backslash escape, emoji, combining marks, empty. */
const VALUES = ['', 'a', 'hello world', 'x\u0001y', '\\x00ff', 'naïve café', '日本語', '🙂👍', 'e\u0301', "it's", 'tab\tnew\nline', ' lead', '0', 'NULL'];

const IB = { max: '2147483647', min: '-2147483648', over: '2147483648', sp: ' 7', plus: '+7', lead: '007', neg0: '-0', abc: 'abc', empty: '', big: '9223372036854775807', big1: '9223372036854775808', nmin: '-9223372036854775808', ok: '12', s: '32768' };

async function load(): Promise<void> {
  const r = f.redis;
  const fields = Object.fromEntries(VALUES.map((v, i) => [v, `v${i}:${VALUES[(i + 3) % VALUES.length]}`]));
  await r.hset('h', fields);
  await r.rpush('l', ...VALUES);
  await r.sadd('s', ...VALUES);
  await r.zadd('z', ...VALUES.flatMap((v, i) => [String(i * 1.5), v]));
  await r.set('str', 'a string ✓');
  await r.xadd('x', '1-1', 'f', 'v1');
  await r.xadd('x', '2-1', 'f', 'ünï', 'g', '');
  for (const k of ['', 'a', 'b ü', 'c']) {
    await r.hset(`gh:${k}`, { one: `1${k}`, '': `empty-${k}`, ü: 'u' });
    await r.sadd(`gs:${k}`, 'm1', k || 'empty');
    await r.rpush(`gl:${k}`, 'e1', 'e2');
  }
  // Typed columns. Canonical values the fast path writes itself (text and binary); the others
  // (whitespace, sign, leading zeros, out of range, not a number or not t/f) send it upstream.
  await r.hset('ic', { a: '0', b: '-5', c: '42', d: '32767', e: '-32768', f: '7' });
  await r.hset('ib', IB);
  await r.hset('bo', { t: 't', f: 'f', true: 'true', ' t': ' t', '1': '1', no: 'no', x: 'x', empty: '' });
  await r.hset('boc', { t: 't', f: 'f', tt: 't' });
  await r.rpush('li', '1', '-9223372036854775808', '9223372036854775807', '0', '-1');
  // Keys of another type under a multi-key pattern are not the table's: neither read nor counted.
  await r.sadd('gh:other', 'm');
  await r.set('gstr:a', '');
  await r.set('gstr:b', 'x');
  await r.hset('gstr:h', 'f', 'v');
  // A value Postgres text can't hold: both paths must refuse it the same way (22021).
  await r.hset('bad', { ok: 'fine', broken: Buffer.from([0x61, 0xff, 0x62]) });
  await r.hset('fl', FLOATS.fields);
  // Whole keys of many reply chunks, multi-byte characters cut by them; a NUL or invalid UTF-8 last,
  // after megabytes of good rows.
  const texts = ['ü', '日本語', '🙂👍', 'e\u0301', 'plain ascii value'];
  const big: Record<string, string> = {};
  for (let i = 0; i < 20_000; i++) big[`f${i}`] = `${texts[i % texts.length]!.repeat(1 + (i % 7))}-${i}`;
  await r.hset('big:ok', big);
  await r.hset('big:nul', big);
  await r.hset('big:nul', 'last', 'a\0b');
  await r.hset('big:bad', big);
  await r.hset('big:bad', 'last', Buffer.from([0x61, 0xe6, 0x97, 0x62]));
  await r.rpush('big:list', ...Object.values(big));
  await r.zadd('big:zset', ...Object.values(big).flatMap((v, i) => [i, v]));
  // Scores float8out prints as Redis wrote them and ones it prints otherwise (1e+16, 0.1 + 0.2).
  await r.zadd('big:zsetf', ...Object.values(big).flatMap((v, i) => [i % 3 === 0 ? i / 7 : i % 3 === 1 ? i * 1e16 : i, v]));
  // Canonical integers, then one that isn't: upstream answers, and no row may have left before.
  await r.hset('big:int', Object.fromEntries(Object.keys(big).map((k, i) => [k, String(i - 10_000)])));
  await r.hset('big:int', 'last', ' 7');
}

/**
 * double precision values: hand-picked edges (notation thresholds, -0, infinities, extremes, denormals)
 * and what upstream refuses or reads differently (overflow, underflow to zero, NaN, blanks, hex), then
 * random doubles written as Redis writes scores (shortest) and as %.17g would.
 */
function floatValues(): { fields: Record<string, string>; edge: string[]; good: string[]; local: string[] } {
  const edge = ['0', '-0', '1', '-1.5', '0.1', '0.0001', '0.00001', '1e-05', '123456789012345', '1234567890123456', '999999999999999.9', '1e15', '1e+16', '1E22', '.5', '5.', '007.50',
    '1.7976931348623157e308', '5e-324', '2.2250738585072014e-308', '4.9406564584124654e-324', 'inf', '-inf', 'Infinity', '-INF', '9007199254740993', '0.30000000000000004',
    '1e400', '1e-400', '0e-400', 'nan', ' 1', '1 ', '0x10', '', '+1', '1_0'];
  const rand = prng(SEED ^ 0x5eed);
  const fields: Record<string, string> = {};
  edge.forEach((v, i) => (fields[`e${i}`] = v));
  const buf = Buffer.alloc(8);
  for (let i = 0; i < 400; i++) {
    let d: number;
    do {
      rand.bytes(8).copy(buf);
      d = buf.readDoubleBE(0);
    } while (!Number.isFinite(d));
    fields[`r${i}`] = i % 2 ? String(d) : d.toPrecision(17);
  }
  // Upstream fails the statement for e27 (overflow), e28 (underflow), e34 ('') and e36 ('1_0'); NaN,
  // blanks, hex and '+1' it reads, but the fast path leaves them to it.
  const good = Object.keys(fields).filter((k) => !/^e(27|28|34|36)$/.test(k));
  const local = good.filter((k) => !/^e(30|31|32|33|35)$/.test(k));
  return { fields, edge, good, local };
}
const FLOATS = floatValues();

async function ddl(): Promise<void> {
  const q = (sql: string): Promise<unknown> => setup.query(sql);
  await q(`create foreign data wrapper redis_wrapper handler redis_fdw_handler`);
  await q(`create server sb foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}')`);
  await q(`create server rs foreign data wrapper redis_wrapper options (host_port '${f.redisHostPort}')`);
  const fieldValues = [...VALUES, 'missing', 'MISSING'];
  const keyValues = ['gh:', 'gh:a', 'gh:b ü', 'gs:c', 'gl:a', 'nope', ''];
  const sb = (name: string, cols: string, type: string, key: string, pin?: Table['pin'], canonical?: boolean): Table => {
    void q(`create foreign table ${name} (${cols}) server sb options (src_type '${type}', src_key '${key}')`);
    return { name, cols: cols.split(', ').map((c) => ({ name: c.split(' ')[0]!, type: c.split(' ').slice(1).join(' ') })), pin, canonical };
  };
  const rs = (name: string, cols: string, type: string, key: string, pin?: Table['pin'], canonical?: boolean): Table => {
    void q(`create foreign table ${name} (${cols}) server rs options (database '${DB}', table_type '${type}', table_key_prefix '${key}')`);
    return { name, cols: cols.split(', ').map((c) => ({ name: c.split(' ')[0]!, type: c.split(' ').slice(1).join(' ') })), pin, canonical };
  };
  // Not in `tables`: the random statements would read megabytes each.
  for (const [t, cols, type, key] of [['big_ok', 'key text, value text', 'hash', 'big:ok'], ['big_nul', 'key text, value text', 'hash', 'big:nul'], ['big_bad', 'key text, value text', 'hash', 'big:bad'], ['big_list', 'element text', 'list', 'big:list'], ['big_zset', 'element text', 'zset', 'big:zset'], ['big_zsetf', 'element text, score float8', 'zset', 'big:zsetf'], ['big_int', 'key text, value integer', 'hash', 'big:int']] as const) {
    void q(`create foreign table ${t} (${cols}) server sb options (src_type '${type}', src_key '${key}')`);
  }
  const ibKeys = [...Object.keys(IB), 'none'];
  tables.push(
    sb('sb_hash', 'key text, value text', 'hash', 'h', { col: 'key', values: fieldValues }),
    sb('sb_hash_vc', 'key varchar, value character varying', 'hash', 'h', { col: 'key', values: fieldValues }),
    sb('sb_hash_n', 'key text, value name', 'hash', 'h', { col: 'key', values: fieldValues }),
    sb('sb_bad', 'key text, value text', 'hash', 'bad', { col: 'key', values: ['ok', 'broken', 'none'] }),
    sb('sb_list', 'element text', 'list', 'l'),
    sb('sb_set', 'element text', 'set', 's'),
    sb('sb_zset', 'element text', 'zset', 'z'),
    sb('sb_stream', 'id text, items jsonb', 'stream', 'x'),
    sb('sb_multi', 'key text, items jsonb', 'multi_hash', 'gh:*', { col: 'key', values: keyValues }),
    rs('rs_hash', 'key text, value text', 'hash', 'h', { col: 'key', values: fieldValues }),
    rs('rs_list', 'element text', 'list', 'l'),
    rs('rs_set', 'member text', 'set', 's'),
    rs('rs_zset', 'member text', 'zset', 'z'),
    rs('rs_zset_s', 'member text, score float8', 'zset', 'z'),
    rs('rs_string', 'value text', 'string', 'str'),
    rs('rs_ghash', 'key text, field text, value text', 'hash', 'gh:*', { col: 'key', values: keyValues }),
    rs('rs_gset', 'key text, member text', 'set', 'gs:*', { col: 'key', values: keyValues }),
    rs('rs_glist', 'key text, element text, index int', 'list', 'gl:*', { col: 'key', values: keyValues }, true),
    sb('sb_int2', 'key text, value smallint', 'hash', 'ic', { col: 'key', values: ['a', 'd', 'e', 'zz'] }, true),
    sb('sb_int4', 'key text, value int4', 'hash', 'ic', { col: 'key', values: ['a', 'b', 'c', 'zz'] }, true),
    rs('rs_int8', 'key text, value bigint', 'hash', 'ic', { col: 'key', values: ['b', 'f', 'zz'] }, true),
    sb('sb_mix2', 'key text, value int2', 'hash', 'ib', { col: 'key', values: ibKeys }),
    sb('sb_mix4', 'key text, value integer', 'hash', 'ib', { col: 'key', values: ibKeys }),
    rs('rs_mix8', 'key text, value int8', 'hash', 'ib', { col: 'key', values: ibKeys }),
    sb('sb_bool', 'key text, value boolean', 'hash', 'bo', { col: 'key', values: ['t', 'f', 'true', ' t', '1', 'no', 'x', 'empty'] }),
    rs('rs_boolc', 'key varchar, value bool', 'hash', 'boc', { col: 'key', values: ['t', 'f', 'tt', 'x'] }, true),
    rs('rs_list_i8', 'element int8', 'list', 'li', undefined, true),
    sb('sb_vc3', 'key text, value varchar(8)', 'hash', 'h', { col: 'key', values: fieldValues }),
    rs('rs_char', 'key text, value char(9)', 'hash', 'h', { col: 'key', values: fieldValues }),
    rs('rs_charc', 'key char(3), value character varying(4)', 'hash', 'boc', undefined, true),
    rs('rs_gstr', 'key text, value text', 'string', 'gstr:*', { col: 'key', values: ['gstr:a', 'gstr:b', 'gstr:h', 'nope'] }),
    sb('sb_multi1', 'key text, items jsonb', 'multi_set', 'gs:a'),
    sb('sb_multi0', 'key text, items jsonb', 'multi_list', 'gs:a'),
    rs('rs_str_empty', 'value text', 'string', 'gstr:a'),
    rs('rs_str_none', 'value text', 'string', 'nope'),
    rs('rs_str_hash', 'value text', 'string', 'h'),
    rs('rs_float', 'key text, value float8', 'hash', 'fl', { col: 'key', values: ['e0', 'e1', 'e16', 'e21', 'e27', 'e30', 'r1', 'r2'] }),
  );
  await q('select 1'); // the creates above were queued on this client; wait for them all
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

interface Case {
  sql: string;
  params: Param[];
  paramFormats: number[];
  resultFormats: number[];
  protocol: 'simple' | 'extended' | 'prepared';
  /** The generator's own judgement: the fast path must answer this one with no upstream bytes. */
  expectFast: boolean;
}

function generate(rand: ReturnType<typeof prng>): Case {
  const t = rand.pick(tables);
  const allText = t.canonical === true || t.cols.every((c) => c.type === 'text' || c.type === 'varchar' || c.type === 'character varying');
  const protocol = rand.pick(['simple', 'extended', 'prepared'] as const);
  const alias = rand.next() < 0.2 ? 'q' : undefined;
  const qual = alias ?? t.name;
  let exact = true;
  // Output columns.
  let targets: string;
  let ncols: number;
  const roll = rand.next();
  if (roll < 0.12) {
    targets = rand.next() < 0.5 ? 'count(*)' : 'count(*) as "n ü"';
    ncols = 1;
  } else if (roll < 0.4) {
    targets = '*';
    ncols = t.cols.length;
  } else if (roll < 0.5) {
    targets = `${qual}.*`;
    ncols = t.cols.length;
  } else {
    const n = rand.int(1, 3);
    const picks = Array.from({ length: n }, () => rand.pick(t.cols));
    targets = picks.map((c, i) => (rand.next() < 0.3 ? `${qual}.${c.name}` : c.name) + (rand.next() < 0.25 ? ` as "Out ${i} é"` : '')).join(', ');
    ncols = n;
    if (rand.next() < 0.08) {
      targets += ', length(' + t.cols[0]!.name + ')';
      ncols++;
      exact = false;
    }
  }
  // WHERE.
  const params: Param[] = [];
  const paramFormats: number[] = [];
  const param = (v: Param, fmt = 0): string => {
    params.push(v);
    paramFormats.push(fmt);
    return `$${params.length}`;
  };
  const useParams = protocol !== 'simple';
  let where = '';
  const w = rand.next();
  if (t.pin && w < 0.55) {
    const v = (): string => rand.pick(t.pin!.values);
    const one = (): string => {
      if (useParams && rand.next() < 0.6) {
        const r = rand.next();
        if (r < 0.1) return param(null);
        return param(v(), rand.next() < 0.3 ? 1 : 0) + (rand.next() < 0.15 ? '::varchar' : '');
      }
      return rand.next() < 0.05 ? 'NULL' : quote(v());
    };
    where = rand.next() < 0.7 ? ` where ${t.pin.col} = ${one()}` : ` where ${t.pin.col} in (${one()}, ${one()}${rand.next() < 0.5 ? `, ${one()}` : ''})`;
    if (rand.next() < 0.15) where += ` and ${qual}.${t.pin.col} = ${one()}`;
  } else if (w < 0.62) {
    const c = rand.pick(t.cols);
    where = ` where ${c.name}::text like ${quote('%a%')}`;
    exact = false;
  } else if (w < 0.85) {
    // A WHERE the fast path evaluates itself (fast-filter.ts) when it only compares text columns.
    const textCols = t.cols.filter((c) => c.type === 'text' || c.type === 'varchar' || c.type === 'character varying');
    if (textCols.length > 0) {
      const f = filterWhere(rand, textCols.map((c) => (rand.next() < 0.3 ? `${qual}.${c.name}` : c.name)), useParams ? param : undefined);
      where = ` where ${f.sql}`;
      if (!f.local) exact = false;
    }
  }
  // LIMIT / OFFSET.
  let tail = '';
  const lim = rand.next();
  if (lim < 0.25) tail = ` limit ${rand.int(0, 4)}`;
  else if (lim < 0.35) tail = ` limit ${rand.int(0, 3)} offset ${rand.int(0, 3)}`;
  else if (lim < 0.45 && useParams) tail = ` limit ${param(rand.next() < 0.15 ? null : String(rand.int(0, 5)))}`;
  else if (lim < 0.5) tail = ` offset ${rand.int(1, 5)}`;
  else if (lim < 0.53) tail = ' limit all';
  const order = rand.next() < 0.06 ? ` order by 1` : '';
  if (order) exact = false;
  const sql = `select ${targets} from ${t.name}${alias ? ` ${alias}` : ''}${where}${order}${tail}`;
  // Result formats.
  let resultFormats: number[] = [];
  if (protocol !== 'simple') {
    const r = rand.next();
    if (r < 0.3) resultFormats = [1];
    else if (r < 0.5) resultFormats = Array.from({ length: ncols }, () => rand.int(0, 1));
    else if (r < 0.55) resultFormats = [0, 1, 0, 1, 0].slice(0, ncols + 1); // a count upstream refuses
  }
  const formatsOk = resultFormats.length <= 1 || resultFormats.length === ncols;
  // A lone count(*) with no WHERE of a one-key table is Redis's length command: types and values don't matter.
  const lengthCount = targets.startsWith('count(*)') && !where && exact && !ROW_PER_ELEMENT.has(t.name);
  const expectFast = (allText || lengthCount) && exact && formatsOk && (t.name !== 'sb_bad' || lengthCount) && t.name !== 'rs_str_hash';
  return { sql, params, paramFormats, resultFormats, protocol, expectFast };
}

/** Pieces LIKE patterns and compared values are made of: the data's characters, wildcards and escapes. */
const PIECES = ['a', 'v', '1', ':', ' ', 'é', '日', '🙂', 'e\u0301', "'", '\t', '\\', '%', '%', '_', '_', '\\%', '\\_', '\\\\', 'x'];

/**
 * A random WHERE over text columns: =, <>, LIKE, NOT LIKE, IS [NOT] NULL under AND/OR/NOT, sometimes
 * with something the fast path leaves upstream (ILIKE, <, a function, ESCAPE, a pattern ending in a lone
 * backslash, which Postgres rejects with 22025). `local`: whether the fast path should evaluate it.
 */
function filterWhere(rand: ReturnType<typeof prng>, cols: string[], param: ((v: Param, fmt?: number) => string) | undefined): { sql: string; local: boolean } {
  let local = true;
  const text = (): string => {
    const r = rand.next();
    if (r < 0.3) return rand.pick(VALUES);
    if (r < 0.45) return `v${rand.int(0, VALUES.length - 1)}:${rand.pick(VALUES)}`;
    return Array.from({ length: rand.int(0, 4) }, () => rand.pick(PIECES)).join('');
  };
  const operand = (v: string): string => {
    if (param && rand.next() < 0.4) return param(rand.next() < 0.08 ? null : v, rand.next() < 0.3 ? 1 : 0);
    return rand.next() < 0.04 ? 'NULL' : quote(v);
  };
  const pattern = (): string => {
    let p = text();
    if (rand.next() < 0.5) p = `%${p}`;
    if (rand.next() < 0.5) p = `${p}%`;
    // Sometimes a lone trailing backslash: Postgres refuses the pattern (22025), so upstream must answer.
    if (rand.next() < 0.05) p += '\\';
    let k = 0;
    while (k < p.length) k += p[k] === '\\' ? 2 : 1;
    if (k > p.length) local = false;
    return operand(p);
  };
  const atom = (): string => {
    const c = rand.pick(cols);
    const r = rand.next();
    if (r < 0.25) return `${c} ${rand.pick(['=', '<>', '!='])} ${operand(text())}`;
    if (r < 0.32) return `${operand(text())} = ${c}`;
    if (r < 0.75) return `${c} ${rand.pick(['like', 'not like', '~~', '!~~'])} ${pattern()}`;
    if (r < 0.88) return `${c} is ${rand.pick(['', 'not '])}null`;
    local = false;
    return rand.pick([`${c} ilike 'A%'`, `${c} < 'm'`, `length(${c}) > 2`, `${c} like 'a#%' escape '#'`, `${c} similar to 'a%'`]);
  };
  const expr = (depth: number): string => {
    if (depth > 2 || rand.next() < 0.45) return atom();
    if (rand.next() < 0.2) return `not (${expr(depth + 1)})`;
    return `(${expr(depth + 1)} ${rand.pick(['and', 'or'])} ${expr(depth + 1)})`;
  };
  return { sql: expr(0), local };
}

const bytes = (frames: Frame[]): string[] => frames.map((fr) => `${fr.type} ${fr.body.toString('hex')}`);

/**
 * Runs one case on a connection; returns the reply frames of its last batch, up to and including
 * ReadyForQuery, and the bytes the fast proxy sent upstream for that batch.
 */
async function run(c: ProtoConn, k: Case, n: number): Promise<{ frames: Frame[]; sent: number }> {
  const start = relay.bytes;
  const done = async (): Promise<{ frames: Frame[]; sent: number }> => {
    const frames = await c.readUntilReady();
    return { frames, sent: relay.bytes - start };
  };
  if (k.protocol === 'simple') {
    c.write(msg.query(k.sql));
    return done();
  }
  const name = k.protocol === 'prepared' ? `s${n}` : '';
  const bind = msg.bind('', name, k.params, k.paramFormats.some((x) => x === 1) ? k.paramFormats : [], k.resultFormats);
  if (k.protocol === 'prepared') {
    // Prepared in its own batch, as drivers do; then executed twice, the second time the hot case.
    c.write(msg.parse(name, k.sql), msg.describe('S', name), msg.sync());
    const prep = await c.readUntilReady();
    if (prep.some((fr) => fr.type === 'E')) return { frames: prep, sent: -1 };
    c.write(bind, msg.describe('P', ''), msg.execute(''), msg.sync());
    await c.readUntilReady();
  } else {
    c.write(msg.parse(name, k.sql), bind, msg.describe('P', ''), msg.execute(''), msg.sync());
    return done();
  }
  const hot = relay.bytes;
  c.write(bind, msg.describe('P', ''), msg.execute(''), msg.sync());
  const frames = await c.readUntilReady();
  return { frames, sent: relay.bytes - hot };
}

before(async () => {
  f = await fdwFixture('fdw_fast_path', DB, { fastPath: false });
  const up = urlParts(f.directUrl);
  relay = await CountingRelay.start(up);
  const relayPort = relay.port;
  // The catalog and name resolutions stay cached for the whole test (by default they are checked again
  // every second), so a table's first read is its only round trip.
  fast = await startProxy(`postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${relayPort}/${f.db}`, {}, { recheckMs: 600_000 });
  setup = await connect(f.url);
  await load();
  await ddl();
});

after(async () => {
  await setup?.end();
  await fast?.close();
  relay?.close();
  await f?.close();
});

async function open(port: number): Promise<ProtoConn> {
  const up = urlParts(f.directUrl);
  return ProtoConn.open(port, { user: up.user, password: up.password, database: f.db });
}

describe(`fast path vs upstream path, byte for byte (seed ${SEED}, FAST_PATH_SEED to repeat)`, () => {
  it(`${STATEMENTS} random single-table reads: identical bytes; the eligible ones cost no upstream bytes`, async () => {
    const rand = prng(SEED);
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    let local = 0;
    let expected = 0;
    let localCounts = 0;
    const warm = new Set<string>();
    try {
      for (let n = 0; n < STATEMENTS; n++) {
        const k = generate(rand);
        const mark = `#${n} ${k.protocol} ${k.sql} params=${JSON.stringify(k.params)} formats=${JSON.stringify(k.resultFormats)}`;
        // A table's first fast read resolves its name upstream (then cached); the next one is the hot case.
        const table = k.sql.split(' from ')[1]!.split(' ')[0]!;
        if (k.protocol === 'simple' && k.expectFast && !warm.has(table)) {
          warm.add(table);
          await run(a, k, n);
        }
        const { frames: fa, sent } = await run(a, k, n);
        const { frames: fb } = await run(b, k, n);
        assert.deepEqual(bytes(fa), bytes(fb), mark);
        // An unnamed statement's Parse goes upstream (it is prepared there), so its Sync does too.
        if (k.protocol !== 'extended' && k.expectFast) {
          assert.equal(sent, 0, `expected no upstream bytes: ${mark}`);
          expected++;
        }
        if (sent === 0) local++;
        if (sent === 0 && k.sql.includes('count(*)')) localCounts++;
      }
    } finally {
      a.destroy();
      b.destroy();
    }
    console.log(`[fast-path] seed ${SEED}: ${STATEMENTS} statements identical, ${local} answered with no upstream bytes (${localCounts} of them count(*))`);
    assert.ok(localCounts > 0, 'no count(*) took the fast path');
    assert.ok(expected > STATEMENTS / 10, `only ${expected} statements the fast path should answer: the generator has lost its way`);
  });
});

describe('where the fast path must not answer, the upstream path does (same bytes both ways)', () => {
  /**
   * Runs the same simple-query script on both proxies, one Query at a time; returns both replies and
   * the upstream bytes of each statement. `warm` runs first, unrecorded (it fills the name cache).
   */
  async function both(script: string[], warm: string | string[] = `select * from sb_hash where key = 'a'`): Promise<{ fast: string[]; slow: string[]; sent: number[]; ms: number[] }> {
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    const out = { fast: [] as string[], slow: [] as string[], sent: [] as number[], ms: [] as number[] };
    try {
      for (const c of [a, b]) {
        for (const w of typeof warm === 'string' ? [warm] : warm) {
          c.write(msg.query(w));
          await c.readUntilReady();
        }
      }
      for (const sql of script) {
        const start = relay.bytes;
        const t0 = performance.now();
        a.write(msg.query(sql));
        out.fast.push(...bytes(await a.readUntilReady()));
        out.ms.push(performance.now() - t0);
        out.sent.push(relay.bytes - start);
        b.write(msg.query(sql));
        out.slow.push(...bytes(await b.readUntilReady()));
      }
    } finally {
      a.destroy();
      b.destroy();
    }
    return out;
  }

  it('a write staged in the open transaction is read back (read-your-writes is the upstream path)', async () => {
    const r = await both([`select * from sb_hash where key = 'staged'`, 'begin', `insert into sb_hash values ('staged', 'yes')`, `select * from sb_hash where key = 'staged'`, 'rollback']);
    assert.deepEqual(r.fast, r.slow);
    assert.equal(r.sent[0], 0, 'outside the transaction the lookup is local');
    assert.ok(r.sent[3]! > 0, 'with a staged write on the table it goes upstream');
    assert.ok(r.fast.some((x) => x.startsWith('D ') && x.includes(Buffer.from('staged').toString('hex'))), 'the staged row is seen');
  });

  it('double precision: float8out of every score, in text and binary, only while extra_float_digits > 0', async () => {
    const { good, local, edge } = FLOATS;
    const inList = (keys: string[]): string => keys.map(quote).join(', ');
    const script = [
      `select * from rs_float where key in (${inList(local)})`,
      `select value from rs_float where key = 'e1'`, // read again with nothing sent in between: no round trip
      ...edge.map((_, i) => `select * from rs_float where key = 'e${i}'`),
      'set extra_float_digits = 3',
      `select * from rs_float where key in (${inList(good)})`,
      'set extra_float_digits = 0', // %.15g: upstream answers
      `select * from rs_float where key in (${inList(good)})`,
      'reset extra_float_digits',
    ];
    const r = await both(script, `select * from rs_float where key = 'e0'`);
    assert.deepEqual(r.fast, r.slow);
    assert.equal(r.sent[0], 0, 'every value in the first statement answered locally');
    assert.equal(r.sent[1], 0, 'extra_float_digits was not asked again');
    assert.ok(r.sent[script.length - 2]! > 0, 'with extra_float_digits = 0 the statement goes upstream');
    // Binary result format: float8send of the same doubles, through the extended protocol.
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    try {
      const frames: string[][] = [];
      for (const c of [a, b]) {
        c.write(msg.parse('', `select value from rs_float where key in (${inList(good)})`), msg.bind('', '', [], [], [1]), msg.describe('P', ''), msg.execute(''), msg.sync());
        frames.push(bytes(await c.readUntilReady()));
      }
      assert.deepEqual(frames[0], frames[1]);
      assert.ok(frames[0]!.filter((x) => x.startsWith('D ')).length >= 400);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a failed transaction gets upstream 25P02, not rows', async () => {
    const q = `select * from sb_hash where key = 'a'`;
    const r = await both(['begin', 'select 1/0', q, 'rollback', q, q]);
    assert.deepEqual(r.fast, r.slow);
    assert.ok(r.fast.some((x) => x.startsWith('E ') && x.includes(Buffer.from('25P02').toString('hex'))));
    assert.ok(r.sent[2]! > 0);
    // ROLLBACK could undo a SET LOCAL search_path: names are resolved once more, then cached again.
    assert.equal(r.sent[5], 0, 'after ROLLBACK the lookup is local again');
  });

  it('inside a healthy transaction block the lookup is local and ReadyForQuery says T', async () => {
    const r = await both(['begin', `select value from rs_hash where key = 'a'`, 'commit'], `select value from rs_hash where key = 'b'`);
    assert.deepEqual(r.fast, r.slow);
    assert.equal(r.sent[1], 0);
    assert.equal(r.fast[r.fast.length - 3], 'Z 54'); // the SELECT's ReadyForQuery (then COMMIT's C and Z)
  });

  it('a value that is not UTF-8 fails with 22021 the same way; count(*) reads no value, so it counts it', async () => {
    const r = await both([`select * from sb_bad where key = 'ok'`, `select * from sb_bad`, `select count(*) from sb_bad`]);
    assert.deepEqual(r.fast, r.slow);
    assert.ok(r.fast.some((x) => x.startsWith('E ') && x.includes(Buffer.from('22021').toString('hex'))));
    assert.ok(r.fast.includes(`D 0001000000013${'2'}`), 'count(*) over the two fields is 2');
    assert.equal(r.sent[2], 0);
  });

  it('whole keys of many chunks, streamed as they are parsed: same bytes; a bad value anywhere fails before any row', async () => {
    {
      // big_zsetf first: what upstream said of extra_float_digits holds until something goes upstream.
      const script = ['select * from big_zsetf', 'select * from big_ok', 'select * from big_nul', 'select * from big_bad', 'select * from big_list', 'select * from big_zset', 'select key from big_ok', 'select * from big_int'];
      // Warmed (names cached), so nothing else is owed first and the rows may stream.
      const res = await both(script, [...['big_ok', 'big_nul', 'big_bad', 'big_list', 'big_zset', 'big_int'].map((t) => `select count(*) from ${t}`), 'select * from big_zsetf limit 1']);
      assert.deepEqual(res.fast, res.slow);
      const errors = res.fast.filter((x) => x.startsWith('E '));
      assert.equal(errors.length, 2, 'the NUL and the invalid UTF-8 each fail their statement');
      assert.ok(errors.every((x) => x.includes(Buffer.from('22021').toString('hex'))));
      assert.equal(res.fast.filter((x) => x.startsWith('D ')).length, 5 * 20_000 + 20_001);
      // The failing two are reported by the upstream path, as every fast-path failure but HV00N and 57014 is.
      // Upstream hears nothing of them, unless one ran long enough (a loaded machine) for the statement_timeout probe.
      for (const i of [0, 1, 4, 5, 6]) assert.ok(res.sent[i] === 0 || res.ms[i]! >= PROBE_AFTER_MS, `${script[i]}: answered by the fast path (${res.sent[i]} bytes upstream in ${res.ms[i]!.toFixed(0)} ms)`);
      assert.ok(res.sent[7]! > 0, "' 7' is not integer's output form: upstream reads the key");
    }
  });

  it('typed columns: canonical values are local, any other form goes upstream for its value or error', async () => {
    const script = [
      `select * from sb_mix4 where key in ('max', 'min', 'ok')`,
      `select * from rs_mix8 where key in ('big', 'nmin')`,
      `select value from sb_mix4 where key = 'sp'`, // ' 7' is 7 upstream
      `select value from sb_mix4 where key = 'over'`, // 22003
      `select value from sb_mix2 where key = 's'`, // 22003 for smallint
      `select value from sb_mix4 where key = 'abc'`, // 22P02
      `select value from rs_mix8 where key = 'big1'`,
      `select * from sb_bool where key in ('t', 'f')`,
      `select * from sb_bool where key = 'true'`,
      `select * from rs_char where key = 'a'`,
      `select * from sb_vc3 where key = 'hello world'`, // 13 characters: truncated upstream
    ];
    const r = await both(script, ['sb_mix4', 'rs_mix8', 'sb_mix2', 'sb_bool', 'rs_char', 'sb_vc3'].map((t) => `select * from ${t} where key = 'none'`));
    assert.deepEqual(r.fast, r.slow);
    assert.deepEqual(r.sent.map((n) => n === 0), [true, true, false, false, false, false, false, true, false, true, false]);
    for (const code of ['22003', '22P02']) assert.ok(r.fast.some((x) => x.startsWith('E ') && x.includes(Buffer.from(code).toString('hex'))), code);
  });

  it('typed columns in binary result format: the send forms (int2/int4/int8 big-endian, bool one byte, char padded)', async () => {
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    try {
      for (const sql of [`select value, value, key from sb_int2 where key = 'e'`, `select value from sb_int4 where key = 'b'`, `select value from rs_int8 where key = 'f'`, `select * from rs_boolc where key = 'f'`, `select * from rs_charc`]) {
        const out: string[][] = [];
        for (const c of [a, b]) {
          c.write(msg.parse('', sql), msg.bind('', '', [], [], [1]), msg.describe('P', ''), msg.execute(''), msg.sync());
          out.push(bytes(await c.readUntilReady()));
        }
        assert.deepEqual(out[0], out[1], sql);
        assert.ok(out[0]!.some((x) => x.startsWith('D ')), `${sql}: rows`);
      }
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('count(*) from Redis (length, EXISTS, counted SCAN) equals a count of the rows read, alone or inside a larger statement', async () => {
    const countable = ['sb_hash', 'sb_list', 'sb_set', 'sb_zset', 'sb_stream', 'rs_string', 'rs_str_empty', 'rs_str_none', 'rs_str_hash', 'sb_multi', 'sb_multi1', 'sb_multi0', 'rs_gstr'];
    // count(1) is no count(*): its rows are read and counted upstream, the yardstick here.
    const script = countable.flatMap((t) => [`select count(*) from ${t}`, `select count(1) from ${t}`, `select (select count(*) from ${t}) + 1 as n, x from (values (1), (2)) v(x)`, `select (select count(1) from ${t}) + 1 as n, x from (values (1), (2)) v(x)`]);
    const r = await both(script, countable.map((t) => `select count(*) from ${t}`));
    assert.deepEqual(r.fast, r.slow);
    const done = script.map(() => [] as string[]);
    let i = 0;
    for (const x of r.fast) {
      done[i]!.push(x);
      if (x.startsWith('Z ')) i++;
    }
    for (let k = 0; k < script.length; k += 2) assert.deepEqual(done[k], done[k + 1], `${script[k]} against ${script[k + 1]}`);
    // Alone, each is answered with no upstream bytes (except the wrong-type key's error, which is upstream's).
    countable.forEach((t, k) => assert.equal(r.sent[k * 4] === 0, t !== 'rs_str_hash', `select count(*) from ${t} local`));
    const c = await connect(fast.url(undefined, undefined, f.db));
    try {
      const plan = async (sql: string): Promise<string> => (await c.query(`explain ${sql}`)).rows.map((x: { 'QUERY PLAN': string }) => x['QUERY PLAN']).join('\n');
      assert.match(await plan(`select 1 + (select count(*) from sb_multi)`), /Redis count on public\.sb_multi: SCAN 0 MATCH gh:\* COUNT 1000 TYPE hash/);
      assert.match(await plan(`with c as (select count(*) from rs_string) select * from c, sb_hash`), /Redis count on public\.rs_string: EXISTS str/);
      assert.match(await plan(`select count(*) from sb_multi1`), /TYPE gs:a\nRedis fast path: yes/);
    } finally {
      await c.end();
    }
  });

  it('EXPLAIN says whether the statement would take the fast path, and why not', async () => {
    const c = await connect(fast.url(undefined, undefined, f.db));
    try {
      const plan = async (sql: string): Promise<string> => (await c.query(`explain ${sql}`)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      assert.match(await plan(`select value from sb_hash where key = 'a'`), /Redis fast path: yes/);
      assert.match(await plan(`select count(*) from rs_list`), /Redis fast path: yes/);
      assert.match(await plan(`select count(*) from sb_hash`), /Redis count on public\.sb_hash: HLEN h\n/);
      assert.match(await plan(`select count(*) from rs_zset_s`), /ZCARD z\nRedis fast path: yes/);
      assert.match(await plan(`select count(value) from sb_hash`), /Redis fast path: no \(an output column that is not a plain column or count\(\*\)\)/);
      assert.match(await plan(`select value from sb_hash where key = 'a' order by 1`), /Redis fast path: no \(ORDER BY\)/);
      assert.match(await plan(`select * from rs_zset_s`), /Redis fast path: yes/);
      assert.match(await plan(`select * from sb_stream`), /Redis fast path: no \(column items is jsonb\)/);
      assert.match(await plan(`select * from sb_hash where value = 'x'`), /Redis fast path: yes/);
      assert.match(await plan(`select * from sb_hash where value like 'x%' and value::text > 'a'`), /Redis fast path: no \(a WHERE the pushdown does not apply exactly \(the operator >\)\)/);
      assert.match(await plan(`select * from sb_int4 where value = '7'`), /Redis fast path: no \(a WHERE the pushdown does not apply exactly \(a comparison other than a text column against a constant or parameter\)\)/);
      const prepared = await c.query({ text: `explain select value from sb_hash where key = $1`, values: ['a'] });
      assert.match(prepared.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n'), /Redis fast path: yes/);
    } finally {
      await c.end();
    }
  });
});

describe('prepared point lookups on hash tables: the one-step lane over the raw pipe (point-lookup.ts)', () => {
  const LOOKUPS = 150;
  const TABLES = ['sb_hash', 'sb_hash_vc', 'rs_hash', 'sb_bad'];
  const FIELDS = [...VALUES, 'missing', 'ok', 'broken'];

  /** A random point lookup: `=`, IN, AND of them, literals, parameters (text or binary, NULL, casts, repeats). */
  function lookup(rand: ReturnType<typeof prng>): Case & { table: string; invalid: boolean } {
    const table = rand.pick(TABLES);
    const alias = rand.next() < 0.2 ? 'q' : undefined;
    const col = alias && rand.next() < 0.5 ? 'q.key' : 'key';
    const params: Param[] = [];
    const paramFormats: number[] = [];
    let invalid = false;
    const value = (): string => {
      const r = rand.next();
      if (r < 0.5) {
        const n = rand.next() < 0.15 && params.length > 0 ? rand.int(1, params.length) : 0;
        if (n > 0) return `$${n}`; // the same parameter again
        const roll = rand.next();
        const v: Param = roll < 0.1 ? null : roll < 0.13 ? Buffer.from([0x61, 0xff]) : rand.pick(FIELDS);
        if (Buffer.isBuffer(v)) invalid = true;
        params.push(v);
        paramFormats.push(rand.next() < 0.3 ? 1 : 0);
        return `$${params.length}${rand.next() < 0.1 ? '::text' : rand.next() < 0.1 ? '::varchar' : ''}`;
      }
      return r < 0.53 ? 'NULL' : quote(rand.pick(FIELDS));
    };
    const pin = (): string => (rand.next() < 0.65 ? `${col} = ${value()}` : `${col} in (${Array.from({ length: rand.int(1, 4) }, value).join(', ')})`);
    const where = Array.from({ length: rand.next() < 0.2 ? 2 : 1 }, pin).join(' and ');
    const targets = rand.pick(['*', 'value', 'key', 'value, key', 'key as "K é", value', 'value, value', `${alias ?? table}.*`]);
    const ncols = targets.includes('*') ? 2 : targets.split(',').length;
    const r = rand.next();
    const resultFormats = r < 0.3 ? [1] : r < 0.45 ? [0] : r < 0.6 ? Array.from({ length: ncols }, () => rand.int(0, 1)) : [];
    const sql = `select ${targets} from ${table}${alias ? ` ${alias}` : ''} where ${where}`;
    return { sql, params, paramFormats, resultFormats, protocol: 'prepared', expectFast: true, table, invalid };
  }

  /** Redis connections of the lookup pipe that have run HMGET: no name (ioredis names its own), last command hmget. */
  async function pipeHmgets(): Promise<number> {
    const list = String(await f.redis.call('CLIENT', 'LIST'));
    return list.split('\n').filter((l) => / name= /.test(l) && / cmd=hmget /.test(l) && new RegExp(` db=${DB} `).test(l)).length;
  }

  it(`${LOOKUPS} prepared lookups, three executions each: identical bytes, no upstream bytes, HMGET on the pipe`, async () => {
    const rand = prng(SEED + 1);
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    let local = 0;
    try {
      for (let n = 0; n < LOOKUPS; n++) {
        const k = lookup(rand);
        const mark = `#${n} ${k.sql} params=${JSON.stringify(k.params)} formats=${JSON.stringify(k.paramFormats)}/${JSON.stringify(k.resultFormats)}`;
        const name = `p${n}`;
        const bind = msg.bind('', name, k.params, k.paramFormats.some((x) => x === 1) ? k.paramFormats : [], k.resultFormats);
        const out: string[][][] = [[], []];
        const sent: number[] = [];
        for (const [i, c] of [a, b].entries()) {
          c.write(msg.parse(name, k.sql), msg.describe('S', name), msg.sync());
          out[i]!.push(bytes(await c.readUntilReady()));
          for (let x = 0; x < 3; x++) {
            const start = relay.bytes;
            c.write(bind, msg.describe('P', ''), msg.execute(''), msg.sync());
            out[i]!.push(bytes(await c.readUntilReady()));
            if (i === 0) sent.push(relay.bytes - start);
          }
        }
        assert.deepEqual(out[0], out[1], mark);
        // sb_bad's 'broken' value fails with 22021, and an invalid parameter with upstream's error: both upstream's.
        if (k.table !== 'sb_bad' && !k.invalid) assert.deepEqual(sent.slice(1), [0, 0], `expected no upstream bytes: ${mark}`);
        if (sent[2] === 0) local++;
      }
    } finally {
      a.destroy();
      b.destroy();
    }
    console.log(`[fast-path] seed ${SEED + 1}: ${LOOKUPS} prepared lookups identical, ${local} answered locally`);
    assert.ok(await pipeHmgets() >= 1, 'no Redis connection of the lookup pipe has run HMGET');
  });
});
