import { Global, Module } from '@nestjs/common';
import { MetricsServer } from './metrics.server.js';
import { Metrics } from './metrics.service.js';

/** One Metrics per application, injected where facts are decided; its own listener serves it. */
@Global()
@Module({
  providers: [Metrics, MetricsServer],
  exports: [Metrics],
})
export class MetricsModule {}
