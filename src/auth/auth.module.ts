import { Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { AuditModule } from '../audit/audit.module.js';
import { RateLimitModule } from '../rate-limit/rate-limit.module.js';
import { Introspection } from './introspection.service.js';
import { JwksKeyCache } from './jwks-key.cache.js';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { JwtStrategy } from './jwt.strategy.js';
import { OAuthChallengeFilter } from './oauth-challenge.filter.js';
import { ScopesGuard } from './scopes.guard.js';
import { VerifiedTokenCache } from './verified-token.cache.js';

@Module({
  imports: [PassportModule, AuditModule, RateLimitModule],
  providers: [
    JwksKeyCache,
    VerifiedTokenCache,
    Introspection,
    JwtStrategy,
    JwtAuthGuard,
    ScopesGuard,
    OAuthChallengeFilter,
  ],
  exports: [JwksKeyCache, Introspection, JwtAuthGuard, ScopesGuard, OAuthChallengeFilter],
})
export class AuthModule {}
