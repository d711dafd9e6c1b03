import { fstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { messageOf } from '../mcp/tool-context.js';

export const USAGE =
  'usage: npm run doctor [-- --token -]   (the token on stdin: printf %s "$TOKEN" | npm run doctor)\n' +
  '       node dist/doctor/main.js [--token <access token> | --token -]';

/** The command line was wrong; exit code 2. */
export class UsageError extends Error {}

/** Far more than a Casdoor token (2-3 KB): stdin is not read without bound. */
const MAX_TOKEN_BYTES = 65_536;

/** Whether stdin is a pipe or a file (something was piped in), rather than a terminal or nothing. */
function stdinIsPiped(): boolean {
  const stat = fstatSync(0);
  return stat.isFIFO() || stat.isFile();
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > MAX_TOKEN_BYTES)
      throw new UsageError(`more than ${MAX_TOKEN_BYTES} bytes on stdin: that is not a token`);
  }
  return text;
}

/** A token as pasted: surrounding space and a `Bearer ` prefix are not part of it. */
function cleaned(raw: string): string {
  return raw.trim().replace(/^bearer\s+/i, '');
}

/**
 * The token to examine: `--token <jwt>`, `--token -` (stdin), or whatever is piped in; undefined
 * when none is given (only the deployment is checked).
 */
export async function tokenFrom(argv: string[]): Promise<string | undefined> {
  let values: { token?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { token: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${messageOf(error)}\n${USAGE}`);
  }
  if (values.token !== undefined && values.token !== '-') {
    const token = cleaned(values.token);
    if (token === '') throw new UsageError(`--token is empty\n${USAGE}`);
    return token;
  }
  if (values.token === undefined && !stdinIsPiped()) return undefined;
  if (process.stdin.isTTY) process.stderr.write('Paste the access token, then press Ctrl-D:\n');
  const token = cleaned(await readStdin());
  if (token === '' && values.token === '-') throw new UsageError(`no token on stdin\n${USAGE}`);
  return token === '' ? undefined : token;
}
