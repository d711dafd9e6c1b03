import { TestIssuer } from './support/issuer.js';
import { startTestApp, type TestApp } from './support/app.js';
import { callTool, initialize, postMcp, rpc } from './support/mcp-http.js';

describe('smoke', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  it('works', async () => {
    const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });
    const init = await postMcp(sut.mcpUrl, initialize(), { token });
    console.log(init.status, init.body.slice(0, 500));
    const list = await postMcp(sut.mcpUrl, rpc('tools/list'), { token });
    console.log(list.status, list.body.slice(0, 1500));
    const q = await postMcp(sut.mcpUrl, callTool('query', { sql: 'select 1 as x' }), { token });
    console.log(q.status, q.body.slice(0, 1500));
    const e = await postMcp(sut.mcpUrl, callTool('execute', { sql: 'delete from audit_log' }), { token });
    console.log(e.status, e.headers.get('www-authenticate'), e.body.slice(0, 500));
    expect(init.status).toBe(200);
  });
});
