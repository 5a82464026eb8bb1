import { CronError, CronSchedule, nextCronDue, parseCron } from './cron-schedule';

/** The fires strictly after `from` (ISO), as ISO instants. Fixed clocks: nothing here reads the time. */
function fires(expression: string, zone: string, from: string, count: number): string[] {
  const s = new CronSchedule(expression, zone);
  const out: string[] = [];
  let t = Date.parse(from);
  for (let i = 0; i < count; i++) {
    const next = s.next(t);
    if (next === null) break;
    out.push(new Date(next).toISOString());
    t = next;
  }
  return out;
}

const z = (iso: string) => new Date(iso).toISOString();

describe('CronSchedule DST policy (README "Cron plans and DST")', () => {
  describe('America/New_York (2026: spring forward 8 March 02:00 EST → 03:00 EDT; fall back 1 November 02:00 EDT → 01:00 EST)', () => {
    const NY = 'America/New_York';

    it('30 2 * * * on the spring-forward day fires once, at 03:00 EDT, the first valid instant after the skipped 02:30', () => {
      expect(fires('30 2 * * *', NY, '2026-03-07T00:00:00Z', 3)).toEqual([
        z('2026-03-07T07:30:00Z'), // 02:30 EST
        z('2026-03-08T07:00:00Z'), // 03:00 EDT (02:30 does not exist)
        z('2026-03-09T06:30:00Z'), // 02:30 EDT
      ]);
    });

    it('30 2 * * * across fall back fires once a day (02:30 is not repeated)', () => {
      expect(fires('30 2 * * *', NY, '2026-10-31T00:00:00Z', 3)).toEqual([
        z('2026-10-31T06:30:00Z'), // 02:30 EDT
        z('2026-11-01T07:30:00Z'), // 02:30 EST
        z('2026-11-02T07:30:00Z'),
      ]);
    });

    it('30 1 * * * on the fall-back day fires once, at the first 01:30 (EDT)', () => {
      expect(fires('30 1 * * *', NY, '2026-10-31T12:00:00Z', 2)).toEqual([z('2026-11-01T05:30:00Z'), z('2026-11-02T06:30:00Z')]);
    });

    it('an expression naming its hours fires a repeated local time once (0 1-3, 15,45 1)', () => {
      expect(fires('0 1-3 * * *', NY, '2026-11-01T04:30:00Z', 3)).toEqual([
        z('2026-11-01T05:00:00Z'), // 01:00 EDT
        z('2026-11-01T07:00:00Z'), // 02:00 EST (the second 01:00 is skipped)
        z('2026-11-01T08:00:00Z'), // 03:00 EST
      ]);
      expect(fires('15,45 1 * * *', NY, '2026-11-01T04:30:00Z', 3)).toEqual([
        z('2026-11-01T05:15:00Z'), z('2026-11-01T05:45:00Z'), z('2026-11-02T06:15:00Z'),
      ]);
    });

    it('several skipped local times fire once, together, at the transition (15,45 2)', () => {
      expect(fires('15,45 2 * * *', NY, '2026-03-08T05:00:00Z', 3)).toEqual([
        z('2026-03-08T07:00:00Z'), z('2026-03-09T06:15:00Z'), z('2026-03-09T06:45:00Z'),
      ]);
    });

    it('0 * * * * fires every elapsed hour across spring forward: 01:00 EST, then 03:00 EDT, one hour later', () => {
      expect(fires('0 * * * *', NY, '2026-03-08T05:30:00Z', 3)).toEqual([
        z('2026-03-08T06:00:00Z'), z('2026-03-08T07:00:00Z'), z('2026-03-08T08:00:00Z'),
      ]);
    });

    it('0 * * * * fires every elapsed hour across fall back: 01:00 EDT and 01:00 EST, an hour apart', () => {
      expect(fires('0 * * * *', NY, '2026-11-01T04:30:00Z', 4)).toEqual([
        z('2026-11-01T05:00:00Z'), z('2026-11-01T06:00:00Z'), z('2026-11-01T07:00:00Z'), z('2026-11-01T08:00:00Z'),
      ]);
    });

    it('*/30 * * * * runs in both passes of the repeated hour (elapsed time), every 30 minutes', () => {
      const out = fires('*/30 * * * *', NY, '2026-11-01T04:50:00Z', 6);
      expect(out).toEqual([
        z('2026-11-01T05:00:00Z'), z('2026-11-01T05:30:00Z'), z('2026-11-01T06:00:00Z'),
        z('2026-11-01T06:30:00Z'), z('2026-11-01T07:00:00Z'), z('2026-11-01T07:30:00Z'),
      ]);
    });
  });

  describe('Europe/London (2026: spring forward 29 March 01:00 GMT → 02:00 BST; fall back 25 October 02:00 BST → 01:00 GMT)', () => {
    const LON = 'Europe/London';

    it('30 2 * * * is untouched by either transition (the gap and the repeat are 01:00–02:00)', () => {
      expect(fires('30 2 * * *', LON, '2026-03-28T00:00:00Z', 3)).toEqual([
        z('2026-03-28T02:30:00Z'), z('2026-03-29T01:30:00Z'), z('2026-03-30T01:30:00Z'),
      ]);
      expect(fires('30 2 * * *', LON, '2026-10-24T00:00:00Z', 3)).toEqual([
        z('2026-10-24T01:30:00Z'), z('2026-10-25T02:30:00Z'), z('2026-10-26T02:30:00Z'),
      ]);
    });

    it('30 1 * * * fires at 02:00 BST on the spring-forward day and once (BST) on the fall-back day', () => {
      expect(fires('30 1 * * *', LON, '2026-03-28T12:00:00Z', 2)).toEqual([z('2026-03-29T01:00:00Z'), z('2026-03-30T00:30:00Z')]);
      expect(fires('30 1 * * *', LON, '2026-10-24T12:00:00Z', 2)).toEqual([z('2026-10-25T00:30:00Z'), z('2026-10-26T01:30:00Z')]);
    });

    it('0 * * * * fires every elapsed hour across both transitions', () => {
      expect(fires('0 * * * *', LON, '2026-03-29T00:30:00Z', 3)).toEqual([
        z('2026-03-29T01:00:00Z'), z('2026-03-29T02:00:00Z'), z('2026-03-29T03:00:00Z'),
      ]);
      expect(fires('0 * * * *', LON, '2026-10-24T23:30:00Z', 4)).toEqual([
        z('2026-10-25T00:00:00Z'), z('2026-10-25T01:00:00Z'), z('2026-10-25T02:00:00Z'), z('2026-10-25T03:00:00Z'),
      ]);
    });
  });

  describe('Asia/Kolkata (UTC+05:30, no DST)', () => {
    it('0 9 * * 1-5 fires at 09:00 IST on weekdays only, across the dates other zones change', () => {
      // Friday 6 March 2026 .. the following Tuesday; New York springs forward on Sunday 8 March.
      expect(fires('0 9 * * 1-5', 'Asia/Kolkata', '2026-03-06T00:00:00Z', 3)).toEqual([
        z('2026-03-06T03:30:00Z'), z('2026-03-09T03:30:00Z'), z('2026-03-10T03:30:00Z'),
      ]);
      expect(fires('0 9 * * 1-5', 'Asia/Kolkata', '2026-10-30T00:00:00Z', 2)).toEqual([z('2026-10-30T03:30:00Z'), z('2026-11-02T03:30:00Z')]);
    });
  });

  describe('six fields and the grid', () => {
    it('*/2 * * * * * fires on even seconds', () => {
      expect(fires('*/2 * * * * *', 'UTC', '2026-01-01T00:00:00.500Z', 3)).toEqual([
        z('2026-01-01T00:00:02Z'), z('2026-01-01T00:00:04Z'), z('2026-01-01T00:00:06Z'),
      ]);
    });

    it('nextCronDue follows the grid, stops after end_at, and coalesces missed fires into the latest one', () => {
      const s = new CronSchedule('0 * * * *', 'UTC');
      const due = Date.parse('2026-01-01T10:00:00Z');
      expect(nextCronDue(s, due, null, due)).toBe(Date.parse('2026-01-01T11:00:00Z'));
      expect(nextCronDue(s, due, due, due)).toBeNull();
      expect(nextCronDue(s, due, due + 1, due)).toBe(Date.parse('2026-01-01T11:00:00Z'));
      // Down from 10:00 until 15:20: one catch-up run for 15:00, then the grid goes on.
      expect(nextCronDue(s, due, null, Date.parse('2026-01-01T15:20:00Z'))).toBe(Date.parse('2026-01-01T15:00:00Z'));
      // One missed fire is simply the next one.
      expect(nextCronDue(s, due, null, Date.parse('2026-01-01T11:20:00Z'))).toBe(Date.parse('2026-01-01T11:00:00Z'));
    });

    it('latestAtOrBefore respects the policy (the second 01:30 is not a fire)', () => {
      const s = new CronSchedule('30 1 * * *', 'America/New_York');
      expect(s.latestAtOrBefore(Date.parse('2026-11-01T06:45:00Z'))).toBe(Date.parse('2026-11-01T05:30:00Z'));
    });

    it('minInterval measures the tightest gap', () => {
      expect(new CronSchedule('*/2 * * * * *', 'UTC').minInterval(0, 50)).toBe(2000);
      expect(new CronSchedule('0,1 0 * * *', 'UTC').minInterval(0, 50)).toBe(60_000);
    });
  });

  describe('times between whole seconds', () => {
    it.each([
      ['0 2 * * *', 'America/New_York', '2026-03-07T07:00:00Z', '2026-03-08T07:00:00Z'],
      ['0 2 * * *', 'America/Chicago', '2026-03-07T08:00:00Z', '2026-03-08T08:00:00Z'],
      ['30 1 * * *', 'Europe/London', '2026-03-28T01:30:00Z', '2026-03-29T01:00:00Z'],
      ['30 2 * * *', 'Australia/Sydney', '2026-10-03T15:30:00Z', '2026-10-03T16:00:00Z'],
      ['0 2 * * *', 'Australia/Lord_Howe', '2026-10-03T15:00:00Z', '2026-10-03T15:30:00Z'],
    ])('%s in %s: the day before the spring-forward fire, from any millisecond, gives the transition', (expression, zone, from, expected) => {
      const s = new CronSchedule(expression, zone);
      const base = Date.parse(from);
      // Found by review: a fractional start made the transition bisection stop moving (an endless loop).
      for (const ms of [1, 250, 499, 500, 501, 999, 1500, 60_123]) expect(new Date(s.next(base + ms)!).toISOString()).toBe(z(expected));
    });

    it('reads any spelling of a zone as its canonical one', () => {
      expect(fires('30 1 * * *', 'america/new_york', '2026-10-31T12:00:00Z', 1)).toEqual([z('2026-11-01T05:30:00Z')]);
    });
  });

  describe('bad input', () => {
    it.each([
      ['* * * *', 'UTC', /5 fields .* or 6 with seconds first, got 4/],
      ['* * * * * * *', 'UTC', /got 7/],
      ['61 * * * *', 'UTC', /minute: 61/],
      ['* * * * *', 'Mars/Base', /IANA time zone/],
      ['0 0 30 2 *', 'UTC', /never fires/],
    ])('%s in %s is refused', (expression, zone, message) => {
      expect(() => parseCron(expression, zone)).toThrow(CronError);
      expect(() => parseCron(expression, zone)).toThrow(message);
    });
  });
});
