// Under tap's TypeScript loader (ts-node), `import { serialize } from
// 'pg-protocol'` fails: the package's ESM wrapper (esm/index.js, in a
// package without "type": "module") is taken for CommonJS and shows no
// named exports. The pooler itself runs on plain Node, which detects the
// module syntax. Unit tests that load pooler modules importing pg-protocol
// register this hook first and then import those modules dynamically: it
// sends the import to the package's CommonJS build, whose named exports
// Node reads.
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const commonJs = pathToFileURL(createRequire(import.meta.url).resolve('pg-protocol')).href;
const hook = `
export async function resolve(specifier, context, next) {
  if (specifier === 'pg-protocol') return { url: ${JSON.stringify(commonJs)}, format: 'commonjs', shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);
