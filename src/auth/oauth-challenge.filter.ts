// OAuth 2.0 bearer challenges: RFC 6750 §3 (WWW-Authenticate, error codes), RFC 9728 §5.1
// (resource_metadata), MCP authorization spec (scope step-up on insufficient_scope).
import { type ArgumentsHost, Catch, type ExceptionFilter, Inject, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Response } from 'express';
import {
  AuditUnavailableError,
  jsonRpcIdOf,
  sendAuditUnavailable,
} from '../audit/audit-unavailable.js';
import { AuditService, type ToolAttempt } from '../audit/audit.service.js';
import { authConfig } from '../config/configuration.js';
import { SCOPE_TOKEN } from '../config/settings.js';
import { protectedResourceMetadataUrl } from '../well-known/protected-resource-metadata.js';
import {
  AuthenticationRequiredException,
  InsufficientScopeException,
  IntrospectionUnavailableException,
  OAuthChallengeException,
} from './oauth.exceptions.js';
import type { AuthenticatedRequest } from './principal.js';
import { unverifiedClaims } from './unverified-claims.js';
import { requestIdOf } from '../common/request-id.js';
import { requestInfoOf } from '../common/request-info.js';
import { markExpectedRefusal } from '../logging/expected-refusal.js';

export const REALM = 'MCP Server';

/** An RFC 7230 quoted-string of printable ASCII: escape `\` and `"`, replace anything else. */
export function quoted(value: string): string {
  const printable = [...value].map((c) => (c >= ' ' && c <= '~' ? c : '?')).join('');
  return `"${printable.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * The first request of every OAuth flow: no credentials at all (no Authorization header, no
 * `access_token` in the query), answered with the challenge that starts the flow.
 */
function isFirstStep(exception: OAuthChallengeException, request: AuthenticatedRequest): boolean {
  return (
    exception.reason === 'no_token' &&
    request.headers.authorization === undefined &&
    !Object.hasOwn(request.query ?? {}, 'access_token')
  );
}

/** JSON-RPC error code of a call whose token Casdoor could not confirm (server error range). */
export const INTROSPECTION_UNAVAILABLE_CODE = -32001;

/**
 * A server-side dependency failed, not the token: 503 with Retry-After and a JSON-RPC error, and
 * no challenge (which would send the client to re-authenticate).
 */
function sendIntrospectionUnavailable(
  response: Response,
  exception: IntrospectionUnavailableException,
  id: ReturnType<typeof jsonRpcIdOf>,
): void {
  response
    .status(exception.getStatus())
    .setHeader('Retry-After', String(exception.retryAfterS))
    .setHeader('Cache-Control', 'no-store')
    .json({
      jsonrpc: '2.0',
      id,
      error: { code: INTROSPECTION_UNAVAILABLE_CODE, message: exception.message },
    });
}

/**
 * The one place where a refusal becomes a 401/403 with its WWW-Authenticate challenge. A refusal
 * whose record cannot be written is answered 503 instead (fail closed).
 */
@Catch(OAuthChallengeException)
export class OAuthChallengeFilter implements ExceptionFilter<OAuthChallengeException> {
  private readonly logger = new Logger('Refusal');
  private readonly metadataUrl: string;

  constructor(
    @Inject(authConfig.KEY) private readonly cfg: ConfigType<typeof authConfig>,
    private readonly audit: AuditService,
  ) {
    this.metadataUrl = protectedResourceMetadataUrl(cfg.resourceUrl);
  }

  async catch(exception: OAuthChallengeException, host: ArgumentsHost): Promise<void> {
    const http = host.switchToHttp();
    const request = http.getRequest<AuthenticatedRequest>();
    const response = http.getResponse<Response>();
    const principal = request.user;
    const description = exception.message;

    const params: [string, string][] = [['realm', REALM]];
    let scopes: readonly string[] = this.cfg.baselineScopes;
    let required: readonly string[] | undefined;
    let tool: string | undefined;
    let attempt: ToolAttempt | undefined;
    if (exception instanceof InsufficientScopeException) {
      // The union, so that clients which replace rather than add scopes keep what they had.
      // Granted scopes come from the token: only well-formed scope tokens go back into a header.
      scopes = [
        ...new Set([
          ...exception.granted.filter((s) => SCOPE_TOKEN.test(s)),
          ...exception.required,
        ]),
      ];
      required = exception.required;
      tool = exception.tool;
      // What the refused call would have run, recorded as a success would record it.
      attempt = exception.attempt;
    }
    if (exception.oauthError) {
      params.push(['error', exception.oauthError], ['error_description', description]);
    }
    params.push(['resource_metadata', this.metadataUrl]);
    if (scopes.length > 0) params.push(['scope', scopes.join(' ')]);

    const claimed = principal ? undefined : unverifiedClaims(request.headers.authorization);
    const who = principal?.subject ?? (claimed?.subject ? `${claimed.subject} (unverified)` : '-');
    const client = principal?.clientId ?? claimed?.clientId ?? '-';
    const line =
      `${exception.getStatus()} ${exception.reason} ${request.method} ${request.path} ` +
      `sub=${who} client=${client}` +
      (required
        ? ` required="${required.join(' ')}" missing="${(exception as InsufficientScopeException).missing.join(' ')}"`
        : '') +
      ` reason="${description}"`;
    // The first step of a flow is ordinary traffic, the rest warnings; all are recorded below.
    const firstStep = isFirstStep(exception, request);
    // Named with its request's id: request lines and these are matched by it.
    const entry = { requestId: requestIdOf(request), msg: line };
    if (firstStep) this.logger.debug(entry);
    else this.logger.warn(entry);
    try {
      await this.audit.record({
        outcome:
          exception.reason === 'no_token'
            ? 'refused_no_token'
            : exception.reason === 'invalid_token'
              ? 'refused_invalid_token'
              : 'refused_scope',
        principal,
        claimed,
        tool,
        ...attempt,
        reason: description,
        requiredScopes: required,
        ...requestInfoOf(request),
      });
    } catch (error) {
      if (!(error instanceof AuditUnavailableError)) throw error;
      return sendAuditUnavailable(response, jsonRpcIdOf(request.body));
    }

    if (exception instanceof IntrospectionUnavailableException)
      return sendIntrospectionUnavailable(response, exception, jsonRpcIdOf(request.body));
    if (firstStep) markExpectedRefusal(response);
    response
      .status(exception.getStatus())
      .setHeader(
        'WWW-Authenticate',
        `Bearer ${params.map(([k, v]) => `${k}=${quoted(v)}`).join(', ')}`,
      )
      .setHeader('Cache-Control', 'no-store')
      .json(
        exception instanceof AuthenticationRequiredException
          ? { error: 'unauthorized', message: description }
          : {
              error: exception.oauthError,
              error_description: description,
              message: description,
              ...(required && { required_scopes: required }),
            },
      );
  }
}
