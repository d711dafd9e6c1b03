import { RateLimiter } from './rate-limiter.js';

describe(RateLimiter.name, () => {
  const T0 = 1_000_000;

  it('allows `limit` hits per window and refuses the next with the seconds left', () => {
    const sut = new RateLimiter();

    const hits = [0, 1, 2].map((i) => sut.hit('sub:a', 2, 60_000, T0 + i * 1000));

    expect(hits.map((hit) => hit.allowed)).toEqual([true, true, false]);
    expect(hits[2].retryAfterS).toBe(58);
  });

  it('counts each key separately', () => {
    const sut = new RateLimiter();
    sut.hit('sub:a', 1, 60_000, T0);

    expect(sut.hit('sub:a', 1, 60_000, T0).allowed).toBe(false);
    expect(sut.hit('sub:b', 1, 60_000, T0).allowed).toBe(true);
  });

  it('starts a fresh window once the last one has ended', () => {
    const sut = new RateLimiter();
    sut.hit('ip:1', 1, 60_000, T0);
    sut.hit('ip:1', 1, 60_000, T0 + 1);

    expect(sut.hit('ip:1', 1, 60_000, T0 + 60_000)).toEqual({ allowed: true, retryAfterS: 60 });
  });
});
