import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { markExpectedRefusal } from './expected-refusal.js';
import { requestLineLevel, requestLogger } from './request-log.js';

function exchange(status: number) {
  const request = new IncomingMessage(new Socket());
  Object.assign(request, { method: 'POST', url: '/mcp', headers: { 'x-request-id': 'rid-1' } });
  const response = new ServerResponse(request);
  response.statusCode = status;
  return { request, response };
}

describe('requestLineLevel', () => {
  it.each([
    [200, 'info'],
    [401, 'warn'],
    [403, 'warn'],
    [429, 'warn'],
    [500, 'error'],
    [503, 'warn'],
  ])('a %i is %s', (status, level) => {
    expect(requestLineLevel(exchange(status).response)).toBe(level);
  });

  it('an expected refusal (the first 401 of an OAuth flow, GET /mcp) is info', () => {
    const { response } = exchange(401);
    markExpectedRefusal(response);
    expect(requestLineLevel(response)).toBe('info');
  });

  it('a request that broke off is an error', () => {
    expect(requestLineLevel(exchange(200).response, new Error('request aborted'))).toBe('error');
  });
});

describe('requestLogger', () => {
  const capture = (level: string) => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: pino({ level }, stream) };
  };

  it('names the request, echoes its id, and writes one line when the response closes', () => {
    const { lines, logger } = capture('info');
    const { request, response } = exchange(200);
    requestLogger(() => logger)(request, response);
    expect(response.getHeader('X-Request-Id')).toBe('rid-1');
    expect(lines).toEqual([]);
    Object.assign(request, { user: { subject: 'alice' } });
    Object.defineProperty(response, 'writableFinished', { value: true });
    response.emit('close');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 30,
        requestId: 'rid-1',
        principal: 'alice',
        msg: 'request completed',
        responseTime: expect.any(Number) as unknown,
      }),
    ]);
  });

  it('writes nothing at a level that drops the line', () => {
    const { lines, logger } = capture('warn');
    const { request, response } = exchange(200);
    requestLogger(() => logger)(request, response);
    Object.defineProperty(response, 'writableFinished', { value: true });
    response.emit('close');
    expect(lines).toEqual([]);
  });

  it('says so when the client went away before the answer', () => {
    const { lines, logger } = capture('info');
    const { request, response } = exchange(200);
    requestLogger(() => logger)(request, response);
    response.emit('close');
    expect(lines).toEqual([
      expect.objectContaining({ level: 50, msg: 'request aborted', requestId: 'rid-1' }),
    ]);
  });
});
