import { readFileSync } from 'node:fs';
import { contradiction, introspectionAnswer, isClientRefusal } from './introspection-response.js';
import type { Principal } from './principal.js';

/** Casdoor's answers, as the test issuer serves them (test/fixtures/casdoor/introspection.json). */
const casdoor = JSON.parse(
  readFileSync(new URL('../../test/fixtures/casdoor/introspection.json', import.meta.url), 'utf8'),
) as { active: Record<string, unknown>; inactive: unknown; invalidClient: { body: unknown } };

const ISSUER = 'https://casdoor.example.com';
const principal: Principal = {
  subject: casdoor.active.sub as string,
  clientId: casdoor.active.client_id as string,
  tokenId: casdoor.active.jti as string,
  name: 'alice',
  email: undefined,
  scopes: new Set(['db:query']),
  expiresAt: casdoor.active.exp as number,
};

describe('introspectionAnswer', () => {
  it("reads Casdoor's active and inactive answers", () => {
    expect(introspectionAnswer.parse(casdoor.active).active).toBe(true);
    expect(introspectionAnswer.parse(casdoor.inactive)).toEqual({ active: false });
  });

  it.each([{}, { active: 'true' }, { active: 1 }, null, [], { active: true, sub: 7 }])(
    'refuses %j (RFC 7662: active is a required boolean)',
    (body) => {
      expect(introspectionAnswer.safeParse(body).success).toBe(false);
    },
  );
});

describe(isClientRefusal.name, () => {
  it("recognises Casdoor's invalid_client, and its older 200 error envelope", () => {
    expect(isClientRefusal(casdoor.invalidClient.body)).toBe(true);
    expect(
      isClientRefusal({ status: 'error', msg: 'Invalid application or wrong clientSecret' }),
    ).toBe(true);
  });

  it('is false for an answer or another error', () => {
    expect(isClientRefusal(casdoor.inactive)).toBe(false);
    expect(isClientRefusal({ error: 'invalid_request' })).toBe(false);
  });
});

describe(contradiction.name, () => {
  const answer = introspectionAnswer.parse(casdoor.active);

  it("finds none in Casdoor's answer about the same token, or in a bare active: true", () => {
    expect(contradiction(answer, principal, ISSUER)).toBeUndefined();
    expect(contradiction({ active: true }, principal, ISSUER)).toBeUndefined();
  });

  it.each([
    ['sub', { sub: 'someone-else' }],
    ['iss', { iss: 'https://other.example.com' }],
    ['exp', { exp: principal.expiresAt + 3600 }],
    ['jti', { jti: 'admin/another' }],
  ])('names %s when the answer describes another token', (member, edit) => {
    expect(contradiction({ ...answer, ...edit }, principal, ISSUER)).toBe(member);
  });
});
