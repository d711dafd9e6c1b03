import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { authConfig } from '../config/configuration.js';
import type { Principal } from './principal.js';

const MAX_ENTRIES = 10_000;

/**
 * Tokens that verified, so that a client's next calls with the same token skip the signature
 * check. An entry lives until the token expires (plus the clock tolerance, as verification
 * allows) and never longer than a signing key is trusted without re-reading the JWKS.
 */
@Injectable()
export class VerifiedTokenCache {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();

  constructor(@Inject(authConfig.KEY) private readonly cfg: ConfigType<typeof authConfig>) {}

  get(token: string): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (Date.now() < entry.until) return entry.principal;
    this.entries.delete(token);
    return undefined;
  }

  set(token: string, principal: Principal): void {
    const until = Math.min(
      (principal.expiresAt + this.cfg.clockToleranceS) * 1000,
      Date.now() + this.cfg.jwksCacheMaxAgeMs,
    );
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { principal, until });
  }
}
