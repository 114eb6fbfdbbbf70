import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

export interface RunningNginx {
  readonly port: number;
  readonly dir: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * A real nginx (the Debian package) in the foreground, with `serverBlock` as the body of its
 * one `server { }` and its temp paths in a fresh directory. Fails clearly when nginx is not
 * installed: these tests are about nginx, so there is nothing to skip to.
 */
export async function startNginx(
  serverBlock: (port: number) => string,
  /** Lines for the main context (load_module) and for http { } (caches, maps, js_set). */
  contexts: { main?: string; http?: string } = {},
): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${contexts.main ?? ''}
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${contexts.http ?? ''}
  server {
    listen 127.0.0.1:${port};
${serverBlock(port)}
  }
}
`,
  );
  let child: ChildProcess;
  try {
    child = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (err) {
    throw new Error(`nginx could not be started (apt-get install nginx): ${String(err)}`);
  }
  let stderr = '';
  child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await Promise.race([
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
      spawnError.then((err) => {
        throw new Error(`nginx could not be started (apt-get install nginx): ${err.message}`);
      }),
    ]);
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`nginx did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    errorLog: () => readFileSync(join(dir, 'error.log'), 'utf8'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGQUIT');
      }),
  };
}
