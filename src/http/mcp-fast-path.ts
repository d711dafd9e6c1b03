// The MCP endpoint's POST requests without the walk through all of Express's layers, the body
// parser library and a logger per request: the same steps in the same order, run by the code
// Express would run for each (its router, on the layers that apply). An optimisation only
// (MCP_FAST_PATH=false turns it off); a request it does not take, Express serves as before.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Logger } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';

/** What the fast path runs around Nest's route, each shared with the Express stack. */
export interface FastPathSteps {
  /** The MCP endpoint's path (`MCP_PATH`). */
  mcpPath: string;
  /** The body parser's limit (`MAX_BODY_BYTES`). */
  maxBodyBytes: number;
  /** The first middleware of every request: its id, its line in the log, its metrics. */
  observe: (request: IncomingMessage, response: ServerResponse) => void;
  /**
   * How many of Express's layers (from the first) the fast path replaces: Nest's request hooks
   * (none may be set), `observe`, the JSON parser and `refuseBody`.
   */
  replacedLayers: number;
  /** The body parser's error handler (a refused body is audited and answered as JSON-RPC). */
  refuseBody: (
    error: unknown,
    request: Request,
    response: Response,
    next: NextFunction,
  ) => Promise<void>;
}

/** A JSON body as express.json() parses it: a declared length, no encoding, UTF-8 (or unnamed). */
const PLAIN_JSON = /^application\/json\s*(?:;\s*charset\s*=\s*(?:utf-8|"utf-8")\s*)?$/i;
const DIGITS = /^\d{1,15}$/;

/**
 * A request the fast path takes: POST to exactly the MCP path (no query string), a JSON body of
 * declared length within the limit, not compressed, not chunked. Everything else goes to Express,
 * whose answers (415, 413, inflating, charsets) stay its own.
 */
function takes(request: IncomingMessage, mcpPath: string, maxBodyBytes: number): number {
  if (request.method !== 'POST' || request.url !== mcpPath) return 0;
  const headers: IncomingHttpHeaders = request.headers;
  const length = headers['content-length'];
  if (
    length === undefined ||
    !DIGITS.test(length) ||
    headers['transfer-encoding'] !== undefined ||
    headers['content-encoding'] !== undefined ||
    !PLAIN_JSON.test(headers['content-type'] ?? '')
  )
    return 0;
  const bytes = Number(length);
  return bytes > 0 && bytes <= maxBodyBytes ? bytes : 0;
}

/** The body, or undefined when the request broke off before its end. */
function readBody(request: IncomingMessage, length: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    request.on('data', (chunk: Buffer) => {
      received += chunk.length;
      // Node's parser never passes more than Content-Length; a backstop all the same.
      if (received > length) request.destroy();
      else chunks.push(chunk);
    });
    request.once('end', () =>
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received)),
    );
    request.once('error', () => resolve(undefined));
    request.once('close', () => {
      if (!request.complete) resolve(undefined);
    });
  });
}

/** As body-parser's json() in strict mode: an object or array, a BOM dropped; else its 400. */
const STRICT_START = /^[ \t\n\r]*[{[]/;
function parseJson(body: Buffer): unknown {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (!STRICT_START.test(text)) throw parseError();
  try {
    return JSON.parse(text);
  } catch {
    throw parseError();
  }
}

function parseError(): Error {
  return Object.assign(new Error('the request body is not valid JSON'), {
    status: 400,
    type: 'entity.parse.failed',
  });
}

interface ExpressLayer {
  match(path: string): unknown;
  route?: { _handlesMethod(method: string): boolean };
}
interface ExpressRouter {
  stack: ExpressLayer[];
  handle(request: Request, response: Response, done: (error?: unknown) => void): void;
}
interface ExpressApp {
  (request: IncomingMessage, response: ServerResponse): void;
  request: object;
  response: object;
  router: ExpressRouter;
}

/** Why the fast path cannot serve this app, if it cannot: then Express serves every request. */
function obstacle(app: NestExpressApplication, express: ExpressApp): string | undefined {
  const adapter = app.getHttpAdapter() as unknown as {
    onRequestHook?: unknown;
    onResponseHook?: unknown;
  };
  if (adapter.onRequestHook || adapter.onResponseHook) return 'request hooks are set';
  const listeners = app.getHttpServer().listeners('request');
  if (listeners.length !== 1 || listeners[0] !== express)
    return 'the HTTP server has request listeners besides Express';
  return undefined;
}

/**
 * Express's router with only the layers it would run for `POST <mcpPath>` after the first
 * `replaced` (those the fast path runs itself): Nest's middleware for the route (Origin, and any an
 * extension applies), the route, Nest's not-found and error handlers. Express's own code runs
 * them; the layers any other request needs are not looked at.
 */
function routerFor(express: ExpressApp, mcpPath: string, replaced: number): ExpressRouter {
  const layers = express.router.stack
    .slice(replaced)
    .filter(
      (layer) => layer.match(mcpPath) && (!layer.route || layer.route._handlesMethod('post')),
    );
  return Object.assign(Object.create(express.router) as ExpressRouter, { stack: layers });
}

/**
 * Puts the fast path in front of Express for POST requests to the MCP endpoint. Per request, as
 * Express would: its own set-up (prototypes, so guards and filters see an Express request), the
 * first middleware (`observe`), the JSON body (as express.json(), its refusals answered by the
 * same handler), then Express's router on the layers for `POST /mcp` (routerFor): Nest's Origin
 * middleware and the route itself, with its guards (authentication, rate limit, scopes),
 * interceptors, handler and exception filters.
 * Returns why it is off, or undefined when it is on.
 */
export function installMcpFastPath(
  app: NestExpressApplication,
  steps: FastPathSteps,
): string | undefined {
  const express = app.getHttpAdapter().getInstance() as unknown as ExpressApp;
  const reason = obstacle(app, express);
  if (reason) return reason;
  const router = routerFor(express, steps.mcpPath, steps.replacedLayers);
  const logger = new Logger('McpFastPath');
  const { mcpPath, maxBodyBytes, observe, refuseBody } = steps;

  /** What follows the last layer (Nest's own handlers answer first): a 404, or a 500 on error. */
  const done = (response: ServerResponse) => (error?: unknown) => {
    if (error) logger.error(`POST ${mcpPath} failed`, error instanceof Error ? error.stack : error);
    if (response.headersSent) return void response.destroy();
    const status = error ? 500 : 404;
    const text = JSON.stringify({ statusCode: status });
    response.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': text.length,
    });
    response.end(text);
  };

  const serve = async (incoming: IncomingMessage, outgoing: ServerResponse, length: number) => {
    // Express's own set-up of a request (application.handle, router.handle).
    const request = Object.setPrototypeOf(incoming, express.request) as Request;
    const response = Object.setPrototypeOf(outgoing, express.response) as Response;
    Object.assign(request, { res: response });
    Object.assign(response, { req: request, locals: Object.create(null) as object });
    observe(request, response);
    const body = await readBody(request, length);
    if (body === undefined) return; // the client went away; there is no one to answer
    try {
      request.body = parseJson(body);
    } catch (error) {
      return refuseBody(error, request, response, done(response));
    }
    router.handle(request, response, done(response));
  };

  const server = app.getHttpServer();
  server.removeListener('request', express);
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const length = takes(request, mcpPath, maxBodyBytes);
    if (length === 0) return express(request, response);
    serve(request, response, length).catch(done(response));
  });
  return undefined;
}
