import { SetMetadata } from '@nestjs/common';
import { SCOPE_TOKEN } from '../config/settings.js';

export const REQUIRED_SCOPES_KEY = 'scopedb:required-scopes';

/**
 * All of these scopes are required (merged with the class's). A malformed or empty list is a
 * programming error and fails at start-up, never at request time.
 */
export function RequireScopes(...scopes: [string, ...string[]]) {
  if (scopes.length === 0) throw new Error('@RequireScopes() needs at least one scope');
  for (const scope of scopes)
    if (!SCOPE_TOKEN.test(scope))
      throw new Error(`@RequireScopes(): "${scope}" is not a valid OAuth scope`);
  return SetMetadata(REQUIRED_SCOPES_KEY, scopes);
}
