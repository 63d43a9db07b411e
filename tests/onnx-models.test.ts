// The project's own ONNX models, run in onnxruntime-node as the engine runs
// them: the built-in lexical model hash-384 and the BERT-shaped graph
// synthesized from all-MiniLM-L6-v2's config.json. No weights are needed.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import t, { type Test } from 'tap';
import { BERT_OUTPUT, readHfConfig, synthesizeBert, type HfBertConfig } from '../engine/onnx/bert-synth.js';
import { HASH_MODEL_DIMS, buildHashModel, hashTokenize } from '../engine/onnx/hash-model.js';
import { MINILM_TOKENIZER } from './harness/fixtures.js';

const MINILM = MINILM_TOKENIZER;
// One intra-op thread: tap runs two test files at once on two shared cores.
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i], 0);
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

async function embedHash(t: Test, session: ort.InferenceSession, texts: string[]): Promise<Float32Array[]> {
  const b = hashTokenize(texts);
  const out = await session.run({
    ids: new ort.Tensor('int64', b.ids, [b.batch, b.seq]),
    mask: new ort.Tensor('float32', b.mask, [b.batch, b.seq]),
  });
  const e = out.embedding;
  t.same(e.dims, [texts.length, HASH_MODEL_DIMS], 'embedding is [batch, dims]');
  const data = e.data as Float32Array;
  return texts.map((_, i) => data.slice(i * HASH_MODEL_DIMS, (i + 1) * HASH_MODEL_DIMS));
}

t.test('hashTokenize', async (t) => {
  const b = hashTokenize(['Hello, WORLD!', '', 'ＨＥＬＬＯ world again']);
  t.equal(b.batch, 3);
  t.equal(b.seq, 3, 'padded to the longest row');
  t.same(Array.from(b.mask), [1, 1, 0, 0, 0, 0, 1, 1, 1], 'empty text is one padded position');
  t.equal(b.ids[0], b.ids[6], 'NFKC + lower-case: full-width HELLO is hello');
  t.equal(b.ids[1], b.ids[7]);
  t.ok(Array.from(b.ids).every((id) => id >= 0n && id < BigInt(HASH_MODEL_DIMS)), 'buckets in 0..dims-1');
  t.equal(hashTokenize(['a b c d e'], 2).seq, 2, 'maxTokens truncates');
  t.same(hashTokenize(['café naïve 42']), hashTokenize(['CAFÉ NAÏVE 42']), 'Unicode words');
  t.equal(hashTokenize([]).batch, 0);
});

t.test('hash-384 in onnxruntime', async (t) => {
  const bytes = buildHashModel();
  t.same(Buffer.from(buildHashModel()), Buffer.from(bytes), 'the model file is deterministic');
  const session = await ort.InferenceSession.create(bytes, SESSION);
  t.same(session.inputNames, ['ids', 'mask']);
  t.same(session.outputNames, ['embedding']);

  const texts = ['the quick brown fox', '', 'the quick brown fox', 'a lazy brown dog sleeps', 'Zebras!'];
  const [fox, empty, fox2, dog, zebra] = await embedHash(t, session, texts);
  t.ok(Math.abs(norm(fox) - 1) < 1e-6, 'unit length');
  t.ok(Math.abs(norm(zebra) - 1) < 1e-6, 'unit length for one word');
  t.equal(norm(empty), 0, 'empty text embeds to zeros');
  t.same(fox, fox2, 'identical texts, identical vectors');
  t.ok(dot(fox, dog) > 0, 'texts sharing a word have a positive cosine');
  const again = await embedHash(t, session, texts);
  t.same(again[3], dog, 'deterministic across runs');

  // Batching must not change anything: rows alone vs padded in one batch.
  for (const [i, text] of texts.entries()) {
    const [alone] = await embedHash(t, session, [text]);
    t.ok(maxDiff(alone, [fox, empty, fox2, dog, zebra][i]) <= 1e-6, `batched row ${i} equals it alone`);
  }
  await session.release();
});

// --- BERT-shaped graph ---------------------------------------------------

const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(path.join(MINILM, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(path.join(MINILM, 'tokenizer_config.json'), 'utf8')),
);

interface Batch {
  feeds: Record<string, ort.Tensor>;
  mask: number[][];
  batch: number;
  seq: number;
}

