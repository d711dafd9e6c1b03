import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { drainHttpServer } from '../common/graceful-shutdown.js';
import { metricsConfig } from '../config/configuration.js';
import { Metrics } from './metrics.service.js';

/** The one path the listener serves. */
export const METRICS_PATH = '/metrics';
/** A scrape is short: on shutdown, connections still open after this long are cut off, ms. */
const DRAIN_BOUND_MS = 2000;

function answer(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  response.end(text);
}

/**
 * The Prometheus endpoint, on a listener of its own (METRICS_PORT, on METRICS_HOST: loopback by
 * default), so that MCP clients, who reach the MCP port, never reach it. Off unless METRICS_PORT
 * is set. It binds before the MCP port listens (a port it cannot bind stops the start), and
 * closes after the MCP port has drained.
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private server: Server | undefined;

  constructor(
    private readonly metrics: Metrics,
    @Inject(metricsConfig.KEY) private readonly cfg: ConfigType<typeof metricsConfig>,
  ) {}

  /** Where it listens; undefined when it does not. */
  get address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { port, host } = this.cfg;
    if (port === undefined) return;
    this.metrics.collectProcessMetrics();
    const server = createServer((request, response) => void this.serve(request, response));
    server.listen(port, host);
    try {
      await once(server, 'listening');
    } catch (error) {
      throw new Error(
        `the metrics listener could not listen on ${host}:${port} (METRICS_HOST, METRICS_PORT): ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    this.server = server;
    const origin = host.includes(':') ? `[${host}]` : host;
    this.logger.log(`Prometheus metrics at http://${origin}:${port}${METRICS_PATH}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await drainHttpServer(server, DRAIN_BOUND_MS);
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) return answer(response, 404, `Not found: see ${METRICS_PATH}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return answer(response, 405, 'Method not allowed: GET or HEAD\n');
    }
    let body: string;
    try {
      body = await this.metrics.exposition();
    } catch (error) {
      this.logger.error(
        `metrics could not be collected: ${error instanceof Error ? error.message : String(error)}`,
      );
      return answer(response, 500, 'Metrics could not be collected\n');
    }
    response.writeHead(200, {
      'Content-Type': this.metrics.contentType,
      'Cache-Control': 'no-store',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
