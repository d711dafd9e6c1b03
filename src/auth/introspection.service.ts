// OAuth 2.0 Token Introspection (RFC 7662) against Casdoor's /api/login/oauth/introspect.
import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { createHash, randomUUID } from 'node:crypto';
import { authConfig } from '../config/configuration.js';
import type { IntrospectionFailureMode, IntrospectionSettings } from '../config/settings.js';
import { Metrics } from '../metrics/metrics.service.js';
import {
  contradiction,
  type IntrospectionAnswer,
  introspectionAnswer,
  isClientRefusal,
} from './introspection-response.js';
import { JwksKeyCache } from './jwks-key.cache.js';
import { IntrospectionUnavailableException, InvalidTokenException } from './oauth.exceptions.js';
import type { Principal } from './principal.js';

/** The refusal of a token Casdoor says is not active (signed out, revoked, expired there). */
export const REVOKED_AT_ISSUER =
  'the token was revoked or has expired at the issuer (introspection)';
export const CONTRADICTED_AT_ISSUER =
  "the issuer's introspection answer does not describe this token (introspection)";

const MAX_ENTRIES = 10_000;
/** Longest pause between calls while Casdoor fails, ms: requests meanwhile get the failure setting's answer at once. */
const RETRY_AFTER_MS = 5_000;

type Verdict = 'active' | 'inactive' | 'contradicted';
type Lookup = { verdict: Verdict } | { failure: string };

/** Casdoor refused the introspecting client's credentials (invalid_client). */
export class IntrospectionClientRefusedError extends Error {
  override name = 'IntrospectionClientRefusedError';
}

/** What /readyz reports about introspection. */
export interface IntrospectionState {
  state: 'up' | 'degraded' | 'down';
  onFailure: IntrospectionFailureMode;
  /** When the current outage began (ISO 8601). */
  unreachableSince?: string;
  /** Why the last call failed (no secret: see redact). */
  lastFailure?: string;
}

