import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  country TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents > 0),
  stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
  ordered_at TEXT NOT NULL
);
CREATE TABLE order_items (
  id INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents > 0)
);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX order_items_order ON order_items(order_id);
CREATE INDEX order_items_product ON order_items(product_id);
CREATE VIEW order_totals AS
  SELECT o.id AS order_id, o.customer_id, o.status, o.ordered_at,
         SUM(i.quantity * i.unit_price_cents) AS total_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
  GROUP BY o.id;
`;

const FIRST_NAMES = [
  'Ada',
  'Ben',
  'Chloé',
  'Diego',
  'Emma',
  'Farid',
  'Grace',
  'Hiro',
  'Ines',
  'Jonas',
  'Kemi',
  'Liam',
  'Mei',
  'Noah',
  'Olga',
  'Priya',
  'Quentin',
  'Rosa',
  'Sven',
  'Tariq',
  'Uma',
  'Viktor',
  'Wen',
  'Yara',
  'Zoe',
];
const LAST_NAMES = [
  'Andersen',
  'Brown',
  'Costa',
  'Dubois',
  'Eriksson',
  'Fischer',
  'García',
  'Hansen',
  'Ito',
  'Jansen',
  'Kowalski',
  'Lopez',
  'Müller',
  'Nakamura',
  'Okafor',
  'Petrov',
  'Rossi',
  'Silva',
  'Tanaka',
  'Wójcik',
];
const COUNTRIES = ['DE', 'FR', 'GB', 'US', 'JP', 'BR', 'NG', 'IN', 'SE', 'ES', 'PL', 'CA'];
const CATALOGUE: Record<string, readonly string[]> = {
  Coffee: [
    'Espresso beans 1 kg',
    'Filter roast 500 g',
    'Decaf beans 250 g',
    'Cold brew concentrate',
    'Single-origin sampler',
  ],
  Equipment: [
    'Burr grinder',
    'Pour-over dripper',
    'Gooseneck kettle',
    'Milk frother',
    'Espresso tamper',
    'Digital scale',
    'French press',
  ],
  Tea: [
    'Sencha 100 g',
    'Earl Grey 100 g',
    'Rooibos 100 g',
    'Jasmine pearls 50 g',
    'Chai blend 200 g',
  ],
  Accessories: [
    'Ceramic mug',
    'Travel tumbler',
    'Paper filters (100)',
    'Cleaning tablets',
    'Cup sleeve set',
    'Tea infuser',
  ],
  Snacks: [
    'Almond biscotti',
    'Dark chocolate bar',
    'Oat cookies',
    'Stroopwafels',
    'Salted caramels',
  ],
};
const STATUSES = [
  'pending',
  'paid',
  'shipped',
  'delivered',
  'delivered',
  'delivered',
  'cancelled',
] as const;

export const DEMO_SIZES = { customers: 400, products: 56, orders: 2000 } as const;

/** Mulberry32: the same rows on every machine. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ascii(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[^a-zA-Z]/g, '')
    .toLowerCase();
}

/**
 * Creates and fills the demo shop database at `path` unless it already has its tables. Returns
 * whether it seeded. Deterministic: the same seed gives the same rows.
 */
export function seedDemoDatabase(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    const exists = db
      .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'customers'")
      .get();
    if (exists) return false;
    const next = random(20260801);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
    const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
    const day = (offsetDays: number) =>
      new Date(Date.UTC(2025, 0, 1) + offsetDays * 86_400_000 + between(0, 86_399) * 1000)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z');

    db.transaction(() => {
      db.exec(SCHEMA);
      const customer = db.prepare(
        'INSERT INTO customers (id, name, email, country, created_at) VALUES (?, ?, ?, ?, ?)',
      );
      for (let id = 1; id <= DEMO_SIZES.customers; id++) {
        const first = pick(FIRST_NAMES);
        const last = pick(LAST_NAMES);
        const email = `${ascii(first)}.${ascii(last)}${id}@example.com`;
        customer.run(id, `${first} ${last}`, email, pick(COUNTRIES), day(between(0, 364)));
      }

      const product = db.prepare(
        'INSERT INTO products (id, sku, name, category, price_cents, stock) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const prices: number[] = [0];
      let productId = 0;
      for (const [category, names] of Object.entries(CATALOGUE))
        for (const [variant, base] of names.entries()) {
          for (const edition of ['', ' (gift box)']) {
            productId++;
            const price = between(3, 180) * 50 + (edition ? 900 : 0);
            prices[productId] = price;
            const sku = `${category.slice(0, 3).toUpperCase()}-${String(variant + 1).padStart(2, '0')}${edition ? 'G' : ''}`;
            product.run(productId, sku, `${base}${edition}`, category, price, between(0, 400));
          }
        }

      const order = db.prepare(
        'INSERT INTO orders (id, customer_id, status, ordered_at) VALUES (?, ?, ?, ?)',
      );
      const item = db.prepare(
        'INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?)',
      );
      for (let id = 1; id <= DEMO_SIZES.orders; id++) {
        order.run(id, between(1, DEMO_SIZES.customers), pick(STATUSES), day(between(30, 700)));
        const lines = between(1, 4);
        const chosen = new Set<number>();
        while (chosen.size < lines) chosen.add(between(1, productId));
        for (const productOfLine of chosen)
          item.run(id, productOfLine, between(1, 3), prices[productOfLine]);
      }
    })();
    return true;
  } finally {
    db.close();
  }
}
