/** Counts and times every command a pooled ioredis client sends (pipelines included: they go through sendCommand too). */
import type { Cluster, Redis } from 'ioredis';
import { redisRecorder } from './metrics.js';

type Sendable = { sendCommand: (command: { promise: Promise<unknown> }, ...rest: unknown[]) => unknown };

export function instrumentRedis(client: Redis | Cluster, server: string): void {
  const target = client as unknown as Sendable;
  const send = target.sendCommand;
  const record = redisRecorder(server);
  target.sendCommand = function (this: unknown, command, ...rest) {
    const t0 = process.hrtime.bigint();
    const result = send.call(this, command, ...rest);
    command.promise.then(
      () => record(Number(process.hrtime.bigint() - t0) / 1e9, false),
      () => record(Number(process.hrtime.bigint() - t0) / 1e9, true),
    );
    return result;
  };
}
