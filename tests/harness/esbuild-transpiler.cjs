// A ts-node transpiler (CommonJS, as ts-node requires) that strips types
// with esbuild instead of TypeScript's transpileModule: the same
// one-file-at-a-time, no-typecheck transform, several times cheaper per
// module. Used by the unit layer (tests/unit/tsconfig.json), which loads
// most of the pooler in one process. esbuild comes with tsx.
'use strict';
const { transformSync } = require('esbuild');

exports.create = function create() {
  return {
    transpile(input, { fileName }) {
      const out = transformSync(input, {
        loader: fileName.endsWith('x') ? 'tsx' : 'ts',
        format: fileName.endsWith('.cts') ? 'cjs' : 'esm',
        target: 'es2022',
        sourcemap: 'external',
        sourcefile: fileName,
      });
      return { outputText: out.code, sourceMapText: out.map };
    },
  };
};
