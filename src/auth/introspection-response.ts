// OAuth 2.0 Token Introspection, RFC 7662 §2.2 (response) and §2.3 (errors), as Casdoor answers
// it (controllers/token.go, IntrospectToken; object.IntrospectionResponse).
import { z } from 'zod';
import type { Principal } from './principal.js';

/**
 * An introspection answer: `active` is required and boolean (RFC 7662 §2.2); the other members
 * are checked only for their type, and only when present (Casdoor omits empty ones).
 */
export const introspectionAnswer = z.looseObject({
  active: z.boolean(),
  sub: z.string().optional(),
  iss: z.string().optional(),
  exp: z.number().optional(),
  jti: z.string().optional(),
  token_type: z.string().optional(),
});
export type IntrospectionAnswer = z.infer<typeof introspectionAnswer>;

/**
 * A refusal of the client credentials: RFC 7662 §2.3 / RFC 6749 §5.2 `invalid_client` (Casdoor:
 * 401 with `{"error":"invalid_client"}`), or older Casdoor's `{"status":"error","msg":...}`
 * answered 200 (its controller wrote ResponseError before the token error).
 */
const rfcClientRefusal = z.looseObject({ error: z.literal('invalid_client') });
const casdoorErrorEnvelope = z.looseObject({ status: z.literal('error'), msg: z.string() });

/** Whether a body says the introspecting client's credentials were refused. */
export function isClientRefusal(body: unknown): boolean {
  return rfcClientRefusal.safeParse(body).success || casdoorErrorEnvelope.safeParse(body).success;
}

/**
 * Why an `active: true` answer cannot be about the token that was verified locally, if it
 * cannot: a `sub`, `iss`, `exp` or `jti` that contradicts the token's own. Absent members
 * contradict nothing (RFC 7662 makes all but `active` optional).
 */
export function contradiction(
  answer: IntrospectionAnswer,
  principal: Principal,
  issuer: string,
): string | undefined {
  if (answer.sub !== undefined && answer.sub !== principal.subject) return 'sub';
  if (answer.iss !== undefined && answer.iss !== issuer) return 'iss';
  if (answer.exp !== undefined && answer.exp !== principal.expiresAt) return 'exp';
  if (
    answer.jti !== undefined &&
    principal.tokenId !== undefined &&
    answer.jti !== principal.tokenId
  )
    return 'jti';
  return undefined;
}
