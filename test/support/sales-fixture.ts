/**
 * A small sales database in the demo schema's shape (sandbox/demo-database.ts), for the reports
 * example: plain SQL that SQLite and PostgreSQL both take. Its totals, by hand:
 * - 2026-01: order 1 (Ada, 2 x 1000) = 2000;
 * - 2026-02: orders 2 (Ada, 5000) and 3 (Ben, 3 x 2000) = 11000; order 4 (Chloé) is cancelled;
 * - 2026-03: order 5 (Ben, 700 + 2 x 150) = 1000.
 */
export const SALES_FIXTURE = [
  `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
     country TEXT NOT NULL, created_at TEXT NOT NULL)`,
  `CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
     status TEXT NOT NULL, ordered_at TEXT NOT NULL)`,
  `CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
     product_id INTEGER NOT NULL, quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL)`,
  `INSERT INTO customers VALUES
     (1, 'Ada', 'ada@example.com', 'FR', '2025-12-01'),
     (2, 'Ben', 'ben@example.com', 'DE', '2025-12-02'),
     (3, 'Chloé', 'chloe@example.com', 'FR', '2025-12-03')`,
  `INSERT INTO orders VALUES
     (1, 1, 'paid', '2026-01-05T10:00:00Z'),
     (2, 1, 'delivered', '2026-02-10T10:00:00Z'),
     (3, 2, 'paid', '2026-02-11T10:00:00Z'),
     (4, 3, 'cancelled', '2026-02-12T10:00:00Z'),
     (5, 2, 'shipped', '2026-03-01T10:00:00Z')`,
  `INSERT INTO order_items VALUES
     (1, 1, 1, 2, 1000), (2, 2, 1, 1, 5000), (3, 3, 2, 3, 2000),
     (4, 4, 3, 10, 9999), (5, 5, 1, 1, 700), (6, 5, 2, 2, 150)`,
];

export const REVENUE_BY_MONTH_ALL = [
  { month: '2026-01', orders: 1, revenue_cents: 2000 },
  { month: '2026-02', orders: 2, revenue_cents: 11000 },
  { month: '2026-03', orders: 1, revenue_cents: 1000 },
];