/** Tokenizes and right-pads (id 0, mask 0) as the engine does. */
function encode(texts: string[]): Batch {
  // Typed by hand: the package's .d.ts files use extensionless imports, which NodeNext resolves to `any`.
  const enc: { ids: number[]; attention_mask: number[]; token_type_ids: number[] }[] = texts.map((text) =>
    tokenizer.encode(text, { return_token_type_ids: true }),
  );
  const seq = Math.max(...enc.map((e) => e.ids.length));
  const batch = texts.length;
  const ids = new BigInt64Array(batch * seq);
  const att = new BigInt64Array(batch * seq);
  const types = new BigInt64Array(batch * seq);
  enc.forEach((e, b) =>
    e.ids.forEach((id, i) => {
      ids[b * seq + i] = BigInt(id);
      att[b * seq + i] = BigInt(e.attention_mask[i]);
      types[b * seq + i] = BigInt(e.token_type_ids[i]);
    }),
  );
  return {
    feeds: {
      input_ids: new ort.Tensor('int64', ids, [batch, seq]),
      attention_mask: new ort.Tensor('int64', att, [batch, seq]),
      token_type_ids: new ort.Tensor('int64', types, [batch, seq]),
    },
    mask: enc.map((e) => [...e.attention_mask, ...new Array<number>(seq - e.ids.length).fill(0)]),
    batch,
    seq,
  };
}

/** Mean pooling over the attention mask (what sentence-transformers does for MiniLM). */
function meanPool(hidden: Float32Array, mask: number[][], seq: number, dims: number): Float32Array[] {
  return mask.map((row, b) => {
    const out = new Float32Array(dims);
    const n = row.reduce((a, m) => a + m, 0);
    row.forEach((m, i) => {
      if (m) for (let d = 0; d < dims; d++) out[d] += hidden[(b * seq + i) * dims + d] / n;
    });
    return out;
  });
}

async function runBert(session: ort.InferenceSession, texts: string[], hiddenSize: number): Promise<{ hidden: Float32Array; pooled: Float32Array[]; dims: readonly number[] }> {
  const b = encode(texts);
  const out = (await session.run(b.feeds))[BERT_OUTPUT];
  const hidden = out.data as Float32Array;
  return { hidden, pooled: meanPool(hidden, b.mask, b.seq, hiddenSize), dims: out.dims };
}

const config = readHfConfig(MINILM);
const SENTENCES = ['PgLynx pools Postgres connections.', 'hi', 'Embedding models served to SQL clients through the pooler, batched.'];

t.test('readHfConfig reads all-MiniLM-L6-v2', async (t) => {
  t.match(config, { vocab_size: 30522, hidden_size: 384, num_hidden_layers: 6, num_attention_heads: 12, intermediate_size: 1536, hidden_act: 'gelu' });
  t.throws(() => synthesizeBert({ ...config, num_attention_heads: 5 }), /multiple of num_attention_heads/);
  t.throws(() => synthesizeBert({ ...config, hidden_act: 'relu' }), /hidden_act "relu" is not supported/);
});

t.test('synthesized BERT (2 layers): shape, seeds, padding', async (t) => {
  const small: HfBertConfig = { ...config, num_hidden_layers: 2 };
  const bytes = synthesizeBert(small, 7);
  t.same(Buffer.from(synthesizeBert(small, 7)), Buffer.from(bytes), 'same seed, same file');
  const session = await ort.InferenceSession.create(bytes, SESSION);
  t.same(session.inputNames, ['input_ids', 'attention_mask', 'token_type_ids'], 'input names of an optimum export');
  t.same(session.outputNames, ['last_hidden_state']);

  const batched = await runBert(session, SENTENCES, 384);
  const seq = encode(SENTENCES).seq;
  t.same(batched.dims, [3, seq, 384], '[batch, seq, hidden]');
  t.ok(batched.hidden.every(Number.isFinite), 'finite outputs');

  const other = await ort.InferenceSession.create(synthesizeBert(small, 8), SESSION);
  const otherOut = await runBert(other, SENTENCES, 384);
  t.ok(maxDiff(otherOut.hidden, batched.hidden) > 1e-2, 'a different seed gives different outputs');
  await other.release();

  // The attention mask is wired right iff padding does not leak into real tokens.
  for (const [i, text] of SENTENCES.entries()) {
    const alone = await runBert(session, [text], 384);
    const d = maxDiff(alone.pooled[0], batched.pooled[i]);
    t.ok(d <= 1e-5, `row ${i} padded in a batch equals it alone (max diff ${d.toExponential(2)})`);
  }
  const again = await runBert(session, SENTENCES, 384);
  t.same(again.hidden, batched.hidden, 'deterministic across runs');
  await session.release();
});

// --- An independent forward pass in plain JS over the model's own weights --

