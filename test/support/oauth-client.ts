import {
  auth,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import type { DemoUser } from '../../sandbox/accounts.js';
import { HeadlessUserAgent, LoopbackCallback } from './user-agent.js';

/** The browser an MCP host opens for sign-in: the headless user agent, or a real one. */
export interface SignInBrowser {
  open(url: URL): Promise<unknown>;
}

/**
 * What an MCP host keeps for one server (registration, tokens, PKCE verifier, discovery), with
 * the browser it opens for sign-in.
 */
export class HeadlessOAuthClient implements OAuthClientProvider {
  /** Every authorization URL the client opened, in order. */
  readonly authorizationUrls: URL[] = [];
  private information: StoredOAuthClientInformation | undefined;
  private stored: StoredOAuthTokens | undefined;
  private verifier: string | undefined;
  private discovery: OAuthDiscoveryState | undefined;

  /** `metadata` replaces parts of what the client registers. */
  constructor(
    private readonly browser: SignInBrowser,
    private readonly callback: LoopbackCallback,
    private readonly name: string,
    private readonly metadata: Partial<OAuthClientMetadata> = {},
  ) {}

  get redirectUrl(): string {
    return this.callback.url;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.name,
      redirect_uris: [this.callback.url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...this.metadata,
    };
  }

  clientInformation(): StoredOAuthClientInformation | undefined {
    return this.information;
  }

  saveClientInformation(information: StoredOAuthClientInformation): void {
    this.information = information;
  }

  tokens(): StoredOAuthTokens | undefined {
    return this.stored;
  }

  saveTokens(tokens: StoredOAuthTokens): void {
    this.stored = tokens;
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.authorizationUrls.push(authorizationUrl);
    await this.browser.open(authorizationUrl);
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no PKCE verifier saved');
    return this.verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state;
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.discovery;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'client') this.information = undefined;
    if (scope === 'all' || scope === 'tokens') this.stored = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }

  /** The parameters the authorization server sent to the redirect_uri last. */
  callbackParameters(): URLSearchParams {
    return this.callback.latest();
  }

  /** The claims of the current access token (already verified by the server under test). */
  accessTokenClaims(): Record<string, unknown> {
    const token = this.stored?.access_token;
    if (!token) throw new Error('no access token yet');
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
  }
}

/**
 * Sends the client's browser to the issuer for `scope` as an MCP client does (one that holds
 * tokens too: as at step-up).
 */
export async function requestAuthorization(
  oauth: HeadlessOAuthClient,
  serverUrl: string,
  scope: string,
): Promise<void> {
  expect(await auth(oauth, { serverUrl, scope, forceReauthorization: true })).toBe('REDIRECT');
}

/** Exchanges the code of the issuer's `answer` (at the redirect_uri); the access token. */
export async function redeemCode(
  oauth: HeadlessOAuthClient,
  serverUrl: string,
  answer: URLSearchParams,
): Promise<string> {
  expect(
    await auth(oauth, {
      serverUrl,
      authorizationCode: answer.get('code') ?? '',
      iss: answer.get('iss') ?? undefined,
    }),
  ).toBe('AUTHORIZED');
  return oauth.tokens()!.access_token;
}

/**
 * Signs `user` in at the server's authorization server as an MCP client does (discovery,
 * registration, PKCE, resource indicator), asking for `scope` and granting what the consent form
 * has checked; the access token, for a client that is handed one (`--header`).
 */
export async function accessTokenFor(
  mcpUrl: string,
  user: DemoUser,
  scope: string,
): Promise<string> {
  const callback = await LoopbackCallback.start();
  try {
    const browser = new HeadlessUserAgent({ username: user.name, password: user.password });
    const oauth = new HeadlessOAuthClient(browser, callback, `token for ${user.name}`);
    if ((await auth(oauth, { serverUrl: mcpUrl, scope })) !== 'REDIRECT')
      throw new Error('the client was not sent to sign in');
    return await redeemCode(oauth, mcpUrl, oauth.callbackParameters());
  } finally {
    await callback.close();
  }
}
