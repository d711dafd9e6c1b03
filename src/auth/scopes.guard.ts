import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InsufficientScopeException } from './oauth.exceptions.js';
import { type AuthenticatedRequest, hasAllScopes, type Principal } from './principal.js';
import { REQUIRED_SCOPES_KEY } from './require-scopes.decorator.js';
import { TOOL_CONTEXT_TYPE, type ToolContext } from '../mcp/tool-context.js';

type Handler = ReturnType<ExecutionContext['getHandler']>;
type Class = ReturnType<ExecutionContext['getClass']>;

/**
 * All-of scope check from @RequireScopes on the class and the method, merged. It runs for HTTP
 * routes and again inside every tool pipeline, where it is the backstop to the HTTP-level
 * challenge: a call without a principal is refused there too.
 */
@Injectable()
export class ScopesGuard implements CanActivate {
  /** The merged scopes per handler and class, read once (decorators do not change at run time). */
  private readonly required = new WeakMap<Handler, WeakMap<Class, readonly string[]>>();

  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.requiredBy(context.getHandler(), context.getClass());
    if (required.length === 0) return true;
    const principal = this.principalOf(context);
    if (principal && hasAllScopes(principal, required)) return true;
    const granted = principal ? [...principal.scopes] : [];
    const tool =
      context.getType<string>() === TOOL_CONTEXT_TYPE
        ? context.getArgByIndex<ToolContext | undefined>(1)?.tool
        : undefined;
    throw new InsufficientScopeException(required, granted, tool);
  }

  private requiredBy(handler: Handler, type: Class): readonly string[] {
    let byClass = this.required.get(handler);
    if (!byClass) this.required.set(handler, (byClass = new WeakMap()));
    let required = byClass.get(type);
    if (!required)
      byClass.set(
        type,
        (required = this.reflector.getAllAndMerge<string[]>(REQUIRED_SCOPES_KEY, [handler, type])),
      );
    return required;
  }

  private principalOf(context: ExecutionContext): Principal | undefined {
    if (context.getType<string>() === TOOL_CONTEXT_TYPE)
      return context.getArgByIndex<ToolContext | undefined>(1)?.principal;
    return context.switchToHttp().getRequest<AuthenticatedRequest>().user;
  }
}
