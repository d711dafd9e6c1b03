/** Tables and a view whose reads compile to the page and lookup shapes the inline reader judges. */
export const PAGE_SCHEMA = `
  CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, name TEXT, category INTEGER, price REAL);
  CREATE INDEX items_category ON items (category);
  CREATE TABLE pairs (a INTEGER, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
  CREATE TABLE owners (id INTEGER PRIMARY KEY, item_id INTEGER, name TEXT);
  CREATE VIEW item_names AS SELECT id, name FROM items;
`;
