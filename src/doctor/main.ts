// `npm run doctor`: checks a deployment as README's "Troubleshooting" does, with the server's own
// code: its settings, Casdoor's discovery and JWKS, the server's challenge and metadata, and, given a
// token (`--token -` or piped on stdin), every reason the server would refuse it. One line per
// check; exit code 0 when every check passes, 1 otherwise, 2 for a wrong command line.
import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { Logger } from '@nestjs/common';
import { messageOf } from '../mcp/tool-context.js';
import { checkIssuer } from './issuer.checks.js';
import { Report } from './report.js';
import { checkServer, checkServerVerdict } from './server.checks.js';
import { checkSettings } from './settings.checks.js';
import { checkToken } from './token.checks.js';
import { tokenFrom, UsageError } from './token-input.js';
import { toolCatalog } from './tool-catalog.js';

async function doctor(report: Report, token: string | undefined): Promise<void> {
  const settings = checkSettings(report, process.env);
  if (!settings) return;
  const tools = await toolCatalog(settings);
  const issuer = await checkIssuer(report, settings.auth);
  const serverUrl = await checkServer(report, settings, tools);
  if (token === undefined) return;
  const verdict = await checkToken(report, token, settings.auth, issuer, tools);
  if (serverUrl !== undefined)
    await checkServerVerdict(report, serverUrl, settings.auth.jwksTimeoutMs, token, verdict);
  else report.skip('server verdict', 'the server cannot be reached');
}

// The server's own classes log what the doctor reports itself (JwksKeyCache's warnings).
Logger.overrideLogger(false);
if (existsSync('.env')) process.loadEnvFile('.env');
const report = new Report((line) => process.stdout.write(`${line}\n`));
try {
  const token = await tokenFrom(process.argv.slice(2));
  if (token !== undefined) report.hide(token);
  await doctor(report, token);
  report.summary();
  process.exit(report.failures === 0 ? 0 : 1);
} catch (error) {
  process.stderr.write(`doctor: ${report.redact(messageOf(error))}\n`);
  process.exit(error instanceof UsageError ? 2 : 1);
}
