import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A checkbox of the consent form, as a browser would show it. */
export interface OfferedScope {
  scope: string;
  checked: boolean;
  disabled: boolean;
}

export interface HeadlessUserAgentOptions {
  username: string;
  password: string;
  /** The scopes to submit at the consent page; by default what the form has checked. */
  consent?: (offered: readonly OfferedScope[]) => readonly string[];
  /**
   * The consent form's button to press: by default Allow if the form has one, else its only
   * button; `allow` on a form without one is a forged submission.
   */
  decision?: 'allow' | 'deny';
}

interface Cookie {
  name: string;
  value: string;
  path: string;
}

interface Form {
  action: string;
  fields: [string, string][];
  checkboxes: (OfferedScope & { name: string })[];
  /** The values of its `decision` buttons. */
  decisions: string[];
}

const MAX_STEPS = 20;

function attribute(tag: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return match ? decodeEntities(match[1]) : undefined;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function parseForm(html: string): Form | undefined {
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/.exec(html);
  if (!form) return undefined;
  const action = attribute(form[0].slice(0, form[0].indexOf('>') + 1), 'action') ?? '';
  const fields: [string, string][] = [];
  const checkboxes: Form['checkboxes'] = [];
  for (const [tag] of form[1].matchAll(/<input\b[^>]*>/g)) {
    const name = attribute(tag, 'name');
    if (!name) continue;
    if (attribute(tag, 'type') === 'checkbox')
      checkboxes.push({
        name,
        scope: attribute(tag, 'value') ?? 'on',
        checked: /\schecked\b/.test(tag),
        disabled: /\sdisabled\b/.test(tag),
      });
    else if (attribute(tag, 'type') === 'hidden')
      fields.push([name, attribute(tag, 'value') ?? '']);
  }
  const decisions = [...form[1].matchAll(/<button\b[^>]*>/g)]
    .filter(([tag]) => attribute(tag, 'name') === 'decision')
    .map(([tag]) => attribute(tag, 'value') ?? '');
  return { action, fields, checkboxes, decisions };
}

/**
 * A browser without a screen: keeps cookies per host and path, follows redirects, fills in the
 * sandbox's login form and answers its consent form. The redirect_uri is a real loopback server.
 */
export class HeadlessUserAgent {
  private readonly cookies = new Map<string, Cookie[]>();
  /** Every page the agent was shown, by kind, for assertions. */
  readonly pages: { kind: 'login' | 'consent'; url: string; html: string }[] = [];

  constructor(private options: HeadlessUserAgentOptions) {}

  /** Changes how the next consent is answered (the same browser, so the same session). */
  answer(options: Partial<HeadlessUserAgentOptions>): void {
    this.options = { ...this.options, ...options };
  }

  /** Opens `url` and goes wherever it leads until a page without a form; returns that URL. */
  async open(url: URL): Promise<URL> {
    let request: { url: URL; method: 'GET' | 'POST'; body?: URLSearchParams } = {
      url,
      method: 'GET',
    };
    for (let step = 0; step < MAX_STEPS; step++) {
      const response = await fetch(request.url, {
        method: request.method,
        redirect: 'manual',
        headers: {
          Accept: 'text/html',
          ...(this.cookieHeader(request.url) && { Cookie: this.cookieHeader(request.url) }),
          ...(request.body && { 'Content-Type': 'application/x-www-form-urlencoded' }),
        },
        body: request.body?.toString(),
      });
      this.store(request.url, response.headers.getSetCookie());
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel();
        request = { url: new URL(location, request.url), method: 'GET' };
        continue;
      }
      const html = await response.text();
      const form = parseForm(html);
      if (!form) {
        if (!response.ok)
          throw new Error(`${request.url.href} answered ${response.status}: ${html.slice(0, 500)}`);
        return request.url;
      }
      request = { url: new URL(form.action, request.url), method: 'POST', body: this.fill(form) };
      this.pages.push({
        kind: form.action.endsWith('/login') ? 'login' : 'consent',
        url: response.url || request.url.href,
        html,
      });
    }
    throw new Error(`more than ${MAX_STEPS} steps from ${url.href}`);
  }

  private fill(form: Form): URLSearchParams {
    const body = new URLSearchParams(form.fields);
    if (form.action.endsWith('/login')) {
      body.set('username', this.options.username);
      body.set('password', this.options.password);
      return body;
    }
    const offered = form.checkboxes.map(({ scope, checked, disabled }) => ({
      scope,
      checked,
      disabled,
    }));
    const chosen = this.options.consent
      ? this.options.consent(offered)
      : offered.filter((item) => item.checked && !item.disabled).map((item) => item.scope);
    for (const scope of chosen) body.append('scope', scope);
    const offeredDecision = form.decisions.includes('allow') ? 'allow' : form.decisions[0];
    body.set('decision', this.options.decision ?? offeredDecision ?? 'allow');
    return body;
  }

  private cookieHeader(url: URL): string {
    return (this.cookies.get(url.host) ?? [])
      .filter((cookie) => url.pathname.startsWith(cookie.path))
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join('; ');
  }

  private store(url: URL, setCookies: string[]): void {
    const jar = this.cookies.get(url.host) ?? [];
    for (const header of setCookies) {
      const [pair, ...attributes] = header.split(';').map((part) => part.trim());
      const separator = pair.indexOf('=');
      const name = pair.slice(0, separator);
      const value = pair.slice(separator + 1);
      const path =
        attributes.find((item) => /^path=/i.test(item))?.slice(5) ||
        url.pathname.replace(/\/[^/]*$/, '') ||
        '/';
      const expired = attributes.some(
        (item) =>
          /^max-age=0$/i.test(item) ||
          (/^expires=/i.test(item) && Date.parse(item.slice(8)) <= Date.now()),
      );
      const rest = jar.filter((cookie) => !(cookie.name === name && cookie.path === path));
      jar.length = 0;
      jar.push(...rest);
      if (!expired) jar.push({ name, value, path });
    }
    this.cookies.set(url.host, jar);
  }
}

/** The loopback redirect_uri of a native MCP client: records what each callback carried. */
export class LoopbackCallback {
  readonly received: URLSearchParams[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<LoopbackCallback> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const callback = new LoopbackCallback(server, `http://127.0.0.1:${port}/callback`);
    server.on('request', (request, response) => {
      const url = new URL(request.url ?? '/', callback.url);
      if (url.pathname !== '/callback') {
        response.writeHead(404).end();
        return;
      }
      callback.received.push(url.searchParams);
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.end('Signed in; you may close this window.');
    });
    return callback;
  }

  /** The parameters of the latest callback. */
  latest(): URLSearchParams {
    const last = this.received.at(-1);
    if (!last) throw new Error('the authorization server never redirected to the callback');
    return last;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
