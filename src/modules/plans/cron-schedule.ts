import { Cron } from 'croner';

/**
 * Cron schedules in an IANA time zone, with Karya's daylight-saving policy (README "Cron plans and DST"):
 *
 * - a local time that does not exist (spring forward) fires once, at the first valid instant after it: the
 *   transition itself (02:30 on a New York spring-forward day fires at 03:00 EDT);
 * - a local time that occurs twice (fall back) fires once, at its first occurrence, when the expression
 *   names its hours (`30 1 * * *`, `0 1-3 * * *`);
 * - an expression whose hour field is `*` (`0 * * * *`, `*\/30 * * * *`) runs on elapsed time: it fires in
 *   both passes of the repeated hour, and the hour that spring forward removes is not run at all, because
 *   no time passes in it. Every elapsed hour gets its run, none gets two.
 *
 * croner parses and matches the expression. Its own handling of the transitions is not this policy, nor
 * consistent (measured with croner 11: `30 2 * * *` moved a skipped 02:30 to 03:00 but `15,45 2 * * *`
 * dropped the skipped day's runs; `0 1-3 * * *` fired 01:00 in both passes but `30 1 * * *` once), so every
 * fire it proposes is checked here against the wall clock, and skipped local times are found here.
 */

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;
/** How far past the last fire a spring-forward gap is looked for when the expression fires no more. */
const GAP_HORIZON = 400 * DAY;
/** No real zone moves its clocks by this much or more at once. */
const MAX_SHIFT = 3 * HOUR;

export class CronError extends Error {}

/** 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first: what the API accepts. */
function fieldsOf(expression: string): string[] {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new CronError(
      `must have 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${fields.length}`,
    );
  }
  return fields;
}

/** Throws CronError unless `zone` is an IANA time zone name this runtime knows. */
export function checkTimeZone(zone: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    throw new CronError('must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York');
  }
}

