// `pglynx models ...`: get a model directory in the Hugging Face layout that
// a `[models.<name>]` section can point `path` at.
//
//   synth  builds onnx/model.onnx from a config.json with seeded random
//          weights (for machines that cannot download weights: tests, CI,
//          benchmarks) and copies the tokenizer files next to it;
//   pull   downloads a real export from the Hugging Face Hub (or a mirror).
//
// Both write files through a temp file + rename, so a directory never holds
// a half-written model that a starting pooler could try to load.

import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { bertParamCount, readHfConfig, synthesizeBert } from '../engine/onnx/bert-synth.js';
import { gpt2ParamCount, isGpt2Config, readGpt2Config, synthesizedConfigJson, synthesizeGpt2, type Gpt2Overrides } from '../engine/onnx/gpt2-synth.js';

export const MODEL_FILE = path.join('onnx', 'model.onnx');
/** Files that travel with the model; the first two are required. */
export const TOKENIZER_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt'] as const;
const REQUIRED = new Set<string>(['config.json', 'tokenizer.json']);
/** Decoders also carry their generation defaults (eos_token_id, ...). */
const DECODER_FILES = ['generation_config.json'] as const;

const USAGE = `Usage: pglynx models <command> [options]

Prepare a model directory (Hugging Face layout: onnx/model.onnx, tokenizer.json,
config.json, ...) for a [models.<name>] section's path.

Commands:
  synth <src dir> <out dir>   BERT- or GPT-2-shaped model with seeded random weights
  pull <repo id> <dir>        download an ONNX export from the Hugging Face Hub

Run "pglynx models <command> --help" for a command's options.`;

const SYNTH_USAGE = `Usage: pglynx models synth <src dir> <out dir> [--seed N] [--layers N] [--hidden N] [--heads N]

Builds <out dir>/onnx/model.onnx from <src dir>/config.json with seeded random
weights, and copies the tokenizer files (${TOKENIZER_FILES.join(', ')}) that exist.
A BERT config (vocab_size, hidden_size, num_hidden_layers, ...) gives an
encoder with a last_hidden_state output; a GPT-2 config (model_type "gpt2" or
GPT2LMHeadModel) gives a decoder with past_key_values inputs and present
outputs per layer, as optimum exports it. The graph has the inputs, outputs
and cost of a real export of that model; its numbers are meaningless. Use it
where weights cannot be downloaded.

Options:
  --seed N      weight seed (default 42); the same seed gives the same file
  --layers N    (GPT-2) build N blocks instead of the config's n_layer
  --hidden N    (GPT-2) n_embd N instead of the config's (MLP 4N): small test models
  --heads N     (GPT-2) n_head N instead of the config's
  -h, --help    print this help`;

const PULL_USAGE = `Usage: pglynx models pull <repo id> <dir> [--revision REV] [--endpoint URL]

Downloads ${TOKENIZER_FILES.join(', ')} and onnx/model.onnx (or model.onnx at the
repository root, saved as onnx/model.onnx) of a Hugging Face model repository,
e.g. sentence-transformers/all-MiniLM-L6-v2.

Options:
  --revision REV   branch, tag or commit (default: main)
  --endpoint URL   hub endpoint (default: $HF_ENDPOINT or https://huggingface.co)
  -h, --help       print this help

Environment: HF_TOKEN is sent as a Bearer token (private or gated models).`;

/** A failure the user can act on: printed as one line, exit code 1. */
export class ModelsError extends Error {}

export interface SynthOptions {
  src: string;
  out: string;
  seed?: number;
  /** GPT-2 only: a smaller shape than the config's. */
  gpt2?: Gpt2Overrides;
}

export interface SynthResult {
  modelPath: string;
  bytes: number;
  params: number;
  copied: string[];
  ms: number;
}

