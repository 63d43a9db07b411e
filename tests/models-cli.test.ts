// `pglynx models synth|pull` as a user runs them: a real child process, real
// files, and for pull a local HTTP server standing in for the Hugging Face Hub.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import t from 'tap';
import { buildHashModel } from '../engine/onnx/hash-model.js';
import { REPO_ROOT } from './harness/pglynx.js';
import { MINILM_TOKENIZER } from './harness/fixtures.js';

const MINILM = MINILM_TOKENIZER;
const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-models-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function pglynx(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      // tsx resolved from the repo: the child runs in a temp dir.
      ['--import', pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs')).href, path.join(REPO_ROOT, 'bin/pglynx.ts'), 'models', ...args],
      { cwd: dir, timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '', HF_ENDPOINT: '', HF_TOKEN: '', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Every file under `root`, relative, sorted. */
function listFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)))
    .sort();
}

t.test('help', async (t) => {
  const top = await pglynx(['--help']);
  t.equal(top.code, 0);
  t.match(top.stdout, /Usage: pglynx models <command>/);
  const synth = await pglynx(['synth', '--help']);
  t.equal(synth.code, 0);
  t.match(synth.stdout, /Usage: pglynx models synth <src dir> <out dir>/);
  const pull = await pglynx(['pull', '--help']);
  t.equal(pull.code, 0);
  t.match(pull.stdout, /Usage: pglynx models pull <repo id> <dir> \[--revision REV\] \[--endpoint URL\]/);
  const bad = await pglynx(['frobnicate']);
  t.not(bad.code, 0);
  t.equal(bad.stderr, 'pglynx models: unknown command "frobnicate" (expected synth or pull)\n', 'one clear line');
});

t.test('synth writes a loadable model in the Hugging Face layout', async (t) => {
  const out = path.join(dir, 'minilm');
  const r = await pglynx(['synth', MINILM, out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /wrote .*onnx\/model\.onnx \(86\.\d MiB, 22\.6M parameters, seed 42\)/);
  t.same(listFiles(out), ['config.json', 'onnx/model.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt']);
  t.equal(readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), readFileSync(path.join(MINILM, 'tokenizer.json'), 'utf8'));

  const session = await ort.InferenceSession.create(path.join(out, 'onnx/model.onnx'), { intraOpNumThreads: 1 });
  t.same(session.inputNames, ['input_ids', 'attention_mask', 'token_type_ids']);
  t.same(session.outputNames, ['last_hidden_state']);
  const ids = new ort.Tensor('int64', BigInt64Array.from([101n, 7592n, 2088n, 102n]), [1, 4]);
  const ones = new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 1n]), [1, 4]);
  const zeros = new ort.Tensor('int64', new BigInt64Array(4), [1, 4]);
  const res = await session.run({ input_ids: ids, attention_mask: ones, token_type_ids: zeros });
  t.same(res.last_hidden_state.dims, [1, 4, 384]);
  await session.release();

  // Re-running over the same directory replaces the files (the copied sources are read-only).
  const again = await pglynx(['synth', MINILM, out, '--seed', '42']);
  t.equal(again.code, 0, again.stderr);

  const missing = await pglynx(['synth', path.join(dir, 'nope'), path.join(dir, 'x')]);
  t.not(missing.code, 0);
  t.match(missing.stderr, /^pglynx models synth: .*nope\/config\.json not found\n$/);
  const seed = await pglynx(['synth', MINILM, path.join(dir, 'x'), '--seed', 'abc']);
  t.not(seed.code, 0);
  t.match(seed.stderr, /--seed must be an integer/);
  const args = await pglynx(['synth', MINILM]);
  t.not(args.code, 0);
  t.match(args.stderr, /missing <out dir>/);
});

// --- pull against a local stand-in for the Hub ----------------------------

const MODEL = buildHashModel(); // any loadable ONNX file will do
const FILES = new Map<string, Uint8Array | string>([
  ['/org/model/resolve/main/tokenizer.json', readFileSync(path.join(MINILM, 'tokenizer.json'))],
  ['/org/model/resolve/main/tokenizer_config.json', readFileSync(path.join(MINILM, 'tokenizer_config.json'))],
  ['/org/model/resolve/main/vocab.txt', readFileSync(path.join(MINILM, 'vocab.txt'))],
  // onnx/model.onnx is missing: the root model.onnx must be used instead.
  ['/org/model/resolve/main/model.onnx', MODEL],
  ['/cdn/config.json', readFileSync(path.join(MINILM, 'config.json'))],
  ['/org/noonnx/resolve/main/config.json', '{}'],
  ['/org/noonnx/resolve/main/tokenizer.json', '{}'],
  ['/org/broken/resolve/main/config.json', '{}'],
]);
const requests: { url: string; headers: IncomingHttpHeaders }[] = [];

