import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/config.js';

export function createLogger(level: LogLevel, format: 'json' | 'pretty'): Logger {
  if (format === 'pretty') {
    return pino({ level, transport: { target: 'pino-pretty', options: { destination: 2, colorize: process.stderr.isTTY } } });
  }
  return pino({ level }, pino.destination({ dest: 2, sync: false }));
}