/** Writes `data` to `dest` via a temp file in the same directory + rename. */
function writeAtomic(dest: string, data: Uint8Array): void {
  mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function synthModel(options: SynthOptions): SynthResult {
  const started = performance.now();
  for (const file of REQUIRED) {
    if (!existsSync(path.join(options.src, file))) throw new ModelsError(`${path.join(options.src, file)} not found`);
  }
  const configPath = path.join(options.src, 'config.json');
  let decoder: boolean;
  try {
    decoder = isGpt2Config(JSON.parse(readFileSync(configPath, 'utf8')));
  } catch (err) {
    throw new ModelsError(`${configPath}: ${(err as Error).message}`);
  }
  if (!decoder && options.gpt2 && Object.values(options.gpt2).some((v) => v !== undefined)) {
    throw new ModelsError(`--layers, --hidden and --heads apply to GPT-2 configs only; ${configPath} is not one`);
  }
  let model: Uint8Array;
  let params: number;
  const written: string[] = [];
  if (decoder) {
    const { config, raw } = readGpt2Config(configPath, options.gpt2);
    model = synthesizeGpt2(config, options.seed ?? 42);
    params = gpt2ParamCount(config);
    // The copy says the shape that was built, so the runtime reads the right layer and head counts.
    writeAtomic(path.join(options.out, 'config.json'), Buffer.from(JSON.stringify(synthesizedConfigJson(raw, config), null, 2) + '\n'));
    written.push('config.json');
  } else {
    const config = readHfConfig(configPath);
    model = synthesizeBert(config, options.seed ?? 42);
    params = bertParamCount(config);
  }
  const modelPath = path.join(options.out, MODEL_FILE);
  writeAtomic(modelPath, model);
  const copied: string[] = [...written];
  for (const file of [...TOKENIZER_FILES, ...(decoder ? DECODER_FILES : [])]) {
    const from = path.join(options.src, file);
    const to = path.join(options.out, file);
    if (!existsSync(from) || written.includes(file)) continue;
    // Read + write rather than copyFile: the shared sources are read-only and
    // their mode must not make the copy impossible to overwrite next time.
    if (path.resolve(from) !== path.resolve(to)) writeAtomic(to, readFileSync(from));
    copied.push(file);
  }
  return { modelPath, bytes: model.byteLength, params, copied, ms: performance.now() - started };
}

export interface PullOptions {
  repo: string;
  dir: string;
  revision?: string;
  /** Default: $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default: $HF_TOKEN. */
  token?: string;
  /** Called once per file written (for progress output). */
  onFile?: (file: string, bytes: number, from: string) => void;
}

export interface PullResult {
  files: { file: string; bytes: number; from: string }[];
  /** Optional files the repository does not have. */
  skipped: string[];
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

/** Outcome of one GET: written, or the server said 404. */
type Fetched = { ok: true; bytes: number } | { ok: false };

/** Streams one file to disk. Throws ModelsError naming the file on anything but 200 or 404. */
async function fetchTo(url: string, file: string, dest: string, token: string | undefined): Promise<Fetched> {
  let res: Response;
  try {
    // fetch follows redirects (the Hub redirects LFS files to a CDN) and drops
    // the Authorization header when a redirect leaves the origin.
    res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new ModelsError(`${file}: could not fetch ${url}: ${cause ?? (err as Error).message}`);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    return { ok: false };
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    // The Hub answers 401 for a repository that does not exist as well as for a private one.
    const hint = res.status === 401 || res.status === 403 ? ' (repository not found, or private/gated: set HF_TOKEN)' : '';
    const detail = res.headers.get('x-error-message');
    throw new ModelsError(`${file}: HTTP ${res.status} ${res.statusText} from ${url}${detail ? `: ${detail}` : ''}${hint}`);
  }
  mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(tmp));
    const bytes = statSync(tmp).size;
    const expected = Number(res.headers.get('content-length') ?? NaN);
    if (!res.headers.get('content-encoding') && Number.isFinite(expected) && expected !== bytes) {
      throw new ModelsError(`${file}: download truncated (${bytes} of ${expected} bytes) from ${url}`);
    }
    renameSync(tmp, dest);
    return { ok: true, bytes };
  } catch (err) {
    rmSync(tmp, { force: true });
    if (err instanceof ModelsError) throw err;
    throw new ModelsError(`${file}: download from ${url} failed: ${(err as Error).message}`);
  }
}

export async function pullModel(options: PullOptions): Promise<PullResult> {
  if (!REPO_ID.test(options.repo)) throw new ModelsError(`invalid repository id ${JSON.stringify(options.repo)} (expected owner/name)`);
  const endpoint = (options.endpoint || process.env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint)) throw new ModelsError(`invalid endpoint ${JSON.stringify(endpoint)} (expected http:// or https:// URL)`);
  const token = options.token ?? (process.env.HF_TOKEN || undefined);
  // Revisions like refs/pr/1 are one path segment on the Hub, hence the encoding.
  const base = `${endpoint}/${options.repo}/resolve/${encodeURIComponent(options.revision ?? 'main')}`;
  const result: PullResult = { files: [], skipped: [] };
  const got = (file: string, bytes: number, from: string): void => {
    result.files.push({ file, bytes, from });
    options.onFile?.(file, bytes, from);
  };

  // config.json first: a wrong repository or revision fails before any large download.
  for (const file of TOKENIZER_FILES) {
    const url = `${base}/${file}`;
    const r = await fetchTo(url, file, path.join(options.dir, file), token);
    if (r.ok) got(file, r.bytes, url);
    else if (REQUIRED.has(file)) throw new ModelsError(`${file}: HTTP 404 Not Found from ${url} (repository, revision or file missing)`);
    else result.skipped.push(file);
  }
  // optimum exports put the model in onnx/; older repositories at the root. Either way it is saved as onnx/model.onnx.
  const dest = path.join(options.dir, MODEL_FILE);
  const tried: string[] = [];
  for (const file of ['onnx/model.onnx', 'model.onnx']) {
    const url = `${base}/${file}`;
    tried.push(url);
    const r = await fetchTo(url, file, dest, token);
    if (r.ok) {
      got(MODEL_FILE, r.bytes, url);
      return result;
    }
  }
  throw new ModelsError(`onnx/model.onnx: HTTP 404 Not Found from ${tried.join(' and ')} (the repository has no ONNX export)`);
}

