// BullMQ baseline: bulk-enqueue N no-op jobs, then one Worker (one Node process) drains them.
// Prints one JSON line like `tsp-bench queue`. Usage: node bench.mjs [jobs] [concurrency]
import { Queue, Worker } from "bullmq";

const jobs = Number(process.argv[2] ?? 200000);
const concurrency = Number(process.argv[3] ?? 50);
const connection = { host: "127.0.0.1", port: Number(process.env.REDIS_PORT ?? 6379) };
const name = `bullbench-${Date.now().toString(16)}`;
const queue = new Queue(name, { connection });

const started = process.hrtime.bigint();
const chunk = 1000;
for (let i = 0; i < jobs; i += chunk) {
  const batch = [];
  for (let j = i; j < Math.min(i + chunk, jobs); j++) {
    batch.push({ name: "noop", data: {}, opts: { removeOnComplete: 100000, removeOnFail: 1000000 } });
  }
  await queue.addBulk(batch);
}
const enqueueSecs = Number(process.hrtime.bigint() - started) / 1e9;

let done = 0;
const t0 = process.hrtime.bigint();
const finished = new Promise((resolve) => {
  const worker = new Worker(name, async () => null, { connection, concurrency });
  worker.on("completed", () => {
    done += 1;
    if (done === jobs) resolve(worker);
  });
});
const worker = await finished;
const processSecs = Number(process.hrtime.bigint() - t0) / 1e9;
await worker.close();
await queue.obliterate({ force: true });
await queue.close();
console.log(JSON.stringify({
  bench: "bullmq",
  version: "5.81.5",
  jobs,
  concurrency,
  enqueue_per_s: Math.round(jobs / enqueueSecs),
  process_per_s: Math.round(jobs / processSecs),
}));
