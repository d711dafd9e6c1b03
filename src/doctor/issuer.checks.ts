// The issuer as the server will see it: Casdoor's discovery document, its issuer name, the JWKS the
// server reads (through the server's own JwksKeyCache) and the algorithms of its keys.
import { createPublicKey } from 'node:crypto';
import type { SigningKey } from 'jwks-rsa';
import { casdoorJwksUriOf, discoveryUrlOf, JwksKeyCache } from '../auth/jwks-key.cache.js';
import { type AuthSettings, SUPPORTED_ALGORITHMS } from '../config/settings.js';
import { messageOf } from '../mcp/tool-context.js';
import { Metrics } from '../metrics/metrics.service.js';
import { objectOf, request } from './http.js';
import { type Report, shown } from './report.js';

type Document = Record<string, unknown>;

/** The doctor's JWKS fetches are not the server's: counted in a registry nobody serves. */
const UNCOUNTED = new Metrics();

/** What the token checks take from here: the server's key cache, and whether its JWKS answered. */
export interface IssuerFindings {
  keys: JwksKeyCache;
  jwksUri: string;
  jwksAnswered: boolean;
}

export async function checkIssuer(report: Report, auth: AuthSettings): Promise<IssuerFindings> {
  const discovery = await checkDiscovery(report, auth);
  const keys = new JwksKeyCache(auth, UNCOUNTED);
  const jwksUri = await keys.jwksUri();
  const signing = await checkJwks(report, auth, keys, jwksUri, discovery);
  if (signing) checkAlgorithms(report, auth, signing, discovery);
  else report.skip('algorithms', 'no signing keys to compare AUTH_ALGORITHMS with');
  return { keys, jwksUri, jwksAnswered: signing !== undefined };
}

async function checkDiscovery(report: Report, auth: AuthSettings): Promise<Document | undefined> {
  const url = discoveryUrlOf(auth.issuer);
  const answer = await request(url, auth.jwksTimeoutMs);
  const doc = 'unreachable' in answer ? undefined : objectOf(answer);
  if ('unreachable' in answer)
    report.fail(
      'discovery',
      `${url}: ${answer.unreachable}`,
      "set AUTH_ISSUER to your Casdoor's URL exactly as its tokens' iss (e.g. https://casdoor.example.com), reachable from here; MCP clients read this document to find where to sign in",
    );
  else if (answer.status !== 200 || !doc)
    report.fail(
      'discovery',
      `${url} answered HTTP ${answer.status}${doc ? '' : ' without a JSON document'}`,
      'AUTH_ISSUER must be the URL of Casdoor itself, the origin that serves /.well-known/openid-configuration',
    );
  else {
    report.ok('discovery', `${url} answers`);
    checkIssuerName(report, auth.issuer, doc.issuer);
    return doc;
  }
  report.skip('issuer', 'no discovery document to compare AUTH_ISSUER with');
  return undefined;
}

/** Tokens carry discovery's issuer as `iss`, compared with AUTH_ISSUER character for character. */
function checkIssuerName(report: Report, configured: string, announced: unknown): void {
  if (announced === configured)
    return report.ok('issuer', `discovery's issuer is AUTH_ISSUER, ${configured}`);
  if (typeof announced !== 'string' || announced === '')
    return report.fail(
      'issuer',
      'the discovery document names no issuer',
      'AUTH_ISSUER must be the URL of Casdoor itself',
    );
  const slashOnly = announced.replace(/\/$/, '') === configured.replace(/\/$/, '');
  report.fail(
    'issuer',
    `discovery's issuer is ${shown(announced)}, AUTH_ISSUER is ${shown(configured)}: every token (iss ${shown(announced)}) would be refused`,
    slashOnly
      ? `set AUTH_ISSUER=${announced}, exactly as Casdoor writes its issuer (a trailing slash makes another string)`
      : `set AUTH_ISSUER=${announced} if that is the URL users reach Casdoor at; otherwise set Casdoor's origin to ${configured} (without it, Casdoor takes its issuer from each request's Host header)`,
  );
}

/** The keys the server reads, from where it reads them; compared with discovery's when they differ. */
async function checkJwks(
  report: Report,
  auth: AuthSettings,
  keys: JwksKeyCache,
  jwksUri: string,
  discovery: Document | undefined,
): Promise<SigningKey[] | undefined> {
  const announced = typeof discovery?.jwks_uri === 'string' ? discovery.jwks_uri : undefined;
  const source = auth.jwksUri
    ? 'AUTH_JWKS_URI'
    : announced === jwksUri
      ? "discovery's jwks_uri"
      : `Casdoor's default location: ${discovery ? 'discovery names none' : 'discovery could not be read'}`;
  let signing: SigningKey[];
  try {
    signing = await keys.signingKeys();
  } catch (error) {
    report.fail(
      'JWKS',
      `${jwksUri} (${source}): ${messageOf(error)}`,
      auth.jwksUri
        ? `set AUTH_JWKS_URI to where Casdoor publishes its keys (${announced ?? casdoorJwksUriOf(auth.issuer)}), reachable from here, or unset it`
        : `the server reads its keys from ${jwksUri}: check AUTH_ISSUER and the way from here to Casdoor (proxy, firewall, TLS), or set AUTH_JWKS_URI to an address of Casdoor's keys that is reachable`,
    );
    return undefined;
  }
  report.ok('JWKS', `${jwksUri} (${source}): ${signing.map(keyLabel).join(', ')}`);
  if (auth.jwksUri && announced !== undefined && announced !== auth.jwksUri)
    await compareWithDiscovery(report, auth, signing, announced);
  return signing;
}

