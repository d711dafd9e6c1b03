import { generateKeyPairSync } from 'node:crypto';
import { algorithmsOf } from './issuer.checks.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
const keyOf = (publicKey: typeof rsa, alg = '') => ({
  alg,
  getPublicKey: () => publicKey.export({ type: 'spki', format: 'pem' }).toString(),
});

describe(algorithmsOf.name, () => {
  const sut = algorithmsOf;

  it.each([
    ['an RS256 cert, which Casdoor also signs RS512 with', 'RS256', ['RS256', 'RS512']],
    ['an RS512 cert', 'RS512', ['RS512', 'RS256']],
    ['an RS384 cert', 'RS384', ['RS384', 'RS256', 'RS512']],
    [
      'a PS256 cert, whose tokens Casdoor signs RS256 or RS512',
      'PS256',
      ['RS256', 'RS512', 'PS256'],
    ],
  ])('reads %s', (_cert, alg, algorithms) => {
    expect(sut(keyOf(rsa, alg))).toEqual(algorithms);
  });

  it('takes an EC key at its alg, else its curve', () => {
    expect(sut(keyOf(p384, 'ES384'))).toEqual(['ES384']);
    expect(sut(keyOf(p384))).toEqual(['ES384']);
  });
});
