import { MemoryRateLimiter } from './memory-rate-limiter.js';

describe(MemoryRateLimiter.name, () => {
  const T0 = 1_000_000;

  it('allows `limit` hits per window and refuses the next with the seconds left', async () => {
    const sut = new MemoryRateLimiter();

    const hits = [];
    for (const i of [0, 1, 2]) hits.push(await sut.hit('sub:a', 2, 60_000, T0 + i * 1000));

    expect(hits.map((hit) => hit.allowed)).toEqual([true, true, false]);
    expect(hits[2].retryAfterS).toBe(58);
  });

  it('counts each key separately', async () => {
    const sut = new MemoryRateLimiter();
    await sut.hit('sub:a', 1, 60_000, T0);

    expect((await sut.hit('sub:a', 1, 60_000, T0)).allowed).toBe(false);
    expect((await sut.hit('sub:b', 1, 60_000, T0)).allowed).toBe(true);
  });

  it('starts a fresh window once the last one has ended', async () => {
    const sut = new MemoryRateLimiter();
    await sut.hit('ip:1', 1, 60_000, T0);
    await sut.hit('ip:1', 1, 60_000, T0 + 1);

    expect(await sut.hit('ip:1', 1, 60_000, T0 + 60_000)).toEqual({
      allowed: true,
      retryAfterS: 60,
    });
  });

  it('says it counts in memory', () => {
    expect(new MemoryRateLimiter().state()).toEqual({ store: 'memory' });
  });
});
