import { exceedsDepth, MAX_JSON_DEPTH, refusedArguments } from './json-limits.js';

/** `levels` arrays around a number, parsed as JSON (as a request body would be). */
const arrays = (levels: number): unknown =>
  JSON.parse(`${'['.repeat(levels)}1${']'.repeat(levels)}`);
const objects = (levels: number): unknown =>
  JSON.parse(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);

describe(exceedsDepth.name, () => {
  const sut = exceedsDepth;

  it('counts each array or object as one level; scalars as none', () => {
    expect(sut(1, 0)).toBe(false);
    expect(sut('text', 0)).toBe(false);
    expect(sut(null, 0)).toBe(false);
    expect(sut([], 0)).toBe(true);
    expect(sut([], 1)).toBe(false);
    expect(sut({ a: [{}] }, 2)).toBe(true);
    expect(sut({ a: [{}] }, 3)).toBe(false);
  });

  it.each([
    ['arrays', arrays],
    ['objects', objects],
  ])('accepts %s nested MAX_JSON_DEPTH deep and refuses one level more', (_kind, nest) => {
    expect(sut(nest(MAX_JSON_DEPTH))).toBe(false);
    expect(sut(nest(MAX_JSON_DEPTH + 1))).toBe(true);
  });

  it('follows the deepest branch among wide siblings', () => {
    const wide = { siblings: Array.from({ length: 10_000 }, () => ({ x: 1 })), deep: arrays(80) };

    expect(sut(wide)).toBe(true);
  });

  it('walks 100 000 levels without exhausting the call stack', () => {
    expect(sut(arrays(100_000))).toBe(true);
    expect(sut(objects(100_000), 200_000)).toBe(false);
  });
});

describe(refusedArguments.name, () => {
  const sut = refusedArguments;

  it('accepts ordinary arguments, and nothing at all', () => {
    expect(sut({ table: 't', rows: [{ name: 'ada', role: null }] })).toBeUndefined();
    expect(sut(undefined)).toBeUndefined();
    expect(sut({ sql: 'SELECT 1', params: ['__proto__', 'constructor'] })).toBeUndefined();
  });

  it.each([
    ['{"__proto__":{"x":1}}', '__proto__'],
    ['{"rows":[{"name":"a"},{"__proto__":{"name":"b"}}]}', 'rows.1.__proto__'],
    ['{"set":{"constructor":1}}', 'set.constructor'],
    ['{"where":[{"column":"id","prototype":{}}]}', 'where.0.prototype'],
    ['{"params":{"a":{"b":{"__proto__":null}}}}', 'params.a.b.__proto__'],
  ])('refuses %s at %s, as parsed from JSON (own keys)', (json, path) => {
    expect(sut(JSON.parse(json))).toBe(
      `${path}: the key "${path.split('.').pop()}" is not accepted (nor are __proto__, constructor, prototype, in any object)`,
    );
  });

  it('refuses nesting deeper than the limit before looking at keys', () => {
    expect(sut({ params: arrays(100_000) })).toBe(`nested deeper than ${MAX_JSON_DEPTH} levels`);
  });
});
