import { generateKeyPairSync } from 'node:crypto';
import jsonwebtoken from 'jsonwebtoken';
import { unverifiedClaims } from './unverified-claims.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const sign = (claims: Record<string, unknown>) =>
  jsonwebtoken.sign(claims, privateKey, { algorithm: 'RS256', keyid: 'cert-built-in' });
const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe(unverifiedClaims.name, () => {
  const sut = unverifiedClaims;

  it('reads who a Casdoor token claims to be: sub, azp and jti', () => {
    const token = sign({
      sub: 'b1c2d3e4-0000-4000-8000-000000000001',
      azp: 'client-1',
      client_id: 'ignored-when-azp-is-present',
      jti: 'admin/0001',
      name: 'alice',
    });
    expect(sut(`Bearer ${token}`)).toEqual({
      subject: 'b1c2d3e4-0000-4000-8000-000000000001',
      clientId: 'client-1',
      tokenId: 'admin/0001',
    });
  });

  it('falls back to client_id, accepts any case of "bearer" and surrounding space', () => {
    const token = sign({ sub: 'u-1', client_id: 'client-2' });
    expect(sut(`  bEaReR   ${token}  `)).toEqual({
      subject: 'u-1',
      clientId: 'client-2',
      tokenId: undefined,
    });
  });

  it('reads an unsigned token too: nothing here is trusted', () => {
    expect(sut(`Bearer ${segment({ alg: 'none' })}.${segment({ sub: 'mallory' })}.`)).toEqual({
      subject: 'mallory',
      clientId: undefined,
      tokenId: undefined,
    });
  });

  it('keeps only non-empty strings, clipped to 255 characters', () => {
    const long = 'x'.repeat(300);
    const claims = sut(`Bearer ${sign({ sub: long, azp: '', jti: 42 })}`);
    expect(claims).toEqual({ subject: 'x'.repeat(255), clientId: undefined, tokenId: undefined });
  });

  it('returns only the three claims, never the token or other claims', () => {
    const token = sign({ sub: 'u-1', email: 'alice@example.com', password: '' });
    const claims = sut(`Bearer ${token}`);
    expect(Object.keys(claims ?? {}).sort()).toEqual(['clientId', 'subject', 'tokenId']);
    expect(JSON.stringify(claims)).not.toContain(token.split('.')[1]);
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['Basic credentials', 'Basic dXNlcjpwYXNz'],
    ['a bearer token that is not a JWT', 'Bearer opaque-token'],
    ['a token with four parts', `Bearer ${segment({})}.${segment({ sub: 'u' })}.sig.extra`],
    [
      'a token with characters outside base64url',
      `Bearer ${segment({})}.${segment({ sub: 'u' })}+/.sig`,
    ],
    ['two tokens', `Bearer ${sign({ sub: 'a' })} ${sign({ sub: 'b' })}`],
    ['a payload that is not JSON', `Bearer ${segment({})}.bm90IGpzb24.sig`],
    ['a payload that is JSON null', `Bearer ${segment({})}.${segment(null)}.sig`],
    ['a payload that is a JSON string', `Bearer ${segment({})}.${segment('u-1')}.sig`],
  ])('returns nothing for %s', (_case, authorization) => {
    expect(sut(authorization)).toBeUndefined();
  });
});
