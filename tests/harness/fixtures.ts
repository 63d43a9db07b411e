// Model data the tests and benchmarks read, shipped in tests/fixtures/ so a
// fresh clone needs nothing outside the repository.
import { fileURLToPath } from 'node:url';

/** all-MiniLM-L6-v2's real tokenizer and config (Apache-2.0), no weights. */
export const MINILM_TOKENIZER = fileURLToPath(new URL('../fixtures/all-MiniLM-L6-v2-tokenizer', import.meta.url));
