import type { IncomingHttpHeaders } from 'node:http';
import {
  CLIENT_CAPABILITIES_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import {
  answerText,
  directToolListOf,
  type RenderedAnswer,
  renderedAnswerOf,
  ToolListCache,
  toolListKey,
} from './tool-list-cache.js';

const LEGACY_HEADERS: IncomingHttpHeaders = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};
const MODERN_HEADERS: IncomingHttpHeaders = {
  ...LEGACY_HEADERS,
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/list',
};
const ENVELOPE = { [PROTOCOL_VERSION_META_KEY]: '2026-07-28', [CLIENT_CAPABILITIES_META_KEY]: {} };

function list(params?: Record<string, unknown>, id: unknown = 4): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'tools/list', ...(params && { params }) };
}

describe(directToolListOf.name, () => {
  const sut = directToolListOf;

  it.each<[string, IncomingHttpHeaders, unknown, ReturnType<typeof directToolListOf>]>([
    [
      'a 2025-era tools/list',
      LEGACY_HEADERS,
      list(),
      { id: 4, served: { era: 'legacy', protocolVersion: '2025-11-25' } },
    ],
    [
      'empty params',
      LEGACY_HEADERS,
      list({}, 'x'),
      { id: 'x', served: { era: 'legacy', protocolVersion: '2025-11-25' } },
    ],
    [
      'no protocol version header',
      { ...LEGACY_HEADERS, 'mcp-protocol-version': undefined },
      list(),
      { id: 4, served: { era: 'legacy', protocolVersion: undefined } },
    ],
    [
      'a 2026-07-28 tools/list',
      MODERN_HEADERS,
      list({ _meta: ENVELOPE }),
      { id: 4, served: { era: 'modern', revision: '2026-07-28' } },
    ],
  ])('answers %s', (_case, headers, body, expected) => {
    expect(sut(headers, body)).toStrictEqual(expected);
  });

  it.each<[string, IncomingHttpHeaders, unknown]>([
    ['a cursor', LEGACY_HEADERS, list({ cursor: 'c' })],
    ['a 2025-era _meta', LEGACY_HEADERS, list({ _meta: { progressToken: 1 } })],
    ['null params', LEGACY_HEADERS, { ...list(), params: null }],
    ['a 2026-07-28 cursor', MODERN_HEADERS, list({ _meta: ENVELOPE, cursor: 'c' })],
    ['a batch', LEGACY_HEADERS, [list()]],
    ['a notification', LEGACY_HEADERS, { ...list(), id: undefined }],
    ['another method', LEGACY_HEADERS, { ...list(), method: 'tools/call' }],
    ['no Accept', { ...LEGACY_HEADERS, accept: undefined }, list()],
    [
      'a 2026-07-28 request without Mcp-Method',
      { ...MODERN_HEADERS, 'mcp-method': undefined },
      list({ _meta: ENVELOPE }),
    ],
    [
      'a 2026-07-28 request whose Mcp-Method names another method',
      { ...MODERN_HEADERS, 'mcp-method': 'tools/call' },
      list({ _meta: ENVELOPE }),
    ],
    ['a 2026-07-28 header without an envelope', MODERN_HEADERS, list()],
  ])('leaves %s to the SDK', (_case, headers, body) => {
    expect(sut(headers, body)).toBeUndefined();
  });
});

describe(toolListKey.name, () => {
  const sut = toolListKey;
  const legacy = { era: 'legacy', protocolVersion: '2025-11-25' } as const;
  const modern = { era: 'modern', revision: '2026-07-28' } as const;
  const body = list({ _meta: ENVELOPE });

  it('tells eras, protocol versions, envelopes and visible tools apart', () => {
    const keys = [
      sut(legacy, list(), ['a', 'b']),
      sut(legacy, list(), ['a']),
      sut({ era: 'legacy', protocolVersion: undefined }, list(), ['a']),
      sut(modern, body, ['a']),
      sut(modern, list({ _meta: { ...ENVELOPE, extra: 1 } }), ['a']),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('is the same for the same era and visible tools', () => {
    expect(sut(modern, body, ['a', 'b'])).toBe(
      sut(modern, list({ _meta: ENVELOPE }, 9), ['a', 'b']),
    );
  });
});

describe(renderedAnswerOf.name, () => {
  const sut = renderedAnswerOf;
  const JSON_TYPE: [string, string][] = [['content-type', 'application/json']];
  const SSE_TYPE: [string, string][] = [['content-type', 'text/event-stream']];
  const json = (id: unknown) =>
    `{"result":{"tools":[]},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;

  it.each<[string, [string, string][], string, string | number]>([
    ['a JSON answer', JSON_TYPE, json(4), 4],
    ['a JSON answer to a string id', JSON_TYPE, json('a"b'), 'a"b'],
    ['an SSE event', SSE_TYPE, `event: message\ndata: ${json(4)}\n\n`, 4],
  ])('keeps %s, for any id', (_case, headers, body, id) => {
    const rendered = sut(200, headers, body, id)!;

    expect(answerText(rendered, id)).toBe(body);
    expect(answerText(rendered, 'other')).toBe(body.replace(JSON.stringify(id), '"other"'));
    expect(answerText(rendered, 77)).toBe(body.replace(JSON.stringify(id), '77'));
  });

  it.each<[string, [string, string][], string]>([
    ['an answer to another id', JSON_TYPE, json(5)],
    ['an error', JSON_TYPE, '{"jsonrpc":"2.0","id":4,"error":{"code":-1,"message":"no"}}'],
    ['an SSE stream of two events', SSE_TYPE, `event: message\ndata: ${json(4)}\n\n`.repeat(2)],
    ['an SSE event read as JSON', JSON_TYPE, `event: message\ndata: ${json(4)}\n\n`],
    ['JSON read as SSE', SSE_TYPE, json(4)],
    ['an SSE event with an event id', SSE_TYPE, `id: 1\nevent: message\ndata: ${json(4)}\n\n`],
  ])('does not keep %s', (_case, headers, body) => {
    expect(sut(200, headers, body, 4)).toBeUndefined();
  });
});

describe(ToolListCache.name, () => {
  const rendered = (before: string): RenderedAnswer => ({
    status: 200,
    headers: {},
    before,
    after: '}',
  });

  it('keeps at most its size, dropping the oldest', () => {
    const sut = new ToolListCache(2);

    sut.set('a', rendered('a'));
    sut.set('b', rendered('b'));
    sut.set('c', rendered('c'));

    expect(sut.entries).toBe(2);
    expect(sut.get('a')).toBeUndefined();
    expect(sut.get('b')?.before).toBe('b');
    expect(sut.get('c')?.before).toBe('c');
  });
});
