import type { Request } from 'express';
import { requestInfoOf } from './request-info.js';

function request(headers: Record<string, string>, body?: unknown): Request {
  return { headers, body, socket: { remoteAddress: '203.0.113.7' } } as unknown as Request;
}

const initialize = (protocolVersion: unknown) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion },
});

describe(requestInfoOf.name, () => {
  const sut = requestInfoOf;

  it('reads the peer address, the user agent and the MCP-Protocol-Version header', () => {
    expect(
      sut(request({ 'user-agent': 'claude/1.0', 'mcp-protocol-version': '2026-07-28' }, {})),
    ).toEqual({
      requestId: undefined,
      remoteAddress: '203.0.113.7',
      userAgent: 'claude/1.0',
      protocolVersion: '2026-07-28',
    });
  });

  it("takes an initialize request's protocolVersion when there is no header", () => {
    expect(sut(request({}, initialize('2025-11-25'))).protocolVersion).toBe('2025-11-25');
    expect(sut(request({}, [initialize('2025-06-18')])).protocolVersion).toBe('2025-06-18');
  });

  it('prefers the header to the body', () => {
    const info = sut(request({ 'mcp-protocol-version': '2025-11-25' }, initialize('2025-06-18')));
    expect(info.protocolVersion).toBe('2025-11-25');
  });

  it.each([
    ['no body', undefined],
    ['a null body', null],
    ['another method', { method: 'tools/list', params: { protocolVersion: '2025-11-25' } }],
    ['a version that is not a string', initialize(20251125)],
  ])('has no protocol version with %s and no header', (_case, body) => {
    expect(sut(request({}, body)).protocolVersion).toBeUndefined();
  });
});
