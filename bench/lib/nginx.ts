import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../test/helpers/redis-server.js';
import { type Server, track } from './measure.js';

/**
 * nginx as a user would deploy it instead of keygate: one worker, keep-alive to the upstream,
 * the API key checked with a `map` on X-API-KEY (one static key), /model stripped, the key
 * removed before forwarding, buffered access log.
 */
export async function startNginx(dir: string, upstreamPort: number, key: string): Promise<Server> {
  return startNginxWith(
    dir,
    upstreamPort,
    `  map_hash_bucket_size 128;
  map $http_x_api_key $key_ok { default 0; "${key}" 1; }`,
    `    location /model/ {
      if ($key_ok = 0) { return 401; }
      proxy_pass http://aggregator/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-API-KEY "";
      proxy_buffering off;
    }`,
  );
}

/**
 * The same nginx (one worker, keep-alive upstream `aggregator`, buffered access log) with other
 * http-level lines, server-level lines and main-context lines (scenario (h): auth_request to
 * keygate, with or without the caching snippet).
 */
export async function startNginxWith(
  dir: string,
  upstreamPort: number,
  http: string,
  server: string,
  main = '',
): Promise<Server> {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${main}
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
error_log ${dir}/nginx-error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log ${dir}/nginx-access.log combined buffer=64k flush=1s;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  upstream aggregator { server 127.0.0.1:${upstreamPort}; keepalive 64; }
${http}
  server {
    listen 127.0.0.1:${port};
${server}
  }
}
`,
  );
  const child = track(
    spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const master = child.pid as number;
  return {
    child,
    port,
    readyLine: `nginx on ${port}`,
    pids: () => {
      const children = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
      return [master, ...children];
    },
    // Already gone: resolve now ('exit' will not come again). Still there after 5 s: SIGKILL,
    // so a stuck nginx can never hang the bench.
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