/** Intl formatters are costly to build; one per zone is kept (zones are a small, fixed set). */
const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's UTC offset (ms) at instant `t`. Intl is used because Node has the zone database built in. */
function offsetAt(zone: string, t: number): number {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(zone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - (t - (((t % SECOND) + SECOND) % SECOND));
}

export class CronSchedule {
  /** The expression in the zone: proposes fires. */
  private readonly zoned: Cron;
  /** The same expression in UTC, applied to wall-clock times written as UTC: says whether a local time matches. */
  private readonly wall: Cron;
  /** Whether the hour field is `*`: the expression then runs on elapsed time (see the policy above). */
  private readonly everyHour: boolean;
  /** UTC has no transitions: croner's answers stand as they are (and come several times faster). */
  private readonly utc: boolean;
  /** The zone's canonical name. */
  private readonly zone: string;

  constructor(
    readonly expression: string,
    readonly timeZone: string,
  ) {
    const fields = fieldsOf(expression);
    // The canonical name: Intl accepts any spelling (`america/new_york`), and the per-zone caches (ours and
    // croner's) must not grow with spellings.
    const zone = checkTimeZone(timeZone);
    this.zone = zone;
    this.everyHour = fields[fields.length - 4] === '*';
    this.utc = zone === 'UTC' || zone === 'Etc/UTC';
    try {
      // utcOffset 0 rather than timezone 'UTC': the same instants without croner's per-call Intl conversion.
      this.zoned = this.utc ? new Cron(expression, { utcOffset: 0, paused: true }) : new Cron(expression, { timezone: zone, paused: true });
      this.wall = new Cron(expression, { utcOffset: 0, paused: true });
    } catch (e) {
      throw new CronError((e instanceof Error ? e.message : String(e)).replace(/^CronPattern: /, ''));
    }
  }

  /** The first fire strictly after `after` (epoch ms), or null when the expression never fires again. */
  next(at: number): number | null {
    // Fires fall on whole seconds, so the first after `at` is the first after its second; and the transition
    // search below relies on whole-second bounds (with a fraction, its bisection could stop moving).
    const after = Math.floor(at / SECOND) * SECOND;
    if (this.utc) return this.zoned.nextRun(new Date(after))?.getTime() ?? null;
    let from = after;
    // Each turn skips one fire croner proposed that the policy rejects; a handful at most (a DST day).
    for (let turn = 0; turn < 1000; turn++) {
      const proposed = this.zoned.nextRun(new Date(from))?.getTime() ?? null;
      const gap = this.gapFire(after, proposed ?? after + GAP_HORIZON);
      if (gap !== null && (proposed === null || gap <= proposed)) return gap;
      if (proposed === null) return null;
      if (this.matchesWallClock(proposed) && (this.everyHour || !this.isSecondPass(proposed))) return proposed;
      from = proposed;
    }
    return null;
  }

  /** The latest fire at or before `t`, or null when there is none in the last turns croner finds. */
  latestAtOrBefore(t: number): number | null {
    let bound = t;
    for (let turn = 0; turn < 10; turn++) {
      const previous = this.zoned.previousRuns(1, new Date(bound + 1))[0]?.getTime();
      if (previous === undefined) return null;
      // Re-walk forward from just before croner's answer, so the policy decides (and gap fires count).
      let x = this.next(previous - 1);
      if (x !== null && x <= t) {
        for (let y = this.next(x); y !== null && y <= t; y = this.next(x)) x = y;
        return x;
      }
      bound = previous - 1;
    }
    return null;
  }

  /** The smallest gap (ms) between consecutive fires among the first `samples` after `from`; Infinity if under two. */
  minInterval(from: number, samples = 1000): number {
    let min = Infinity;
    let previous = this.next(from);
    for (let i = 1; i < samples && previous !== null; i++) {
      const fire = this.next(previous);
      if (fire === null) break;
      min = Math.min(min, fire - previous);
      previous = fire;
    }
    return min;
  }

  /** Whether the local wall-clock time at instant `t` matches the expression. */
  private matchesWallClock(t: number): boolean {
    const wall = t + offsetAt(this.zone, t);
    return this.wall.nextRun(new Date(wall - 1))?.getTime() === wall;
  }

  /** Whether `t` is the second occurrence of its wall-clock time (the repeated hour of a fall back). */
  private isSecondPass(t: number): boolean {
    const before = offsetAt(this.zone, t - MAX_SHIFT);
    const shift = before - offsetAt(this.zone, t);
    return shift > 0 && offsetAt(this.zone, t - shift) === before;
  }

  /**
   * The first spring-forward transition in (after, until] whose skipped local times include one the
   * expression matches: that fire happens at the transition instant. Null if none. Expressions with a `*`
   * hour run on elapsed time and get none (the skipped hour never elapsed).
   */
  private gapFire(after: number, until: number): number | null {
    if (this.everyHour) return null;
    for (const { at, before, shift } of this.transitions(after, until)) {
      if (shift <= 0 || at <= after) continue;
      const gapStart = at + before; // the first skipped wall-clock time, written as UTC
      const match = this.wall.nextRun(new Date(gapStart - 1))?.getTime();
      if (match !== undefined && match < gapStart + shift) return at;
    }
    return null;
  }

  /** The zone's offset changes in (from - MAX_SHIFT, until], in order: instant, offset before, change. */
  private transitions(from: number, until: number): { at: number; before: number; shift: number }[] {
    const found: { at: number; before: number; shift: number }[] = [];
    const start = Math.floor((from - MAX_SHIFT) / SECOND) * SECOND;
    const end = Math.ceil(Math.min(until, from + GAP_HORIZON) / SECOND) * SECOND;
    let lo = start;
    let loOffset = offsetAt(this.zone, lo);
    // Transitions are months apart, and never two in a day: stepping a day at a time finds each one.
    while (lo < end) {
      const hi = Math.min(lo + DAY, end);
      const hiOffset = offsetAt(this.zone, hi);
      if (hiOffset !== loOffset) {
        let a = lo;
        let b = hi;
        while (b - a > SECOND) {
          const mid = a + Math.max(1, Math.floor((b - a) / 2 / SECOND)) * SECOND;
          if (offsetAt(this.zone, mid) === loOffset) a = mid;
          else b = mid;
        }
        found.push({ at: b, before: loOffset, shift: hiOffset - loOffset });
      }
      lo = hi;
      loOffset = hiOffset;
    }
    return found;
  }
}

/** Parses and checks a cron plan's schedule; throws CronError saying what is wrong (without the field name). */
export function parseCron(expression: string, timeZone: string): CronSchedule {
  const schedule = new CronSchedule(expression, timeZone);
  if (schedule.next(Date.now()) === null) throw new CronError('never fires');
  return schedule;
}

/** Parsed schedules by expression and zone: the claim computes a plan's next fire at every occurrence. */
const cache = new Map<string, CronSchedule>();
const CACHE_MAX = 10_000;

export function cronSchedule(expression: string, timeZone: string): CronSchedule {
  const key = `${timeZone} ${expression}`;
  let s = cache.get(key);
  if (!s) {
    s = new CronSchedule(expression, timeZone);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, s);
  }
  return s;
}

/**
 * The due time of a cron plan's occurrence after one due at `due`, by the rule periodic plans follow
 * (task-claims nextDue): a bounded plan runs every fire up to and including the first at or after `end_at`;
 * when fires were missed (the cluster was down) they coalesce into the latest one not in the future.
 */
export function nextCronDue(schedule: CronSchedule, due: number, endAt: unknown, now: number): number | null {
  if (typeof endAt === 'number' && due >= endAt) return null;
  const next = schedule.next(due);
  if (next === null) return null;
  const following = schedule.next(next);
  if (following !== null && following <= now) return schedule.latestAtOrBefore(now) ?? next;
  return next;
}
