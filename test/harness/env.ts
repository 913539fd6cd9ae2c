// Connection info for tests. The runner (test/run.ts) provides the servers via
// env vars so every test file, in every worker process, shares the same ones.
import { PG_AUTH_USERS } from './servers.js';

export interface TestEnv {
  pgUrl: string;
  redisUrl: string;
  /** True when the runner started this Postgres itself (so its pg_hba/roles are ours). */
  pgOwned: boolean;
}

export function testEnv(): TestEnv {
  const pgUrl = process.env.TEST_PG_URL;
  const redisUrl = process.env.TEST_REDIS_URL;
  if (!pgUrl || !redisUrl) {
    throw new Error(
      'TEST_PG_URL and TEST_REDIS_URL must be set; run tests via `npm test` (node dist/test/run.js), ' +
        'which starts throwaway servers or uses the ones given in those variables',
    );
  }
  return { pgUrl, redisUrl, pgOwned: process.env.TEST_PG_OWNED === '1' };
}

/** Roles created by startPostgres(), one per pg_hba auth method. */
export const authUsers = PG_AUTH_USERS;

/** Only our own Postgres has these roles and pg_hba lines; an external server's config is not ours. */
export const authAvailable = process.env.TEST_PG_AUTH_USERS === '1';
