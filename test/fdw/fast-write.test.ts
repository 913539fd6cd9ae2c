/**
 * The local fast write, differentially: seeded random INSERTs over every writable Redis type and both
 * seed dialects (constants, parameters in text and binary, declared and inferred types, `||`, casts,
 * NULL, DEFAULT, Unicode, multi-row VALUES, and near misses the fast write must leave upstream) run
 * through a proxy with the fast path and one with it off (`fastPath: false`, the upstream path). After
 * every statement both the reply bytes and the whole Redis database must be identical. The fast proxy
 * reaches Postgres through a counting relay: the statements the generator deems eligible must send
 * upstream nothing at all, Sync included.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect } from '../support/fdw-sql.js';
import { CountingRelay } from '../support/counting-relay.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { msg, ProtoConn, urlParts, type Frame, type Param } from '../support/proto-client.js';
import { prng } from '../support/frames.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.fastWrite;
const SEED = Number(process.env.FAST_WRITE_SEED ?? Math.floor(Math.random() * 2 ** 31));
const STATEMENTS = Number(process.env.FAST_WRITE_STATEMENTS ?? 300);

let f: FdwFixture;
let fast: RunningProxy;
/** Counts the bytes the fast proxy sends to Postgres. */
let relay: CountingRelay;
let setup: pg.Client;

type Kind = 'text' | 'varchar6' | 'char5' | 'int2' | 'int4' | 'int8' | 'bool' | 'jsonb' | 'float8';
interface Col {
  name: string;
  kind: Kind;
  /** Values this column must get for the write to succeed (a multi-key table's key pattern), if any. */
  values?: string[];
  /** Must be NULL (a list's index, which Redis assigns). */
  mustBeNull?: boolean;
  hasDefault?: boolean;
}
interface Table {
  name: string;
  cols: Col[];
}

const tables: Table[] = [];

const TEXTS = ['', 'a', 'hello world', 'naïve café', '日本語', '🙂👍', 'e\u0301', "it's", 'tab\tnew\nline', ' lead ', '0', 'NULL', '\\x00ff', 'x\u0001y', 'abcdefghij'];
const INTS: Record<'int2' | 'int4' | 'int8', string[]> = {
  int2: ['0', '-5', '32767', '-32768', '32768', ' 7', '+7', '007', '-0', 'abc', ''],
  int4: ['0', '42', '-2147483648', '2147483647', '2147483648', ' 7', '+7', '007', '-0', 'x'],
  int8: ['1', '-9223372036854775808', '9223372036854775807', '9223372036854775808', '12 ', '0x1'],
};
const BOOLS = ['t', 'f', 'true', ' t', '1', 'no', 'x'];
const RANGES: Record<'int2' | 'int4' | 'int8', [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
};
const OIDS: Record<Kind, number> = { text: 25, varchar6: 1043, char5: 1042, int2: 21, int4: 23, int8: 20, bool: 16, jsonb: 3802, float8: 701 };
const SQL_TYPE: Record<Kind, string> = { text: 'text', varchar6: 'varchar(6)', char5: 'char(5)', int2: 'smallint', int4: 'integer', int8: 'bigint', bool: 'boolean', jsonb: 'jsonb', float8: 'float8' };

