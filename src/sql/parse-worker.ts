/**
 * Worker-thread side of off-thread classification (see off-thread.ts): decodes a big statement text,
 * decides whether it can concern a foreign table, and parses and scans it, so the event loop that
 * serves every other session never runs a multi-megabyte parse.
 */
import { parentPort } from 'node:worker_threads';
import { initParser } from './parser.js';
import { classifyText, transferables, type WorkerReply, type WorkerRequest } from './classify-text.js';

const port = parentPort;
if (!port) throw new Error('parse-worker must run as a worker thread');

await initParser();

port.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = classifyText(req);
  } catch (e) {
    reply = { id: req.id, kind: 'forward', failure: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(reply, transferables(reply));
});
