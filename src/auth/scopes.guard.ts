import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InsufficientScopeException } from './oauth.exceptions.js';
import { type AuthenticatedRequest, hasAllScopes, type Principal } from './principal.js';
import { REQUIRED_SCOPES_KEY } from './require-scopes.decorator.js';
import { TOOL_CONTEXT_TYPE, type ToolContext } from '../mcp/tool-context.js';

/**
 * All-of scope check from @RequireScopes on the class and the method, merged. It runs for HTTP
 * routes and again inside every tool pipeline, where it is the backstop to the HTTP-level
 * challenge: a call without a principal is refused there too.
 */
@Injectable()
export class ScopesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndMerge<string[]>(REQUIRED_SCOPES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (required.length === 0) return true;
    const principal = this.principalOf(context);
    const granted = principal ? [...principal.scopes] : [];
    if (principal && hasAllScopes(principal, required)) return true;
    const tool =
      context.getType<string>() === TOOL_CONTEXT_TYPE
        ? context.getArgByIndex<ToolContext | undefined>(1)?.tool
        : undefined;
    throw new InsufficientScopeException(required, granted, tool);
  }

  private principalOf(context: ExecutionContext): Principal | undefined {
    if (context.getType<string>() === TOOL_CONTEXT_TYPE)
      return context.getArgByIndex<ToolContext | undefined>(1)?.principal;
    return context.switchToHttp().getRequest<AuthenticatedRequest>().user;
  }
}
