#!/usr/bin/env node
// The BROWSER of a desktop client under test (xdg-open runs `$BROWSER <url>` when there is no
// desktop): hands the URL to the test's SystemBrowser (system-browser.ts), which plays the user.
import process from 'node:process';

const [url] = process.argv.slice(2);
const handoff = process.env.SCOPEDB_TEST_BROWSER;
if (!url || !handoff) {
  process.stderr.write('usage: SCOPEDB_TEST_BROWSER=<handoff URL> browser.mjs <url>\n');
  process.exit(2);
}
const response = await globalThis.fetch(handoff, { method: 'POST', body: url });
process.exit(response.ok ? 0 : 1);
