import { MAX_PERIOD_MS, parsePeriod, PeriodError } from './period';

describe('parsePeriod (Java Duration.parse semantics plus PnW)', () => {
  it.each([
    ['PT7S', 7000],
    ['pt7s', 7000],
    ['PT0.5S', 500],
    ['PT1,25S', 1250],
    ['PT1.000000001S', 1000],
    ['PT5M', 300_000],
    ['PT1H', 3_600_000],
    ['P1D', 86_400_000],
    ['P1DT12H30M', 86_400_000 + 12 * 3_600_000 + 30 * 60_000],
    ['P2W', 14 * 86_400_000],
    ['PT0S', 0],
    ['PT1H-30M', 1_800_000],
    ['-PT-10S', 10_000],
    ['+PT10S', 10_000],
  ])('%s → %d ms', (text, ms) => {
    expect(parsePeriod(text)).toBe(ms);
  });

  it.each([
    ['P1M', /months and years/],
    ['P1Y', /months and years/],
    ['P1Y2M3D', /months and years/],
    ['', /ISO-8601 duration/],
    ['P', /ISO-8601 duration/],
    ['PT', /ISO-8601 duration/],
    ['P1DT', /ISO-8601 duration/],
    ['7S', /ISO-8601 duration/],
    ['PT1.5H', /ISO-8601 duration/],
    ['PT1S2M', /ISO-8601 duration/],
    ['every minute', /ISO-8601 duration/],
    ['-PT1S', /must not be negative/],
    ['PT-1S', /must not be negative/],
    ['P36501D', /at most 36500 days/],
  ])('rejects %p', (text, message) => {
    expect(() => parsePeriod(text)).toThrow(PeriodError);
    expect(() => parsePeriod(text)).toThrow(message);
  });

  it('accepts exactly the maximum', () => {
    expect(parsePeriod('P36500D')).toBe(MAX_PERIOD_MS);
  });
});
