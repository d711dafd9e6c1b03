// A plain MCP SDK 2.x client of ScopeDB, as the README shows it; test/sdk-client.e2e-spec.ts runs it.
// #region readme
import {
  Client,
  type OAuthClientProvider,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';

/**
 * With an access token you already hold (no sign-in, no refresh). A call the token's scopes do
 * not cover rejects with InsufficientScopeError; its requiredScope is what to ask for.
 */
export async function connectWithToken(mcpUrl: string, accessToken: string): Promise<Client> {
  const client = new Client({ name: 'my-agent', version: '1.0.0' });
  const authProvider = { token: () => Promise.resolve(accessToken) };
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider }));
  return client;
}

/**
 * With OAuth. `oauth` registers the client, keeps its tokens and opens the browser (its
 * redirectToAuthorization); `callback()` resolves with the query of the request the browser then
 * makes to your redirect_uri. A 401 (sign in) or a 403 insufficient_scope (step up: the SDK asks
 * for the token's scopes plus the tool's) rejects with UnauthorizedError once the browser is
 * open: finish the sign-in, then try again.
 */
export async function connectWithOAuth(
  mcpUrl: string,
  oauth: OAuthClientProvider,
  callback: () => Promise<URLSearchParams>,
) {
  const client = new Client({ name: 'my-agent', version: '1.0.0' });
  const newTransport = () =>
    new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: oauth });
  const finishSignIn = async (error: unknown, transport: StreamableHTTPClientTransport) => {
    if (!(error instanceof UnauthorizedError)) throw error;
    await transport.finishAuth(await callback());
  };

  let transport = newTransport();
  await client.connect(transport).catch(async (error: unknown) => {
    await finishSignIn(error, transport);
    transport = newTransport(); // a transport that has started cannot start again
    await client.connect(transport);
  });
  return {
    client,
    callTool: (name: string, args: Record<string, unknown>) =>
      client.callTool({ name, arguments: args }).catch(async (error: unknown) => {
        await finishSignIn(error, transport);
        return client.callTool({ name, arguments: args });
      }),
  };
}
// #endregion readme
