import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/key-format.js';
import { MAX_EXPIRES_AT } from '../../src/keys/key-service.js';
import { FileKeyStore } from '../../src/store/file-key-store.js';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { TEST_ROUTES } from '../helpers/gateway.js';

let configPath: string;
let storePath: string;

beforeAll(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'keygate-cli-times-'));
  storePath = join(dataDir, 'keygate.json');
  configPath = writeTempConfig({
    upstream: { url: 'http://127.0.0.1:9' },
    store: { type: 'file', file: { path: storePath } },
    routes: TEST_ROUTES,
    keys: { argon2: { memoryCost: 4096, timeCost: 1 } },
  });
  // Records as an older keygate (which accepted any expires_at) or a hand edit left them.
  const store = await FileKeyStore.open(storePath);
  try {
    await store.createAccount({
      name: 'odd',
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: 1_700_000_000,
      updatedAt: 1_700_000_000,
    });
    for (const [description, expiresAt] of [
      ['past Date range', 1e15],
      ['past year 9999', MAX_EXPIRES_AT + 1],
      ['unsafe integer', 2 ** 60],
    ] as const) {
      await store.createKey({
        id: generateKey('kg').id,
        account: 'odd',
        hash: 'not-a-hash',
        description,
        scopes: null,
        createdAt: 1_700_000_000,
        expiresAt,
        revokedAt: 0,
        lastUsedAt: 0,
        replacedBy: '',
        generation: 1,
      });
    }
  } finally {
    await store.close();
  }
});

describe('the CLI renders any stored time and refuses absurd new ones', () => {
  it('keys list shows every key, odd expiries as Unix seconds, and exits 0', async () => {
    const res = await runCli(['keys', 'list', 'odd', '--config', configPath]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('1000000000000000 (Unix seconds)');
    expect(res.stdout).toContain(`${MAX_EXPIRES_AT + 1} (Unix seconds)`);
    expect(res.stdout).toContain('past Date range');
    expect(res.stdout).toContain('unsafe integer');
    expect(res.stdout).toContain('2023-11-14T22:13:20Z'); // ordinary times as before
  });

  it('accounts show lists the same keys', async () => {
    const res = await runCli(['accounts', 'show', 'odd', '--config', configPath]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('1000000000000000 (Unix seconds)');
  });

  it.each([['1000000000000000'], [String(MAX_EXPIRES_AT + 1)], ['99999999999999999999']])(
    'keys create --expires-at %s → exit 2, expires_at named, nothing written',
    async (value) => {
      const before = await runCli(['keys', 'list', 'odd', '--json', '--config', configPath]);
      const res = await runCli([
        'keys',
        'create',
        'odd',
        '--expires-at',
        value,
        '--config',
        configPath,
      ]);
      expect(res.code).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(/expires_at: .*253402300799/);
      const after = await runCli(['keys', 'list', 'odd', '--json', '--config', configPath]);
      expect(after.stdout).toBe(before.stdout);
    },
  );
});
