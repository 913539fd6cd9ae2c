import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql } from '../../src/sql/parser.js';
import { analyzeStatement, type Node } from '../../src/sql/analyze.js';
import { extractPushdown } from '../../src/sql/pushdown.js';
import type { TableSpec } from '../../src/redis/table-spec.js';

const hash: TableSpec = {
  table: 'public.h',
  type: 'hash',
  multi: 'none',
  key: 'h',
  columns: [
    { name: 'key', type: 'text', typeOid: 25, notNull: false },
    { name: 'value', type: 'text', typeOid: 25, notNull: false },
  ],
  roles: [{ kind: 'field' }, { kind: 'value' }],
};

async function pushdown(sql: string, params: string[] = []) {
  await initParser();
  const info = analyzeStatement(parseSql(sql).stmts![0]!.stmt as Node);
  return extractPushdown(info.reads[0]!, hash, (n) => params[n - 1]);
}

test('equality and IN on the hash field push down, with or without text casts', async () => {
  assert.deepEqual(await pushdown("select * from h where key = 'a'"), { fields: ['a'] });
  // Regression: TypeCast.typeName is not node-wrapped, so casts once disabled pushdown entirely.
  assert.deepEqual(await pushdown("select * from h where key = 'a'::text"), { fields: ['a'] });
  assert.deepEqual(await pushdown('select * from h where key = $1::text', ['42']), { fields: ['42'] });
  assert.deepEqual(await pushdown('select * from h where key = CAST($1 AS varchar)', ['7']), { fields: ['7'] });
  assert.deepEqual(await pushdown("select * from h where key in ($1::text, 'b')", ['a']), { fields: ['a', 'b'] });
  assert.deepEqual(await pushdown("select * from h x where x.key = 'a' and value like 'z%'"), { fields: ['a'] });
});

test('what cannot narrow the read is not pushed down', async () => {
  assert.deepEqual(await pushdown("select * from h where key = 'a' or key = 'b'"), {});
  assert.deepEqual(await pushdown("select * from h where key::int = 5"), {});
  assert.deepEqual(await pushdown("select * from h where key = 5::int"), {});
  assert.deepEqual(await pushdown("select * from h where value = 'a'"), {});
  assert.deepEqual(await pushdown("select * from h join t on t.k = h.key where t.k = 'a'"), {});
});

test('casts that change the text (a length, padding) are not pushed down', async () => {
  assert.deepEqual(await pushdown("select * from h where key = 'abcdef'::varchar(3)"), {});
  assert.deepEqual(await pushdown("select * from h where key = 'abc'::char(5)"), {});
});

test('reads in set operations and CTE bodies are found; CTE names shadow tables only after their definition', async () => {
  await initParser();
  const reads = (sql: string) => analyzeStatement(parseSql(sql).stmts![0]!.stmt as Node).reads.map((r) => r.relname);
  assert.deepEqual(reads('select a from x union select b from y except select c from z'), ['x', 'y', 'z']);
  assert.deepEqual(reads('with h as (select * from h) select * from h'), ['h']);
  assert.deepEqual(reads('with recursive h as (select * from h) select * from h'), []);
  assert.deepEqual(reads('with a as (select * from t), b as (select * from a) select * from b, a'), ['t']);
});

test('LIMIT (plus OFFSET) bounds the read only when nothing before it can drop, merge or reorder rows', async () => {
  assert.deepEqual(await pushdown('select * from h limit 3'), { limit: 3 });
  assert.deepEqual(await pushdown('select key from h limit 3 offset 2'), { limit: 5 });
  assert.deepEqual(await pushdown('select * from h limit $1', ['4']), { limit: 4 });
  assert.deepEqual(await pushdown('select * from h limit 0'), { limit: 0 });
  for (const sql of [
    'select count(*) from h limit 1',
    'select * from h order by key limit 1',
    'select distinct value from h limit 1',
    'select value from h group by value limit 1',
    'select generate_series(1, 2) from h limit 1',
    'select * from h limit all',
    'select * from h limit 1 + 1',
    'select * from h order by value fetch first 1 rows with ties',
    "select * from h where value = 'x' limit 1",
  ]) {
    assert.equal((await pushdown(sql)).limit, undefined, sql);
  }
  assert.equal((await pushdown('select * from h limit $1', ['-1'])).limit, undefined);
});
