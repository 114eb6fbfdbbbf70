// A fixed-response upstream for benchmarks, keep-alive: a small Kubecost-shaped JSON body, or
// 1 MB of JSON under /big (scenario b).
import { createServer } from 'node:http';

const small = Buffer.from(
  JSON.stringify({
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
  }),
);
const row = '{"name":"ns-0000","cpuCost":0.379332,"ramCost":0.101688,"totalCost":0.523102},';
const big = Buffer.from(
  `{"code":200,"data":[${row.repeat(Math.floor((1024 * 1024 - 40) / row.length)).slice(0, -1)}]}`.padEnd(
    1024 * 1024,
    ' ',
  ),
);

const server = createServer((req, res) => {
  req.resume();
  const body = req.url?.includes('/big') ? big : small;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
