import type { Adapter, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** ms since the epoch; undefined: no expiry. */
  expiresAt: number | undefined;
}

/**
 * oidc-provider's storage, in memory: the sandbox forgets its clients, sessions and grants when
 * it stops, which is what a development issuer should do. One store for all models.
 */
export class MemoryStore {
  private readonly entries = new Map<string, Entry>();

  adapter(model: string): Adapter {
    const key = (id: string) => `${model}:${id}`;
    const find = (id: string) => this.find(key(id));
    return {
      upsert: (id, payload, expiresIn) => {
        this.sweep();
        this.entries.set(key(id), {
          payload,
          expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
        });
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(find(id)),
      findByUid: (uid) => Promise.resolve(this.findWhere(model, (payload) => payload.uid === uid)),
      findByUserCode: (userCode) =>
        Promise.resolve(this.findWhere(model, (payload) => payload.userCode === userCode)),
      consume: (id) => {
        const entry = find(id);
        if (entry) entry.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy: (id) => {
        this.entries.delete(key(id));
        return Promise.resolve();
      },
      revokeByGrantId: (grantId) => {
        for (const [name, entry] of this.entries)
          if (entry.payload.grantId === grantId) this.entries.delete(name);
        return Promise.resolve();
      },
    };
  }

  private find(name: string): AdapterPayload | undefined {
    const entry = this.entries.get(name);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(name);
      return undefined;
    }
    return entry.payload;
  }

  private findWhere(
    model: string,
    predicate: (payload: AdapterPayload) => boolean,
  ): AdapterPayload | undefined {
    for (const name of this.entries.keys())
      if (name.startsWith(`${model}:`)) {
        const payload = this.find(name);
        if (payload && predicate(payload)) return payload;
      }
    return undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [name, entry] of this.entries)
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.entries.delete(name);
  }
}
