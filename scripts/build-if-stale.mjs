#!/usr/bin/env node
// `npm start`: compile only when a source is newer than the last build, so a built checkout starts at once.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// tsc rewrites every output on each build, so any output's time is the last build's.
const output = path.join(root, 'dist', 'src', 'cli', 'main.js');

function newest(p) {
  if (!existsSync(p)) return 0;
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs; // a deleted file changes its directory's mtime
  for (const e of readdirSync(p)) m = Math.max(m, newest(path.join(p, e)));
  return m;
}

const built = existsSync(output) ? statSync(output).mtimeMs : 0;
// Only what the proxy runs: tests and benches are built by npm test and the bench scripts.
const sources = Math.max(...['src', 'tsconfig.json', 'tsconfig.src.json', 'package.json'].map((p) => newest(path.join(root, p))));
if (sources > built) {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.src.json')], { stdio: 'inherit' });
}
