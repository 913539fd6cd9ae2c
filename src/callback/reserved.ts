/**
 * The reserved database name of callback sessions. postgres_fdw on upstream connects back to the proxy
 * with `dbname 'redis_fdw_proxy_callback:<upstream database>'`; a session asking for a database with
 * this prefix is answered by the proxy alone and never relayed, so a callback can't recurse.
 */
export const CALLBACK_DB_PREFIX = 'redis_fdw_proxy_callback';

/** The upstream database a callback's dbname names, or undefined when the name is not reserved. */
export function callbackDatabase(dbname: string): string | undefined {
  if (dbname === CALLBACK_DB_PREFIX) return '';
  if (!dbname.startsWith(`${CALLBACK_DB_PREFIX}:`)) return undefined;
  return dbname.slice(CALLBACK_DB_PREFIX.length + 1);
}

export const callbackDbname = (upstreamDb: string): string => `${CALLBACK_DB_PREFIX}:${upstreamDb}`;

/** The libpq user a generated callback secret goes with (only for logs: the password is what counts). */
export const CALLBACK_USER = 'redis_fdw_proxy';

/** User-mapping option marking `user`/`password` as the callback's credentials only, not Redis's. */
export const CALLBACK_SECRET_OPTION = 'callback_secret';
