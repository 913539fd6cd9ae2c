// The statement hook's input guards (issue 11, items 5 and 6): the name check that can't match inside a
// literal or a comment (checked against the real Postgres scanner, never missing a real mention), the
// analysis of a big literal in time linear in its size, and the byte-bounded parse cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql, scanSql } from '../../src/sql/parser.js';
import { analyzeStatement, type Node } from '../../src/sql/analyze.js';
import { mentionsAny } from '../../src/sql/mentions.js';
import { ParseCache } from '../../src/sql/parse-cache.js';
import { prng } from '../support/frames.js';

const NAMES = new Set(['h', 'users']);

/**
 * The truth, from Postgres's own scanner: a word token (identifier or keyword) naming one of NAMES;
 * undefined when the scanner rejects the text (`1h`: trailing junk).
 */
function scannerSeesName(text: string): boolean | undefined {
  const bytes = Buffer.from(text, 'utf8');
  let tokens;
  try {
    tokens = scanSql(text).tokens;
  } catch {
    return undefined;
  }
  return tokens.some((t) => {
    const tx = bytes.subarray(t.start, t.end).toString('utf8');
    const word = tx.startsWith('"') ? tx.slice(1, -1).replace(/""/g, '"') : tx;
    return (t.tokenName === 'IDENT' || t.keywordKind !== 0) && NAMES.has(word.toLowerCase());
  });
}

const PIECES = [
  'select', ' ', ' ', '\n', '*', 'from', 'h', 'H', '"h"', '"H"', 'users', 'hh', 'h1', 'x_h', '$h$', '$1', ',', '(', ')', ';',
  "'h'", "'it''s h'", "E'h\\' h'", "e'\\\\'", '$$ h $$', '$q$ h $$ h $q$', '/* h */', '/* /* h */ h */', '-- h\n', '-- h\r', "B'01'", "X'h'",
  'a$h', 'h$', '1h', 'users.h', 'public."users"', "U&'h'",
];

test('the name check never misses a name the scanner sees, and skips names inside literals and comments', async () => {
  await initParser();
  const rng = prng(0x1d5);
  let skipped = 0;
  for (let i = 0; i < 4000; i++) {
    const parts: string[] = [];
    for (let k = rng.int(1, 12); k > 0; k--) parts.push(rng.pick(PIECES));
    const text = parts.join(' ');
    const truth = scannerSeesName(text);
    if (truth === undefined) continue;
    const said = mentionsAny(text, NAMES);
    if (truth) assert.equal(said, true, `missed a mention in ${JSON.stringify(text)}`);
    else if (!said) skipped++;
  }
  // Most texts without a real mention still have the name inside a literal or comment piece.
  assert.ok(skipped > 1000, `only ${skipped} texts ruled out`);
});

test('the name check on literal- and comment-only mentions', () => {
  const no = ["select 'h'", 'select 1 -- from h', 'select 1 /* from /* h */ h */', 'select $$ from h $$', 'select $t$ h $t$', "select E'\\' from h'", 'select "hx"', 'select x_h, h1 from t'];
  for (const t of no) assert.equal(mentionsAny(t, NAMES), false, t);
  const yes = ['select * from h', 'select * from H', 'select * from "H"', 'select * from public.h', "select 'a' || x from h", 'select $1 from h', 'select * from users', "select '\\' from h", "select 'x", 'select $t$ unterminated', 'select * from U&"h"'];
  for (const t of yes) assert.equal(mentionsAny(t, NAMES), true, t);
});

test('the name check is linear: no quadratic search over many literals and comments', () => {
  const text = "select '', '' -- c\n".repeat(200_000) + ' from t'; // ~4 MB of short literals and comments
  const t0 = performance.now();
  assert.equal(mentionsAny(text, NAMES), false);
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
});

test('analysis of a statement with a 4 MB literal does not walk its characters', async () => {
  await initParser();
  const tree = parseSql(`insert into h values ('k', '${'x'.repeat(4 * 1024 * 1024)}')`);
  const t0 = performance.now();
  const info = analyzeStatement(tree.stmts![0]!.stmt as Node);
  const ms = performance.now() - t0;
  assert.equal(info.kind, 'InsertStmt');
  assert.equal(info.targets[0]?.relname, 'h');
  // Walking the literal character by character took seconds; the tree has a dozen nodes.
  assert.ok(ms < 500, `analysis took ${ms.toFixed(0)} ms`);
});

test('the parse cache counts hits and misses and stays within its byte bound', () => {
  let parses = 0;
  const cache = new ParseCache({ maxEntries: 100, maxBytes: 100_000, maxTextBytes: 4096 }, (t) => {
    parses++;
    return { version: 0, stmts: [{ stmt: { SelectStmt: { t } } }] } as never;
  });
  cache.get('select 1');
  cache.get('select 1');
  assert.deepEqual({ ...cache.snapshot(), parseMicros: 0 }, { hits: 1, misses: 1, uncached: 0, entries: 1, bytes: cache.snapshot().bytes, parseMicros: 0 });
  assert.ok(cache.snapshot().bytes > 8);
  for (let i = 0; i < 500; i++) cache.get(`select '${i}' -- ${'x'.repeat(1000)}`);
  const s = cache.snapshot();
  assert.ok(s.bytes <= 100_000, `holds ${s.bytes} bytes`);
  assert.ok(s.entries < 100 && s.entries > 0, `holds ${s.entries} entries`);
  // Too big to keep: parsed every time, never held.
  const big = `select '${'y'.repeat(5000)}'`;
  cache.get(big);
  cache.get(big);
  assert.equal(cache.snapshot().uncached, 2);
  assert.equal(parses, 1 + 500 + 2);
  // Syntax errors are cached too, and rethrown.
  const bad = new ParseCache({}, () => {
    throw new Error('syntax');
  });
  assert.throws(() => bad.get('selec'), /syntax/);
  assert.throws(() => bad.get('selec'), /syntax/);
  assert.equal(bad.snapshot().hits, 1);
});
