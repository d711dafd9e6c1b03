import { Reflector } from '@nestjs/core';
import { REQUIRED_SCOPES_KEY, RequireScopes } from './require-scopes.decorator.js';

describe(RequireScopes.name, () => {
  const sut = RequireScopes;

  it('records the scopes as metadata of the decorated method', () => {
    class Tools {
      @sut('db:modify', 'db:admin')
      migrate(this: void): void {}
    }
    expect(new Reflector().get<string[]>(REQUIRED_SCOPES_KEY, Tools.prototype.migrate)).toEqual([
      'db:modify',
      'db:admin',
    ]);
  });

  it('fails at decoration time for an empty list', () => {
    // The type forbids an empty list; a spread of an empty array still gets through it.
    const none: string[] = [];
    expect(() => (sut as (...scopes: string[]) => unknown)(...none)).toThrow(
      '@RequireScopes() needs at least one scope',
    );
  });

  it.each(['', 'db query', 'db:"query"', 'db\\query', 'db:qu\u00e9ry', 'db:\tquery'])(
    'fails at decoration time for the malformed scope %j',
    (scope) => {
      expect(() => sut('db:query', scope)).toThrow(
        `@RequireScopes(): "${scope}" is not a valid OAuth scope`,
      );
    },
  );

  it('fails before a class using a malformed scope can be defined', () => {
    const define = () => {
      @sut('db query')
      class Broken {}
      return Broken;
    };
    expect(define).toThrow(/is not a valid OAuth scope/);
  });

  it.each([
    'db:query',
    'openid',
    'https://mcp.example.com/db.read',
    "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
  ])('accepts the RFC 6749 scope-token %j', (scope) => {
    expect(() => sut(scope)).not.toThrow();
  });
});