/** Reads the float initializers back out of the encoded model. */
function weightsOf(bytes: Uint8Array): Map<string, Float32Array> {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const map = new Map<string, Float32Array>();
  for (const init of model.graph?.initializer ?? []) {
    if (init.dataType !== onnxProto.onnx.TensorProto.DataType.FLOAT) continue;
    if (!init.rawData || !init.name) continue;
    const raw = new Uint8Array(init.rawData); // a copy, so aligned for Float32Array (decode gives Buffer views)
    map.set(init.name, new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
  }
  return map;
}

function referenceBert(c: HfBertConfig, w: Map<string, Float32Array>, ids: number[], mask: number[]): Float32Array[] {
  const H = c.hidden_size;
  const heads = c.num_attention_heads;
  const hd = H / heads;
  const get = (name: string): Float32Array => {
    const v = w.get(name);
    if (!v) throw new Error(`no initializer ${name}`);
    return v;
  };
  const linear = (x: Float32Array[], p: string, outDim: number): Float32Array[] =>
    x.map((row) => {
      const W = get(`${p}.weight`);
      const out = Float32Array.from(get(`${p}.bias`));
      row.forEach((v, i) => {
        for (let o = 0; o < outDim; o++) out[o] += v * W[i * outDim + o];
      });
      return out;
    });
  const layerNorm = (x: Float32Array[], p: string): Float32Array[] =>
    x.map((row) => {
      const mean = row.reduce((a, v) => a + v, 0) / H;
      const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / H;
      const g = get(`${p}.weight`);
      const b = get(`${p}.bias`);
      return row.map((v, i) => ((v - mean) / Math.sqrt(variance + c.layer_norm_eps)) * g[i] + b[i]);
    });
  const erf = (x: number): number => {
    // Abramowitz-Stegun 7.1.26 (1.5e-7) would do too; the midpoint rule keeps it obviously right.
    const n = 2000;
    let s = 0;
    for (let k = 0; k < n; k++) s += Math.exp(-((((k + 0.5) * x) / n) ** 2));
    return ((2 / Math.sqrt(Math.PI)) * s * x) / n;
  };
  const emb = (table: string, row: number): Float32Array => get(table).slice(row * H, (row + 1) * H);
  let x = layerNorm(
    ids.map((id, i) => emb('embeddings.word_embeddings.weight', id).map((v, d) => v + emb('embeddings.position_embeddings.weight', i)[d] + emb('embeddings.token_type_embeddings.weight', 0)[d])),
    'embeddings.LayerNorm',
  );
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    const [q, k, v] = ['query', 'key', 'value'].map((n) => linear(x, `${p}.attention.self.${n}`, H));
    const ctx = x.map(() => new Float32Array(H));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < x.length; i++) {
        const scores = k.map((kj, j) => {
          let s = 0;
          for (let d = h * hd; d < (h + 1) * hd; d++) s += q[i][d] * kj[d];
          return s / Math.sqrt(hd) + (1 - mask[j]) * -10000;
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((pj, j) => {
          for (let d = h * hd; d < (h + 1) * hd; d++) ctx[i][d] += (pj / z) * v[j][d];
        });
      }
    }
    const attn = linear(ctx, `${p}.attention.output.dense`, H);
    x = layerNorm(attn.map((r, i) => r.map((val, d) => val + x[i][d])), `${p}.attention.output.LayerNorm`);
    const up = linear(x, `${p}.intermediate.dense`, c.intermediate_size).map((r) => r.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))));
    const down = linear(up, `${p}.output.dense`, H);
    x = layerNorm(down.map((r, i) => r.map((val, d) => val + x[i][d])), `${p}.output.LayerNorm`);
  }
  return x;
}

t.test('the graph computes BERT (tiny config vs a plain JS forward pass)', async (t) => {
  // Bigger weights than 0.02 so attention is far from uniform and a wiring slip shows.
  const tiny: HfBertConfig = { ...config, vocab_size: 50, hidden_size: 8, num_attention_heads: 2, intermediate_size: 16, num_hidden_layers: 2, max_position_embeddings: 16 };
  const bytes = synthesizeBert(tiny, 3, { std: 0.5 });
  const session = await ort.InferenceSession.create(bytes, SESSION);
  const ids = [1, 7, 42, 3, 0];
  const mask = [1, 1, 1, 1, 0];
  const out = await session.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, 5]),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from(mask, BigInt), [1, 5]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(5), [1, 5]),
  });
  const got = out[BERT_OUTPUT].data as Float32Array;
  const want = referenceBert(tiny, weightsOf(bytes), ids, mask);
  const d = Math.max(...want.map((row, i) => maxDiff(row, got.subarray(i * 8, (i + 1) * 8))));
  t.ok(d < 1e-4, `onnxruntime matches the reference (max diff ${d.toExponential(2)})`);
  await session.release();
});

t.test('full all-MiniLM-L6-v2 shape (6 layers) loads and runs', async (t) => {
  const started = performance.now();
  const bytes = synthesizeBert(config);
  const synthMs = performance.now() - started;
  t.ok(bytes.byteLength > 85e6 && bytes.byteLength < 95e6, `about 90 MB (${(bytes.byteLength / 1e6).toFixed(1)} MB in ${synthMs.toFixed(0)} ms)`);
  const session = await ort.InferenceSession.create(bytes, SESSION);
  const { dims, pooled } = await runBert(session, SENTENCES, 384);
  t.same(dims, [3, encode(SENTENCES).seq, 384]);
  t.ok(pooled.every((v) => v.every(Number.isFinite)));
  await session.release();
});