interface Parsed {
  positional: string[];
  options: Map<string, string>;
  help: boolean;
}

function parse(argv: string[], valued: readonly string[]): Parsed {
  const parsed: Parsed = { positional: [], options: new Map(), help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      parsed.help = true;
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      if (!valued.includes(name)) throw new ModelsError(`unknown option ${a}`);
      const value = eq === -1 ? argv[++i] : a.slice(eq + 1);
      if (value === undefined || value === '') throw new ModelsError(`--${name} needs a value`);
      parsed.options.set(name, value);
    } else if (a.startsWith('-') && a !== '-') {
      throw new ModelsError(`unknown option ${a}`);
    } else {
      parsed.positional.push(a);
    }
  }
  return parsed;
}

function expectArgs(p: Parsed, names: string[]): void {
  if (p.positional.length < names.length) throw new ModelsError(`missing ${names.slice(p.positional.length).join(' and ')}`);
  if (p.positional.length > names.length) throw new ModelsError(`unexpected argument ${p.positional[names.length]}`);
}

function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

async function run(argv: string[], out: (line: string) => void): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    out(USAGE);
    return;
  }
  if (command === 'synth') {
    const p = parse(rest, ['seed', 'layers', 'hidden', 'heads']);
    if (p.help) return out(SYNTH_USAGE);
    expectArgs(p, ['<src dir>', '<out dir>']);
    const seedText = p.options.get('seed') ?? '42';
    const seed = Number(seedText);
    if (!/^\d+$/.test(seedText) || seed > 0xffffffff) throw new ModelsError(`--seed must be an integer 0..4294967295, got ${JSON.stringify(seedText)}`);
    const size = (name: string): number | undefined => {
      const text = p.options.get(name);
      if (text === undefined) return undefined;
      if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65536) throw new ModelsError(`--${name} must be an integer 1..65536, got ${JSON.stringify(text)}`);
      return Number(text);
    };
    const gpt2 = { layers: size('layers'), hidden: size('hidden'), heads: size('heads') };
    const r = synthModel({ src: p.positional[0], out: p.positional[1], seed, gpt2 });
    out(`wrote ${r.modelPath} (${formatBytes(r.bytes)}, ${(r.params / 1e6).toFixed(1)}M parameters, seed ${seed}) in ${(r.ms / 1000).toFixed(1)} s`);
    out(`copied ${r.copied.join(', ')}`);
    return;
  }
  if (command === 'pull') {
    const p = parse(rest, ['revision', 'endpoint']);
    if (p.help) return out(PULL_USAGE);
    expectArgs(p, ['<repo id>', '<dir>']);
    const r = await pullModel({
      repo: p.positional[0],
      dir: p.positional[1],
      revision: p.options.get('revision'),
      endpoint: p.options.get('endpoint'),
      onFile: (file, bytes) => out(`  ${file} ${formatBytes(bytes)}`),
    });
    if (r.skipped.length > 0) out(`not in the repository (optional): ${r.skipped.join(', ')}`);
    out(`pulled ${p.positional[0]} into ${p.positional[1]}`);
    return;
  }
  throw new ModelsError(`unknown command ${JSON.stringify(command)} (expected synth or pull)`);
}

/** Entry point for `pglynx models ...`; returns the process exit code. */
export async function modelsMain(argv: string[]): Promise<number> {
  const sub = argv[0] === 'synth' || argv[0] === 'pull' ? ` ${argv[0]}` : '';
  try {
    await run(argv, (line) => process.stdout.write(line + '\n'));
    return 0;
  } catch (err) {
    // Config and file-system errors carry the path already; print them as one line too.
    const message = (err as Error).message.replace(/\s*\n\s*/g, ' ');
    process.stderr.write(`pglynx models${sub}: ${message}\n`);
    return 1;
  }
}
