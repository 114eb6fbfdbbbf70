// keygate's own forwarding code with nothing else: no credentials, keys, policy, metrics or
// logs. The floor a Node proxy built on the same upstream client can reach.
import { createServer } from 'node:http';
import { responseHeaders } from '../../src/forward/response-headers.js';
import { UpstreamCancel } from '../../src/forward/upstream-cancel.js';
import { UndiciUpstreamClient } from '../../src/forward/upstream-client.js';

const [upstream = '', port = '0'] = process.argv.slice(2);
const client = new UndiciUpstreamClient({
  url: upstream,
  connections: 128,
  connectTimeoutMs: 5000,
  timeoutMs: 300_000,
});
const HOP = new Set([
  'connection',
  'keep-alive',
  'host',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

const server = createServer((req, res) => {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (!HOP.has(name)) headers.push(name, raw[i + 1] as string);
  }
  const abort = new UpstreamCancel();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    Number(req.headers['content-length'] ?? 0) > 0;
  client
    .forward(
      {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers,
        body: hasBody ? req : null,
        signal: abort,
      },
      (status, upstreamHeaders) => {
        res.writeHead(status, responseHeaders(upstreamHeaders, 'bench'));
        return res;
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
