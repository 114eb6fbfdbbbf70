// Measures request latency from its own process, so the test runner's event loop (which also
// hosts vitest, the upstream and other workers) cannot add its own stalls to the figures.
// Usage: node latency-probe.mjs <url> <path> <key>. Prints "ready"; a line on stdin starts the
// loop, a second line stops it; then prints {"statuses":[…],"latencies":[…],"at":[…]} as JSON.
import { performance } from 'node:perf_hooks';
import { Client } from 'undici';

const [url, path, key] = process.argv.slice(2);
const client = new Client(url);
const statuses = [];
const latencies = [];
const at = [];
let running = false;
let lines = 0;

async function loop() {
  const started = performance.now();
  while (running) {
    const t = performance.now();
    const res = await client.request({ method: 'GET', path, headers: { 'x-api-key': key } });
    await res.body.dump();
    statuses.push(res.statusCode);
    latencies.push(performance.now() - t);
    at.push(t - started);
  }
}

let done;
process.stdout.write('ready\n');
process.stdin.on('data', (chunk) => {
  for (const _ of chunk.toString().split('\n').filter(Boolean)) {
    lines++;
    if (lines === 1) {
      running = true;
      done = loop();
    } else if (lines === 2) {
      running = false;
      done.then(async () => {
        await client.close();
        // Exit only once the output is written: stdout is a pipe, and exit would cut it short.
        process.stdout.write(`${JSON.stringify({ statuses, latencies, at })}\n`, () =>
          process.exit(0),
        );
      });
    }
  }
});
