/** Counts and times every command a pooled ioredis client sends (pipelines included: they go through sendCommand too). */
import type { Cluster, Redis } from 'ioredis';
import { recordRedis } from './metrics.js';

type Sendable = { sendCommand: (command: { promise: Promise<unknown> }, ...rest: unknown[]) => unknown };

export function instrumentRedis(client: Redis | Cluster, server: string): void {
  const target = client as unknown as Sendable;
  const send = target.sendCommand;
  target.sendCommand = function (this: unknown, command, ...rest) {
    const t0 = process.hrtime.bigint();
    const result = send.call(this, command, ...rest);
    const done = (failed: boolean) => (): void => recordRedis(server, Number(process.hrtime.bigint() - t0) / 1e9, 1, failed);
    command.promise.then(done(false), done(true));
    return result;
  };
}
