// Every reason the server would refuse a token, each with its fix. The rules and their words are
// the server's (token-rules.ts, jsonwebtoken with the server's options, JwksKeyCache); the verdict
// is JwtStrategy's own. The token itself is never printed.
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import jsonwebtoken, { type VerifyOptions } from 'jsonwebtoken';
import { describeVerificationError } from '../auth/jwt-auth.guard.js';
import { signingKeyRefusal } from '../auth/jwt.strategy.js';
import { hasAllScopes } from '../auth/principal.js';
import {
  type Claims,
  claimRefusals,
  type ClaimRule,
  decodeClaims,
  decodeHeader,
  grantedScopes,
  headerRefusals,
  type HeaderRule,
  MALFORMED_TOKEN,
  verifyOptionsOf,
} from '../auth/token-rules.js';
import { type AuthSettings, SUPPORTED_ALGORITHMS } from '../config/settings.js';
import type { IssuerFindings } from './issuer.checks.js';
import { type Report, shown } from './report.js';
import type { CatalogTool } from './tool-catalog.js';
import { serverVerdict, type Verdict } from './verdict.js';

const ANOTHER_ISSUER = 'Casdoor always sets it: the token comes from another issuer';

const HEADER_CHECKS: Record<HeaderRule, [check: string, fix: (header: Claims) => string]> = {
  alg: [
    'token algorithm',
    ({ alg }) =>
      (SUPPORTED_ALGORITHMS as readonly unknown[]).includes(alg)
        ? `add ${String(alg)} to AUTH_ALGORITHMS: the Casdoor application's certificate signs with it`
        : `${shown(alg)} is never accepted (only RS*, PS* and ES*): give the Casdoor application a certificate (RS256 by default)`,
  ],
  crit: ['token header', () => 'Casdoor never sets crit: the token comes from another issuer'],
  kid: ['token key id', () => ANOTHER_ISSUER],
};

const CLAIM_CHECKS: Record<ClaimRule, [check: string, fix: string]> = {
  token_type: [
    'token type',
    "send the access_token of Casdoor's token response, not its refresh_token",
  ],
  exp: ['token lifetime', ANOTHER_ISSUER],
  sub: ['token subject', ANOTHER_ISSUER],
  scope: ['token scope', ANOTHER_ISSUER],
};

/** A claim for the report: its value, cut short (the token is never printed, its claims may be). */
function claim(claims: Claims, name: string): string | undefined {
  return claims[name] === undefined ? undefined : `${name} ${shown(claims[name]).slice(0, 200)}`;
}

/** A duration in the largest unit that keeps it above 1: `45 min`, `3 h`, `7 days`. */
function duration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

function time(seconds: unknown): string {
  if (typeof seconds !== 'number') return shown(seconds);
  const ms = seconds * 1000 - Date.now();
  const relative = ms >= 0 ? `in ${duration(ms)}` : `${duration(-ms)} ago`;
  return `${new Date(seconds * 1000).toISOString()} (${relative})`;
}

/** The header's alg and kid and the claims that say what the token is for, never the token. */
function summary(header: Claims, claims: Claims): string {
  return [
    `alg ${shown(header.alg)}, kid ${shown(header.kid)}`,
    ...['iss', 'aud', 'azp', 'scope', 'tokenType', 'TokenType'].map((name) => claim(claims, name)),
    claims.exp === undefined ? undefined : `exp ${time(claims.exp)}`,
  ]
    .filter((part) => part !== undefined)
    .join('; ');
}

export async function checkToken(
  report: Report,
  token: string,
  auth: AuthSettings,
  issuer: IssuerFindings,
  tools: readonly CatalogTool[],
): Promise<Verdict> {
  const failuresBefore = report.failures;
  const header = decodeHeader(token);
  const claims = decodeClaims(token);
  if (!header || !claims || token.split('.').length !== 3)
    report.fail(
      'token',
      MALFORMED_TOKEN,
      "give the access_token of Casdoor's token response (three base64url parts joined by dots), not the whole response; the Casdoor application's token format must be JWT",
    );
  else {
    report.ok('token', summary(header, claims));
    await checkSignature(report, token, header, auth, issuer);
    checkClaims(report, token, claims, auth);
    checkScopes(report, claims, tools);
  }
  const verdict = await serverVerdict(auth, issuer.keys, token);
  if (verdict.accepted) report.ok('verdict', 'with these settings, the server accepts this token');
  else
    report.fail(
      'verdict',
      `with these settings, the server answers 401 invalid_token: "${verdict.description}"`,
      report.failures > failuresBefore
        ? 'apply the token fixes above'
        : 'see README, "Troubleshooting", for this error_description',
    );
  return verdict;
}

