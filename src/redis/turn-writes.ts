/**
 * One write per event-loop turn on a pooled Redis connection.
 *
 * Every session shares its server's ioredis client, and ioredis writes each command as it is sent: with
 * several clients' point lookups arriving in one poll of the event loop, that was one write syscall each,
 * and one read and one reply write each in Redis. Corking the connection's socket from the first command
 * of a turn until the turn ends sends them as one writev instead; Redis then answers them together, and
 * one read brings the replies back. No command waits longer than the rest of the current turn, and none
 * can be waiting on its own reply before the turn ends (the reply needs the next poll).
 */
import type { Redis } from 'ioredis';

type Sendable = { sendCommand: (command: unknown, stream?: unknown) => unknown; stream?: { cork(): void; uncork(): void } };

/** Makes `client` cork its socket for the rest of the turn whenever a command is written. */
export function writePerTurn(client: Redis): void {
  const target = client as unknown as Sendable;
  const send = target.sendCommand;
  let corked = false;
  target.sendCommand = function (this: Sendable, command, stream) {
    const socket = this.stream;
    if (!corked && stream === undefined && socket) {
      corked = true;
      socket.cork();
      // The same socket is uncorked even if a reconnect replaced client.stream meanwhile.
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send.call(this, command, stream);
  };
}
