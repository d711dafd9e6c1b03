/** A row of the `items` table the row tools' specs change. */
export interface Item {
  id: number;
  name: string;
  qty: number | null;
  tag: string | null;
}

/** The rows the row tools' specs start from: a NULL in each nullable column. */
export const ITEMS: readonly Item[] = [
  { id: 1, name: 'apple', qty: 5, tag: 'fruit' },
  { id: 2, name: 'banana', qty: 10, tag: 'fruit' },
  { id: 3, name: 'carrot', qty: 0, tag: 'veg' },
  { id: 4, name: 'date', qty: null, tag: 'fruit' },
  { id: 5, name: 'eggplant', qty: 20, tag: null },
];

/** `rows` once the rows of these ids were updated (tag set to 'hit') or deleted. */
export const itemsAfter = (
  rows: readonly Item[],
  change: 'update' | 'delete',
  ids: number[],
): Item[] =>
  change === 'update'
    ? rows.map((item) => (ids.includes(item.id) ? { ...item, tag: 'hit' } : item))
    : rows.filter((item) => !ids.includes(item.id));
