import type { ScopeText } from '../src/auth/scopes.js';

/** OpenID Connect scopes a client may add to its request (MCP clients add offline_access). */
export const OIDC_SCOPES: readonly ScopeText[] = [
  { name: 'openid', title: 'Sign you in', description: 'Know who you are (your user id)' },
  { name: 'profile', title: 'Your profile', description: 'Your name and display name' },
  { name: 'email', title: 'Your email address', description: 'Your email address' },
  {
    name: 'offline_access',
    title: 'Stay connected',
    description: 'Keep access while you are away, by refreshing its tokens',
  },
];

/**
 * The scopes the sandbox issuer offers: the OpenID Connect ones, and the resource's, i.e. every
 * scope the running server declares (its ToolRegistry's `scopes()`), in the words its modules
 * declared them with.
 */
export class ScopeCatalog {
  private readonly oidc = new Map(OIDC_SCOPES.map((scope) => [scope.name, scope]));
  private readonly resource: ReadonlyMap<string, ScopeText>;

  constructor(resourceScopes: readonly ScopeText[]) {
    this.resource = new Map(resourceScopes.map((scope) => [scope.name, scope]));
  }

  /** The resource's scope names, in the server's order. */
  get resourceScopes(): string[] {
    return [...this.resource.keys()];
  }

  get oidcScopes(): string[] {
    return [...this.oidc.keys()];
  }

  isResourceScope(scope: string): boolean {
    return this.resource.has(scope);
  }

  isOidcScope(scope: string): boolean {
    return this.oidc.has(scope);
  }

  /** How the consent page shows an offered scope; undefined for one not offered. */
  describe(scope: string): ScopeText | undefined {
    return this.resource.get(scope) ?? this.oidc.get(scope);
  }
}
