/**
 * ISO-8601 durations as the original read them with Java's `Duration.parse`: `[-]PnDTnHnMn.nS`, each
 * number optionally signed, case-insensitive, fractional seconds up to nine digits. We also accept `PnW`
 * (weeks are a fixed length). Months and years are calendar-dependent and rejected, as Java rejects them.
 */
const JAVA_DURATION =
  /^([-+]?)P(?:([-+]?\d+)D)?(T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+)(?:[.,](\d{0,9}))?S)?)?$/i;
const WEEKS = /^([-+]?)P([-+]?\d+)W$/i;
const CALENDAR = /^[-+]?P(?:[-+]?\d+Y)?(?:[-+]?\d+M)?(?:[-+]?\d+W)?(?:[-+]?\d+D)?(?:T.*)?$/i;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Beyond this a due time leaves the range of JavaScript dates; no scheduler needs a 100-year period. */
export const MAX_PERIOD_MS = 36_500 * DAY;

export class PeriodError extends Error {}

/** Parses a period into milliseconds, or throws PeriodError saying what is wrong (without the field name). */
export function parsePeriod(text: string): number {
  const ms = parseSigned(text.trim());
  if (ms < 0) throw new PeriodError('must not be negative');
  if (ms > MAX_PERIOD_MS) throw new PeriodError('must be at most 36500 days (P36500D)');
  return ms;
}

function parseSigned(text: string): number {
  const weeks = WEEKS.exec(text);
  if (weeks) return sign(weeks[1]) * Number(weeks[2]) * 7 * DAY;
  const m = JAVA_DURATION.exec(text);
  // Java requires at least one component, and a `T` must be followed by one.
  if (!m || text.toUpperCase().endsWith('T') || !(m[2] ?? m[4] ?? m[5] ?? m[6])) {
    if (/[YM]/i.test(text.split(/T/i)[0]) && CALENDAR.test(text)) {
      throw new PeriodError('months and years are calendar-dependent and not supported (use days, e.g. P30D)');
    }
    throw new PeriodError('must be an ISO-8601 duration such as PT30S, PT5M, PT1H, P1D or P1DT12H');
  }
  const [, whole, days, , hours, minutes, seconds, fraction] = m;
  const secondsSign = seconds?.startsWith('-') ? -1 : 1;
  const fractionMs = fraction ? Math.trunc(Number(`0.${fraction}`) * 1000) * secondsSign : 0;
  const total =
    Number(days ?? 0) * DAY +
    Number(hours ?? 0) * HOUR +
    Number(minutes ?? 0) * MINUTE +
    Number(seconds ?? 0) * SECOND +
    fractionMs;
  return sign(whole) * total;
}

function sign(s: string): number {
  return s === '-' ? -1 : 1;
}
