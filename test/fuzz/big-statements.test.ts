// Big statements a logged-in client can send (issue 11, items 5 and 6, and the 200 MB query of the
// parser-abuse list), through the real CLI: literals of 4 and 20 MB into a foreign table, a literal
// naming the foreign table into a real table, and a 200 MB query.
// Each is answered as upstream answers it, another session's SELECT 1 keeps being answered (against a
// same-run baseline straight to upstream).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abuseFixture, assertNoStall, type AbuseFixture } from '../support/abuse.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.bigStatements;
let x: AbuseFixture;

before(async () => {
  x = await abuseFixture('big_statements', DB);
});

after(async () => {
  await x?.close();
});

describe('big string literals', () => {
  for (const mb of [4, 20]) {
    test(`a ${mb} MB literal inserted into a foreign table is stored whole, without stalling other sessions`, async () => {
      const value = 'x'.repeat(mb * 1024 * 1024 - 3) + 'end';
      const base = await x.whileProbing(() => x.psqlFile(x.directUrl, `insert into rt values ('big${mb}', '${value}');\n`), x.directUrl);
      assert.equal(base.result, '', `psql said: ${base.result.slice(0, 500)}`);
      const { result, worstMs } = await x.whileProbing(() => x.psqlFile(x.url, `insert into h values ('big${mb}', '${value}');\n`));
      assert.equal(result, '', `psql said: ${result.slice(0, 500)}`);
      const stored = await x.f.redis.hget('abuse:h', `big${mb}`);
      assert.equal(stored?.length, value.length);
      assert.ok(stored === value, 'stored value differs');
      assertNoStall(`${mb} MB literal into a foreign table`, worstMs, base.worstMs);
    });
  }

  test('a 4 MB literal into a real table, naming the foreign table only inside literals and comments, goes straight through', async () => {
    const value = `h ${'y'.repeat(4 * 1024 * 1024)} from h`;
    const sql = `/* from h */ insert into rt values ('from h', $q$ h $q$ || '${value}') -- h\n;\n`;
    const { result, worstMs } = await x.whileProbing(() => x.psqlFile(x.url, sql));
    assert.equal(result, '', `psql said: ${result.slice(0, 500)}`);
    const r = await x.c.query(`select length(v) as n from rt where k = 'from h'`);
    assert.equal(Number(r.rows[0].n), ' h '.length + value.length);
    assertNoStall('4 MB literal into a real table', worstMs);
  });

  test('a 200 MB query naming the foreign table only in a literal and a comment is answered by upstream', async () => {
    const size = 200 * 1024 * 1024;
    const sql = `select length('${'h'.repeat(size)}') /* from h */;\n`;
    // Baseline, same run: the same query straight to upstream, probed straight at upstream.
    const base = await x.whileProbing(() => x.psqlFile(x.directUrl, sql), x.directUrl);
    assert.equal(base.result.trim(), String(size));
    const before = x.proxyRssMb();
    const { result, worstMs } = await x.whileProbing(() => x.psqlFile(x.url, sql));
    assert.equal(result.trim(), String(size), `psql said: ${result.slice(0, 500)}`);
    console.log(`[abuse] 200 MB query: proxy RSS ${before.toFixed(0)} MB before, ${x.proxyRssMb().toFixed(0)} MB after`);
    assertNoStall('200 MB query', worstMs, base.worstMs);
    assert.deepEqual((await x.c.query('select 1 as one')).rows, [{ one: '1' }]);
  });
});
