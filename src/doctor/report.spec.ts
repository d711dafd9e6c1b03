import { Report } from './report.js';

describe(Report.name, () => {
  let lines: string[];
  let sut: Report;
  beforeEach(() => {
    lines = [];
    sut = new Report((line) => lines.push(line));
  });

  it('writes one line per check and the fix under a failure', () => {
    sut.ok('discovery', 'answers');
    sut.fail('issuer', 'differs', 'set AUTH_ISSUER');
    sut.skip('algorithms', 'no keys');
    sut.warn('PUBLIC_URL', 'is loopback');

    expect(lines).toEqual([
      'ok    discovery: answers',
      'FAIL  issuer: differs',
      '      fix: set AUTH_ISSUER',
      'skip  algorithms: no keys',
      'warn  PUBLIC_URL: is loopback',
    ]);
    expect(sut.failures).toBe(1);
  });

  it('never writes a hidden secret, whatever a check puts in a line', () => {
    sut.hide('eyJ.secret.sig');
    sut.fail('token', 'got eyJ.secret.sig twice: eyJ.secret.sig', 'not eyJ.secret.sig');

    expect(lines).toEqual(['FAIL  token: got <token> twice: <token>', '      fix: not <token>']);
  });

  it('sums up failures and warnings', () => {
    sut.fail('a', 'b', 'c');
    sut.fail('d', 'e', 'f');
    sut.warn('g', 'h');
    sut.summary();

    expect(lines.at(-1)).toBe(
      '\n2 checks failed, 1 warning: apply the fixes above, then run npm run doctor again.',
    );
  });

  it('says when every check passed', () => {
    sut.ok('a', 'b');
    sut.summary();

    expect(lines.at(-1)).toBe('\nAll checks passed.');
  });
});
