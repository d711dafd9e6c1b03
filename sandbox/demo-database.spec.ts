import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DEMO_SIZES, seedDemoDatabase } from './demo-database.js';

const TABLES = ['customers', 'products', 'orders', 'order_items'];

function digest(path: string): Record<string, string> {
  const db = new Database(path, { readonly: true });
  try {
    return Object.fromEntries(
      TABLES.map((table) => [
        table,
        createHash('sha256')
          .update(JSON.stringify(db.prepare(`SELECT * FROM ${table} ORDER BY id`).all()))
          .digest('hex'),
      ]),
    );
  } finally {
    db.close();
  }
}

describe(seedDemoDatabase.name, () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-demo-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the shop schema with a few thousand rows, its directory included', () => {
    const path = join(dir, 'data', 'demo.sqlite');

    expect(seedDemoDatabase(path)).toBe(true);

    const db = new Database(path, { readonly: true });
    try {
      const count = (table: string) =>
        (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      expect(count('customers')).toBe(DEMO_SIZES.customers);
      expect(count('products')).toBe(DEMO_SIZES.products);
      expect(count('orders')).toBe(DEMO_SIZES.orders);
      expect(count('order_items')).toBeGreaterThan(DEMO_SIZES.orders);
      expect(db.pragma('foreign_key_check')).toEqual([]);
      expect(
        db.prepare('SELECT count(*) AS n FROM order_totals WHERE total_cents > 0').get(),
      ).toEqual({ n: DEMO_SIZES.orders });
    } finally {
      db.close();
    }
  });

  it('is deterministic: two databases hold the same rows', () => {
    seedDemoDatabase(join(dir, 'a.sqlite'));
    seedDemoDatabase(join(dir, 'b.sqlite'));

    expect(digest(join(dir, 'a.sqlite'))).toEqual(digest(join(dir, 'b.sqlite')));
  });

  it('leaves an existing demo database alone, changes included', () => {
    const path = join(dir, 'demo.sqlite');
    seedDemoDatabase(path);
    const db = new Database(path);
    db.prepare('DELETE FROM order_items WHERE order_id = 1').run();
    db.close();
    const changed = digest(path);

    expect(seedDemoDatabase(path)).toBe(false);
    expect(digest(path)).toEqual(changed);
  });
});
