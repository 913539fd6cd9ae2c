/**
 * Which Redis db each test file owns. Fixtures FLUSHDB their db when they start and test files run
 * two at a time, so two files sharing a db wipe each other's keys mid-test. One table, checked for
 * duplicates by test/unit/redis-dbs.test.ts, keeps that from happening when files are added in
 * parallel. db 0 is left to the unit tests that use the runner's Redis URL as given.
 * The runner's throwaway Redis has 32 dbs (`--databases 32`); an external TEST_REDIS_URL needs as many.
 */
export const REDIS_DB = {
  syscalls: 2,
  seedsSupabase: 3,
  seedsRs: 4,
  ddl: 5,
  selectSql: 6,
  extended: 7,
  valuesErrors: 8,
  scale: 9,
  property: 10,
  writes: 11,
  drivers: 12,
  writeTx: 13,
  benches: 14,
  fastPath: 15,
  callbackFallback: 16,
  callbackOrm: 17,
  callback: 18,
  bigStatements: 19,
  inputAbuse: 20,
  upsert: 21,
  // Their tables live on a Redis of their own (they pause and kill it); the fixture's db holds nothing.
  faults: 22,
  cancel: 23,
  opsLive: 24,
  ops: 25,
  encoding: 26,
  fastWrite: 27,
  giveWay: 28,
  fastStream: 29,
  sharedNames: 30,
} as const;
