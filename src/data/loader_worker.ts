// Worker-thread entry of the data loader: receives tasks { id, task }, answers
// { id, ok: true, value } (transferring the result buffers) or
// { id, ok: false, message }.
import { parentPort } from 'node:worker_threads';
import { WorkerState, type Task } from './worker_core.js';

if (!parentPort) throw new Error('loader_worker must run in a worker thread');
const port = parentPort;
const state = new WorkerState();

port.on('message', (msg: { id: number; task: Task }) => {
  state.handle(msg.task).then(
    (r) => port.postMessage({ id: msg.id, ok: true, value: r.value }, r.transfer),
    (e: unknown) => port.postMessage({ id: msg.id, ok: false, message: e instanceof Error ? e.message : String(e) }),
  );
});
