import { SetMetadata } from '@nestjs/common';
import { type Scope, scopeDeclaration } from './scopes.js';

export const REQUIRED_SCOPES_KEY = 'scopedb:required-scopes';

/**
 * All of these scopes are required (merged with the class's). Only scopes declared with
 * defineScopes are accepted (a typo does not compile); an empty list, or a string cast to a Scope
 * that no module declared, is a programming error and fails at start-up, never at request time.
 */
export function RequireScopes(...scopes: [Scope, ...Scope[]]) {
  if (scopes.length === 0) throw new Error('@RequireScopes() needs at least one scope');
  for (const scope of scopes)
    if (!scopeDeclaration(scope))
      throw new Error(
        `@RequireScopes(): "${scope}" is not declared; declare it with defineScopes() in its module`,
      );
  return SetMetadata(REQUIRED_SCOPES_KEY, scopes);
}