const server = createServer((req, res) => {
  const url = req.url ?? '';
  requests.push({ url, headers: req.headers });
  if (url === '/org/model/resolve/main/config.json') {
    // The Hub redirects LFS files to a CDN; the client must follow.
    res.writeHead(302, { location: '/cdn/config.json' }).end();
    return;
  }
  if (url === '/org/broken/resolve/main/tokenizer.json') {
    res.writeHead(500, 'Internal Server Error').end('boom');
    return;
  }
  const body = FILES.get(url);
  if (body === undefined) {
    res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    return;
  }
  res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => void server.close());
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

t.test('pull follows redirects, falls back to model.onnx, sends HF_TOKEN', async (t) => {
  const out = path.join(dir, 'pulled');
  const r = await pglynx(['pull', 'org/model', out, '--endpoint', endpoint], { HF_TOKEN: 'hf_secret' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /not in the repository \(optional\): special_tokens_map\.json/);
  t.match(r.stdout, /pulled org\/model into /);
  t.same(listFiles(out), ['config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt'], 'no temp files left');
  t.same(readFileSync(path.join(out, 'onnx/model.onnx')), Buffer.from(MODEL), 'root model.onnx saved as onnx/model.onnx');
  t.equal(readFileSync(path.join(out, 'config.json'), 'utf8'), readFileSync(path.join(MINILM, 'config.json'), 'utf8'), 'redirect followed');

  const urls = requests.map((q) => q.url);
  t.ok(urls.indexOf('/org/model/resolve/main/onnx/model.onnx') < urls.indexOf('/org/model/resolve/main/model.onnx'), 'onnx/ tried first');
  t.ok(
    requests.filter((q) => q.url.startsWith('/org/model/')).every((q) => q.headers.authorization === 'Bearer hf_secret'),
    'HF_TOKEN sent as a Bearer token',
  );
  const session = await ort.InferenceSession.create(path.join(out, 'onnx/model.onnx'));
  t.same(session.outputNames, ['embedding']);
  await session.release();
});

t.test('pull honours HF_ENDPOINT and --revision', async (t) => {
  requests.length = 0;
  const r = await pglynx(['pull', 'org/model', path.join(dir, 'rev'), '--revision', 'v1.0'], { HF_ENDPOINT: endpoint + '/' });
  t.not(r.code, 0);
  t.equal(requests[0]?.url, '/org/model/resolve/v1.0/config.json');
  t.match(r.stderr, /^pglynx models pull: config\.json: HTTP 404 Not Found from http:\/\/127\.0\.0\.1:\d+\/org\/model\/resolve\/v1\.0\/config\.json/);
});

t.test('pull errors name the file and the HTTP status', async (t) => {
  const missing = await pglynx(['pull', 'nobody/missing', path.join(dir, 'missing'), '--endpoint', endpoint]);
  t.not(missing.code, 0);
  t.match(missing.stderr, /^pglynx models pull: config\.json: HTTP 404 Not Found from \S+\/nobody\/missing\/resolve\/main\/config\.json \(repository, revision or file missing\)\n$/);
  t.notOk(existsSync(path.join(dir, 'missing', 'config.json')), 'nothing written');

  const noOnnx = await pglynx(['pull', 'org/noonnx', path.join(dir, 'noonnx'), '--endpoint', endpoint]);
  t.not(noOnnx.code, 0);
  t.match(noOnnx.stderr, /onnx\/model\.onnx: HTTP 404 Not Found from \S+\/onnx\/model\.onnx and \S+\/main\/model\.onnx \(the repository has no ONNX export\)/);

  const broken = await pglynx(['pull', 'org/broken', path.join(dir, 'broken'), '--endpoint', endpoint]);
  t.not(broken.code, 0);
  t.match(broken.stderr, /^pglynx models pull: tokenizer\.json: HTTP 500 Internal Server Error from /);
  t.same(listFiles(path.join(dir, 'broken')), ['config.json'], 'no partial tokenizer.json');

  // A port nothing listens on: bind one, then close it.
  const closed = createServer().listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const refused = await pglynx(['pull', 'org/model', path.join(dir, 'refused'), '--endpoint', `http://127.0.0.1:${port}`]);
  t.not(refused.code, 0);
  t.match(refused.stderr, /^pglynx models pull: config\.json: could not fetch http:\/\/127\.0\.0\.1:\d+\/\S+: .*ECONNREFUSED/);

  const badId = await pglynx(['pull', '../etc', path.join(dir, 'bad'), '--endpoint', endpoint]);
  t.not(badId.code, 0);
  t.match(badId.stderr, /invalid repository id "\.\.\/etc"/);
  for (const r of [missing, noOnnx, broken, refused, badId]) t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});
