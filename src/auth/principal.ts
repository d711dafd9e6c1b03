import type { Request } from 'express';

/** Who is calling, as established from a verified access token. */
export interface Principal {
  /** `sub`: the user's id (Casdoor: a UUID). */
  subject: string;
  /** `azp` or `client_id`: the OAuth client acting for the user. */
  clientId: string | undefined;
  /** `jti`, for correlating with the authorization server's records. */
  tokenId: string | undefined;
  /** The user name: `preferred_username` (JWT-Standard), else `name`. */
  name: string | undefined;
  email: string | undefined;
  scopes: ReadonlySet<string>;
  /** `exp`, seconds since the epoch. */
  expiresAt: number;
}

export interface AuthenticatedRequest extends Request {
  user?: Principal;
}

export function hasAllScopes(
  principal: Pick<Principal, 'scopes'>,
  required: readonly string[],
): boolean {
  return required.every((scope) => principal.scopes.has(scope));
}
