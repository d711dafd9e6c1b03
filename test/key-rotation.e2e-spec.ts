// A Casdoor certificate rotation in the middle of a run (a new cert is added and the application
// switched to it, both are served, then the old one is deleted), and a signing method that
// AUTH_ALGORITHMS does not accept, refused with the text of README's Troubleshooting table.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApp, type TestApp } from './support/app.js';
import { postAudited } from './support/audit-rows.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, challengeParams, toolResultOf } from './support/mcp-http.js';

const CACHE_AGE_S = 2;
/** Past the cache age, with a margin for a loaded machine. */
const PAST_CACHE_AGE_MS = CACHE_AGE_S * 1000 + 2000;
const NOT_IN_JWKS = "the token's signing key (kid) is not in the issuer's JWKS";
const ALGORITHM_REFUSED = "the token's signing algorithm is not accepted (accepted: RS256)";
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('Casdoor certificate rotation and signing methods (e2e)', () => {
  let issuer: TestIssuer;
  let sut: TestApp;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      AUTH_JWKS_CACHE_MAX_AGE_S: String(CACHE_AGE_S),
    });
  });
  afterAll(async () => {
    await sut?.close();
    await issuer?.close();
  });

  const tokenFor = (kid: string) => issuer.token({ audience: sut.mcpUrl, kid });
  const call = (token: string) =>
    postAudited(sut, 'key-rotation', callTool('list_tables'), { token });

  async function expectAccepted(token: string) {
    const { response, records } = await call(token);
    expect(response.status).toBe(200);
    expect(toolResultOf(response).isError).toBeFalsy();
    expect(records).toEqual([expect.objectContaining({ outcome: 'success' })]);
  }

  async function expectRefused(token: string, description: string) {
    const { response, records } = await call(token);
    expect(response.status).toBe(401);
    expect(challengeParams(response.headers.get('www-authenticate'))).toMatchObject({
      error: 'invalid_token',
      error_description: description,
    });
    expect(records).toEqual([
      expect.objectContaining({ outcome: 'refused_invalid_token', reason: description }),
    ]);
  }

  it('accepts both kids while both are served, then refuses the old one once AUTH_JWKS_CACHE_MAX_AGE_S has passed since its removal', async () => {
    const before = tokenFor('cert-built-in');
    await expectAccepted(before);

    // Casdoor: a new RSA 4096 cert, the application switched to it; the JWKS lists both.
    await issuer.addKeyAsync('cert-2027', 'RS256');
    const after = tokenFor('cert-2027');
    await expectAccepted(after);
    await expectAccepted(before);
    await expectAccepted(tokenFor('cert-built-in'));

    issuer.retireKey('cert-built-in');
    await sleep(PAST_CACHE_AGE_MS);

    await expectRefused(before, NOT_IN_JWKS);
    await expectRefused(tokenFor('cert-built-in'), NOT_IN_JWKS);
    await expectAccepted(after);
  });

  it.each(['RS512', 'ES256', 'ES384', 'ES512'] as const)(
    'refuses a %s token when AUTH_ALGORITHMS is RS256, with the Troubleshooting text',
    async (alg) => {
      const kid = `cert-${alg.toLowerCase()}`;
      if (alg === 'RS512') await issuer.addKeyAsync(kid, alg);
      else issuer.addKey(kid, alg);

      await expectRefused(tokenFor(kid), ALGORITHM_REFUSED);
      expect(README).toContain(`| \`${ALGORITHM_REFUSED}\``);
    },
  );
});