async function ddl(): Promise<void> {
  const q = (sql: string): Promise<unknown> => setup.query(sql);
  await q(`create foreign data wrapper redis_wrapper handler redis_fdw_handler`);
  await q(`create server sb foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}')`);
  await q(`create server rs foreign data wrapper redis_wrapper options (host_port '${f.redisHostPort}')`);
  const col = (name: string, kind: Kind, more: Partial<Col> = {}): Col => ({ name, kind, ...more });
  const cols = (cs: Col[]): string => cs.map((c) => `${c.name} ${SQL_TYPE[c.kind]}${c.hasDefault ? ` default 'dflt'` : ''}`).join(', ');
  const sb = (name: string, cs: Col[], type: string, key: string): Table => {
    void q(`create foreign table ${name} (${cols(cs)}) server sb options (src_type '${type}', src_key '${key}')`);
    return { name, cols: cs };
  };
  const rs = (name: string, cs: Col[], type: string, key: string): Table => {
    void q(`create foreign table ${name} (${cols(cs)}) server rs options (database '${DB}', table_type '${type}', table_key_prefix '${key}')`);
    return { name, cols: cs };
  };
  const gkeys = (p: string): string[] => [`${p}a`, `${p}ü`, p];
  tables.push(
    sb('sb_hash', [col('key', 'text'), col('value', 'text')], 'hash', 'h'),
    sb('sb_hash_vc', [col('key', 'varchar6'), col('value', 'varchar6')], 'hash', 'hv'),
    sb('sb_hash_def', [col('key', 'text'), col('value', 'text', { hasDefault: true })], 'hash', 'hd'),
    sb('sb_list', [col('element', 'text')], 'list', 'l'),
    sb('sb_set', [col('element', 'text')], 'set', 's'),
    sb('sb_zset', [col('element', 'text')], 'zset', 'z'),
    sb('sb_int', [col('key', 'text'), col('value', 'int4')], 'hash', 'hi'),
    sb('sb_stream', [col('id', 'text'), col('items', 'jsonb')], 'stream', 'x'),
    sb('sb_multi', [col('key', 'text', { values: gkeys('mh:') }), col('items', 'jsonb')], 'multi_hash', 'mh:*'),
    rs('rs_hash', [col('key', 'text'), col('value', 'text')], 'hash', 'rh'),
    rs('rs_list', [col('element', 'text')], 'list', 'rl'),
    rs('rs_set', [col('member', 'text')], 'set', 'rset'),
    rs('rs_zset', [col('member', 'text')], 'zset', 'rz'),
    rs('rs_zset_s', [col('member', 'text'), col('score', 'float8')], 'zset', 'rzs'),
    rs('rs_string', [col('value', 'text')], 'string', 'rstr'),
    rs('rs_ghash', [col('key', 'text', { values: gkeys('gh:') }), col('field', 'text'), col('value', 'text')], 'hash', 'gh:*'),
    rs('rs_gset', [col('key', 'text', { values: gkeys('gs:') }), col('member', 'text')], 'set', 'gs:*'),
    rs('rs_glist', [col('key', 'text', { values: gkeys('gl:') }), col('element', 'text'), col('index', 'int4', { mustBeNull: true })], 'list', 'gl:*'),
    rs('rs_i2', [col('key', 'text'), col('value', 'int2')], 'hash', 'ri2'),
    rs('rs_i8', [col('key', 'varchar6'), col('value', 'int8')], 'hash', 'ri8'),
    rs('rs_bool', [col('key', 'text'), col('value', 'bool')], 'hash', 'rb'),
    rs('rs_char', [col('key', 'char5'), col('value', 'char5')], 'hash', 'rc'),
    rs('rs_list_i8', [col('element', 'int8')], 'list', 'rli'),
  );
  await q('select 1'); // the creates above were queued on this client; wait for them all
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const chars = (s: string): number => [...s].length;

/** The value a column gets, as the generator models it: text before its column's cast, and its type family. */
type Value = { kind: 'text' | 'int' | 'bool'; text: string } | null;

/** What a value cast to a column would be, when that is certain (canonical, fits); undefined otherwise. */
function castModel(v: Value, c: Col): string | null | undefined {
  if (v === null) return null;
  if (v.kind === 'bool') return c.kind === 'bool' ? v.text : undefined;
  switch (c.kind) {
    case 'text':
      return v.text;
    case 'varchar6':
      return chars(v.text) <= 6 ? v.text : undefined;
    case 'char5':
      return chars(v.text) <= 5 ? v.text.padEnd(5 + v.text.length - chars(v.text), ' ') : undefined;
    case 'int2':
    case 'int4':
    case 'int8': {
      if (!/^(0|-?[1-9][0-9]*)$/.test(v.text)) return undefined;
      const n = BigInt(v.text);
      const [lo, hi] = RANGES[c.kind];
      return n >= lo && n <= hi ? v.text : undefined;
    }
    case 'bool':
      return v.text === 't' || v.text === 'f' ? v.text : undefined;
    default:
      return undefined;
  }
}

interface Case {
  sql: string;
  params: Param[];
  paramTypes: number[];
  paramFormats: number[];
  protocol: 'simple' | 'extended' | 'prepared';
  /** The generator's own judgement: the fast write must answer this one with no upstream bytes. */
  expectFast: boolean;
}

interface Item {
  sql: string;
  value: Value;
  /** The fast write computes it (a form and a value it takes). */
  fast: boolean;
  /**
   * Its type in a VALUES list of several rows, where each column gets one common type: a bare $n and
   * DEFAULT are cast to the column's type by the rewrite, a string constant or NULL takes any.
   */
  family?: 'text' | 'int' | 'bool' | 'column';
  /** A string constant: in a VALUES list of several rows it takes its column's common type. */
  literal?: boolean;
}

function generate(rand: ReturnType<typeof prng>): Case {
  const t = rand.pick(tables);
  const protocol = rand.pick(['simple', 'extended', 'prepared'] as const);
  const params: Param[] = [];
  const paramTypes: number[] = [];
  const paramFormats: number[] = [];
  let fastShape = t.cols.every((c) => c.kind !== 'jsonb' && c.kind !== 'float8');
  const useParams = protocol !== 'simple';

  /** A parameter (in simple-query form: the literal), declared with `oid` (0: inferred as `inferred`). */
  const param = (value: string | null, inferred: number, textual: boolean): Item => {
    const text = value ?? '';
    if (!useParams) return { sql: value === null ? 'NULL' : quote(text), value: value === null ? null : { kind: 'text', text }, fast: true };
    const declared = rand.next() < 0.3 ? rand.pick(textual ? [25, 1043] : [25, 1043, inferred]) : 0;
    const type = declared || inferred;
    const kind = type === 16 ? 'bool' : [21, 23, 20].includes(type) ? 'int' : 'text';
    let bytes: Buffer | null = value === null ? null : Buffer.from(value, 'utf8');
    let binary = false;
    let ok = true;
    if (rand.next() < 0.25 && bytes !== null) {
      binary = true;
      if (kind === 'int') {
        // A canonical integer in range for the parameter's own type has a binary form; else send text bytes (upstream refuses them).
        const size = type === 21 ? 2 : type === 23 ? 4 : 8;
        const fits = /^(0|-?[1-9][0-9]*)$/.test(value!) && BigInt(value!) >= RANGES[size === 2 ? 'int2' : size === 4 ? 'int4' : 'int8'][0] && BigInt(value!) <= RANGES[size === 2 ? 'int2' : size === 4 ? 'int4' : 'int8'][1];
        if (fits) {
          const b = Buffer.alloc(size);
          if (size === 8) b.writeBigInt64BE(BigInt(value!));
          else if (size === 4) b.writeInt32BE(Number(value));
          else b.writeInt16BE(Number(value));
          bytes = b;
        } else ok = false;
      } else if (kind === 'bool') {
        if (value === 't' || value === 'f') bytes = Buffer.from([value === 't' ? 1 : 0]);
        else ok = false;
      }
    }
    if (rand.next() < 0.04 && bytes !== null && kind === 'text') {
      // Not valid UTF-8, or a NUL: Postgres refuses it (22021), the fast write leaves it upstream.
      bytes = rand.next() < 0.5 ? Buffer.from([0x61, 0xff]) : Buffer.from([0x61, 0x00, 0x62]);
      ok = false;
    }
    // A declared character(n) parameter trims its trailing spaces as text: left upstream.
    if (declared === 1042) ok = false;
    params.push(bytes);
    paramTypes.push(declared);
    paramFormats.push(binary ? 1 : 0);
    let v: Value = value === null ? null : { kind, text };
    if (v && kind === 'int') {
      // The parameter's own input: only a canonical integer in its type's range is read as it is.
      const own = castModel({ kind: 'text', text }, { name: '', kind: type === 21 ? 'int2' : type === 23 ? 'int4' : 'int8' });
      if (own === undefined || own === null) ok = false;
    }
    if (v && kind === 'bool' && text !== 't' && text !== 'f') ok = false;
    if (!ok) v = null;
    return { sql: `$${params.length}`, value: v, fast: ok };
  };

  const textPool = (c: Col): string[] => c.values ?? (c.kind === 'int2' || c.kind === 'int4' || c.kind === 'int8' ? INTS[c.kind] : c.kind === 'bool' ? BOOLS : TEXTS);

  const item = (c: Col): Item => {
    const r = rand.next();
    const pool = textPool(c);
    const intCol = c.kind === 'int2' || c.kind === 'int4' || c.kind === 'int8';
    if (r < 0.06) return { sql: 'NULL', value: null, fast: true };
    if (r < 0.1) return { sql: 'DEFAULT', value: null, fast: !c.hasDefault, family: 'column' };
    if (r < 0.4) {
      const v = rand.pick(pool);
      return { sql: quote(v), value: { kind: 'text', text: v }, fast: true, literal: true };
    }
    if (r < 0.62) {
      // A bare parameter: its type is the column's, unless declared.
      const v = rand.next() < 0.06 ? null : rand.pick(pool);
      const p = param(v, OIDS[c.kind], false);
      // In a simple Query it is written as a string constant.
      return { ...p, family: useParams ? 'column' : undefined, literal: !useParams && v !== null };
    }
    if (r < 0.74) {
      // Text concatenation: `'p' || $n`, `$n || 'x'`, or two constants.
      const v = rand.pick(c.values ? [''] : pool);
      const prefix = c.values ? rand.pick(c.values) : rand.pick(['', 'p', 'é']);
      if (!useParams || rand.next() < 0.3) return { sql: `${quote(prefix)} || ${quote(v)}`, value: { kind: 'text', text: prefix + v }, fast: true, family: 'text' };
      const p = param(rand.next() < 0.05 ? null : v, 25, true);
      const value = p.value === null ? null : { kind: 'text' as const, text: prefix + p.value.text };
      return rand.next() < 0.5 ? { sql: `${quote(prefix)} || ${p.sql}`, value, fast: p.fast, family: 'text' } : { sql: `${p.sql} || ''`, value: p.value, fast: p.fast, family: 'text' };
    }
    if (r < 0.8) {
      const v = rand.pick(pool);
      if (useParams && rand.next() < 0.5) {
        const p = param(v, 25, true);
        return { sql: `${p.sql}::${rand.pick(['text', 'varchar'])}`, value: p.value, fast: p.fast, family: 'text' };
      }
      return { sql: `${quote(v)}::text`, value: { kind: 'text', text: v }, fast: true, family: 'text' };
    }
    if (r < 0.88 && (intCol || c.kind === 'text' || c.kind === 'varchar6' || c.kind === 'char5')) {
      const n = rand.pick(['0', '7', '-12', '32767', '40000', '2147483647']);
      return { sql: n, value: { kind: 'int', text: n }, fast: true, family: 'int' };
    }
    if (r < 0.92 && c.kind === 'bool') {
      const b = rand.next() < 0.5;
      return { sql: b ? 'true' : 'false', value: { kind: 'bool', text: b ? 't' : 'f' }, fast: true, family: 'bool' };
    }
    // Near misses: forms the fast write leaves upstream.
    const v = rand.pick(pool);
    const miss = rand.pick([`E${quote(v.replace(/\\/g, '\\\\'))}`, `upper(${quote(v)})`, '1.5', `${quote(v)}::varchar(3)`, `U&${quote('d\\0061t')}`, `(${quote(v)})`]);
    // A parenthesized constant is still a constant.
    return { sql: miss, value: { kind: 'text', text: miss.startsWith('(') ? v : '' }, fast: miss.startsWith('('), literal: miss.startsWith('(') };
  };

  // Which columns, in what order.
  let cols = t.cols;
  let listed = false;
  if (rand.next() < 0.35) {
    listed = true;
    cols = [...t.cols].sort(() => rand.next() - 0.5);
    if (rand.next() < 0.3 && cols.length > 1) cols = cols.slice(0, cols.length - 1);
  } else if (rand.next() < 0.08 && t.cols.length > 1) cols = t.cols.slice(0, t.cols.length - 1); // fewer values than columns
  const omitted = t.cols.filter((c) => !cols.includes(c));
  if (omitted.some((c) => c.hasDefault)) fastShape = false;
  const nrows = rand.next() < 0.2 ? rand.int(2, 3) : 1;
  const rows: Item[][] = [];
  for (let i = 0; i < nrows; i++) rows.push(cols.map((c) => item(c)));
  // The model: each value computable, cast with certainty, one type family per column, the write accepted by Redis.
  let expectFast = fastShape && rows.every((row) => row.every((it) => it.fast));
  const usesDefault = rows.some((row) => row.some((it, k) => it.sql === 'DEFAULT' && cols[k]!.hasDefault));
  if (usesDefault) expectFast = false;
  cols.forEach((c, k) => {
    const own = c.kind === 'bool' ? 'bool' : c.kind === 'int2' || c.kind === 'int4' || c.kind === 'int8' ? 'int' : 'text';
    const families = new Set(rows.map((row) => row[k]!.family).filter((x) => x !== undefined).map((x) => (x === 'column' ? own : x)));
    if (rows.length > 1 && families.size > 1) expectFast = false;
    // A string constant beside an integer or boolean constant is read by that constant's type.
    const literal = rows.some((row) => row[k]!.literal);
    const constant = rows.some((row) => row[k]!.family === 'int' || row[k]!.family === 'bool');
    if (rows.length > 1 && literal && constant && !families.has('text')) expectFast = false;
    for (const row of rows) {
      const v = castModel(row[k]!.value, c);
      if (v === undefined && row[k]!.value !== null) expectFast = false;
      if (v === null || v === undefined) {
        if (!c.mustBeNull) expectFast = false;
      } else if (c.mustBeNull || (c.values && !c.values.some((p) => v.startsWith(p.replace(/[aü]$/, ''))))) expectFast = false;
    }
  });
  for (const c of omitted) if (!c.mustBeNull) expectFast = false;
  // Every declared parameter is used, or Postgres can't type it: a statement that names $1 and $3 is refused at Parse.
  let tail = '';
  const miss = rand.next();
  if (miss < 0.04) {
    tail = ' returning *';
    expectFast = false;
  } else if (miss < 0.07 && t.name.includes('hash')) {
    tail = ' on conflict do nothing';
    expectFast = false;
  }
  const values = rows.map((row) => `(${row.map((it) => it.sql).join(', ')})`).join(', ');
  let sql = `insert into ${t.name}${listed ? ` (${cols.map((c) => c.name).join(', ')})` : ''} values ${values}${tail}`;
  if (cols.length === 0) sql = `insert into ${t.name} default values`;
  if (rand.next() < 0.03) {
    sql = `insert into ${t.name} select ${t.cols.map(() => quote('s')).join(', ')}`;
    params.length = 0;
    paramTypes.length = 0;
    paramFormats.length = 0;
    expectFast = false;
  }
  return { sql, params, paramTypes, paramFormats, protocol, expectFast };
}

const bytes = (frames: Frame[]): string[] => frames.map((fr) => `${fr.type} ${fr.body.toString('hex')}`);

/**
 * Runs one case on a connection; returns the reply frames of its last batch, up to and including
 * ReadyForQuery, and the bytes the fast proxy sent upstream for that batch.
 */
async function run(c: ProtoConn, k: Case, n: number): Promise<{ frames: Frame[]; sent: number }> {
  const start = relay.bytes;
  if (k.protocol === 'simple') {
    c.write(msg.query(k.sql));
    const frames = await c.readUntilReady();
    return { frames, sent: relay.bytes - start };
  }
  const name = k.protocol === 'prepared' ? `s${n}` : '';
  const bind = msg.bind('', name, k.params, k.paramFormats.some((x) => x === 1) ? k.paramFormats : [], []);
  if (k.protocol === 'extended') {
    c.write(msg.parse(name, k.sql, k.paramTypes), bind, msg.describe('P', ''), msg.execute(''), msg.sync());
    const frames = await c.readUntilReady();
    return { frames, sent: relay.bytes - start };
  }
  // Prepared in its own batch, as drivers do; then executed (the hot case).
  c.write(msg.parse(name, k.sql, k.paramTypes), msg.describe('S', name), msg.sync());
  const prep = await c.readUntilReady();
  if (prep.some((fr) => fr.type === 'E')) return { frames: prep, sent: -1 };
  const hot = relay.bytes;
  c.write(bind, msg.describe('P', ''), msg.execute(''), msg.sync());
  const frames = await c.readUntilReady();
  return { frames: [...prep, ...frames], sent: relay.bytes - hot };
}

type Snapshot = Record<string, unknown>;

/** Every key of the test's db with its type and contents (stream ids as they are: restore needs them). */
async function snapshot(r: Redis): Promise<Snapshot> {
  const out: Snapshot = {};
  for (const k of (await r.keys('*')).sort()) {
    const type = await r.type(k);
    if (type === 'hash') out[k] = { hash: Object.entries(await r.hgetall(k)).sort() };
    else if (type === 'list') out[k] = { list: await r.lrange(k, 0, -1) };
    else if (type === 'set') out[k] = { set: (await r.smembers(k)).sort() };
    else if (type === 'zset') out[k] = { zset: await r.zrange(k, '0', '-1', 'WITHSCORES') };
    else if (type === 'string') out[k] = { string: await r.get(k) };
    else if (type === 'stream') out[k] = { stream: await r.xrange(k, '-', '+') };
    else out[k] = { type };
  }
  return out;
}

/**
 * A snapshot as compared: an XADD '*' numbers its entry by the clock, so stream ids become ordinals;
 * the idempotency markers of committed transactions (outbox.ts) are named by random ids, so not shown.
 */
function comparable(s: Snapshot): Snapshot {
  const out: Snapshot = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('redis-fdw-proxy:tx:')) continue;
    const stream = (v as { stream?: [string, string[]][] }).stream;
    out[k] = stream ? { stream: stream.map(([, fields], i) => [i, fields]) } : v;
  }
  return out;
}

