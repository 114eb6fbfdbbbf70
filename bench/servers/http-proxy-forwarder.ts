// http-proxy 1.18.1 as a plain forwarder. With mode "keep-alive" it gets what a careful user
// would add (its default is no agent, i.e. Connection: close upstream); it always gets an error
// listener (it throws without one).
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

const [upstream = '', port = '0', mode = 'keep-alive'] = process.argv.slice(2);
// mode "default": http-proxy as it comes (no agent: a new upstream connection per request).
const proxy = httpProxy.createProxyServer({
  target: upstream,
  ...(mode === 'keep-alive' ? { agent: new Agent({ keepAlive: true, maxSockets: 128 }) } : {}),
  xfwd: true,
});
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
