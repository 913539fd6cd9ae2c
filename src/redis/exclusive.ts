/**
 * Connections that one applier holds alone while it runs WATCH … MULTI … EXEC. The shared client of
 * a server can't carry that: other sessions' commands would land inside the transaction. A few idle
 * duplicates per server are kept for reuse, so a COMMIT usually costs no new connection.
 */
import type { Redis } from 'ioredis';
import type { RedisClient } from './pool.js';

const IDLE_PER_SERVER = 4;
const idle = new Map<RedisClient, Redis[]>();

export function isCluster(client: RedisClient): boolean {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** A ready connection to the same server, db and credentials as `client` (a standalone Redis). */
export async function lease(client: RedisClient): Promise<Redis> {
  const list = idle.get(client);
  while (list?.length) {
    const c = list.pop()!;
    if (c.status === 'ready') return c;
    c.disconnect();
  }
  const c = (client as Redis).duplicate({ lazyConnect: true, enableOfflineQueue: false });
  c.on('error', () => {
    /* the command that was running reports it */
  });
  try {
    await c.connect();
  } catch (e) {
    c.disconnect();
    throw e;
  }
  return c;
}

/** Gives a connection back; `clean` only when it ended outside WATCH/MULTI (else it is closed). */
export function release(client: RedisClient, c: Redis, clean: boolean): void {
  let list = idle.get(client);
  if (!list) idle.set(client, (list = []));
  if (clean && c.status === 'ready' && list.length < IDLE_PER_SERVER) list.push(c);
  else c.disconnect();
}

/** Closes every idle connection (on shutdown). */
export function closeIdle(): void {
  for (const list of idle.values()) for (const c of list) c.disconnect();
  idle.clear();
}
