import { type CanActivate, SetMetadata } from '@nestjs/common';

export const HTTP_ONLY_GUARD_KEY = 'scopedb:http-only-guard';

/**
 * Marks a guard class that decides HTTP requests only: for any other context type its
 * `canActivate` returns true at once. The tool pipeline leaves such a guard out (it would only
 * say yes); every unmarked guard, an extension's global guard too, runs for every tool call.
 * Only the marked class itself counts, not a subclass (which may decide tool calls after all).
 */
export const HttpOnlyGuard = (): ClassDecorator => SetMetadata(HTTP_ONLY_GUARD_KEY, true);

/** Whether this guard's class is marked @HttpOnlyGuard(). */
export function isHttpOnlyGuard(guard: CanActivate): boolean {
  return Reflect.getOwnMetadata(HTTP_ONLY_GUARD_KEY, guard.constructor) === true;
}
