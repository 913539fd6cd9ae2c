/** The real CLI as a child process, for tests that run the proxy as an operator does. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanPgEnv, waitFor, within } from './proto-tools.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface Cli {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  /** The value of `field` in the first JSON log line whose msg matches. */
  logged: (msg: RegExp, field: string) => string;
  /** Every JSON log line whose msg matches, parsed. */
  lines: (msg: RegExp) => Record<string, unknown>[];
}

/** Starts the real CLI; resolves once `ready` appears in its output (or it exits). */
export async function cli(args: string[], extraEnv: NodeJS.ProcessEnv, ready: RegExp, timeoutMs = 60_000): Promise<Cli> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...cleanPgEnv(), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  await waitFor(`CLI output ${ready}`, () => ready.test(out) || exitedEarly, timeoutMs, 20);
  const lines = (msg: RegExp): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((j) => msg.test(String(j.msg)));
  const logged = (msg: RegExp, field: string): string => {
    const [j] = lines(msg);
    if (!j) throw new Error(`no log line ${msg} in:\n${out}`);
    return String(j[field]);
  };
  return { child, output: () => out, exited, logged, lines };
}

export async function stop(p: Cli): Promise<number | null | 'still running'> {
  p.child.kill('SIGTERM');
  const code = await within(p.exited, 30_000, 'still running' as const);
  if (code === 'still running') p.child.kill('SIGKILL');
  return code;
}

export const listenPort = (p: Cli): number => Number(p.logged(/redis-fdw-proxy listening/, 'listen').split(':').pop());
