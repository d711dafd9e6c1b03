import { HttpException, HttpStatus } from '@nestjs/common';
import type { ToolAttempt } from '../audit/audit.service.js';

/** Why a request was refused, in the vocabulary of the audit log. */
export type RefusalReason = 'no_token' | 'invalid_token' | 'insufficient_scope';

/** A refusal that the OAuthChallengeFilter turns into an RFC 6750 challenge. */
export abstract class OAuthChallengeException extends HttpException {
  abstract readonly reason: RefusalReason;
  /** RFC 6750 §3.1 error code; absent when the request carried no credentials. */
  abstract readonly oauthError: 'invalid_token' | 'insufficient_scope' | undefined;
}

/** No bearer token in the Authorization header (RFC 6750 §3.1: no error code). */
export class AuthenticationRequiredException extends OAuthChallengeException {
  readonly reason = 'no_token';
  readonly oauthError = undefined;
  constructor(message: string) {
    super(message, HttpStatus.UNAUTHORIZED);
  }
}

/** A token was sent but is not acceptable; the description says why, never echoing the token. */
export class InvalidTokenException extends OAuthChallengeException {
  readonly reason = 'invalid_token';
  readonly oauthError = 'invalid_token';
  constructor(description: string) {
    super(description, HttpStatus.UNAUTHORIZED);
  }
}

/** A valid token without every scope an operation needs. */
export class InsufficientScopeException extends OAuthChallengeException {
  readonly reason = 'insufficient_scope';
  readonly oauthError = 'insufficient_scope';
  constructor(
    readonly required: readonly string[],
    readonly granted: readonly string[],
    /** The tool refused, when the operation is a tool call. */
    readonly tool?: string,
    /** What the refused call would have run, so that its record says so. */
    readonly attempt?: ToolAttempt,
  ) {
    const missing = required.filter((scope) => !granted.includes(scope));
    super(
      `${tool ? `The tool ${tool}` : 'This operation'} requires the scope${missing.length > 1 ? 's' : ''} ${missing.join(' ')}`,
      HttpStatus.FORBIDDEN,
    );
  }

  get missing(): string[] {
    return this.required.filter((scope) => !this.granted.includes(scope));
  }
}

/**
 * A token that verified locally but that Casdoor could not confirm, its introspection being
 * unreachable (AUTH_INTROSPECTION_ON_FAILURE=refuse, or past the grace period). Answered 503 with
 * Retry-After, not 401: the token may be good, and a 401 would send clients to re-authenticate
 * against the very server that is down, in a loop. Audited as a refused token.
 */
export class IntrospectionUnavailableException extends OAuthChallengeException {
  readonly reason = 'invalid_token';
  readonly oauthError = undefined;
  constructor(
    description: string,
    /** Seconds the client is asked to wait before retrying. */
    readonly retryAfterS: number,
  ) {
    super(description, HttpStatus.SERVICE_UNAVAILABLE);
  }
}
