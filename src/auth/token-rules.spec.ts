import { InvalidTokenException } from './oauth.exceptions.js';
import { claimRefusals, headerRefusals, principalOf } from './token-rules.js';

const SOUND = {
  sub: '3f1c2a9e-6b7d-4e21-9a0b-5c8d7e6f1a2b',
  exp: 1790604800,
  scope: 'db:query db:modify',
  tokenType: 'access-token',
  azp: 'a1b2c3d4e5f6a7b8c9d0',
};

describe(headerRefusals.name, () => {
  const sut = headerRefusals;

  it('accepts an accepted alg with a kid', () => {
    expect(sut({ alg: 'RS256', kid: 'cert-built-in', typ: 'JWT' }, ['RS256'])).toEqual([]);
  });

  it('lists every rule a header breaks, in the order the server checks them', () => {
    expect(sut({ alg: 'HS256', crit: ['b64'] }, ['RS256', 'ES256'])).toEqual([
      {
        rule: 'alg',
        description: "the token's signing algorithm is not accepted (accepted: RS256, ES256)",
      },
      {
        rule: 'crit',
        description: 'the token has critical header parameters (crit) that are not supported',
      },
      { rule: 'kid', description: 'the token header has no key id (kid)' },
    ]);
  });
});

describe(claimRefusals.name, () => {
  const sut = claimRefusals;

  it('accepts the claims of a Casdoor access token', () => {
    expect(sut(SOUND)).toEqual([]);
  });

  it.each([
    { tokenType: 'refresh-token' },
    { tokenType: 'access-token', TokenType: 'refresh-token' },
    { tokenType: undefined, TokenType: 'refresh-token' },
    { tokenType: undefined, tokentype: 'refresh-token' },
  ])('refuses a Casdoor refresh token (%o)', (marker) => {
    expect(sut({ ...SOUND, ...marker })).toEqual([
      { rule: 'token_type', description: 'a refresh token cannot be used as an access token' },
    ]);
  });

  it('accepts claims without a tokenType (a JWT-Custom token of releases that did not add it)', () => {
    expect(sut({ ...SOUND, tokenType: undefined })).toEqual([]);
  });

  it.each([['id-token'], [''], [null], [['access-token']]])(
    'refuses any other token type (%j)',
    (tokenType) => {
      expect(sut({ ...SOUND, tokenType })).toEqual([
        {
          rule: 'token_type',
          description: `the token is not an access token (tokenType ${JSON.stringify(tokenType)})`,
        },
      ]);
    },
  );

  it('lists every rule the claims break', () => {
    expect(
      sut({ tokenType: 'refresh-token', sub: '', scope: ['db:query'] }).map(({ rule }) => rule),
    ).toEqual(['token_type', 'exp', 'sub', 'scope']);
  });
});

describe(principalOf.name, () => {
  const sut = principalOf;

  it('gives the principal of sound claims', () => {
    expect(sut(SOUND)).toEqual({
      subject: SOUND.sub,
      clientId: SOUND.azp,
      tokenId: undefined,
      name: undefined,
      email: undefined,
      scopes: new Set(['db:query', 'db:modify']),
      expiresAt: SOUND.exp,
    });
  });

  it.each([
    ['JWT, JWT-Empty, JWT-Custom: `name` is the user name', { name: 'alice' }, 'alice'],
    [
      'JWT-Standard: `preferred_username` is the user name, `name` the display name',
      { preferred_username: 'alice', name: 'Alice Liddell' },
      'alice',
    ],
    ['neither (JWT-Custom without the Name field)', { displayName: 'Alice' }, undefined],
  ])('names the principal: %s', (_format, claims, name) => {
    expect(sut({ ...SOUND, ...claims }).name).toBe(name);
  });

  it('refuses with the first rule broken', () => {
    const refusal = (() => {
      try {
        sut({ ...SOUND, tokenType: 'refresh-token', sub: undefined });
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(InvalidTokenException);
    expect((refusal as Error).message).toBe('a refresh token cannot be used as an access token');
  });
});
