import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type Configuration, type Grant, type JWK } from 'oidc-provider';
import type { ScopeText } from '../src/auth/scopes.js';
import { authenticate, type DemoUser, mayGrant, userById } from './accounts.js';
import { isClientOrigin, registrationCors } from './cors.js';
import { MemoryStore } from './memory-store.js';
import { consentPage, escapeHtml, loginPage, type ConsentItem } from './pages.js';
import { ScopeCatalog } from './scopes.js';

/** Casdoor's paths (see shared casdoor discovery.json); discovery stays at oidc-provider's own. */
export const CASDOOR_ROUTES = {
  authorization: '/login/oauth/authorize',
  token: '/api/login/oauth/access_token',
  registration: '/api/oauth/register',
  jwks: '/.well-known/jwks',
  userinfo: '/api/userinfo',
  introspection: '/api/login/oauth/introspect',
  end_session: '/api/logout',
} as const;

// Casdoor's built-in certificate's name, used as the key id.
const KEY_ID = 'cert-built-in';
const MAX_FORM_BYTES = 16 * 1024;
const MAX_REGISTRATION_BYTES = 56 * 1024;

export interface SandboxIssuerOptions {
  /** The resource (ScopeDB's RESOURCE_URL) that access tokens are issued for. */
  resourceUrl: string;
  /** The resource's scopes: every scope the server declares (its ToolRegistry's `scopes()`). */
  scopes: readonly ScopeText[];
  /** Loopback port; 0 picks a free one. */
  port: number;
  /** Access token lifetime, seconds. */
  accessTokenTtlS?: number;
}

export interface SandboxIssuer {
  /** http://localhost:<port>, the `iss` of its tokens. */
  url: string;
  close(): Promise<void>;
}

class FormError extends Error {}

async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new FormError('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * The same request with another body. Casdoor ignores the `scope` that MCP clients send when they
 * register; oidc-provider would refuse the registration for naming scopes it keeps per resource.
 */
function withBody(request: IncomingMessage, body: Buffer): IncomingMessage {
  const copy = new IncomingMessage(request.socket);
  copy.method = request.method;
  copy.url = request.url;
  copy.httpVersion = request.httpVersion;
  copy.httpVersionMajor = request.httpVersionMajor;
  copy.httpVersionMinor = request.httpVersionMinor;
  copy.headers = { ...request.headers, 'content-length': String(body.length) };
  copy.rawHeaders = [];
  // Else destroying the copy at its end would destroy the socket (an incomplete message).
  copy.complete = true;
  copy.push(body);
  copy.push(null);
  return copy;
}

function send(response: ServerResponse, status: number, html: string): void {
  response.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Frame-Options': 'DENY',
    // No form-action: browsers apply it to the redirects that follow a submitted form too.
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  response.end(html);
}

function accessTokenClaims(user: DemoUser, clientId: string): Record<string, unknown> {
  // The part of a Casdoor "JWT" access token a resource server reads, beside iss/sub/aud/scope.
  return {
    owner: 'built-in',
    name: user.name,
    displayName: user.displayName,
    email: user.email,
    type: 'normal-user',
    tokenType: 'access-token',
    azp: clientId,
    signinMethod: 'Password',
  };
}

function buildConfiguration(
  options: SandboxIssuerOptions,
  catalog: ScopeCatalog,
  privateKey: JWK,
): Configuration {
  const { resourceUrl } = options;
  const store = new MemoryStore();
  return {
    adapter: (model) => store.adapter(model),
    clients: [],
    jwks: { keys: [privateKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: CASDOOR_ROUTES,
    scopes: catalog.oidcScopes,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    findAccount: (_ctx, id) => {
      const user = userById(id);
      if (!user) return undefined;
      return {
        accountId: user.id,
        claims: () => ({
          sub: user.id,
          name: user.displayName,
          preferred_username: user.name,
          email: user.email,
          email_verified: true,
        }),
      };
    },
    pkce: { required: () => true },
    clientBasedCORS: (_ctx, origin, client) => isClientOrigin(origin, client.redirectUris ?? []),
    loadExistingGrant: async (ctx) => {
      const { oidc } = ctx;
      const decided = oidc.result?.consent?.grantId;
      const grantId = decided ?? oidc.session?.grantIdFor(oidc.client?.clientId ?? '');
      const grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || decided) return grant;
      return refusedBefore(grant, oidc.requestParamScopes, resourceUrl) ? undefined : grant;
    },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      introspection: { enabled: true },
      revocation: { enabled: false },
      // Not in Casdoor, and not what this resource server accepts (DPoP-bound tokens).
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resourceUrl,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== resourceUrl)
            throw new errors.InvalidTarget(`this sandbox issues tokens only for ${resourceUrl}`);
          return {
            scope: catalog.resourceScopes.join(' '),
            audience: resourceUrl,
            accessTokenTTL: options.accessTokenTtlS ?? 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256', kid: KEY_ID } },
          };
        },
      },
    },
    // Casdoor issues a refresh token with every code; here too, unless offline_access was refused.
    issueRefreshToken: (ctx, client) =>
      client.grantTypeAllowed('refresh_token') &&
      !(
        ctx.oidc.entities.Grant?.getRejectedOIDCScope().split(' ').includes('offline_access') ??
        false
      ),
    extraTokenClaims: (_ctx, token) => {
      const user = 'accountId' in token ? userById(token.accountId) : undefined;
      return user ? accessTokenClaims(user, token.clientId ?? '') : undefined;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: options.accessTokenTtlS ?? 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      Grant: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      RefreshToken: 14 * 24 * 3600,
    },
  };
}

