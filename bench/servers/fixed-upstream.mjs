// A fixed-response upstream for benchmarks: a small Kubecost-shaped JSON body, keep-alive.
import { createServer } from 'node:http';

const body = JSON.stringify({
  code: 200,
  data: [
    {
      kubecost: {
        name: 'kubecost',
        cpuCost: 0.379332,
        ramCost: 0.101688,
        pvCost: 0.042082,
        totalCost: 0.523102,
      },
    },
  ],
});
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