/** AUTH_JWKS_URI may be another address of Casdoor's keys (an internal one), never other keys. */
async function compareWithDiscovery(
  report: Report,
  auth: AuthSettings,
  used: SigningKey[],
  announced: string,
): Promise<void> {
  let published: SigningKey[];
  try {
    published = await new JwksKeyCache({ ...auth, jwksUri: announced }, UNCOUNTED).signingKeys();
  } catch (error) {
    report.warn(
      'JWKS URI',
      `AUTH_JWKS_URI differs from discovery's jwks_uri ${announced}, which cannot be read to compare them (${messageOf(error)})`,
    );
    return;
  }
  const fingerprints = (keys: SigningKey[]) =>
    new Set(keys.map((key) => `${key.kid}\n${key.getPublicKey()}`));
  const [mine, theirs] = [fingerprints(used), fingerprints(published)];
  if (mine.size === theirs.size && [...mine].every((key) => theirs.has(key)))
    return report.ok(
      'JWKS URI',
      `AUTH_JWKS_URI serves the keys discovery's jwks_uri (${announced}) publishes`,
    );
  report.fail(
    'JWKS URI',
    `AUTH_JWKS_URI serves other keys (${used.map(keyLabel).join(', ')}) than Casdoor publishes at its jwks_uri ${announced} (${published.map(keyLabel).join(', ')}): Casdoor's tokens would not verify`,
    `unset AUTH_JWKS_URI (the server then reads jwks_uri from discovery), or set it to ${announced} or another address of the same Casdoor`,
  );
}

const RSA_ALGORITHMS = SUPPORTED_ALGORITHMS.filter((alg) => !alg.startsWith('ES'));
const EC_ALGORITHMS: Record<string, string> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

/**
 * Casdoor signs with an RSA cert as RS256 or RS512, whatever the cert's own algorithm (RS*, or
 * PS*, which is no token signing method) says: the application's signing method decides.
 */
const CASDOOR_RSA_SIGNING = ['RS256', 'RS512'];

/**
 * The algorithms a key can sign with, the likeliest first: its `alg` (for an RSA key, also
 * Casdoor's RSA signing methods, a PS* key's first), else what its type and curve allow.
 */
export function algorithmsOf(key: Pick<SigningKey, 'alg' | 'getPublicKey'>): readonly string[] {
  if (key.alg?.startsWith('PS')) return [...CASDOOR_RSA_SIGNING, key.alg];
  if (key.alg?.startsWith('RS')) return [...new Set([key.alg, ...CASDOOR_RSA_SIGNING])];
  if (key.alg) return [key.alg];
  const publicKey = createPublicKey(key.getPublicKey());
  if (publicKey.asymmetricKeyType === 'rsa') return RSA_ALGORITHMS;
  const curve = publicKey.asymmetricKeyDetails?.namedCurve;
  return curve && EC_ALGORITHMS[curve] ? [EC_ALGORITHMS[curve]] : [];
}

function keyLabel(key: SigningKey): string {
  return `${key.kid ?? '(no kid)'} (${key.alg ?? `${createPublicKey(key.getPublicKey()).asymmetricKeyType?.toUpperCase()}, no alg`})`;
}

function checkAlgorithms(
  report: Report,
  auth: AuthSettings,
  keys: SigningKey[],
  discovery: Document | undefined,
): void {
  const accepted: readonly string[] = auth.algorithms;
  const setting = `AUTH_ALGORITHMS=${accepted.join(',')}`;
  const advertised = discovery?.id_token_signing_alg_values_supported;
  if (
    Array.isArray(advertised) &&
    advertised.length > 0 &&
    !advertised.some((alg) => accepted.includes(alg as string))
  )
    report.fail(
      'algorithms',
      `Casdoor signs with ${advertised.join(', ')} (discovery); ${setting} accepts none of them`,
      "set AUTH_ALGORITHMS to the algorithm of your Casdoor application's certificate (Casdoor's default: RS256)",
    );
  const refused = keys.filter((key) => !algorithmsOf(key).some((alg) => accepted.includes(alg)));
  if (refused.length === keys.length) {
    const needed = [...new Set(keys.map((key) => algorithmsOf(key)[0]).filter(Boolean))];
    return report.fail(
      'algorithms',
      `${setting} accepts none of the JWKS's keys (${keys.map(keyLabel).join(', ')}): every token would be refused`,
      `add ${needed.join(' or ') || 'the algorithm of your Casdoor application'} to AUTH_ALGORITHMS (the algorithm of your Casdoor application's certificate)`,
    );
  }
  const usable = keys.filter((key) => !refused.includes(key));
  report.ok('algorithms', `${setting} accepts ${usable.map(keyLabel).join(', ')}`);
  for (const key of refused)
    report.warn(
      'algorithms',
      `tokens signed with ${keyLabel(key)} would be refused`,
      `if a Casdoor application signs with this certificate, add ${algorithmsOf(key)[0] ?? 'its algorithm'} to AUTH_ALGORITHMS`,
    );
}