/** A token's key in the cache: its SHA-256, so that no map or log holds the token itself. */
function keyOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * With AUTH_INTROSPECTION=true, confirms each locally verified token with Casdoor: `active:
 * false` is a 401 invalid_token. Answers are kept per token for AUTH_INTROSPECTION_CACHE_S (never
 * past the token's `exp`), so that a busy client costs Casdoor one call per period and a revocation
 * takes effect within it; concurrent requests with one new token share one call. When Casdoor
 * cannot be reached, AUTH_INTROSPECTION_ON_FAILURE decides: `refuse` (503), or `accept` locally
 * verified tokens for AUTH_INTROSPECTION_GRACE_S from the start of the outage.
 */
@Injectable()
export class Introspection implements OnApplicationBootstrap {
  private readonly logger = new Logger('Introspection');
  private readonly settings: IntrospectionSettings | undefined;
  private readonly answers = new Map<string, { verdict: Verdict; until: number }>();
  private readonly pending = new Map<string, Promise<Lookup>>();
  private readonly authorization: string | undefined;
  private outageSince: number | undefined;
  private lastFailure: string | undefined;
  private retryAt = 0;

  constructor(
    @Inject(authConfig.KEY) private readonly cfg: ConfigType<typeof authConfig>,
    private readonly keys: JwksKeyCache,
    private readonly metrics: Metrics,
  ) {
    this.settings = cfg.introspection;
    // Casdoor reads the pair with Go's Request.BasicAuth, which does not form-decode: sent as is.
    if (this.settings)
      this.authorization = `Basic ${Buffer.from(`${this.settings.clientId}:${this.settings.clientSecret}`).toString('base64')}`;
  }

  get enabled(): boolean {
    return this.settings !== undefined;
  }

  /**
   * Checks the credentials at start-up with one call for a made-up token (Casdoor answers
   * `active: false` to a client it accepts). Refused credentials stop the start; an unreachable
   * Casdoor does not (as with the JWKS): the server starts and /readyz says introspection is down.
   */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.settings) return;
    try {
      await this.probe();
      this.logger.log(
        `Tokens are confirmed with ${await this.keys.introspectionUri()} (client ${this.settings.clientId}); answers kept ${this.settings.cacheMs / 1000} s`,
      );
    } catch (error) {
      if (error instanceof IntrospectionClientRefusedError) throw error;
      // Logged once by failed(); readiness reports it and probes again.
    }
  }

  /**
   * Returns when Casdoor confirms the token (or its failure setting lets it through); throws the
   * refusal otherwise. `principal` is the token's, as verified locally.
   */
  async confirm(token: string, principal: Principal): Promise<void> {
    if (!this.settings) return;
    const key = keyOf(token);
    const cached = this.cached(key);
    if (cached) {
      this.metrics.introspectionCacheHit();
      return this.decide(cached);
    }
    let inFlight = this.pending.get(key);
    if (inFlight) this.metrics.introspectionCacheHit();
    else {
      inFlight = this.lookUp(key, token, principal).finally(() => this.pending.delete(key));
      this.pending.set(key, inFlight);
    }
    const lookup = await inFlight;
    if ('verdict' in lookup) return this.decide(lookup.verdict);
    return this.unavailable(this.settings);
  }

  /** For /readyz: probes Casdoor again when it was failing and a retry is due. */
  async state(): Promise<IntrospectionState | undefined> {
    if (!this.settings) return undefined;
    if (this.outageSince !== undefined && Date.now() >= this.retryAt)
      await this.probe().catch(() => undefined);
    const { onFailure, graceMs } = this.settings;
    if (this.outageSince === undefined) return { state: 'up', onFailure };
    const outage = {
      onFailure,
      unreachableSince: new Date(this.outageSince).toISOString(),
      lastFailure: this.lastFailure,
    };
    const graceLeft = onFailure === 'accept' && Date.now() - this.outageSince < graceMs;
    return { state: graceLeft ? 'degraded' : 'down', ...outage };
  }

  /** One call for a made-up token: `active: false` proves the credentials; anything else throws. */
  private async probe(): Promise<void> {
    const answer = await this.call(`scopedb-probe-${randomUUID()}`).catch((error: unknown) => {
      throw this.failed(error);
    });
    if (answer.active)
      throw this.failed(
        new IntrospectionClientRefusedError(
          `${await this.keys.introspectionUri()} says a made-up token is active: it is not an introspection endpoint to trust`,
        ),
      );
    this.recovered();
  }

  private cached(key: string): Verdict | undefined {
    const entry = this.answers.get(key);
    if (!entry) return undefined;
    if (Date.now() < entry.until) return entry.verdict;
    this.answers.delete(key);
    return undefined;
  }

  /**
   * An `active` answer is kept AUTH_INTROSPECTION_CACHE_S; a refusal until the token's `exp`
   * (Casdoor does not bring a signed-out or deleted token back), so that an outage under
   * `accept` cannot let a token known to be revoked through again.
   */
  private remember(key: string, verdict: Verdict, expiresAt: number): void {
    const kept = verdict === 'active' ? Date.now() + this.settings!.cacheMs : Infinity;
    const until = Math.min(kept, expiresAt * 1000);
    if (this.answers.size >= MAX_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(key, { verdict, until });
  }

  private decide(verdict: Verdict): void {
    if (verdict === 'inactive') throw new InvalidTokenException(REVOKED_AT_ISSUER);
    if (verdict === 'contradicted') throw new InvalidTokenException(CONTRADICTED_AT_ISSUER);
  }

  /** Casdoor's answer for the token; while it is failing, at most one call per retry period. */
  private async lookUp(key: string, token: string, principal: Principal): Promise<Lookup> {
    if (Date.now() < this.retryAt) return { failure: this.lastFailure ?? 'unreachable' };
    let answer: IntrospectionAnswer;
    try {
      answer = await this.call(token);
    } catch (error) {
      return { failure: this.failed(error).message };
    }
    this.recovered();
    const contradicted = answer.active
      ? contradiction(answer, principal, this.cfg.issuer)
      : undefined;
    if (contradicted)
      this.logger.warn(
        `Casdoor's introspection says active but its ${contradicted} differs from the token's (sub=${principal.subject}); refused`,
      );
    const verdict: Verdict = !answer.active ? 'inactive' : contradicted ? 'contradicted' : 'active';
    this.metrics.introspectionCalled(verdict === 'active' ? 'active' : 'inactive');
    this.remember(key, verdict, principal.expiresAt);
    return { verdict };
  }

  /** POST token=...&token_type_hint=access_token with HTTP Basic client credentials. */
  private async call(token: string): Promise<IntrospectionAnswer> {
    const { timeoutMs } = this.settings!;
    const response = await fetch(await this.keys.introspectionUri(), {
      method: 'POST',
      headers: {
        Authorization: this.authorization!,
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
      },
      // The hint matters: without it Casdoor also looks the value up as a refresh token.
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
    const body: unknown = await response.json().catch(() => undefined);
    if (isClientRefusal(body))
      throw new IntrospectionClientRefusedError(
        `Casdoor refused the introspection credentials of client ${this.settings!.clientId} (invalid_client, HTTP ${response.status}): check AUTH_INTROSPECTION_CLIENT_ID and AUTH_INTROSPECTION_CLIENT_SECRET`,
      );
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const parsed = introspectionAnswer.safeParse(body);
    if (!parsed.success)
      throw new Error('the answer is not an RFC 7662 introspection response (no boolean "active")');
    return parsed.data;
  }

  /** Counts and remembers a failed call; the start of an outage is logged once. */
  private failed(error: unknown): Error {
    const why = this.redact(error instanceof Error ? error.message : String(error));
    this.metrics.introspectionCalled('error');
    this.lastFailure = why;
    this.retryAt = Date.now() + Math.min(RETRY_AFTER_MS, this.settings!.cacheMs);
    if (this.outageSince === undefined) {
      this.outageSince = Date.now();
      this.metrics.introspectionReachable(false);
      const { onFailure, graceMs } = this.settings!;
      this.logger.error(
        `Casdoor's introspection failed (${why}); ` +
          (onFailure === 'refuse'
            ? 'tokens not confirmed are refused (503) until it answers'
            : `locally verified tokens are accepted for ${graceMs / 1000} s, then refused (503) until it answers`),
      );
    }
    return error instanceof IntrospectionClientRefusedError
      ? new IntrospectionClientRefusedError(why)
      : new Error(why);
  }

  /** The end of an outage, logged once. */
  private recovered(): void {
    this.retryAt = 0;
    if (this.outageSince === undefined) return;
    this.logger.log(
      `Casdoor's introspection answers again after ${Math.round((Date.now() - this.outageSince) / 1000)} s`,
    );
    this.outageSince = undefined;
    this.lastFailure = undefined;
    this.metrics.introspectionReachable(true);
  }

  /** The failure setting's answer for a token Casdoor could not confirm. */
  private unavailable(settings: IntrospectionSettings): void {
    const since = this.outageSince ?? Date.now();
    if (settings.onFailure === 'accept' && Date.now() - since < settings.graceMs) {
      this.metrics.introspectionGraceAccepted();
      return;
    }
    throw new IntrospectionUnavailableException(
      settings.onFailure === 'accept'
        ? `Casdoor's introspection has been unreachable longer than AUTH_INTROSPECTION_GRACE_S (${settings.graceMs / 1000} s), so the token cannot be confirmed; retry later`
        : "Casdoor's introspection cannot be reached, so the token cannot be confirmed; retry later",
      Math.ceil(Math.min(RETRY_AFTER_MS, settings.cacheMs) / 1000),
    );
  }

  /** Upstream text never carries the secret out (a URL or an error could echo it). */
  private redact(text: string): string {
    const secret = this.settings!.clientSecret;
    return text.split(secret).join('***').split(this.authorization!).join('Basic ***');
  }
}
