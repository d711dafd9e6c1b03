import { ToolError } from '../mcp/tool-context.js';
import { decodeCursor, encodeCursor } from './audit.tools.js';

describe(decodeCursor.name, () => {
  const sut = decodeCursor;

  it.each([1, 42, Number.MAX_SAFE_INTEGER])('reads back the id %p of encodeCursor', (id) => {
    const cursor = encodeCursor(id);

    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(sut(cursor)).toBe(id);
  });

  it.each([
    ['an empty string', ''],
    ['text that is not base64url JSON', 'page-2'],
    ['an id of 0', encodeCursor(0)],
    ['a fractional id', encodeCursor(1.5)],
    ['an id as a string', Buffer.from('{"id":"7"}').toString('base64url')],
    ['an array', Buffer.from('[7]').toString('base64url')],
    ['extra fields', Buffer.from('{"id":7,"x":1}').toString('base64url')],
    ['padding', `${encodeCursor(7)}=`],
  ])('refuses %s as INVALID_CURSOR', (_case, cursor) => {
    let error: unknown;
    try {
      sut(cursor);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ToolError);
    expect(error).toMatchObject({ code: 'INVALID_CURSOR' });
  });
});
