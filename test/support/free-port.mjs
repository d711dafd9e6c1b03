// Plain JavaScript, shared by the specs (through app.ts) and `npm run bench` (bench/run.mjs).
import { createServer } from 'node:net';

/**
 * A TCP port free on loopback right now (the OS picks it; it is closed again at once).
 * @returns {Promise<number>}
 */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(resolve));
  return port;
}
