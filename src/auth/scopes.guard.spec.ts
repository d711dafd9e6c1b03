import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import type { ToolContext } from '../mcp/tool-context.js';
import { InsufficientScopeException } from './oauth.exceptions.js';
import type { Principal } from './principal.js';
import { RequireScopes } from './require-scopes.decorator.js';
import { ScopesGuard } from './scopes.guard.js';
import { DATABASE_SCOPES } from '../tools/scopes.js';

const { query, modify, admin } = DATABASE_SCOPES;

@RequireScopes(query)
class Fixture {
  @RequireScopes(modify, admin)
  migrate(this: void): void {}

  @RequireScopes(modify)
  write(this: void): void {}

  read(this: void): void {}
}

class Unscoped {
  open(this: void): void {}
}

function principal(...scopes: string[]): Principal {
  return {
    subject: 'b1c2d3e4-0000-4000-8000-000000000001',
    clientId: 'client-1',
    tokenId: 'admin/0001',
    name: 'alice',
    email: undefined,
    scopes: new Set(scopes),
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  };
}

function httpContext(
  handler: (this: void) => void,
  user: Principal | undefined,
  type: object = Fixture,
) {
  return new ExecutionContextHost(
    [{ user }, {}, () => undefined],
    type as new () => object,
    handler,
  );
}

function toolContext(handler: (this: void) => void, context: Partial<ToolContext>) {
  const host = new ExecutionContextHost([{}, context], Fixture, handler);
  host.setType('mcp');
  return host;
}

/** The exception canActivate throws (fails the test if it lets the call through). */
function refusalOf(run: () => boolean): InsufficientScopeException {
  try {
    run();
  } catch (error) {
    if (error instanceof InsufficientScopeException) return error;
    throw error;
  }
  throw new Error('the guard let the call through');
}

describe(ScopesGuard.name, () => {
  const sut = new ScopesGuard(new Reflector());

  describe('over HTTP', () => {
    it('lets through a principal with every scope of the class and the method', () => {
      expect(
        sut.canActivate(httpContext(Fixture.prototype.write, principal('db:query', 'db:modify'))),
      ).toBe(true);
      expect(
        sut.canActivate(
          httpContext(
            Fixture.prototype.migrate,
            principal('db:admin', 'db:modify', 'db:query', 'openid'),
          ),
        ),
      ).toBe(true);
    });

    it('applies the class scopes to a method without its own', () => {
      expect(sut.canActivate(httpContext(Fixture.prototype.read, principal('db:query')))).toBe(
        true,
      );
      const error = refusalOf(() =>
        sut.canActivate(httpContext(Fixture.prototype.read, principal('db:modify'))),
      );
      expect(error.required).toEqual(['db:query']);
    });

    it('refuses when the class scope is missing, even with the method scope', () => {
      const error = refusalOf(() =>
        sut.canActivate(httpContext(Fixture.prototype.write, principal('db:modify'))),
      );
      expect(error.missing).toEqual(['db:query']);
      expect(error.getStatus()).toBe(403);
      expect(error.message).toBe('This operation requires the scope db:query');
    });

    it('refuses when one of the method scopes is missing, naming it', () => {
      const error = refusalOf(() =>
        sut.canActivate(httpContext(Fixture.prototype.migrate, principal('db:query', 'db:modify'))),
      );
      expect(error.required).toEqual(expect.arrayContaining(['db:query', 'db:modify', 'db:admin']));
      expect(error.required).toHaveLength(3);
      expect(error.granted).toEqual(['db:query', 'db:modify']);
      expect(error.missing).toEqual(['db:admin']);
      expect(error.message).toBe('This operation requires the scope db:admin');
      expect(error.tool).toBeUndefined();
    });

    it('names every missing scope', () => {
      const error = refusalOf(() =>
        sut.canActivate(httpContext(Fixture.prototype.migrate, principal())),
      );
      expect(error.missing).toEqual(expect.arrayContaining(['db:query', 'db:modify', 'db:admin']));
      expect(error.message).toMatch(/^This operation requires the scopes /);
    });

    it('refuses a request without a principal', () => {
      const error = refusalOf(() =>
        sut.canActivate(httpContext(Fixture.prototype.read, undefined)),
      );
      expect(error.granted).toEqual([]);
      expect(error.missing).toEqual(['db:query']);
    });

    it.each(['db:queryx', 'db:quer', 'DB:QUERY', 'db:query ', 'db', 'db:*'])(
      'does not count the look-alike scope %j',
      (lookAlike) => {
        expect(() =>
          sut.canActivate(httpContext(Fixture.prototype.read, principal(lookAlike))),
        ).toThrow(InsufficientScopeException);
      },
    );

    it('lets through a route that requires no scope, with or without a principal', () => {
      expect(sut.canActivate(httpContext(Unscoped.prototype.open, undefined, Unscoped))).toBe(true);
      expect(sut.canActivate(httpContext(Unscoped.prototype.open, principal(), Unscoped))).toBe(
        true,
      );
    });
  });

  describe('inside a tool pipeline (mcp context)', () => {
    it('reads the principal from the ToolContext at argument index 1', () => {
      const context = toolContext(Fixture.prototype.write, {
        tool: 'execute',
        principal: principal('db:query', 'db:modify'),
        requestId: 'r-1',
      });
      expect(sut.canActivate(context)).toBe(true);
    });

    it('refuses a missing scope and names the tool', () => {
      const error = refusalOf(() =>
        sut.canActivate(
          toolContext(Fixture.prototype.write, {
            tool: 'execute',
            principal: principal('db:query'),
            requestId: 'r-2',
          }),
        ),
      );
      expect(error.tool).toBe('execute');
      expect(error.missing).toEqual(['db:modify']);
      expect(error.message).toBe('The tool execute requires the scope db:modify');
    });

    it('refuses a call whose ToolContext carries no principal', () => {
      const error = refusalOf(() =>
        sut.canActivate(
          toolContext(Fixture.prototype.read, { tool: 'query', requestId: undefined }),
        ),
      );
      expect(error.tool).toBe('query');
      expect(error.granted).toEqual([]);
    });

    it('refuses a call without any ToolContext', () => {
      const host = new ExecutionContextHost([{}], Fixture, Fixture.prototype.read);
      host.setType('mcp');
      const error = refusalOf(() => sut.canActivate(host));
      expect(error.missing).toEqual(['db:query']);
    });

    it('ignores an HTTP request object at index 0 in an mcp context', () => {
      const host = new ExecutionContextHost(
        [{ user: principal('db:query') }, { tool: 'query', requestId: undefined }],
        Fixture,
        Fixture.prototype.read,
      );
      host.setType('mcp');
      expect(() => sut.canActivate(host)).toThrow(InsufficientScopeException);
    });
  });
});