async function checkSignature(
  report: Report,
  token: string,
  header: Claims,
  auth: AuthSettings,
  issuer: IssuerFindings,
): Promise<void> {
  const refusals = headerRefusals(header, auth.algorithms);
  for (const { rule, description } of refusals) {
    const [check, fix] = HEADER_CHECKS[rule];
    report.fail(check, description, fix(header));
  }
  if (refusals.length === 0)
    report.ok('token header', `alg ${String(header.alg)} is accepted, kid ${String(header.kid)}`);
  const { alg, kid } = header;
  if (typeof kid !== 'string' || kid === '')
    return report.skip('token signature', 'no key id (kid) to find the key by');
  if (!issuer.jwksAnswered) return report.skip('token signature', 'the JWKS could not be read');
  let key: KeyObject;
  try {
    key = await issuer.keys.keyFor(kid);
  } catch (error) {
    return report.fail(
      'token signature',
      signingKeyRefusal(error),
      `no key ${shown(kid)} is published at ${issuer.jwksUri}: the token comes from another Casdoor, or AUTH_ISSUER / AUTH_JWKS_URI name another instance`,
    );
  }
  if (!(SUPPORTED_ALGORITHMS as readonly unknown[]).includes(alg))
    return report.skip('token signature', `${shown(alg)} signatures are never checked`);
  try {
    jsonwebtoken.verify(token, key, {
      algorithms: [alg as jsonwebtoken.Algorithm],
      ignoreExpiration: true,
      ignoreNotBefore: true,
    });
    report.ok('token signature', `verifies with the key ${shown(kid)} of the JWKS`);
  } catch (error) {
    report.fail(
      'token signature',
      describeVerificationError(error),
      `the key published as ${shown(kid)} at ${issuer.jwksUri} did not sign it: the token comes from another Casdoor instance, or AUTH_JWKS_URI names another instance`,
    );
  }
}

let throwawayKey: { privateKey: KeyObject; publicKey: KeyObject } | undefined;

/**
 * How jsonwebtoken, with these of the server's options, judges the token's claims: on a copy of
 * its claims (the same bytes) signed with a throwaway key, so that each rule is judged on its own
 * even when the signature or another rule fails. undefined: the claims pass.
 */
