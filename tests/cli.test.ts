// The command line as an operator meets it: --help, --version, and one clear
// line (file, key, reason) for every kind of broken config, with a non-zero exit.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { REPO_ROOT } from './harness/pglynx.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function pglynx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      // tsx resolved from the repo: the child runs in a temp dir.
      ['--import', pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs')).href, path.join(REPO_ROOT, 'bin/pglynx.ts'), ...args],
      { cwd: dir, timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const GOOD = `
[general]
port = 6432
admin_username = "admin"
admin_password = "admin"

[pools.app]
pool_mode = "transaction"

[pools.app.users.0]
username = "app"
password = "pw"
pool_size = 5

[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]
`;

function writeConfig(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

t.test('--help and --version', async (t) => {
  const help = await pglynx(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: pglynx \[CONFIG_PATH\] \[--log-level LEVEL\]/);
  t.match(help.stdout, /pglynx models synth SRC_DIR OUT_DIR/, 'the model commands are listed');
  t.match(help.stdout, /pglynx models pull REPO_ID DIR/);
  const version = await pglynx(['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout, /^pglynx \d+\.\d+\.\d+/);
  const bad = await pglynx(['--log-level', 'loud']);
  t.not(bad.code, 0, 'an invalid log level is refused');
  t.match(bad.stderr, /invalid --log-level "loud"/);
});

const broken: [string, string, RegExp][] = [
  ['missing file', '', /missing\.toml.*(no such file|not found|ENOENT|does not exist)/i],
  ['TOML syntax error', GOOD.replace('pool_size = 5', 'pool_size = = 5'), /syntax\.toml.*line 13/i],
  ['wrong type', GOOD.replace('port = 6432', 'port = "6432"'), /wrong-type\.toml.*general\.port.*integer/i],
  ['unknown pool mode', GOOD.replace('pool_mode = "transaction"', 'pool_mode = "statement"'), /pool-mode\.toml.*pools\.app\.pool_mode.*statement/i],
  ['pool without servers', GOOD.replace('servers = [["127.0.0.1", 5432, "primary"]]', 'servers = []'), /no-servers\.toml.*pools\.app\.shards\.0\.servers/i],
  ['pool without users', GOOD.replace(/\[pools\.app\.users\.0\][^[]*/, ''), /no-users\.toml.*pools\.app\.users/i],
];

for (const [name, text, expected] of broken) {
  t.test(`invalid config: ${name}`, async (t) => {
    const file = {
      'missing file': 'missing.toml',
      'TOML syntax error': 'syntax.toml',
      'wrong type': 'wrong-type.toml',
      'unknown pool mode': 'pool-mode.toml',
      'pool without servers': 'no-servers.toml',
      'pool without users': 'no-users.toml',
    }[name]!;
    const configPath = text ? writeConfig(file, text) : path.join(dir, file);
    const r = await pglynx([configPath]);
    t.not(r.code, 0, 'exits non-zero');
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line: ${r.stderr}`);
    t.match(lines[0], expected);
  });
}

t.test('default config path is ./pgcat.toml', async (t) => {
  const r = await pglynx([]);
  t.not(r.code, 0);
  t.match(r.stderr, /pgcat\.toml/, 'names the default file it looked for');
});
