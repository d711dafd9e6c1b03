import { readFileSync } from 'node:fs';

const REGION_START = '// #region readme';
const REGION_END = '// #endregion readme';

/**
 * What the README shows of a source file: the whole file, or, when it marks regions with
 * `// #region readme` ... `// #endregion readme`, those regions joined by a `// ...` line (indented
 * as the marker of the region it leads to).
 */
export function snippetOf(path: string): string {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (!lines.some((line) => line.trim() === REGION_START)) return lines.join('\n');
  const regions: { indent: string; lines: string[] }[] = [];
  let current: string[] | undefined;
  for (const line of lines) {
    if (line.trim() === REGION_START) {
      current = [];
      regions.push({ indent: line.slice(0, line.indexOf('//')), lines: current });
    } else if (line.trim() === REGION_END) current = undefined;
    else current?.push(line);
  }
  return regions
    .map(({ indent, lines }, i) => `${i === 0 ? '' : `${indent}// ...\n`}${lines.join('\n')}`)
    .join('\n')
    .replace(/\n*$/, '\n');
}

/** The README's snippets: `<!-- snippet: path -->` followed by a fenced code block. */
export function snippetsIn(readme: string): { path: string; code: string }[] {
  return [...readme.matchAll(/<!-- snippet: (\S+) -->\n+```\w*\n([\s\S]*?)```\n/g)].map(
    ([, path, code]) => ({ path, code }),
  );
}
