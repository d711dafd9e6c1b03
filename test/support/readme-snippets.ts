import { readFileSync } from 'node:fs';

const REGION_START = '// #region readme';
const REGION_END = '// #endregion readme';

/**
 * What the README shows of a source file: the whole file, or, when it marks regions with
 * `// #region readme` ... `// #endregion readme`, those regions joined by a `// ...` line (indented
 * as the last line before it).
 */
export function snippetOf(path: string): string {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (!lines.some((line) => line.trim() === REGION_START)) return lines.join('\n');
  const regions: string[][] = [];
  let current: string[] | undefined;
  for (const line of lines) {
    if (line.trim() === REGION_START) regions.push((current = []));
    else if (line.trim() === REGION_END) current = undefined;
    else current?.push(line);
  }
  return regions
    .map((region, i) => {
      if (i === 0) return region.join('\n');
      const before = regions[i - 1].findLast((line) => line.trim() !== '') ?? '';
      const indent = /^\s*/.exec(before)?.[0] ?? '';
      return `${indent}// ...\n${region.join('\n')}`;
    })
    .join('\n')
    .replace(/\n*$/, '\n');
}

/** The README's snippets: `<!-- snippet: path -->` followed by a fenced code block. */
export function snippetsIn(readme: string): { path: string; code: string }[] {
  return [...readme.matchAll(/<!-- snippet: (\S+) -->\n+```\w*\n([\s\S]*?)```\n/g)].map(
    ([, path, code]) => ({ path, code }),
  );
}