/** The Casdoor-shaped development authorization server of `npm run dev` and the e2e specs. */
export async function startSandboxIssuer(options: SandboxIssuerOptions): Promise<SandboxIssuer> {
  const catalog = new ScopeCatalog(options.scopes);
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://localhost:${port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: KEY_ID, alg: 'RS256', use: 'sig' };
  const provider = new Provider(url, buildConfiguration(options, catalog, jwk));
  const interactions = new Interactions(provider, options.resourceUrl, catalog);
  const callback = provider.callback();

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    if (path.startsWith('/interaction/')) {
      interactions.handle(path, request, response).catch((error: unknown) => {
        const status = error instanceof FormError ? 400 : 500;
        if (!response.headersSent) send(response, status, `<p>${escapeHtml(explain(error))}</p>`);
        else response.destroy();
      });
      return;
    }
    // Casdoor serves its discovery document under both names.
    if (path === '/.well-known/oauth-authorization-server')
      request.url = '/.well-known/openid-configuration';
    if (path === CASDOOR_ROUTES.registration && registrationCors(request, response)) return;
    if (path === CASDOOR_ROUTES.registration && request.method === 'POST') {
      readBody(request, MAX_REGISTRATION_BYTES).then(
        (body) => callback(withBody(request, withoutScope(body)), response),
        (error: unknown) => {
          if (!(error instanceof FormError)) return response.destroy();
          response.writeHead(413, { 'Content-Type': 'application/json' });
          response.end(
            JSON.stringify({ error: 'invalid_request', error_description: error.message }),
          );
        },
      );
      return;
    }
    void callback(request, response);
  });

  return {
    url,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Whether the user refused, at an earlier consent, one of the scopes asked for now. oidc-provider
 * would remember the refusal and issue a token without the scope, no page shown; the sandbox asks
 * again instead (a client asks again for a scope when a tool needs it: step-up).
 */
function refusedBefore(grant: Grant, requested: ReadonlySet<string>, resourceUrl: string): boolean {
  const refused = [
    ...grant.getRejectedOIDCScope().split(' '),
    ...grant.getRejectedResourceScope(resourceUrl).split(' '),
  ];
  return refused.some((scope) => scope !== '' && requested.has(scope));
}

function withoutScope(body: Buffer): Buffer {
  let metadata: unknown;
  try {
    metadata = JSON.parse(body.toString('utf8'));
  } catch {
    return body; // the provider answers invalid_client_metadata itself
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return body;
  const rest: Record<string, unknown> = { ...metadata };
  delete rest.scope;
  return Buffer.from(JSON.stringify(rest));
}

/** The error_description the client shows: RFC 6749 allows printable ASCII but quote and backslash. */
function mayNotGrant(user: DemoUser, scopes: readonly string[]): string {
  return `the account ${user.name} may not grant ${scopes.join(' ')} (an administrator decides which scopes each account may grant)`;
}

function explain(error: unknown): string {
  if (error instanceof errors.SessionNotFound)
    return 'This sign-in has expired or was already completed. Start again from your MCP client.';
  if (error instanceof FormError) return error.message;
  return 'The sandbox issuer failed to handle this request; its console has the details.';
}

/** The login and consent pages (oidc-provider's interactions), Casdoor-like. */
class Interactions {
  constructor(
    private readonly provider: Provider,
    private readonly resourceUrl: string,
    private readonly catalog: ScopeCatalog,
  ) {}

  async handle(path: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const match = /^\/interaction\/([\w-]+)(?:\/(login|consent))?$/.exec(path);
    if (!match) return send(response, 404, '<p>Not found</p>');
    const [, uid, action] = match;
    const details = await this.provider.interactionDetails(request, response);
    if (details.uid !== uid) throw new FormError('this sign-in does not match the browser session');
    const client = await this.provider.Client.find(String(details.params.client_id));
    const clientName = client?.clientName ?? String(details.params.client_id);

    if (request.method === 'GET' && action === undefined) {
      if (details.prompt.name === 'login')
        return send(response, 200, loginPage(uid, clientName, this.catalog.resourceScopes));
      if (details.prompt.name === 'consent') {
        const user = this.user(details.session?.accountId);
        return send(
          response,
          200,
          consentPage(uid, clientName, user.name, this.consentItems(details.params, user)),
        );
      }
      throw new FormError(`unexpected prompt ${details.prompt.name}`);
    }
    if (request.method !== 'POST' || action === undefined)
      return send(response, 405, '<p>Method not allowed</p>');

    const form = await this.form(request);
    if (action === 'login') {
      if (details.prompt.name !== 'login') throw new FormError('sign-in is not expected now');
      const user = authenticate(form.get('username') ?? '', form.get('password') ?? '');
      if (!user)
        return send(
          response,
          401,
          loginPage(
            uid,
            clientName,
            this.catalog.resourceScopes,
            'Unknown user or wrong password.',
          ),
        );
      return this.provider.interactionFinished(
        request,
        response,
        { login: { accountId: user.id } },
        { mergeWithLastSubmission: false },
      );
    }

    if (details.prompt.name !== 'consent') throw new FormError('consent is not expected now');
    const user = this.user(details.session?.accountId);
    const refused = this.consentItems(details.params, user).filter((item) => !item.grantable);
    // Whichever button (or forged form) was sent: a narrower grant would fail later, unexplained.
    if (refused.length > 0)
      return this.provider.interactionFinished(request, response, {
        error: 'access_denied',
        error_description: mayNotGrant(
          user,
          refused.map((item) => item.scope.name),
        ),
      });
    if (form.get('decision') !== 'allow')
      return this.provider.interactionFinished(request, response, {
        error: 'access_denied',
        error_description: `${user.name} denied the request`,
      });
    const grantId = await this.saveGrant(details.params, user, new Set(form.getAll('scope')));
    if (grantId === undefined)
      return this.provider.interactionFinished(request, response, {
        error: 'access_denied',
        error_description: `${user.name} granted none of the requested scopes`,
      });
    return this.provider.interactionFinished(
      request,
      response,
      { consent: { grantId } },
      { mergeWithLastSubmission: true },
    );
  }

  private user(accountId: string | undefined): DemoUser {
    const user = accountId === undefined ? undefined : userById(accountId);
    if (!user) throw new FormError('no signed-in user');
    return user;
  }

  private requested(params: Record<string, unknown>): string[] {
    const scope = typeof params.scope === 'string' ? params.scope : '';
    return [...new Set(scope.split(' ').filter((item) => item !== ''))];
  }

  /** The requested scopes the issuer offers; others are left out. */
  private consentItems(params: Record<string, unknown>, user: DemoUser): ConsentItem[] {
    return this.requested(params).flatMap((name) => {
      const scope = this.catalog.describe(name);
      return scope ? [{ scope, grantable: this.mayGrant(user, name) }] : [];
    });
  }

  private mayGrant(user: DemoUser, scope: string): boolean {
    return this.catalog.isOidcScope(scope) || mayGrant(user, scope);
  }

  /** A new grant with exactly the requested scopes the user checked (and may grant). */
  private async saveGrant(
    params: Record<string, unknown>,
    user: DemoUser,
    checked: ReadonlySet<string>,
  ): Promise<string | undefined> {
    const grant = new this.provider.Grant({
      accountId: user.id,
      clientId: String(params.client_id),
    });
    const granted: string[] = [];
    const rejected = { resource: [] as string[], oidc: [] as string[] };
    for (const scope of this.requested(params)) {
      const resource = this.catalog.isResourceScope(scope);
      if (!resource && !this.catalog.isOidcScope(scope)) continue;
      if (checked.has(scope) && this.mayGrant(user, scope)) {
        granted.push(scope);
        if (resource) grant.addResourceScope(this.resourceUrl, scope);
        else grant.addOIDCScope(scope);
      } else rejected[resource ? 'resource' : 'oidc'].push(scope);
    }
    if (granted.length === 0) return undefined;
    if (rejected.resource.length)
      grant.rejectResourceScope(this.resourceUrl, rejected.resource.join(' '));
    if (rejected.oidc.length) grant.rejectOIDCScope(rejected.oidc.join(' '));
    return grant.save();
  }

  private async form(request: IncomingMessage): Promise<URLSearchParams> {
    const type = request.headers['content-type'] ?? '';
    if (!type.startsWith('application/x-www-form-urlencoded'))
      throw new FormError('expected a form (application/x-www-form-urlencoded)');
    return new URLSearchParams((await readBody(request, MAX_FORM_BYTES)).toString('utf8'));
  }
}
