import { seedDemoDatabase } from '../../sandbox/demo-database.js';
import { type SandboxIssuer, startSandboxIssuer } from '../../sandbox/issuer.js';
import { freePort, startTestApp, type TestApp } from './app.js';

export interface Sandbox {
  issuer: SandboxIssuer;
  app: TestApp;
  close(): Promise<void>;
}

/** What `npm run dev` runs, in-process: the sandbox issuer and the real app on the demo data. */
export async function startSandbox(env: Record<string, string> = {}): Promise<Sandbox> {
  const port = await freePort();
  const issuer = await startSandboxIssuer({ port: 0, resourceUrl: `http://localhost:${port}/mcp` });
  const app = await startTestApp(
    { PORT: String(port), AUTH_ISSUER: issuer.url, ...env },
    { prepareDatabase: (path) => seedDemoDatabase(path) },
  );
  return {
    issuer,
    app,
    close: async () => {
      await app.close();
      await issuer.close();
    },
  };
}
