import type { Principal } from '../auth/principal.js';
import { type CallScope, toolCallsOf, toolContextOf } from './call-scope.js';
import type { RegisteredTool } from './tool-registry.js';

const call = (id: unknown, name: string, args?: unknown) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, ...(args !== undefined && { arguments: args }) },
});

describe(toolCallsOf.name, () => {
  const sut = toolCallsOf;

  it('reads a single tools/call: its name, id and arguments as sent', () => {
    const args = { sql: 'SELECT 1' };

    const calls = sut(call(1, 'query', args));

    expect(calls).toEqual({
      calls: [{ name: 'query', id: 1, arguments: args }],
      only: true,
      arguments: new Map([[1, args]]),
    });
    expect(calls.arguments.get(1)).toBe(args);
  });

  it('reads every call of a batch, and says whether the batch is calls only', () => {
    const calls = sut([call(1, 'query', {}), call('two', 'list_tables')]);
    const mixed = sut([call(1, 'query', {}), { jsonrpc: '2.0', id: 2, method: 'tools/list' }]);

    expect(calls.calls.map((c) => [c.id, c.name])).toEqual([
      [1, 'query'],
      ['two', 'list_tables'],
    ]);
    expect(calls.only).toBe(true);
    expect([...calls.arguments]).toEqual([
      [1, {}],
      ['two', undefined],
    ]);
    expect(mixed.calls.map((c) => c.name)).toEqual(['query']);
    expect(mixed.only).toBe(false);
  });

  it('leaves out the arguments of an id sent twice, keeping the calls', () => {
    const calls = sut([
      call(1, 'query', { sql: 'SELECT 1' }),
      call(1, 'query', { sql: 'SELECT 2' }),
      call(2, 'query', { sql: 'SELECT 3' }),
      call(1, 'query', { sql: 'SELECT 4' }),
    ]);

    expect(calls.calls).toHaveLength(4);
    expect([...calls.arguments]).toEqual([[2, { sql: 'SELECT 3' }]]);
  });

  it('keeps string and number ids apart, and no arguments for ids of other types', () => {
    const calls = sut([
      call(1, 'a', { n: 1 }),
      call('1', 'b', { n: 2 }),
      call(null, 'c', { n: 3 }),
      call(undefined, 'd', { n: 4 }),
      call({ id: 5 }, 'e', { n: 5 }),
    ]);

    expect(calls.calls.map((c) => c.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect([...calls.arguments]).toEqual([
      [1, { n: 1 }],
      ['1', { n: 2 }],
    ]);
  });

  it('keeps arguments as parsed from JSON, a `__proto__` key included', () => {
    const body: unknown = JSON.parse(
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query","arguments":{"__proto__":{"x":1}}}}',
    );

    const args = sut(body).arguments.get(3);

    expect(Object.keys(args as object)).toEqual(['__proto__']);
  });

  it.each([
    ['an initialize request', { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }],
    ['a notification', { jsonrpc: '2.0', method: 'notifications/initialized' }],
    ['a tools/call without a name', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} }],
    ['a tools/call whose name is not a string', call(1, 42 as unknown as string)],
    ['a tools/call without params', { jsonrpc: '2.0', id: 1, method: 'tools/call' }],
    ['null', null],
    ['a string', 'tools/call'],
    ['an empty batch', []],
    ['a batch of nulls', [null, 1]],
  ])('finds no call in %s', (_case, body) => {
    expect(sut(body)).toEqual({ calls: [], only: false, arguments: new Map() });
  });
});

describe(toolContextOf.name, () => {
  const sut = toolContextOf;

  it("gives the tool its name and scopes, and the call's principal and origin", () => {
    const principal: Principal = {
      subject: 'user-1',
      clientId: undefined,
      tokenId: undefined,
      name: undefined,
      email: undefined,
      scopes: new Set(['spec:read']),
      expiresAt: 2_000_000_000,
    };
    const scope: CallScope = {
      principal,
      toolCalls: toolCallsOf(call(1, 'query', {})),
      auditFailure: undefined,
      requestId: 'request-1',
      remoteAddress: '127.0.0.1',
      userAgent: 'spec/1.0',
      protocolVersion: '2025-11-25',
    };
    // What a context takes of the tool.
    const tool: Partial<RegisteredTool> = { name: 'query', requiredScopes: ['spec:read'] };

    expect(sut(tool as RegisteredTool, scope)).toStrictEqual({
      tool: 'query',
      principal,
      requiredScopes: ['spec:read'],
      requestId: 'request-1',
      remoteAddress: '127.0.0.1',
      userAgent: 'spec/1.0',
      protocolVersion: '2025-11-25',
    });
  });
});
