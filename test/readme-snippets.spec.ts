import { readFileSync } from 'node:fs';
import { snippetOf, snippetsIn } from './support/readme-snippets.js';

// The README's code is taken from compiled, tested files: a snippet that differs fails here.
describe('README snippets', () => {
  const snippets = snippetsIn(readFileSync('README.md', 'utf8'));

  it('shows the SDK client and the worked example extension from their files', () => {
    expect(snippets.map((snippet) => snippet.path)).toEqual([
      'test/examples/sdk-client.ts',
      'src/examples/reports/reports.scopes.ts',
      'src/examples/reports/reports.tools.ts',
      'src/examples/reports/reports.sql.ts',
      'src/examples/reports/reports.module.ts',
    ]);
  });

  it.each(snippets.map((snippet) => [snippet.path, snippet.code]))(
    'shows %s as it is',
    (path, code) => {
      expect(code).toBe(snippetOf(path));
    },
  );
});
