/** String: one GET; a missing key gives no row. The value fills both the value and element roles. */
import type { RedisKey } from 'ioredis';
import { asBuffer, type CursorParams, type KeyCursor } from './cursor.js';

export function openString(key: RedisKey, _params: CursorParams): KeyCursor {
  let done = false;
  return {
    command: () => (done ? undefined : ['get', key]),
    accept(reply) {
      done = true;
      if (reply === null || reply === undefined) return [];
      const value = asBuffer(reply);
      return [{ value, element: value }];
    },
  };
}
