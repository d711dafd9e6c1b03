// The MCP fast path (src/http/mcp-fast-path.ts) answers POST /mcp as Express does: every request
// below is sent, byte for byte, to a server with the fast path and to one without it
// (MCP_FAST_PATH=false); the statuses, the headers that carry meaning, the bodies and the audit
// records must agree. Requests the fast path declines (other encodings, charsets, chunked bodies,
// query strings) are among them, and so are refusals at each step: body, Origin, token, scope,
// rate limit. An extension's middleware on the MCP route runs on the fast path too.
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import {
  Injectable,
  type MiddlewareConsumer,
  Module,
  type NestMiddleware,
  type NestModule,
} from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { startTestApp, type TestApp } from './support/app.js';
import { readAuditRows } from './support/audit-rows.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, rpc } from './support/mcp-http.js';
import { nextRequestId } from './support/request-ids.js';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends exactly these bytes and headers (no client adds or changes any). */
function send(
  url: string,
  options: {
    method?: string;
    path?: string;
    headers: Record<string, string>;
    body?: Buffer | string;
    chunked?: boolean;
  },
): Promise<Raw> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: options.method ?? 'POST',
        path: options.path ?? target.pathname,
        headers: options.headers,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    request.on('error', reject);
    if (options.body !== undefined) {
      if (options.chunked) {
        const body = Buffer.from(options.body);
        request.write(body.subarray(0, 10));
        request.end(body.subarray(10));
      } else request.end(options.body);
    } else request.end();
  });
}

/** What must agree: the status, the headers that mean something, the body (ids and times out). */
function comparable(raw: Raw) {
  const keep = [
    'content-type',
    'www-authenticate',
    'retry-after',
    'allow',
    'access-control-allow-origin',
    'access-control-expose-headers',
    'vary',
    'cache-control',
  ];
  return {
    status: raw.status,
    headers: Object.fromEntries(keep.map((name) => [name, raw.headers[name]])),
    body: raw.body
      .replace(/"elapsed_ms":[\d.]+/g, '"elapsed_ms":0')
      .replace(/in [\d.]+ ms/g, 'in 0 ms'),
  };
}

const ORIGIN_HEADERS = { accept: 'application/json, text/event-stream' };

/** Marks every request it sees: the extension's middleware under test. */
@Injectable()
class StampMiddleware implements NestMiddleware {
  use(_request: Request, response: Response, next: NextFunction): void {
    response.setHeader('X-Extension-Stamp', 'seen');
    next();
  }
}

@Module({ providers: [StampMiddleware] })
class StampModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(StampMiddleware).forRoutes('*path');
  }
}