function judgeClaims(token: string, options: VerifyOptions): string | undefined {
  throwawayKey ??= generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT' })).toString('base64url');
  const input = `${header}.${token.split('.')[1]}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: throwawayKey.privateKey,
    dsaEncoding: 'ieee-p1363',
  }).toString('base64url');
  try {
    jsonwebtoken.verify(`${input}.${signature}`, throwawayKey.publicKey, {
      ...options,
      algorithms: ['ES256'],
    });
    return undefined;
  } catch (error) {
    return describeVerificationError(error);
  }
}

function checkClaims(report: Report, token: string, claims: Claims, auth: AuthSettings): void {
  const { issuer, audience, clockTolerance } = verifyOptionsOf(auth);
  const anyTime = { ignoreExpiration: true, ignoreNotBefore: true };
  const wrongIssuer = judgeClaims(token, { issuer, ...anyTime });
  if (wrongIssuer)
    report.fail(
      'token issuer',
      `${wrongIssuer}: iss is ${shown(claims.iss)}, AUTH_ISSUER is ${shown(auth.issuer)}`,
      issuerFix(claims.iss, auth.issuer),
    );
  else report.ok('token issuer', 'iss is AUTH_ISSUER');
  const wrongAudience = judgeClaims(token, { audience, ...anyTime });
  if (wrongAudience)
    report.fail(
      'token audience',
      `${wrongAudience}: aud is ${shown(claims.aud)}, RESOURCE_URL is ${auth.resourceUrl}`,
      audienceFix(claims, auth.resourceUrl),
    );
  else report.ok('token audience', `aud includes RESOURCE_URL (${auth.resourceUrl})`);
  const lifetime = [
    judgeClaims(token, { clockTolerance, ignoreNotBefore: true }),
    judgeClaims(token, { clockTolerance, ignoreExpiration: true }),
  ].filter((refusal) => refusal !== undefined);
  for (const refusal of lifetime)
    report.fail(
      'token lifetime',
      refusal,
      `get a new token (clients do so with their refresh token); if fresh tokens are refused, this machine's clock and Casdoor's disagree: sync them, or raise AUTH_CLOCK_TOLERANCE_S (now ${clockTolerance})`,
    );
  if (lifetime.length === 0 && typeof claims.exp === 'number')
    report.ok('token lifetime', `valid until ${time(claims.exp)}`);
  const now = Date.now() / 1000;
  if (typeof claims.iat === 'number' && claims.iat > now + clockTolerance)
    report.warn(
      'clock',
      `the token was issued ${Math.round(claims.iat - now)} s ahead of this machine's clock`,
      "sync this machine's clock and Casdoor's",
    );
  for (const { rule, description } of claimRefusals(claims)) {
    const [check, fix] = CLAIM_CHECKS[rule];
    report.fail(check, description, fix);
  }
}

function issuerFix(iss: unknown, configured: string): string {
  if (typeof iss !== 'string') return ANOTHER_ISSUER;
  if (iss.replace(/\/$/, '') === configured.replace(/\/$/, ''))
    return `set AUTH_ISSUER=${iss}, exactly as Casdoor writes its issuer (a trailing slash makes another string)`;
  return `if ${iss} is your Casdoor, set AUTH_ISSUER=${iss} (and Casdoor's origin to it, so that its issuer does not follow the Host header); otherwise the token comes from another issuer`;
}

/** Casdoor's `aud` is the resource the client asked for (RFC 8707), else the client's id. */
function audienceFix(claims: Claims, resourceUrl: string): string {
  const audiences = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).filter(
    (aud): aud is string => typeof aud === 'string',
  );
  const clients = [claims.azp, claims.client_id].filter((id) => typeof id === 'string');
  if (audiences.length === 0 || audiences.some((aud) => clients.includes(aud)))
    return `the client did not send resource=${resourceUrl} (RFC 8707) when it got the token, so Casdoor put its client id in aud: MCP clients send the resource of this server's metadata; others must add resource=${resourceUrl} to their authorize and token requests (Casdoor v2.318 or later)`;
  return `the token was issued for ${audiences.join(', ')}: point the client at ${resourceUrl}, or, if clients reach this server at ${audiences[0]}, set PUBLIC_URL and MCP_PATH (or RESOURCE_URL) so that RESOURCE_URL is ${audiences[0]}`;
}

/** Each group of tools that need the same scopes, and whether the token's scopes allow them. */
function checkScopes(report: Report, claims: Claims, tools: readonly CatalogTool[]): void {
  const granted = { scopes: grantedScopes(claims) };
  const groups = new Map<string, { required: readonly string[]; names: string[] }>();
  for (const tool of tools) {
    const key = [...tool.requiredScopes].sort().join(' ');
    const group = groups.get(key) ?? { required: tool.requiredScopes, names: [] };
    group.names.push(tool.name);
    groups.set(key, group);
  }
  for (const [key, { required, names }] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const missing = required.filter((scope) => !granted.scopes.has(scope)).join(' ');
    if (hasAllScopes(granted, required)) report.ok(`tools (${key})`, names.join(', '));
    else
      report.fail(
        `tools (${key})`,
        `the token lacks ${missing}: it cannot call ${names.join(', ')}`,
        `the user must grant ${missing}: the client asks for it (a 403's scope= names what to ask for) and the user consents at Casdoor; if Casdoor does not offer it, add it to the application's custom scopes (README, "Setting up Casdoor")`,
      );
  }
}
