import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  JwksClient,
  JwksRateLimitError,
  type Options,
  type SigningKey,
  SigningKeyNotFoundError,
} from 'jwks-rsa';
import { authConfig } from '../config/configuration.js';
import { Metrics } from '../metrics/metrics.service.js';

/** Why no key could be found for a token; surfaces as a 401 invalid_token, never a 5xx. */
export class SigningKeyUnavailableError extends Error {
  override name = 'SigningKeyUnavailableError';
}

/** Where an issuer's OpenID Connect discovery document is. */
export function discoveryUrlOf(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/** Casdoor's fixed JWKS location, used when discovery names none. */
export function casdoorJwksUriOf(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/jwks`;
}

/** Casdoor's fixed introspection location (RFC 7662), used when discovery names none. */
export function casdoorIntrospectionUriOf(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/api/login/oauth/introspect`;
}

/** The issuer's discovery document as read (fields unchecked), or why it could not be read. */
type Discovery = { doc: Record<string, unknown> } | { failure: string };

/** jwks-rsa's client, each request for the JWKS counted: every fetch goes through getKeys. */
class CountedJwksClient extends JwksClient {
  constructor(
    options: Options,
    private readonly metrics: Metrics,
  ) {
    super(options);
  }

  override async getKeys(): Promise<unknown> {
    try {
      const keys = await super.getKeys();
      this.metrics.jwksFetched(true);
      return keys;
    } catch (error) {
      this.metrics.jwksFetched(false);
      throw error;
    }
  }
}

interface CachedKey {
  key: KeyObject;
  fetchedAt: number;
}

/**
 * Public keys of the issuer by `kid`, as parsed KeyObjects: jwks-rsa hands back PEM text and
 * re-parsing it on every verify costs ~4x the verification itself. Stale keys are refreshed
 * through jwks-rsa (cached, rate limited); when the JWKS endpoint is down, known keys keep working.
 */
@Injectable()
export class JwksKeyCache {
  private readonly logger = new Logger(JwksKeyCache.name);
  private readonly keys = new Map<string, CachedKey>();
  private readonly pending = new Map<string, Promise<KeyObject>>();
  private client: Promise<JwksClient> | undefined;
  private location: Promise<string> | undefined;
  private discovered: Promise<Discovery> | undefined;
  private warnedIntrospectionOrigin = false;

  constructor(
    @Inject(authConfig.KEY) private readonly cfg: ConfigType<typeof authConfig>,
    private readonly metrics: Metrics,
  ) {}

  async keyFor(kid: string): Promise<KeyObject> {
    const cached = this.keys.get(kid);
    if (cached && Date.now() - cached.fetchedAt < this.cfg.jwksCacheMaxAgeMs) return cached.key;
    let inFlight = this.pending.get(kid);
    if (!inFlight) {
      inFlight = this.fetch(kid, cached).finally(() => this.pending.delete(kid));
      this.pending.set(kid, inFlight);
    }
    return inFlight;
  }

  /** How many signing keys are held (they keep verifying tokens while the JWKS is down). */
  get loadedKeys(): number {
    return this.keys.size;
  }

  /** Whether the JWKS can be fetched right now (for readiness). */
  async probe(): Promise<number> {
    return (await this.signingKeys()).length;
  }

  /** The keys of the JWKS that can verify a signature, fetched now. */
  async signingKeys(): Promise<SigningKey[]> {
    const client = await this.jwksClient();
    return client.getSigningKeys();
  }

  /** The JWKS location: AUTH_JWKS_URI, else the issuer's discovery document, else Casdoor's. */
  jwksUri(): Promise<string> {
    this.location ??= this.resolveJwksUri();
    return this.location;
  }

  private async fetch(kid: string, stale: CachedKey | undefined): Promise<KeyObject> {
    try {
      const client = await this.jwksClient();
      const signingKey = await client.getSigningKey(kid);
      const key = createPublicKey(signingKey.getPublicKey());
      this.keys.set(kid, { key, fetchedAt: Date.now() });
      return key;
    } catch (error) {
      if (error instanceof SigningKeyNotFoundError) {
        this.keys.delete(kid);
        throw new SigningKeyUnavailableError(
          "the token's signing key (kid) is not in the issuer's JWKS",
        );
      }
      if (error instanceof JwksRateLimitError && !stale)
        throw new SigningKeyUnavailableError(
          "the token's signing key (kid) is unknown and the JWKS was refetched too often to look again",
        );
      const why = error instanceof Error ? error.message : String(error);
      if (stale) {
        this.logger.warn(`JWKS refresh failed (${why}); keeping the cached key`);
        return stale.key;
      }
      this.logger.warn(`JWKS fetch failed: ${why}`);
      throw new SigningKeyUnavailableError("the issuer's signing keys could not be fetched");
    }
  }

  private jwksClient(): Promise<JwksClient> {
    this.client ??= this.jwksUri().then(
      (jwksUri) =>
        new CountedJwksClient(
          {
            jwksUri,
            cache: true,
            cacheMaxAge: this.cfg.jwksCacheMaxAgeMs,
            rateLimit: true,
            jwksRequestsPerMinute: 10,
            timeout: this.cfg.jwksTimeoutMs,
          },
          this.metrics,
        ),
    );
    return this.client;
  }

  /** The issuer's discovery document, read once and shared by everything that needs a location. */
  private discovery(): Promise<Discovery> {
    this.discovered ??= this.readDiscovery();
    return this.discovered;
  }

  private async readDiscovery(): Promise<Discovery> {
    try {
      const response = await fetch(discoveryUrlOf(this.cfg.issuer), {
        signal: AbortSignal.timeout(this.cfg.jwksTimeoutMs),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const doc: unknown = await response.json();
      if (typeof doc !== 'object' || doc === null) throw new Error('not a JSON object');
      return { doc: doc as Record<string, unknown> };
    } catch (error) {
      return { failure: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * Casdoor's introspection endpoint: `introspection_endpoint` from discovery, else Casdoor's
   * fixed `/api/login/oauth/introspect`.
   */
  async introspectionUri(): Promise<string> {
    const fixed = casdoorIntrospectionUriOf(this.cfg.issuer);
    const discovery = await this.discovery();
    const named = 'doc' in discovery ? discovery.doc.introspection_endpoint : undefined;
    if (typeof named !== 'string') return fixed;
    // The client secret goes with every call: only to the issuer's own origin (scheme, host,
    // port). A Casdoor without its `origin` setting names endpoints after the Host header it was
    // reached by (README, "Setting up Casdoor"), which may be another host, or http.
    if (URL.parse(named)?.origin === new URL(this.cfg.issuer).origin) return named;
    if (!this.warnedIntrospectionOrigin) {
      this.warnedIntrospectionOrigin = true;
      this.logger.warn(
        `Discovery names the introspection endpoint ${JSON.stringify(named.slice(0, 200))}, not at AUTH_ISSUER's origin; the client secret is sent only to ${fixed}`,
      );
    }
    return fixed;
  }

  private async resolveJwksUri(): Promise<string> {
    if (this.cfg.jwksUri) return this.cfg.jwksUri;
    const fallback = casdoorJwksUriOf(this.cfg.issuer);
    const discoveryUrl = discoveryUrlOf(this.cfg.issuer);
    const discovery = await this.discovery();
    if ('failure' in discovery) {
      this.logger.warn(
        `Discovery at ${discoveryUrl} failed (${discovery.failure}); using ${fallback}`,
      );
      return fallback;
    }
    const { doc } = discovery;
    if (doc.issuer !== this.cfg.issuer)
      this.logger.warn(
        `The issuer's discovery says issuer=${JSON.stringify(doc.issuer)} but AUTH_ISSUER is ` +
          `${JSON.stringify(this.cfg.issuer)}; tokens will be refused until they match (set Casdoor's origin)`,
      );
    if (typeof doc.jwks_uri === 'string' && /^https?:\/\//.test(doc.jwks_uri)) return doc.jwks_uri;
    this.logger.warn(`Discovery at ${discoveryUrl} has no jwks_uri; using ${fallback}`);
    return fallback;
  }
}
