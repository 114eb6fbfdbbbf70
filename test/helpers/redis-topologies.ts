import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, RedisServer, redisServerBinary } from './redis-server.js';

function startProcess(args: string[], ready: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(redisServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis did not start:\n${out}`)), 10_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      if (out.includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis exited with ${code}:\n${out}`));
    });
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A master and one Sentinel monitoring it as "keygate-master". */
export class SentinelTopology {
  private constructor(
    readonly master: RedisServer,
    private readonly sentinel: ChildProcess,
    readonly sentinelPort: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<SentinelTopology> {
    const master = await RedisServer.start();
    const dir = mkdtempSync(join(tmpdir(), 'keygate-sentinel-'));
    const port = await freePort();
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor keygate-master 127.0.0.1 ${master.port} 1\nsentinel down-after-milliseconds keygate-master 5000\n`,
    );
    const sentinel = await startProcess([conf, '--sentinel'], 'Sentinel ID');
    return new SentinelTopology(master, sentinel, port, dir);
  }

  async stop(): Promise<void> {
    await kill(this.sentinel);
    await this.master.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three masters joined into a Redis Cluster (no replicas), slots spread by redis-cli. */
export class ClusterTopology {
  private constructor(
    readonly ports: number[],
    private readonly nodes: ChildProcess[],
    private readonly dir: string,
  ) {}

  static async start(): Promise<ClusterTopology> {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-cluster-'));
    const ports = [await freePort(), await freePort(), await freePort()];
    const nodes = await Promise.all(
      ports.map((port) =>
        startProcess(
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--dir',
            dir,
            '--save',
            '',
            '--appendonly',
            'no',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--cluster-node-timeout',
            '5000',
          ],
          'Ready to accept connections',
        ),
      ),
    );
    execFileSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      {
        stdio: 'ignore',
      },
    );
    // Wait until every node agrees the cluster is up.
    const deadline = Date.now() + 15_000;
    for (const port of ports) {
      while (
        !execFileSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
          encoding: 'utf8',
        }).includes('cluster_state:ok')
      ) {
        if (Date.now() > deadline) throw new Error('redis cluster did not become ready');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return new ClusterTopology(ports, nodes, dir);
  }

  get urls(): string[] {
    return this.ports.map((p) => `redis://127.0.0.1:${p}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map(kill));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
