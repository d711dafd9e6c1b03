import { RowCollector, rowText } from './result-rows.js';

describe('rowText', () => {
  const limits = { maxRows: 10, maxBytes: 1_000, maxCellChars: 5 };

  it('is the JSON the byte budget counted for a kept row: shortened cells as sent', () => {
    const collector = new RowCollector<unknown[]>(limits);
    collector.add([1, 'abcdefgh', 2n, null]);
    const [row] = collector.rows;
    expect(rowText(row)).toBe(JSON.stringify(row));
    expect(rowText(row)).toBe('[1,"abcde…[3 more characters]","2",null]');
  });

  it('renders a row no collector kept (one that came from a worker process)', () => {
    expect(rowText({ id: 1, name: 'x' })).toBe('{"id":1,"name":"x"}');
  });

  it('keeps nothing for a row that did not fit', () => {
    const collector = new RowCollector<unknown[]>({ ...limits, maxBytes: 8 });
    expect(collector.add(['0123456789'])).toBe(false);
    expect(collector.rows).toEqual([]);
  });
});