describe('the MCP fast path answers as Express does', () => {
  let issuer: TestIssuer;
  let fast: TestApp;
  let express: TestApp;
  let tokens: { fast: string; express: string };
  let queryOnly: { fast: string; express: string };

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    // One resource for both: passport keeps one strategy per process, so both apps of this
    // process must accept the same audience.
    const env = {
      AUTH_ISSUER: issuer.url,
      PUBLIC_URL: 'http://scopedb.test',
      MCP_MAX_BODY_BYTES: '4096',
      MCP_ALLOWED_ORIGINS: 'http://allowed.example',
      RATE_LIMIT_PER_MINUTE: '1000',
    };
    fast = await startTestApp({ ...env, MCP_FAST_PATH: 'true' });
    express = await startTestApp({ ...env, MCP_FAST_PATH: 'false' });
    const tokenFor = (_app: TestApp, scope: string) =>
      issuer.token({ audience: 'http://scopedb.test/mcp', scope });
    tokens = {
      fast: tokenFor(fast, 'db:query db:modify db:admin'),
      express: tokenFor(express, 'db:query db:modify db:admin'),
    };
    queryOnly = { fast: tokenFor(fast, 'db:query'), express: tokenFor(express, 'db:query') };
  });
  afterAll(async () => {
    await fast?.close();
    await express?.close();
    await issuer?.close();
  });

  const json = (value: unknown) => JSON.stringify(value);
  const headersWith = (token: string | undefined, extra: Record<string, string> = {}) => ({
    ...ORIGIN_HEADERS,
    'content-type': 'application/json',
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    ...extra,
  });

  type Case = {
    body?: Buffer | string;
    headers?: (token: string, queryToken: string) => Record<string, string>;
    path?: string;
    chunked?: boolean;
  };
  const cases: [string, Case][] = [
    ['a tools/call', { body: json(callTool('query', { sql: 'SELECT 1 AS one' })) }],
    ['tools/list', { body: json(rpc('tools/list')) }],
    [
      'initialize',
      {
        body: json({
          ...rpc('initialize', {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 't', version: '1' },
          }),
        }),
      },
    ],
    ['a batch', { body: json([callTool('list_tables'), rpc('tools/list')]) }],
    ['a notification', { body: json({ jsonrpc: '2.0', method: 'notifications/initialized' }) }],
    ['malformed JSON', { body: '{"jsonrpc":"2.0",' }],
    ['a JSON string (strict JSON: objects and arrays only)', { body: '"tools/list"' }],
    ['leading whitespace', { body: ` \n\t${json(rpc('tools/list'))}` }],
    ['a byte order mark', { body: `\uFEFF${json(rpc('tools/list'))}` }],
    [
      'invalid UTF-8',
      {
        body: Buffer.concat([
          Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('"}}'),
        ]),
      },
    ],
    [
      'a body over MCP_MAX_BODY_BYTES',
      { body: json(callTool('query', { sql: `SELECT '${'x'.repeat(5000)}'` })) },
    ],
    ['an empty body', { body: '' }],
    [
      'charset=utf-8',
      {
        body: json(rpc('tools/list')),
        headers: (t) => headersWith(t, { 'content-type': 'application/json; charset=utf-8' }),
      },
    ],
    [
      'charset=latin1 (refused by the parser)',
      {
        body: json(rpc('tools/list')),
        headers: (t) => headersWith(t, { 'content-type': 'application/json; charset=latin1' }),
      },
    ],
    [
      'text/plain',
      {
        body: json(rpc('tools/list')),
        headers: (t) => headersWith(t, { 'content-type': 'text/plain' }),
      },
    ],
    [
      'a gzip body',
      {
        body: gzipSync(json(rpc('tools/list'))),
        headers: (t) => headersWith(t, { 'content-encoding': 'gzip' }),
      },
    ],
    ['a chunked body', { body: json(rpc('tools/list')), chunked: true }],
    ['a query string', { body: json(rpc('tools/list')), path: '/mcp?x=1' }],
    ['a trailing slash', { body: json(rpc('tools/list')), path: '/mcp/' }],
    ['no token', { body: json(rpc('tools/list')), headers: () => headersWith(undefined) }],
    [
      'a token in the query',
      {
        body: json(rpc('tools/list')),
        headers: () => headersWith(undefined),
        path: '/mcp?access_token=abc',
      },
    ],
    ['a bad token', { body: json(rpc('tools/list')), headers: (t) => headersWith(`${t}x`) }],
    [
      'a missing scope (step-up)',
      {
        body: json(callTool('execute', { sql: 'DELETE FROM x' })),
        headers: (_t, q) => headersWith(q),
      },
    ],
    [
      'a foreign Origin',
      {
        body: json(rpc('tools/list')),
        headers: (t) => headersWith(t, { origin: 'http://evil.example' }),
      },
    ],
    [
      'an allowed Origin',
      {
        body: json(rpc('tools/list')),
        headers: (t) => headersWith(t, { origin: 'http://allowed.example' }),
      },
    ],
    ['JSON nested too deep', { body: `${'['.repeat(100)}${']'.repeat(100)}` }],
    ['an unknown tool', { body: json(callTool('no_such_tool')) }],
    ['bad arguments', { body: json(callTool('query', { sql: 42 })) }],
    [
      'an Accept without JSON',
      { body: json(rpc('tools/list')), headers: (t) => headersWith(t, { accept: 'text/html' }) },
    ],
  ];

  it.each(cases)('%s', async (_name, testCase) => {
    const answers: ReturnType<typeof comparable>[] = [];
    const records: unknown[] = [];
    for (const [app, token, queryToken] of [
      [fast, tokens.fast, queryOnly.fast],
      [express, tokens.express, queryOnly.express],
    ] as const) {
      const requestId = nextRequestId('fast-path');
      const raw = await send(app.mcpUrl, {
        path: testCase.path,
        body: testCase.body,
        chunked: testCase.chunked,
        headers: {
          ...(testCase.headers?.(token, queryToken) ?? headersWith(token)),
          'x-request-id': requestId,
        },
      });
      expect(raw.headers['x-request-id']).toBe(requestId);
      answers.push(comparable(raw));
      records.push(
        readAuditRows(app.auditDatabasePath, requestId).map((row) => ({
          outcome: row.outcome,
          tool: row.tool,
          reason: row.reason,
          subject: row.subject,
        })),
      );
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(records[0]).toEqual(records[1]);
  });

  it('is on for the first server and off for the second (the comparison is not of one path with itself)', () => {
    const listener = (sut: TestApp) => sut.app.getHttpServer().listeners('request')[0];
    const expressOf = (sut: TestApp) => sut.app.getHttpAdapter().getInstance() as unknown;
    expect(listener(fast)).not.toBe(expressOf(fast));
    expect(listener(express)).toBe(expressOf(express));
  });
});

describe('an extension middleware on the MCP route', () => {
  let issuer: TestIssuer;
  let app: TestApp;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    app = await startTestApp({ AUTH_ISSUER: issuer.url }, { modules: [StampModule] });
  });
  afterAll(async () => {
    await app?.close();
    await issuer?.close();
  });

  it('runs for POST /mcp on the fast path, as for every other route', async () => {
    const token = issuer.token({ audience: app.mcpUrl, scope: 'db:query' });
    const call = await send(app.mcpUrl, {
      body: JSON.stringify(callTool('query', { sql: 'SELECT 1' })),
      headers: {
        ...ORIGIN_HEADERS,
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
      },
    });
    expect(call.status).toBe(200);
    expect(call.headers['x-extension-stamp']).toBe('seen');
    const health = await send(`${app.baseUrl}/healthz`, { method: 'GET', headers: {} });
    expect(health.headers['x-extension-stamp']).toBe('seen');
  });
});
