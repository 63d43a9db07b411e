// Postgres array literals as sharding keys (`id = ANY('{1,2}')`, an array
// parameter): their elements as text.

/**
 * Non-NULL elements of a one-dimensional Postgres array literal such as
 * `{1, 2,"3",NULL}`; null for anything else (nested, dimension decoration).
 */
export function parseArrayLiteral(text: string): string[] | null {
  const s = text.trim();
  if (!s.startsWith('{') || !s.endsWith('}')) return null;
  const out: string[] = [];
  let i = 1;
  const end = s.length - 1;
  const skipSpace = (): void => {
    while (i < end && /\s/.test(s[i])) i++;
  };
  skipSpace();
  if (i === end) return out; // '{}'
  for (;;) {
    skipSpace();
    if (s[i] === '{') return null;
    if (s[i] === '"') {
      let item = '';
      for (i++; i < end && s[i] !== '"'; i++) item += s[i] === '\\' ? s[++i] : s[i];
      if (s[i] !== '"') return null;
      i++;
      out.push(item);
    } else {
      const start = i;
      while (i < end && s[i] !== ',' && s[i] !== '"' && s[i] !== '{' && s[i] !== '}') i++;
      const item = s.slice(start, i).trim();
      if (item === '') return null;
      if (item.toUpperCase() !== 'NULL') out.push(item);
    }
    skipSpace();
    if (i === end) return out;
    if (s[i] !== ',') return null;
    i++;
  }
}
