import type { Principal } from './principal.js';
import { VerifiedTokenCache } from './verified-token.cache.js';

const now = () => Math.floor(Date.now() / 1000);
const principal = (expiresAt: number): Principal => ({
  subject: 'alice',
  clientId: 'client',
  tokenId: 'admin/1',
  name: 'alice',
  email: undefined,
  scopes: new Set(['db:query']),
  expiresAt,
});

describe(VerifiedTokenCache.name, () => {
  const settings = (clockToleranceS: number, jwksCacheMaxAgeMs: number) =>
    ({ clockToleranceS, jwksCacheMaxAgeMs }) as ConstructorParameters<typeof VerifiedTokenCache>[0];

  it('returns the principal of a token that verified', () => {
    const sut = new VerifiedTokenCache(settings(30, 600_000));
    const verified = principal(now() + 3600);

    sut.set('token-a', verified);

    expect(sut.get('token-a')).toBe(verified);
    expect(sut.get('token-b')).toBeUndefined();
  });

  it('forgets a token once it expired beyond the clock tolerance', () => {
    const sut = new VerifiedTokenCache(settings(0, 600_000));

    sut.set('expired', principal(now() - 1));

    expect(sut.get('expired')).toBeUndefined();
  });

  it('keeps a token no longer than a signing key is trusted without re-reading the JWKS', async () => {
    const sut = new VerifiedTokenCache(settings(30, 50));
    sut.set('token', principal(now() + 3600));

    await new Promise((resolve) => setTimeout(resolve, 80));

    expect(sut.get('token')).toBeUndefined();
  });
});
