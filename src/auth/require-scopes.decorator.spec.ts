import { Reflector } from '@nestjs/core';
import { REQUIRED_SCOPES_KEY, RequireScopes } from './require-scopes.decorator.js';
import { defineScopes, type Scope, scopeDeclaration } from './scopes.js';

const SPEC_SCOPES = defineScopes('require-scopes-spec', {
  read: { name: 'spec:read', title: 'Read specs', description: 'Read what the spec reads' },
  write: { name: 'spec:write', title: 'Write specs', description: 'Change what the spec writes' },
});

describe(RequireScopes.name, () => {
  const sut = RequireScopes;

  it('records the scopes as metadata of the decorated method', () => {
    class Tools {
      @sut(SPEC_SCOPES.read, SPEC_SCOPES.write)
      migrate(this: void): void {}
    }
    expect(new Reflector().get<string[]>(REQUIRED_SCOPES_KEY, Tools.prototype.migrate)).toEqual([
      'spec:read',
      'spec:write',
    ]);
  });

  it('fails at decoration time for an empty list', () => {
    // The type forbids an empty list; a spread of an empty array still gets through it.
    const none: Scope[] = [];
    expect(() => (sut as (...scopes: Scope[]) => unknown)(...none)).toThrow(
      '@RequireScopes() needs at least one scope',
    );
  });

  it('fails before a class can be defined with a scope no module declared (a cast string)', () => {
    const define = () => {
      @sut('spec:raed' as Scope)
      class Broken {}
      return Broken;
    };
    expect(define).toThrow(
      '@RequireScopes(): "spec:raed" is not declared; declare it with defineScopes() in its module',
    );
  });
});

describe(defineScopes.name, () => {
  it('gives typed constants and records each scope with its module, title and description', () => {
    expect(SPEC_SCOPES).toEqual({ read: 'spec:read', write: 'spec:write' });
    expect(Object.isFrozen(SPEC_SCOPES)).toBe(true);
    expect(scopeDeclaration('spec:read')).toEqual({
      name: 'spec:read',
      module: 'require-scopes-spec',
      title: 'Read specs',
      description: 'Read what the spec reads',
    });
    expect(scopeDeclaration('spec:nothing')).toBeUndefined();
  });

  it.each(['', 'db query', 'db:"query"', 'db\\query', 'db:qu\u00e9ry', 'db:\tquery'])(
    'fails for the malformed scope %j',
    (scope) => {
      expect(() =>
        defineScopes('malformed', { bad: { name: scope, title: 'T', description: 'D' } }),
      ).toThrow(`defineScopes(malformed): "${scope}" is not a valid OAuth scope`);
    },
  );

  it.each([
    'db:query',
    'openid',
    'https://mcp.example.com/db.read',
    "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
  ])('accepts the RFC 6749 scope-token %j', (scope) => {
    const declared = defineScopes('accepts-spec', {
      one: { name: scope, title: 'Accepted', description: 'A well-formed scope-token' },
    });
    expect(declared.one).toBe(scope);
    // Declared again in the same words (a module loaded twice): the same constant.
    expect(
      defineScopes('accepts-spec', {
        again: { name: scope, title: 'Accepted', description: 'A well-formed scope-token' },
      }).again,
    ).toBe(scope);
  });

  it('refuses a scope another module declared with other words', () => {
    expect(() =>
      defineScopes('other', {
        read: { name: 'spec:read', title: 'Read specs', description: 'Something else' },
      }),
    ).toThrow(
      'defineScopes(other): spec:read is already declared by the require-scopes-spec module',
    );
    expect(scopeDeclaration('spec:read')?.description).toBe('Read what the spec reads');
  });

  it('refuses a scope without a title or description, and a malformed module name', () => {
    expect(() =>
      defineScopes('untitled', { x: { name: 'x:y', title: ' ', description: 'D' } }),
    ).toThrow('defineScopes(untitled): x:y needs a title and a description');
    expect(() =>
      defineScopes('Not A Module', { x: { name: 'x:z', title: 'T', description: 'D' } }),
    ).toThrow('defineScopes(): "Not A Module" is not a module name (a-z, 0-9, -)');
  });
});