async function restore(r: Redis, s: Snapshot): Promise<void> {
  await r.flushdb();
  for (const [k, v] of Object.entries(s)) {
    const x = v as { hash?: [string, string][]; list?: string[]; set?: string[]; zset?: string[]; string?: string; stream?: [string, string[]][] };
    if (x.hash) await r.hset(k, Object.fromEntries(x.hash));
    else if (x.list) await r.rpush(k, ...x.list);
    else if (x.set) await r.sadd(k, ...x.set);
    else if (x.zset) for (let i = 0; i < x.zset.length; i += 2) await r.zadd(k, String(x.zset[i + 1]), String(x.zset[i]));
    else if (x.string !== undefined) await r.set(k, x.string);
    else if (x.stream) for (const [id, fields] of x.stream) await r.call('xadd', k, id, ...fields);
  }
}

before(async () => {
  f = await fdwFixture('fdw_fast_write', DB, { fastPath: false });
  const up = urlParts(f.directUrl);
  relay = await CountingRelay.start(up);
  const relayPort = relay.port;
  // Name resolutions and privilege checks stay cached for the whole test (by default they are checked
  // again every second), so a table's first statement is its only round trip for them.
  fast = await startProxy(`postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${relayPort}/${f.db}`, {}, { recheckMs: 600_000 });
  setup = await connect(f.url);
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

describe(`fast write vs upstream path: replies and Redis contents (seed ${SEED}, FAST_WRITE_SEED to repeat)`, () => {
  it(`${STATEMENTS} random INSERTs: identical bytes and Redis contents; the eligible ones cost no upstream bytes`, async () => {
    const rand = prng(SEED);
    const a = await open(fast.port);
    const b = await open(f.proxy.port);
    let local = 0;
    let expected = 0;
    try {
      // Fill the fast session's name cache (one round trip per table), as a warm session has it.
      for (const t of tables) {
        a.write(msg.query(`select count(*) from ${t.name}`));
        await a.readUntilReady();
      }
      let state = await snapshot(f.redis);
      for (let n = 0; n < STATEMENTS; n++) {
        const k = generate(rand);
        const mark = `#${n} ${k.protocol} ${k.sql} params=${JSON.stringify(k.params.map((p) => (Buffer.isBuffer(p) ? p.toString('hex') : p)))} types=${JSON.stringify(k.paramTypes)} formats=${JSON.stringify(k.paramFormats)}`;
        const { frames: fa, sent } = await run(a, k, n);
        const afterFast = await snapshot(f.redis);
        await restore(f.redis, state);
        const { frames: fb } = await run(b, k, n);
        const afterSlow = await snapshot(f.redis);
        assert.deepEqual(bytes(fa), bytes(fb), mark);
        assert.deepEqual(comparable(afterFast), comparable(afterSlow), `Redis after ${mark}`);
        state = afterSlow;
        if (k.protocol !== 'extended' && k.expectFast) {
          assert.equal(sent, 0, `expected no upstream bytes: ${mark}\n${fa.map((x) => x.type).join('')}`);
          expected++;
        }
        if (sent === 0) local++;
      }
    } finally {
      a.destroy();
      b.destroy();
    }
    console.log(`[fast-write] seed ${SEED}: ${STATEMENTS} statements identical, ${local} answered with no upstream bytes (${expected} predicted)`);
    assert.ok(expected > STATEMENTS / 10, `only ${expected} statements the fast write should answer: the generator has lost its way`);
  });
});


describe('the fast write in context: same replies and Redis contents as the upstream path', () => {
  /** One batch: the messages, and how many ReadyForQuery (or, `until`, which frame) end its replies. */
  interface Step {
    send: Buffer[];
    readies?: number;
    until?: string;
  }
  const q = (sql: string): Step => ({ send: [msg.query(sql)] });

  /**
   * Runs the same steps on both proxies (Redis put back in between), each on a fresh connection that
   * first runs `warm` (unrecorded). Returns both replies, the fast proxy's upstream bytes per step and
   * both Redis contents at the end.
   */
  async function both(steps: Step[], warm: string[] = tables.map((t) => `select count(*) from ${t.name}`)): Promise<{ fast: string[][]; slow: string[][]; sent: number[]; redis: Snapshot }> {
    const start = await snapshot(f.redis);
    const out = { fast: [] as string[][], slow: [] as string[][], sent: [] as number[], redis: {} as Snapshot };
    let fastRedis: Snapshot = {};
    for (const port of [fast.port, f.proxy.port]) {
      await restore(f.redis, start);
      const c = await open(port);
      try {
        for (const w of warm) {
          c.write(msg.query(w));
          await c.readUntilReady();
        }
        for (const s of steps) {
          const before = relay.bytes;
          c.write(...s.send);
          const frames = s.until ? await c.readUntil((fr) => fr.type === s.until) : await c.readUntilReady(s.readies ?? 1);
          (port === fast.port ? out.fast : out.slow).push(bytes(frames));
          if (port === fast.port) out.sent.push(relay.bytes - before);
        }
      } finally {
        c.destroy();
      }
      if (port === fast.port) fastRedis = comparable(await snapshot(f.redis));
      else out.redis = comparable(await snapshot(f.redis));
    }
    assert.deepEqual(out.fast, out.slow);
    assert.deepEqual(fastRedis, out.redis, 'Redis contents');
    return out;
  }
  const prepare = (name: string, sql: string, types: number[] = []): Step => ({ send: [msg.parse(name, sql, types), msg.describe('S', name), msg.sync()] });
  const exec = (name: string, params: Param[], portal = ''): Step => ({ send: [msg.bind(portal, name, params), msg.describe('P', portal), msg.execute(portal), msg.sync()] });
  const hasError = (replies: string[][], code: string): boolean => replies.flat().some((x) => x.startsWith('E ') && x.includes(Buffer.from(`C${code}`).toString('hex')));

  it('inside BEGIN … COMMIT the writes are staged with no upstream round trip, read back, and applied at COMMIT', async () => {
    const r = await both([
      q('begin'),
      q(`insert into sb_hash values ('tx1', 'one')`),
      prepare('ins', `insert into sb_hash values ($1, 'v' || $2)`),
      exec('ins', ['tx2', 'two']),
      q(`select * from sb_hash where key in ('tx1', 'tx2')`),
      q('commit'),
    ]);
    assert.equal(r.sent[1], 0, 'the simple INSERT sent nothing upstream');
    assert.equal(r.sent[3], 0, 'the prepared INSERT sent nothing upstream');
    assert.equal(r.fast[1]!.at(-1), 'Z 54', 'still in the transaction block');
    assert.equal(r.fast[4]!.filter((x) => x.startsWith('D ')).length, 2, 'read-your-writes');
    assert.deepEqual((r.redis.h as { hash: [string, string][] }).hash.filter(([k]) => k.startsWith('tx')), [['tx1', 'one'], ['tx2', 'vtwo']]);
  });

  it('ROLLBACK and ROLLBACK TO SAVEPOINT drop staged fast writes', async () => {
    const r = await both([q('begin'), q(`insert into rs_list values ('kept')`), q('savepoint s'), q(`insert into rs_list values ('dropped')`), q('rollback to savepoint s'), q('commit'), q('begin'), q(`insert into rs_list values ('gone')`), q('rollback')]);
    assert.equal(r.sent[1], 0);
    const list = (r.redis.rl as { list: string[] }).list;
    assert.equal(list.at(-1), 'kept');
    assert.ok(!list.includes('dropped') && !list.includes('gone'));
  });

  it('a failed transaction answers 25P02 from upstream; errors the rows make are the upstream path’s (23502, 428C9)', async () => {
    const r = await both([q('begin'), q('select 1/0'), q(`insert into sb_hash values ('f', 'x')`), q('rollback'), q(`insert into sb_hash values ('n', NULL)`), q(`insert into rs_glist values ('gl:a', 'e', 3)`), prepare('p', 'insert into sb_set values ($1)'), exec('p', [null]), exec('p', ['ok'])]);
    assert.ok(hasError([r.fast[2]!], '25P02'));
    assert.ok(r.sent[2]! > 0, 'upstream answers in a failed transaction');
    assert.ok(hasError([r.fast[4]!], '23502') && hasError([r.fast[7]!], '23502'));
    assert.ok(hasError([r.fast[5]!], '428C9'));
    assert.equal(r.sent[8], 0, 'after an error the next one is local again');
  });

  it('a portal runs once (55000 the second time, as Postgres says), and is gone after Sync (34000)', async () => {
    const r = await both([prepare('p', `insert into rs_set values ($1)`), { send: [msg.bind('', 'p', ['once']), msg.execute(''), msg.execute(''), msg.sync()] }, { send: [msg.execute(''), msg.sync()] }]);
    assert.ok(hasError([r.fast[1]!], '55000'));
    assert.ok(hasError([r.fast[2]!], '34000'));
    // Postgres itself, on a real table.
    const c = await open(urlParts(f.directUrl).port);
    try {
      await c.query('create temp table t (a text)');
      c.write(msg.parse('', 'insert into t values ($1)'), msg.bind('', '', ['x']), msg.execute(''), msg.execute(''), msg.sync());
      const frames = await c.readUntilReady();
      const e = frames.find((x) => x.type === 'E')!;
      assert.match(e.body.toString('utf8'), /C55000\0Mportal "" cannot be run\0/);
    } finally {
      c.destroy();
    }
  });

  it('a message between Bind and Execute that fails upstream keeps the write from running', async () => {
    const r = await both([prepare('p', `insert into rs_set values ($1)`), { send: [msg.bind('', 'p', ['never']), msg.parse('bad', 'selec 1'), msg.execute(''), msg.sync()] }, exec('p', ['after'])]);
    assert.ok(hasError([r.fast[1]!], '42601'));
    assert.deepEqual((r.redis.rset as { set: string[] }).set.includes('never'), false);
    assert.ok((r.redis.rset as { set: string[] }).set.includes('after'));
  });

  it('Bind, Describe and Flush are answered before any Execute (the client is waiting for them)', async () => {
    const r = await both([prepare('p', `insert into sb_zset values ($1)`), { send: [msg.bind('', 'p', ['flushed']), msg.describe('P', ''), msg.flush()], until: 'n' }, { send: [msg.execute(''), msg.sync()] }]);
    assert.deepEqual(r.fast[1], ['2 ', 'n ']);
    assert.deepEqual(r.fast[2], [`C ${Buffer.from('INSERT 0 1\0').toString('hex')}`, 'Z 49']);
  });

  it('in a LATIN1 session, values are converted as upstream converts them (Redis gets UTF-8)', async () => {
    const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
    const query = (text: Buffer): Buffer => {
      const b = Buffer.concat([Buffer.from('Q'), Buffer.alloc(4), text, Buffer.from([0])]);
      b.writeInt32BE(b.length - 1, 1);
      return b;
    };
    const parse = (name: string, text: Buffer): Buffer => {
      const b = Buffer.concat([Buffer.from('P'), Buffer.alloc(4), Buffer.from(`${name}\0`), text, Buffer.from([0, 0, 0])]);
      b.writeInt32BE(b.length - 1, 1);
      return b;
    };
    const r = await both([
      q(`set client_encoding to 'LATIN1'`),
      // A SET may change how names resolve: the first statement after it asks upstream again.
      q(`insert into sb_hash values ('lat0', 'x')`),
      { send: [query(latin1(`insert into sb_hash values ('lat1', 'caf\u00e9')`))] },
      { send: [parse('p', latin1(`insert into sb_hash values ($1, $2 || '\u00e9')`)), msg.describe('S', 'p'), msg.sync()] },
      exec('p', ['lat2', latin1('\u00fcber')]),
    ]);
    assert.equal(r.sent[2], 0);
    assert.equal(r.sent[4], 0);
    const h = Object.fromEntries((r.redis.h as { hash: [string, string][] }).hash);
    assert.equal(h.lat1, 'café');
    assert.equal(h.lat2, 'überé');
  });

  it('EXPLAIN of a write says whether it takes the fast path, and why not; EXPLAIN ANALYZE of one is refused', async () => {
    const c = await connect(fast.url(undefined, undefined, f.db));
    // The seeded random test before this one may have left a field 'a' (one of its TEXTS) in h.
    await f.redis.hdel('h', 'a');
    try {
      const plan = async (sql: string, values?: unknown[]): Promise<string> => (await c.query(`explain ${sql}`, values)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      assert.match(await plan(`insert into sb_hash values ('a', 'b')`), /\nRedis fast path: yes$/);
      assert.match(await plan(`insert into sb_hash values ($1, 'v' || $2)`, ['k', 'v']), /\nRedis fast path: yes$/);
      assert.match(await plan(`insert into rs_i2 (key, value) values ('k', 7), ('l', $1)`, ['8']), /\nRedis fast path: yes$/);
      assert.match(await plan(`insert into sb_hash values ('a', now()::text)`), /Redis fast path: no \(a value that is not a constant or parameter\)/);
      assert.match(await plan(`insert into sb_hash_def (key) values ('a')`), /Redis fast path: no \(column value has a default\)/);
      assert.match(await plan(`insert into rs_zset_s values ('m', 1)`), /Redis fast path: no \(column score is double precision\)/);
      assert.match(await plan(`insert into sb_hash values ('a', 'b') returning key`), /Redis fast path: no \(RETURNING\)/);
      assert.match(await plan(`insert into sb_hash select key, value from sb_hash`), /Redis scan on public\.sb_hash: HSCAN h 0 COUNT \d+[^]*Redis fast path: no/);
      assert.match(await plan(`delete from sb_hash where key = 'a'`), /Redis scan on public\.sb_hash: HMGET h a[^]*Redis fast path: no \(DELETE/);
      await assert.rejects(c.query(`explain analyze insert into sb_hash values ('a', 'b')`), (e: { code?: string }) => e.code === '0A000');
      // Nothing was written by any of it.
      assert.equal(await f.redis.hexists('h', 'a'), 0);
    } finally {
      await c.end();
    }
  });

  it('without INSERT privilege: 42501, as the upstream path says it', async () => {
    const role = `fw_reader_${process.pid}`;
    await setup.query(`drop role if exists ${role}; create role ${role}; grant select on all tables in schema public to ${role}`);
    try {
      const r = await both([q(`set role ${role}`), q(`insert into sb_hash values ('no', 'no')`), prepare('p', `insert into sb_hash values ($1, $2)`), q('reset role')]);
      assert.ok(hasError([r.fast[1]!], '42501'));
      assert.ok(hasError([r.fast[2]!], '42501'));
    } finally {
      await setup.query(`revoke all on all tables in schema public from ${role}; drop role ${role}`);
    }
  });
});
