// Model data the tests and benchmarks read, shipped in tests/fixtures/ so a
// fresh clone needs nothing outside the repository.
import { fileURLToPath } from 'node:url';

/** all-MiniLM-L6-v2's real tokenizer and config (Apache-2.0), no weights. */
export const MINILM_TOKENIZER = fileURLToPath(new URL('../fixtures/all-MiniLM-L6-v2-tokenizer', import.meta.url));

/** GPT-2's real byte-level BPE tokenizer and GPT-2 small's config (MIT / OpenAI's modified MIT), no weights. */
export const GPT2_TOKENIZER = fileURLToPath(new URL('../fixtures/gpt2-tokenizer', import.meta.url));
