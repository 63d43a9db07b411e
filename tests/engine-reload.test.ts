// [models.*] config, broken models and reload, against real worker threads:
// every config error names its key; a model that cannot be loaded (missing
// file, unreadable ONNX, a tokenizer that does not fit, inputs we cannot
// feed) fails start-up with a message naming it, and fails a reload while
// the old models keep serving; adding, removing and resizing models on
// reload drops no caller.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { MODEL_DEFAULTS, parseModels, type ModelConfig } from '../config/models.js';
import { Engine, EngineError } from '../engine/engine.js';
import { buildHashModel } from '../engine/onnx/hash-model.js';
import { synthesizeBert, type HfBertConfig } from '../engine/onnx/bert-synth.js';
import { ENGINE_WORKER_HOOKS, TEST_HOOK_PREFIX } from './harness/engine-worker-hooks.js';
import { createLogger } from '../pooler/logger.js';
import { MINILM_TOKENIZER } from './harness/fixtures.js';

const log = createLogger('silent');
const MINILM = MINILM_TOKENIZER;
const FILE = '/etc/pglynx/pgcat.toml';
const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-engine-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const TINY: HfBertConfig = {
  vocab_size: 30522, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64,
  max_position_embeddings: 128, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: 'gelu',
};

/** A model directory: the MiniLM tokenizer next to `onnx` bytes and a config.json. */
function modelDir(name: string, onnx: Uint8Array | null, config: object | null, files = ['tokenizer.json', 'tokenizer_config.json']): string {
  const d = path.join(dir, name);
  mkdirSync(path.join(d, 'onnx'), { recursive: true });
  if (onnx) writeFileSync(path.join(d, 'onnx', 'model.onnx'), onnx);
  if (config) writeFileSync(path.join(d, 'config.json'), JSON.stringify(config));
  for (const f of files) copyFileSync(path.join(MINILM, f), path.join(d, f));
  return d;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

const models = (raw: Record<string, Record<string, unknown>>): Record<string, ModelConfig> => parseModels(raw, FILE);

t.test('parseModels: defaults, relative paths, errors that name the key', async (tt) => {
  const m = models({ lexical: { builtin: 'hash-384' }, minilm: { path: 'models/minilm', instances: 2n, pooling: 'cls' } });
  tt.same(m['lexical'], { path: null, builtin: 'hash-384', ...MODEL_DEFAULTS });
  tt.equal(m['minilm']!.path, '/etc/pglynx/models/minilm', 'relative to the config file');
  tt.equal(m['minilm']!.instances, 2);
  tt.equal(m['minilm']!.pooling, 'cls');
  tt.same(parseModels(undefined, FILE), {});
  const cases: [Record<string, unknown>, string][] = [
    [{ builtin: 'hash-384', instances: 0 }, 'models.m.instances: must be between 1 and 256, got 0'],
    [{ builtin: 'hash-384', max_batch_size: '8' }, 'models.m.max_batch_size: expected integer, got string'],
    [{ builtin: 'hash-384', max_batch_delay_ms: 1.5 }, 'models.m.max_batch_delay_ms: expected integer, got float'],
    [{ builtin: 'hash-384', normalize: 'yes' }, 'models.m.normalize: expected boolean, got string'],
    [{ builtin: 'hash-384', pooling: 'max' }, 'models.m.pooling: unknown pooling "max"; expected one of: mean, cls'],
    [{ builtin: 'hash-999' }, 'models.m.builtin: unknown builtin "hash-999"; expected one of: hash-384'],
    [{ builtin: 'hash-384', path: '/x' }, 'models.m.builtin: set either path or builtin, not both'],
    [{ instances: 2 }, 'models.m: set either path (a Hugging Face model directory) or builtin (e.g. "hash-384")'],
    [{ path: '' }, 'models.m.path: must not be empty'],
  ];
  for (const [raw, message] of cases) {
    const err = await failure(Promise.resolve().then(() => models({ m: raw })));
    tt.ok(err instanceof ConfigError, message);
    tt.equal(err.message, `${FILE}: ${message}`);
  }
  tt.equal((await failure(Promise.resolve().then(() => parseModels(3, FILE)))).message, `${FILE}: models: expected table of [models.<name>] sections, got integer`);
});

t.test('pgcat.toml: [models.*] becomes Config.models; typos are reported, not fatal', async (tt) => {
  const text = `[general]\nadmin_username = "a"\nadmin_password = "a"\n[pools.p.users.0]\nusername = "u"\npassword = "p"\npool_size = 1\n[pools.p.shards.0]\ndatabase = "d"\nservers = [["127.0.0.1", 5432, "primary"]]\n[models.lexical]\nbuiltin = "hash-384"\ninstances = 2\ninstanse = 3\n`;
  const c = parseConfig(text, FILE);
  tt.equal(c.models['lexical']!.instances, 2);
  tt.ok(c.unsupported.includes('unknown:models.lexical.instanse'), 'the typo is listed as an unknown key');
  tt.notOk(c.unsupported.includes('models'), 'models is implemented');
  const bad = await failure(Promise.resolve().then(() => parseConfig(text.replace('instances = 2', 'instances = -1'), FILE)));
  tt.equal(bad.message, `${FILE}: models.lexical.instances: must be between 1 and 256, got -1`);
});

t.test('broken models stop start-up with a message naming the model', async (tt) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['missing', { path: path.join(dir, 'nothing-here') }, /no ONNX model in .*nothing-here: looked for onnx\/model\.onnx and model\.onnx/],
    ['garbage', { path: modelDir('garbage', new TextEncoder().encode('not a protobuf'), TINY) }, /cannot load ONNX model .*garbage\/onnx\/model\.onnx/],
    ['notok', { path: modelDir('notok', synthesizeBert(TINY), TINY, []) }, /cannot read tokenizer .*notok\/tokenizer\.json: file not found/],
    // The tokenizer's ids go past the embedding table, as config.json says...
    ['small', { path: modelDir('small', synthesizeBert({ ...TINY, vocab_size: 1000 }), { ...TINY, vocab_size: 1000 }) },
      /tokenizer does not fit the model: token ids go up to 30521, but config.json vocab_size is 1000/],
    // ...or as only running the graph shows (config.json claims a larger table).
    ['liar', { path: modelDir('liar', synthesizeBert({ ...TINY, vocab_size: 1000 }), TINY) },
      /tokenizer does not fit the model: running token id 30521 \(the tokenizer's largest\) failed/],
    ['positions', { path: modelDir('positions', synthesizeBert({ ...TINY, max_position_embeddings: 16 }), { ...TINY, max_position_embeddings: 512 }) },
      /max_tokens 512 is more than the model accepts/],
    ['inputs', { path: modelDir('inputs', buildHashModel(), null) }, /has no input_ids input \(its inputs: ids, mask\)/],
  ];
  for (const [name, raw, reason] of cases) {
    const err = await failure(Engine.start(models({ ok: { builtin: 'hash-384' }, [name]: raw }), { log, workerHooks: ENGINE_WORKER_HOOKS }));
    tt.ok(err instanceof EngineError && err.code === '58000', `${name}: an EngineError 58000`);
    tt.match(err.message, new RegExp(`^model "${name}" \\(path .*\\) could not be loaded: `), `${name}: names the model`);
    tt.match(err.message, reason, `${name}: says why`);
  }
  // The same directory with a fitting graph loads: the checks are not too strict.
  const good = await Engine.start(models({ tiny: { path: modelDir('tiny', synthesizeBert(TINY), TINY), max_tokens: 64 } }), { log, workerHooks: ENGINE_WORKER_HOOKS });
  tt.equal((await good.embed('tiny', ['hello']))[0]!.length, 32);
  await good.close();
  // model.onnx at the top of the directory, no tokenizer_config.json: loads too.
  const flat = modelDir('flat', null, TINY, ['tokenizer.json']);
  writeFileSync(path.join(flat, 'model.onnx'), synthesizeBert(TINY));
  const flatEngine = await Engine.start(models({ flat: { path: flat, max_tokens: 64 } }), { log, workerHooks: ENGINE_WORKER_HOOKS });
  tt.equal(flatEngine.dims('flat'), 32, 'model.onnx at the top level is found');
  await flatEngine.close();
});

t.test('reload: add, resize, replace and remove models without dropping callers', async (tt) => {
  const e = await Engine.start(models({ a: { builtin: 'hash-384', cache_mb: 0 } }), { log, workerHooks: ENGINE_WORKER_HOOKS });
  tt.teardown(() => e.close());
  // A steady stream of callers on "a" for the whole test; none may fail.
  let stop = false;
  const failures: string[] = [];
  let done = 0;
  const stream = Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          await e.embed('a', [`worker ${w} call ${i}`]);
          done++;
        } catch (err) {
          failures.push((err as Error).message);
          await sleep(1); // a refusal is immediate: yield, as a client's round trip would
        }
      }
    }),
  );
  const instances = (name: string): number => e.stats().filter((s) => s.model === name).length;

  await e.reload(models({ a: { builtin: 'hash-384', cache_mb: 0, instances: 3 }, b: { builtin: 'hash-384', instances: 2 } }));
  tt.equal(instances('a'), 3, 'a grew to 3 instances');
  tt.equal(instances('b'), 2, 'b was added with 2');
  tt.equal((await e.embed('b', ['new model']))[0]!.length, 384);
  await sleep(300);
  tt.ok(e.stats().filter((s) => s.model === 'a').every((s) => s.calls > 0), 'new instances take calls');

  // b removed while a slow call is in its worker: that call still completes.
  const slow = e.embed('b', [`${TEST_HOOK_PREFIX}sleep:500`]);
  await sleep(50);
  await e.reload(models({ a: { builtin: 'hash-384', cache_mb: 0, instances: 1 } }));
  tt.notOk(e.has('b'), 'b is gone for new calls');
  tt.equal((await failure(e.embed('b', ['x']))).message, 'model "b" does not exist; configured models: a');
  tt.equal((await slow).length, 1, 'the call b was running finished');
  tt.equal(instances('a'), 1, 'a shrank to 1 instance');

  // A broken model rejects the whole reload; a keeps its config and serves.
  const broken = await failure(e.reload(models({ a: { builtin: 'hash-384', cache_mb: 0, instances: 2 }, c: { path: path.join(dir, 'nothing-here') } })));
  tt.match(broken.message, /^model "c" \(path .*nothing-here\) could not be loaded/);
  tt.notOk(e.has('c'));
  tt.equal(instances('a'), 1, 'the rejected reload changed nothing');

  // A change that needs a new load (max_tokens) replaces a's instances under the callers.
  await e.reload(models({ a: { builtin: 'hash-384', cache_mb: 0, instances: 2, max_tokens: 64 } }));
  tt.equal(instances('a'), 2);
  // Live limits apply to the running model.
  await e.reload(models({ a: { builtin: 'hash-384', cache_mb: 0, instances: 2, max_tokens: 64, max_queue: 1 } }));
  await sleep(200);
  stop = true;
  await stream;
  const busy = failures.filter((m) => m.includes('too busy'));
  tt.same(failures.filter((m) => !m.includes('too busy')), [], 'no caller was dropped by any reload');
  tt.ok(done > 100, `${done} calls went through during the reloads (${busy.length} refused by max_queue 1 at the end)`);
});
