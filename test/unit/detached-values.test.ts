// A big VALUES list crosses from the parse worker apart from its tree, serialized in slices, and is put
// back a slice at a time (issue 11: cloning a 100,000-row INSERT … VALUES's tree held the event loop
// ~200 ms in one piece). The tree put back must be the parser's own, and the statement's analysis the
// one of the whole tree, whether it was made ahead (without the rows) or after.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql } from '../../src/sql/parser.js';
import { OffThreadClassifier } from '../../src/sql/off-thread.js';
import { DETACH_ROWS, reattachValues } from '../../src/sql/detached-values.js';
import { analyzeStatement, type Node } from '../../src/sql/analyze.js';
import { StatementHook } from '../../src/sql/classify.js';

before(() => initParser());

let worker: OffThreadClassifier;
before(() => (worker = new OffThreadClassifier()));
after(() => worker.close());

const rows = (n: number, row: (i: number) => string): string => Array.from({ length: n }, (_, i) => row(i)).join(', ');
const BIG = DETACH_ROWS + 3000;

/** The worker's reply for `text`, its rows put back. */
async function throughWorker(text: string): Promise<{ tree: ReturnType<typeof parseSql>; analysable: number[] | undefined }> {
  const r = await worker.classify(Buffer.from(text), { encoding: 'UTF8', lowerNames: ['h'], watchDdl: false, all: false });
  assert.equal(r.kind, 'inspect');
  if (r.kind !== 'inspect') throw new Error('forwarded');
  const analysable = r.detached?.analysable;
  if (r.detached) await reattachValues(r.tree, r.detached);
  return { tree: r.tree, analysable };
}

const CASES: { what: string; text: string; detached: boolean; analysable: number[] }[] = [
  { what: 'constants (the issue’s statement)', text: `insert into h values ${rows(BIG, (i) => `('f${i}', 'v${i}')`)}`, detached: true, analysable: [0] },
  { what: '$n only in the rows: analysed ahead, the highest $n sent along', text: `insert into h values ${rows(BIG, (i) => `('f${i}', $${(i % 3) + 1})`)}`, detached: true, analysable: [0] },
  {
    what: 'a read of a table only in the rows: analysed after',
    text: `insert into h values ${rows(BIG, (i) => (i === 777 ? `('k', (select v from other where v = 'x' limit 1))` : `('f${i}', 'ÄÖ☃ ${i}')`))}`,
    detached: true,
    analysable: [],
  },
  {
    what: 'set operation branches, a nested VALUES, several statements',
    text: `insert into h (key, value) values ${rows(BIG, (i) => `('a${i}', 'x')`)} union all values ${rows(BIG, (i) => (i === 5 ? `((values ('n')), 'y')` : `('b${i}', 'y')`))} returning *; select * from h where key = 'a1'; insert into h values ${rows(BIG, (i) => `('c${i}', DEFAULT)`)}`,
    detached: true,
    analysable: [0, 2],
  },
  { what: 'VALUES below the size that is detached', text: `insert into h values ${rows(DETACH_ROWS - 1, (i) => `('f${i}', '${'v'.repeat(200)}')`)}`, detached: false, analysable: [] },
];

for (const c of CASES) {
  test(`big VALUES through the worker: ${c.what}`, async () => {
    const { tree, analysable } = await throughWorker(c.text);
    const parsed = parseSql(c.text);
    assert.equal(analysable !== undefined, c.detached, 'rows detached');
    if (c.detached) assert.deepEqual(analysable, c.analysable, 'statements analysed ahead');
    assert.deepEqual(tree, parsed);
    const stmts = tree.stmts ?? [];
    stmts.forEach((s, i) => assert.deepEqual(analyzeStatement(s.stmt as Node), analyzeStatement(parsed.stmts![i]!.stmt as Node), `statement ${i}'s analysis`));
  });
}

test('the statement hook decides a big VALUES with its rows back in place', async () => {
  const hook = new StatementHook(undefined, { offThreadBytes: 1024 });
  try {
    const text = CASES[0]!.text;
    const body = Buffer.from(`${text}\0`);
    const frame = Buffer.alloc(5 + body.length);
    frame.write('Q', 0, 'latin1');
    frame.writeInt32BE(4 + body.length, 1);
    body.copy(frame, 5);
    const names = { lowerNames: new Set(['h']), has: (n: string) => n === 'h', size: 1 };
    const d = await hook.classifyFrame(0x51, frame, 0, frame.length, names, false);
    assert.equal(d.kind, 'inspect');
    if (d.kind !== 'inspect') return;
    const parsed = parseSql(text);
    assert.deepEqual(d.tree, parsed);
    assert.deepEqual(analyzeStatement(d.tree.stmts![0]!.stmt as Node), analyzeStatement(parsed.stmts![0]!.stmt as Node));
  } finally {
    await hook.close();
  }
});
