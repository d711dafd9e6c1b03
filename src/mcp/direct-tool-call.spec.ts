import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type CallToolResult,
  CLIENT_CAPABILITIES_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  SERVER_INFO_META_KEY,
} from '@modelcontextprotocol/server';
import express from 'express';
import { auditUnavailableBody, AuditUnavailableError } from '../audit/audit-unavailable.js';
import type { DirectEra } from './direct-request.js';
import {
  answerDirectToolCall,
  directToolCallOf,
  type RunToolCall,
  toolCallAnswer,
} from './direct-tool-call.js';

const SERVER_INFO = { name: 'scopedb-mcp', version: '0.1.0' };

/** The headers of a 2025-era client's POST. */
const SENT: Record<string, string> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};
const HEADERS: IncomingHttpHeaders = SENT;

function request(params: Record<string, unknown>, id: unknown = 1): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'tools/call', params };
}

const QUERY = request({ name: 'query', arguments: { sql: 'SELECT 1' } });
const ENVELOPE = {
  [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
  [CLIENT_CAPABILITIES_META_KEY]: {},
};
const MODERN_QUERY = request({ name: 'query', arguments: { sql: 'SELECT 1' }, _meta: ENVELOPE });
/** The headers of a 2026-07-28 client's tools/call of `query`. */
const MODERN_HEADERS: IncomingHttpHeaders = {
  ...HEADERS,
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'query',
};
const LEGACY = { era: 'legacy', protocolVersion: '2025-11-25' } as const;
const MODERN = { era: 'modern', revision: '2026-07-28' } as const;

describe(directToolCallOf.name, () => {
  const sut = directToolCallOf;

  it.each<[string, IncomingHttpHeaders, unknown, ReturnType<typeof directToolCallOf>]>([
    [
      'a 2025-era tools/call',
      HEADERS,
      QUERY,
      { id: 1, name: 'query', arguments: { sql: 'SELECT 1' }, served: LEGACY },
    ],
    [
      'a string id',
      HEADERS,
      request({ name: 'query', arguments: {} }, 'call-7'),
      { id: 'call-7', name: 'query', arguments: {}, served: LEGACY },
    ],
    [
      'no arguments member',
      HEADERS,
      request({ name: 'list_tables' }),
      { id: 1, name: 'list_tables', arguments: undefined, served: LEGACY },
    ],
    [
      'a _meta without an envelope claim',
      HEADERS,
      request({ name: 'list_tables', arguments: {}, _meta: { progressToken: 5 } }),
      { id: 1, name: 'list_tables', arguments: {}, served: LEGACY },
    ],
    [
      'no MCP-Protocol-Version header',
      { ...HEADERS, 'mcp-protocol-version': undefined },
      QUERY,
      {
        id: 1,
        name: 'query',
        arguments: { sql: 'SELECT 1' },
        served: { era: 'legacy', protocolVersion: undefined },
      },
    ],
    [
      'an older supported protocol version',
      { ...HEADERS, 'mcp-protocol-version': '2025-03-26' },
      QUERY,
      {
        id: 1,
        name: 'query',
        arguments: { sql: 'SELECT 1' },
        served: { era: 'legacy', protocolVersion: '2025-03-26' },
      },
    ],
    [
      'a JSON content type with a charset',
      { ...HEADERS, 'content-type': 'application/json; charset=utf-8' },
      QUERY,
      { id: 1, name: 'query', arguments: { sql: 'SELECT 1' }, served: LEGACY },
    ],
    [
      'a 2026-07-28 tools/call with its standard headers',
      MODERN_HEADERS,
      MODERN_QUERY,
      { id: 1, name: 'query', arguments: { sql: 'SELECT 1' }, served: MODERN },
    ],
    [
      'a 2026-07-28 tools/call from a client that accepts JSON only',
      { ...MODERN_HEADERS, accept: 'application/json' },
      MODERN_QUERY,
      { id: 1, name: 'query', arguments: { sql: 'SELECT 1' }, served: MODERN },
    ],
  ])('answers %s', (_case, headers, body, expected) => {
    expect(sut(headers, body)).toStrictEqual(expected);
  });

  it.each<[string, IncomingHttpHeaders, unknown]>([
    ['a batch', HEADERS, [QUERY]],
    ['a notification (no id)', HEADERS, { ...QUERY, id: undefined }],
    ['a null id', HEADERS, { ...QUERY, id: null }],
    ['a fractional id', HEADERS, { ...QUERY, id: 1.5 }],
    ['another method', HEADERS, { ...QUERY, method: 'tools/list' }],
    ['no jsonrpc member', HEADERS, { ...QUERY, jsonrpc: undefined }],
    ['another JSON-RPC version', HEADERS, { ...QUERY, jsonrpc: '1.0' }],
    ['a body that is not a plain object', HEADERS, Object.create(QUERY) as unknown],
    ['no params', HEADERS, { ...QUERY, params: undefined }],
    ['a name that is not a string', HEADERS, request({ name: 7, arguments: {} })],
    ['an extra params key', HEADERS, request({ name: 'query', arguments: {}, task: {} })],
    ['arguments that are an array', HEADERS, request({ name: 'query', arguments: ['x'] })],
    ['arguments that are a string', HEADERS, request({ name: 'query', arguments: 'x' })],
    ['arguments that are null', HEADERS, request({ name: 'query', arguments: null })],
    ['a _meta that is not an object', HEADERS, request({ name: 'query', _meta: 'x' })],
    ['a content type that is not JSON', { ...HEADERS, 'content-type': 'text/plain' }, QUERY],
    ['no content type', { ...HEADERS, 'content-type': undefined }, QUERY],
    ['an Accept without text/event-stream', { ...HEADERS, accept: 'application/json' }, QUERY],
    ['an Accept without application/json', { ...HEADERS, accept: 'text/event-stream' }, QUERY],
    ['no Accept', { ...HEADERS, accept: undefined }, QUERY],
    [
      'an unsupported protocol version',
      { ...HEADERS, 'mcp-protocol-version': '2099-01-01' },
      QUERY,
    ],
    [
      'the 2026-07-28 protocol version header',
      { ...HEADERS, 'mcp-protocol-version': '2026-07-28' },
      QUERY,
    ],
    [
      'a 2026-07-28 envelope',
      { ...HEADERS, 'mcp-protocol-version': undefined },
      request({ name: 'query', arguments: {}, _meta: ENVELOPE }),
    ],
    [
      'a 2026-07-28 envelope the header contradicts',
      HEADERS,
      request({ name: 'query', arguments: {}, _meta: ENVELOPE }),
    ],
    [
      'a 2026-07-28 envelope without MCP-Protocol-Version',
      { ...MODERN_HEADERS, 'mcp-protocol-version': undefined },
      MODERN_QUERY,
    ],
    [
      'a 2026-07-28 envelope without Mcp-Method',
      { ...MODERN_HEADERS, 'mcp-method': undefined },
      MODERN_QUERY,
    ],
    [
      'a 2026-07-28 envelope without Mcp-Name',
      { ...MODERN_HEADERS, 'mcp-name': undefined },
      MODERN_QUERY,
    ],
    ['an Mcp-Name naming another tool', { ...MODERN_HEADERS, 'mcp-name': 'execute' }, MODERN_QUERY],
    [
      'a Base64-encoded Mcp-Name (the SDK decodes it)',
      { ...MODERN_HEADERS, 'mcp-name': '=?base64?cXVlcnk=?=' },
      MODERN_QUERY,
    ],
    [
      'an Mcp-Method naming another method',
      { ...MODERN_HEADERS, 'mcp-method': 'tools/list' },
      MODERN_QUERY,
    ],
    [
      'a 2026-07-28 envelope with other _meta members',
      MODERN_HEADERS,
      request({ name: 'query', arguments: {}, _meta: { ...ENVELOPE, progressToken: 5 } }),
    ],
    [
      'a 2026-07-28 envelope without client capabilities',
      MODERN_HEADERS,
      request({
        name: 'query',
        arguments: {},
        _meta: { [PROTOCOL_VERSION_META_KEY]: '2026-07-28' },
      }),
    ],
    [
      'an envelope naming a revision the SDK does not serve',
      { ...MODERN_HEADERS, 'mcp-protocol-version': '2027-01-01' },
      request({
        name: 'query',
        arguments: {},
        _meta: { ...ENVELOPE, [PROTOCOL_VERSION_META_KEY]: '2027-01-01' },
      }),
    ],
  ])('leaves %s to the SDK', (_case, headers, body) => {
    expect(sut(headers, body)).toBeUndefined();
  });
});

describe(answerDirectToolCall.name, () => {
  const sut = answerDirectToolCall;
  let server: Server;
  let url: string;
  let run: RunToolCall;
  const runs: [name: string, args: unknown][] = [];

  beforeAll(async () => {
    const app = express();
    app.use(express.json());
    app.post('/mcp', (req, res, next) => {
      const recorded: RunToolCall = (name, args, served) => {
        runs.push([name, args]);
        return run(name, args, served);
      };
      sut(req, res, req.body, recorded, SERVER_INFO)
        .then((answered) => {
          // What the SDK would have answered instead, in this spec.
          if (!answered) res.status(418).json({ answeredBy: 'sdk' });
        })
        .catch(next);
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((listening) => server.once('listening', listening));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  });
  beforeEach(() => {
    runs.length = 0;
  });

  const post = (body: unknown) =>
    fetch(url, { method: 'POST', headers: SENT, body: JSON.stringify(body) });
  const result: CallToolResult = {
    content: [{ type: 'text', text: '1 row' }],
    structuredContent: { rows: [[1]] },
  };

  it("answers a plain tools/call with the pipeline's result, as application/json", async () => {
    run = () => Promise.resolve(result);

    const response = await post(QUERY);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    await expect(response.json()).resolves.toEqual({ result, jsonrpc: '2.0', id: 1 });
    expect(runs).toEqual([['query', { sql: 'SELECT 1' }]]);
  });

  it('runs a call without arguments with empty ones', async () => {
    run = () => Promise.resolve(result);

    const response = await post(request({ name: 'list_tables' }, 'c-1'));

    await expect(response.json()).resolves.toMatchObject({ id: 'c-1' });
    expect(runs).toEqual([['list_tables', {}]]);
  });

  it('leaves a request it does not answer to the SDK, without running anything', async () => {
    run = () => Promise.resolve(result);

    const response = await post([QUERY]);

    expect(response.status).toBe(418);
    expect(runs).toEqual([]);
  });

  it('leaves a call of a tool the caller may not see to the SDK (its JSON-RPC error)', async () => {
    run = () => undefined;

    const response = await post(QUERY);

    expect(response.status).toBe(418);
    expect(runs).toEqual([['query', { sql: 'SELECT 1' }]]);
  });

  it('answers a run that fails as McpServer does: an isError result with its message', async () => {
    run = () => Promise.reject(new Error('the pool is closed'));

    const response = await post(QUERY);

    expect(response.status).toBe(200);
    await expect(response.json()).resolves.toEqual({
      result: { content: [{ type: 'text', text: 'the pool is closed' }], isError: true },
      jsonrpc: '2.0',
      id: 1,
    });
  });

  it('answers a 2026-07-28 call with resultType and the server identity in _meta', async () => {
    run = () => Promise.resolve(result);

    const response = await fetch(url, {
      method: 'POST',
      headers: MODERN_HEADERS as Record<string, string>,
      body: JSON.stringify(MODERN_QUERY),
    });

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    await expect(response.text()).resolves.toBe(
      toolCallAnswer(MODERN, MODERN_QUERY.id as number, result, SERVER_INFO),
    );
  });

  it('answers 503 with the JSON-RPC id when the call could not be audited', async () => {
    run = () => Promise.reject(new AuditUnavailableError('SQLITE_BUSY'));

    const response = await post(request({ name: 'query', arguments: {} }, 'w-9'));

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    await expect(response.json()).resolves.toEqual(auditUnavailableBody('w-9'));
  });

  it('answers a 2026-07-28 call that could not be audited 503 too', async () => {
    run = () => Promise.reject(new AuditUnavailableError('SQLITE_BUSY'));

    const response = await fetch(url, {
      method: 'POST',
      headers: MODERN_HEADERS as Record<string, string>,
      body: JSON.stringify(MODERN_QUERY),
    });

    expect(response.status).toBe(503);
    await expect(response.json()).resolves.toEqual(auditUnavailableBody(MODERN_QUERY.id as number));
  });
});

describe(toolCallAnswer.name, () => {
  const sut = toolCallAnswer;
  const rows: CallToolResult = {
    content: [{ type: 'text', text: '1 row' }],
    structuredContent: { rows: [[1]] },
  };
  // The pipeline's error results name isError first; the SDK writes its wire schema's order.
  const failed: CallToolResult = { isError: true, content: [{ type: 'text', text: 'no' }] };

  it.each<[string, DirectEra, CallToolResult, string]>([
    [
      'a 2025-era result',
      LEGACY,
      rows,
      '{"result":{"content":[{"type":"text","text":"1 row"}],"structuredContent":{"rows":[[1]]}},"jsonrpc":"2.0","id":7}',
    ],
    [
      'a 2025-era error, content first',
      LEGACY,
      failed,
      '{"result":{"content":[{"type":"text","text":"no"}],"isError":true},"jsonrpc":"2.0","id":7}',
    ],
    [
      'a 2026-07-28 result, stamped',
      MODERN,
      rows,
      `{"result":{"content":[{"type":"text","text":"1 row"}],"structuredContent":{"rows":[[1]]},"resultType":"complete","_meta":{"${SERVER_INFO_META_KEY}":{"name":"scopedb-mcp","version":"0.1.0"}}},"jsonrpc":"2.0","id":7}`,
    ],
    [
      'a 2026-07-28 error, stamped',
      MODERN,
      failed,
      `{"result":{"content":[{"type":"text","text":"no"}],"isError":true,"resultType":"complete","_meta":{"${SERVER_INFO_META_KEY}":{"name":"scopedb-mcp","version":"0.1.0"}}},"jsonrpc":"2.0","id":7}`,
    ],
  ])('writes %s as the SDK does', (_case, served, result, expected) => {
    expect(sut(served, 7, result, SERVER_INFO)).toBe(expected);
  });
});
