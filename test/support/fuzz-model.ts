import { Rng } from './fuzz-rng';
import { T } from './wire-types';

/**
 * The request model of the API fuzz test, written from the wire contract (shared/spec/api-v1.md), not from
 * src/: JSON helpers, valid request builders, the "slots" (typed fields) of a request that mutations aim at,
 * sample values per field kind, and an oracle for the server-configured chain rules.
 */

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}
export type Path = readonly (string | number)[];

export { T };

/** Karya's cron plan type (issue 13), written out here as wire-types.ts writes the original's names. */
export const CRON = 'karya.core.entities.PlanType.Cron';

export const UNIONS = {
  action: [T.Rest, T.Slack, T.Email, T.Kafka, T.Chained],
  planType: [T.OneTime, T.Recurring, CRON],
  body: [T.JsonBody, T.EmptyBody],
} as const;
export type Union = keyof typeof UNIONS;

export const PROTOCOLS = ['HTTP', 'HTTPS'] as const;
export const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'] as const;
export const TRIGGERS = ['ON_FAILURE', 'ON_COMPLETION'] as const;
/** `plan_type.overlap` of Recurring and Cron plans (optional; missing means ALLOW and is not filled in). */
export const OVERLAPS = ['ALLOW', 'SKIP', 'BUFFER_ONE'] as const;
/** The v1 Plan statuses (the published clients' enum) and the v1 Task statuses: fixed, whatever the server does inside. */
export const PLAN_STATUSES = ['CREATED', 'RUNNING', 'COMPLETED', 'CANCELLED'] as const;
export const TASK_STATUSES = ['CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED'] as const;
/** GET /v1/plan's `status` filter: the v1 Plan statuses and PAUSED, any case. */
export const LIST_FILTERS = [...PLAN_STATUSES, 'PAUSED'] as const;

/** server.yml defaults the embedded app runs with. */
export const RULES = { maxChainedDepth: 2, minRecurringPeriodMs: 1000 };
/** Nest's default JSON / urlencoded body limit (body-parser's 100kb); createApp does not change it. */
export const BODY_LIMIT_BYTES = 102_400;

export const PLAN_KEYS = [
  'action', 'created_at', 'description', 'hook', 'id', 'max_failure_retry', 'parent_plan_id', 'period_time', 'status',
  'type', 'updated_at', 'user_id',
];
/** The v1 Task (run now answers one). */
export const TASK_KEYS = ['created_at', 'executed_at', 'id', 'next_execution_at', 'partition_key', 'plan_id', 'status'];
/** GET /v1/plan/{id}/state, and what pause and resume answer. */
export const PLAN_STATE_KEYS = ['next_execution_at', 'overlap', 'paused_at', 'plan_id', 'status'];

// ------------------------------------------------------------------ JSON helpers

export function isObj(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<V extends Json>(v: V): V {
  return JSON.parse(JSON.stringify(v)) as V;
}

export function getAt(root: Json, path: Path): Json | undefined {
  let cur: Json | undefined = root;
  for (const key of path) {
    if (Array.isArray(cur) && typeof key === 'number') cur = cur[key];
    else if (isObj(cur) && typeof key === 'string') cur = cur[key];
    else return undefined;
  }
  return cur;
}

function parentOf(root: Json, path: Path): Json | undefined {
  return getAt(root, path.slice(0, -1));
}

export function setAt(root: Json, path: Path, value: Json): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1];
  if (Array.isArray(parent) && typeof key === 'number') parent[key] = value;
  else if (isObj(parent) && typeof key === 'string') {
    // An own "__proto__" key (JSON.parse makes one) needs defineProperty: plain assignment sets the prototype.
    Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  } else throw new Error(`setAt: no container at ${label(path)}`);
}

export function deleteAt(root: Json, path: Path): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1];
  if (isObj(parent) && typeof key === 'string') delete parent[key];
  else throw new Error(`deleteAt: no object at ${label(path)}`);
}

/** A path as the server names fields in its messages: `hooks[0].action.base_url`. */
export function label(path: Path): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? key : `.${key}`;
  return out;
}

/** Where a request path lands in the Plan response: `hooks` → `hook`, `plan_type` → `type` (top level only). */
export function responsePath(path: Path): Path {
  const [first, ...rest] = path;
  const mapped = first === 'hooks' ? 'hook' : first === 'plan_type' ? 'type' : first;
  return [mapped, ...rest];
}

/** String length as class-validator's (validator.js) isLength counts it: a surrogate pair is one character. */
export function validatorLength(s: string): number {
  return s.length - (s.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g) ?? []).length;
}

// ------------------------------------------------------------------ sample values

/** Valid period strings with their length in ms (Java's Duration.parse rules, PnW added). */
export const LONG_PERIODS: readonly (readonly [string, number])[] = [
  ['PT1H', 3_600_000], ['P1D', 86_400_000], ['PT2H', 7_200_000], ['P1W', 604_800_000], ['PT3600S', 3_600_000],
  ['P1DT12H', 129_600_000], ['PT90M', 5_400_000], ['p1d', 86_400_000], ['pt1h30m', 5_400_000],
  ['PT1H0.5S', 3_600_500], ['P2w', 1_209_600_000], ['PT1H-30M', 1_800_000], ['-PT-2H', 7_200_000],
  ['P36500D', 3_153_600_000_000], [' PT2H ', 7_200_000], ['\tP1D\n', 86_400_000], ['PT7200,5S', 7_200_500],
  ['+P1D', 86_400_000], ['P1DT1H1M1.123456789S', 90_061_123],
];
/** Valid, but too short to submit at top level in a test that runs the scheduler (they would execute). */
export const SHORT_PERIODS: readonly (readonly [string, number])[] = [
  ['PT0S', 0], ['PT1S', 1000], ['PT0.5S', 500], ['PT0.999999999S', 999], ['PT1.000S', 1000], ['P0D', 0],
  ['PT0M', 0], ['P0W', 0], ['PT-0S', 0], ['+PT1S', 1000], ['pt30s', 30_000],
];
const PERIOD_MS = new Map<string, number>([...LONG_PERIODS, ...SHORT_PERIODS].map(([p, ms]) => [p.trim(), ms]));

/** The length of a sample period (surrounding whitespace ignored, as the server trims); undefined for others. */
export function periodMs(text: string): number | undefined {
  return PERIOD_MS.get(text.trim());
}

export const BAD_PERIODS: readonly string[] = [
  '', ' ', 'P', 'PT', 'T1H', '1H', 'PT1', 'P1DT', 'P1M', 'P1Y', 'P1Y2M', 'P1M1D', 'PT-1S', '-PT1S', 'P-1D', 'P1.5D',
  'PT1.5H', 'PT1.1234567890S', 'P1W1D', 'PW', 'PT1S1H', 'PTS', 'P1DT1H1M1S1', 'pt', 'P36501D',
  'PT99999999999999999999H', 'P1D T1H', 'P 1D', '\uff30\uff11\uff24', 'P1DT1H1H', 'PT0x10S', 'PT1e3S', 'P\u0663D',
  'x'.repeat(65), `PT${'0'.repeat(70)}1S`, 'null', '30', '30s', '1 hour', 'P1DT-1000000H',
];

/**
 * Cron expressions the contract accepts: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
 * first, standard cron syntax (lists, ranges, steps, month and day names in any case, `L`, `W`, `#`), separated
 * by spaces or tabs, surrounding whitespace ignored, each firing at least once and never more often than
 * minRecurringPeriod (1 s, so every 6-field expression passes). None of them runs during the fuzz run (see the
 * suite).
 */
export const GOOD_CRONS: readonly string[] = [
  '0 9 * * 1-5', '*/5 * * * *', '0 0 1 1 *', '30 2 * * *', '0 * * * *', '15,45 2 * * *', '0 0 29 2 *', '59 23 31 12 *',
  '0-59/15 * * * *', '0 0 1-31/2 * *', '00 09 * * *', '0 0 * * MON,WED,FRI', '0 0 * * mon-wed,fri', '0 9 * jan mon',
  '0 9 * JAN MON-FRI', '0 9 * * 7', '0 9 * * 0', '0 0 * * 1-7', '0 0 * * SUN-SAT', '*,* * * * *', ' 0 9 * * * ', '0  9 * * *',
  '0\t9\t*\t*\t*',
  // Day-of-month and day-of-week both restricted: standard cron fires when either matches (so not never).
  '0 0 31 2 1', '0 0 29 2 1',
  // Last day, nearest weekday, nth weekday (the README lists them).
  '0 0 L * *', '0 0 * * 5L', '0 0 * * 5#2', '0 0 15W * *',
  // 6 fields, seconds first.
  '*/2 * * * * *', '* * * * * *', '0 0 0 * * *', '0 */10 * * * *', '30 0 9 * * 1-5', '0 0 0 29 2 *', '59 59 23 31 12 *',
];
/** Expressions with too few or too many fields: a 400 naming plan_type.expression. */
export const WRONG_FIELD_COUNT_CRONS: readonly string[] = [
  '', ' ', '*', '* * * *', '0 9 * *', '* * * * * * *', '0 0 0 1 1 * 2030', '@daily', '@yearly', '@every 5m', '0 9 * * 1-5 x y',
  '0,9,*,*,*', '0\u200b9\u200b*\u200b*\u200b*',
];
/** Right field count, bad values or syntax: a 400 naming plan_type.expression. */
export const BAD_VALUE_CRONS: readonly string[] = [
  '60 * * * *', '* 24 * * *', '* * 32 * *', '* * 0 * *', '* * * 13 *', '* * * 0 *', '0 9 * * 8', '*/0 * * * *', '5-1 * * * *',
  'a b c d e', '+1 * * * *', '-1 * * * *', '1.5 * * * *', '0x1 * * * *', ',0 * * * *', '0, * * * *', '0 0 * * 7-1', '0 0 ** * *',
  '0 0 */ * *', '1-60 * * * *', '*/61 * * * *', '\u0663 * * * *', '\uff10 * * * *', '0 0 * FOO *', '0 0 * * MONDAY', '60 0 0 * * *',
  '0 60 0 * * *', '0 0 24 * * *', 'null null null null null', '0 0 29 2 * 2099', '% * * * *', "0 0 * * 1'", '0 0 1 1 1/',
  'L * * * *',
];
/** Well-formed but never firing (no such day): a 400 naming plan_type.expression. */
export const NEVER_CRONS: readonly string[] = ['0 0 31 2 *', '0 0 30 2 *', '0 0 31 4 *', '0 0 31 6 *', '0 0 31 9 *', '0 0 31 11 *', '0 0 0 30 2 *', '0 0 30,31 2 *'];
/**
 * Accepted or refused, either is within the contract: Quartz's `?` (not documented) and exotic Unicode whitespace
 * or line breaks as the separator. Refused, the 400 names plan_type.expression; accepted, it is stored as sent.
 */
export const ODD_CRONS: readonly string[] = [
  '? * * * *', '0 0 ? * *', '0\u00a09 * * *',
  '0\u30009\u3000*\u3000*\u3000*', '0\u20289 * * *', '0\ufeff9 * * *', '0\n9 * * *', '0\r\n9 * * *',
];

/** IANA time zone names (and links in the IANA backward file), with and without daylight saving. */
export const GOOD_ZONES: readonly string[] = [
  'UTC', 'Etc/UTC', 'Europe/Berlin', 'America/New_York', 'Europe/London', 'Asia/Kolkata', 'Asia/Calcutta', 'US/Eastern', 'GMT',
  'Etc/GMT+5', 'Etc/GMT-14', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/Argentina/Buenos_Aires', 'Asia/Kathmandu',
  'Antarctica/Troll', 'Europe/Kyiv', 'Europe/Kiev', 'America/Sao_Paulo', 'CET', 'EST5EDT', 'Japan', 'Pacific/Kiritimati',
];
/** Not zone names: a 400 naming plan_type.time_zone. */
export const BAD_ZONES: readonly string[] = [
  '', ' ', 'Mars/Olympus', 'Europe/Berlin ', ' Europe/Berlin', 'UTC\n', 'Europe/Berl\u00edn', 'Z', '+01:00', '+0100', 'UTC+1',
  'GMT+1', '+25:00', 'local', 'Europe', 'Europe/', '/UTC', 'Europe//Berlin', '../etc/passwd', 'Etc/GMT+15', 'Etc/Unknown',
  'null', '0', 'Europe/Berlin\u0000', '\u0000', 'Europe\\Berlin', 'Europe/Berlin/Extra', 'UTC;DROP TABLE plans', '\u202eUTC',
  // Unknown at 64 characters (the most a name may have), and longer.
  'America/'.repeat(8), 'A'.repeat(64), `Europe/${'x'.repeat(500)}`, 'Europe/Berlin'.repeat(200),
];
/** Zone names in another case: ECMA-402 matches them case-insensitively, so either answer is in the contract. */
export function oddCaseZone(rng: Rng): string {
  return rng.oddCase(rng.pick(['Europe/Berlin', 'America/New_York', 'UTC', 'Asia/Kolkata', 'Etc/GMT+5']));
}

/**
 * Integer fields (max_failure_retry, a hook's max_retry, a REST action's timeout, end_at) also take a JSON string
 * holding a decimal integer, read as that number and stored and echoed as the number: the original
 * (kotlinx.serialization) accepted `"5"`, and karya-ui sends its form numbers quoted. The same range checks apply.
 */
export const QUOTED_INT = /^-?[0-9]+$/;

/** What the server reads for an integer field sent as `v`: a quoted decimal integer is its number. */
export function readInt(v: Json | undefined): Json | undefined {
  return typeof v === 'string' && QUOTED_INT.test(v) ? Number(v) : v;
}

/** An integer as a client may send it: mostly the number, sometimes quoted as karya-ui sends it. */
export function sentInt(rng: Rng, n: number): Json {
  return rng.chance(0.2) ? String(n) : n;
}

/** Strings that are no decimal integer: still a 400 naming the field and showing the value. */
export const QUOTED_NON_INTS: readonly string[] = [
  '5.5', 'five', '', ' 5', '5 ', '+5', '1e3', '0x10', '1,000', '-', '--1', '3.0', '\u0665', 'null', '5\n', '\uff15',
];

/** `end_at` of Recurring and Cron plans: epoch ms from 0 to year 9999, or null. */
export const MAX_END_AT = 253_402_300_799_999;
export const GOOD_END_ATS: readonly Json[] = [null, 0, 1, MAX_END_AT, 1_900_000_000_000, 4_102_444_800_000, 2 ** 31, 2 ** 32];

/** A valid end_at as sent: null, or an epoch ms, sometimes quoted. */
export function goodEndAt(rng: Rng): Json {
  const v = rng.pick(GOOD_END_ATS);
  return typeof v === 'number' ? sentInt(rng, v) : v;
}

export const GOOD_BASE_URLS: readonly string[] = [
  'localhost:9', 'sink.local:8080/hook', 'api.example.com/v1/x?y=1#f', '127.0.0.1:9', 'host', 'a.b.c:65535/p/q',
  'xn--bcher-kva.example/\u00fc', 'h:1/%20',
];
export const BAD_BASE_URLS: readonly string[] = [
  '', 'http://x.com', 'https://x', 'HTTP://x', 'ftp://a/b', 'a b', 'user@host', 'host:', 'host:abc', 'host:123456',
  '/path', ':80', '?q', 'host:80:90', 'localhost:9 ', ' localhost:9', 'x'.repeat(2049),
];

export const BAD_ENUMS: readonly string[] = [
  '', ' ', 'FTP', 'HEAD', 'OPTIONS', 'GETT', ' GET', 'GET ', 'ON FAILURE', 'ON-FAILURE', 'ONFAILURE', 'HTTP/1.1',
  'null', '0', 'ON_FAILURE,ON_COMPLETION',
];

export function badUuids(rng: Rng, real: string): string[] {
  return [
    '', ' ', 'null', 'undefined', '0', '-1', '1.5', 'abc', 'not-a-uuid', real.slice(0, -1), `${real}0`,
    real.replace(/-/g, ''), `{${real}}`, `g${real.slice(1)}`, ` ${real}`, `${real} `, `${real}\n`, `urn:uuid:${real}`,
    `${real.slice(0, 8)}_${real.slice(9)}`, "' OR '1'='1", '../../etc/passwd', '\u0000', '\u0661\u0662\u0663',
    real.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d))), 'a'.repeat(rng.int(40, 4000)),
    `${real},${real}`, real.replace(/-/g, '\u2010'), `${real}\u0000`,
  ];
}

/** Characters that stress decoding and storage: controls, NUL, lone surrogates, BOM, bidi, astral, SQL/HTML. */
export const SPECIAL_CHARS: readonly string[] = [
  '\u0000', '\u0001', '\u0007', '\b', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f', '\u0085', '\u00a0', '\u00ad',
  '\u200b', '\u200d', '\u200e', '\u202e', '\u2028', '\u2029', '\ufeff', '\ufffd', '\uffff', '\ud800', '\udfff',
  '\ud83d\ude00', '\u0301', '\u00e9', '\u4e2d', '\u00df', '\u03a9', '\ud835\udd18', '\udbff\udfff', '\\', '"', "'",
  '%', '%00', '<script>', "'; DROP TABLE plans; --", '${x}', '{{x}}',
];
/** What String.prototype.trim removes (the server trims periods). */
export function isTrimWhitespace(s: string): boolean {
  return s.length > 0 && s.trim() === '';
}

export const EXTRA_KEYS: readonly string[] = [
  'fuzz_extra', 'fuzz_extra_2', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '', ' ', 'TYPE',
  'Type', 'userId', 'planType', 'maxFailureRetry', 'hook', 'id', 'status', 'created_at', 'parent_plan_id',
  '\ud83d\udca5', 'x\u0000y', 'user_id ', 'fuzz.extra', 'fuzz_extra[0]',
];

export function randomJson(rng: Rng, depth: number): Json {
  const kind = depth <= 0 ? rng.int(0, 4) : rng.int(0, 6);
  switch (kind) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, rng.int(-1000, 1000)]);
    case 3: return rng.pick(['', 'x', '\u00e9\u4e2d\ud83d\ude00', 'null', '{}', T.Chained, 'a'.repeat(rng.int(1, 300))]);
    case 4: return rng.pick([[], {}]);
    case 5: return Array.from({ length: rng.int(1, 3) }, () => randomJson(rng, depth - 1));
    default: {
      const o: JsonObject = {};
      for (let i = rng.int(1, 3); i > 0; i--) o[`k${rng.int(0, 9)}`] = randomJson(rng, depth - 1);
      return o;
    }
  }
}

// ------------------------------------------------------------------ valid requests

export interface FuzzContext {
  /** Whose plan count is checked at the end: every accepted top-level submit of the fuzz loop is for this user. */
  userId: string;
  userName: string;
  /** Another real user, for nested (chained) requests and a few top-level submits. */
  otherUserId: string;
  oneTimePlanId: string;
  recurringPlanId: string;
  /** A Cron plan (overlap SKIP): PATCH may not change its period_time. */
  cronPlanId: string;
  /** Cancelled over and over (cancel is idempotent). */
  cancelPlanId: string;
  /** A OneTime plan that has COMPLETED (made so in the database: nothing runs plans during the fuzz run). */
  completedPlanId: string;
}

/** What the run knows of a plan a 200 acknowledged, for the expected answers of the plan-id endpoints. */
export interface PlanFacts {
  /** Lower case. */
  owner: string;
  /** The v1 status (a paused plan keeps CREATED or RUNNING there). */
  status: string;
  paused: boolean;
  /** From the PlanState that paused it. */
  pausedAt: number | null;
  /** The overlap PlanState reports: null for OneTime, ALLOW when the plan type has none. */
  overlap: string | null;
}

/** The facts of a plan as POST /v1/plan echoed it. */
export function factsOf(plan: Record<string, unknown>): PlanFacts {
  const type = (typeof plan.type === 'object' && plan.type !== null ? plan.type : {}) as Record<string, unknown>;
  const kind = String(type.type);
  return {
    owner: String(plan.user_id).toLowerCase(), status: String(plan.status), paused: false, pausedAt: null,
    overlap: kind === T.OneTime ? null : typeof type.overlap === 'string' ? type.overlap : 'ALLOW',
  };
}

export function validRestAction(rng: Rng): JsonObject {
  const a: JsonObject = { type: T.Rest, base_url: rng.pick(GOOD_BASE_URLS) };
  if (rng.chance(0.4)) a.protocol = rng.pick(PROTOCOLS);
  if (rng.chance(0.4)) a.method = rng.pick(METHODS);
  if (rng.chance(0.3)) a.headers = rng.pick<JsonObject>([{}, { 'content-type': 'application/json' }, { 'x-a': 'b', accept: '*/*' }]);
  if (rng.chance(0.4)) {
    a.body = rng.chance(0.5)
      ? { type: T.JsonBody, json_string: rng.pick(['{"hello":"world"}', '[]', '', 'not json, sent verbatim']) }
      : { type: T.EmptyBody };
  }
  if (rng.chance(0.3)) a.timeout = sentInt(rng, rng.pick([1, 2000, 600_000, rng.int(1, 600_000)]));
  return a;
}

export function validAction(rng: Rng, ctx: FuzzContext, chainBudget: number, size: number): JsonObject {
  const kinds: string[] = [T.Rest, T.Rest, T.Slack, T.Email, T.Kafka];
  if (chainBudget > 0 && size > 0) kinds.push(T.Chained, T.Chained);
  switch (rng.pick(kinds)) {
    case T.Slack:
      return { type: T.Slack, channel: rng.pick(['#alerts', 'C0123', 'x']), message: rng.pick(['[]', '[{"type":"section"}]', '']) };
    case T.Email:
      return {
        type: T.Email, recipient: rng.pick(['ops@example.com', 'a']), subject: rng.pick(['Nightly', '']),
        message: rng.pick(['<b>done</b>', '']),
      };
    case T.Kafka: {
      const k: JsonObject = { type: T.Kafka, topic: rng.pick(['orders', 't']), message: rng.pick(['{}', '']) };
      if (rng.chance(0.5)) k.key = rng.pick<Json>([null, 'k1', '']);
      return k;
    }
    case T.Chained:
      return { type: T.Chained, request: validSubmit(rng, ctx, { topLevel: false, chainBudget: chainBudget - 1, size: size - 1 }) };
    default:
      return validRestAction(rng);
  }
}

export function validHook(rng: Rng, ctx: FuzzContext, size: number): JsonObject {
  const h: JsonObject = { trigger: rng.pick(TRIGGERS), action: validAction(rng, ctx, RULES.maxChainedDepth, size) };
  if (rng.chance(0.4)) h.max_retry = sentInt(rng, rng.pick([0, 3, 100, rng.int(0, 100)]));
  return h;
}

export interface SubmitShape {
  topLevel: boolean;
  /** How many more consecutive ChainedRequest levels the action may nest. */
  chainBudget: number;
  /** Bounds the tree: nested requests and hooks get size - 1. */
  size: number;
}

/** A valid Cron plan type: each optional key present or not. */
export function validCronType(rng: Rng): JsonObject {
  const t: JsonObject = { type: CRON, expression: rng.pick(GOOD_CRONS) };
  if (rng.chance(0.6)) t.time_zone = rng.pick(GOOD_ZONES);
  if (rng.chance(0.4)) t.end_at = goodEndAt(rng);
  if (rng.chance(0.5)) t.overlap = rng.pick(OVERLAPS);
  return t;
}

export function validSubmit(rng: Rng, ctx: FuzzContext, shape: SubmitShape): JsonObject {
  const action = validAction(rng, ctx, shape.chainBudget, shape.size);
  // strictMode: a chained action needs a OneTime plan; a Recurring plan needs a period of at least 1 s.
  const kind = action.type === T.Chained ? T.OneTime : rng.weighted<string>([[T.OneTime, 45], [T.Recurring, 30], [CRON, 25]]);
  const recurring = kind === T.Recurring;
  const periods = shape.topLevel ? LONG_PERIODS : [...LONG_PERIODS, ...SHORT_PERIODS];
  const candidates = periods.filter(([, ms]) => !recurring || ms >= RULES.minRecurringPeriodMs);
  let planType: JsonObject = { type: kind };
  if (recurring && rng.chance(0.5)) planType.end_at = goodEndAt(rng);
  if (recurring && rng.chance(0.3)) planType.overlap = rng.pick(OVERLAPS);
  if (kind === CRON) planType = validCronType(rng);
  const req: JsonObject = {
    // A nested (chained) request may only be for the plan's owner (403 otherwise, covered by test/auth.e2e-spec.ts).
    user_id: shape.topLevel ? ctx.userId : rng.pick([ctx.userId, ctx.userId.toUpperCase()]),
    description: rng.pick(['nightly export', '', 'x', '\u00dcn\u00efc\u00f6d\u00e9 \u2713', 'a'.repeat(255), 'ok \ud83d\ude00']),
    period_time: rng.pick(candidates)[0],
    plan_type: planType,
    action,
  };
  // A Cron plan's period_time is its expression: left out, or repeated exactly.
  if (kind === CRON) {
    if (rng.chance(0.6)) delete req.period_time;
    else req.period_time = planType.expression;
  }
  if (rng.chance(0.5)) {
    req.hooks = shape.size > 0 ? Array.from({ length: rng.int(0, 2) }, () => validHook(rng, ctx, shape.size - 1)) : [];
  }
  if (rng.chance(0.4)) req.max_failure_retry = sentInt(rng, rng.pick([0, 3, 100, rng.int(0, 100)]));
  return req;
}

export type UpdateTarget = 'oneTime' | 'recurring' | 'cron';

export function validUpdate(rng: Rng, ctx: FuzzContext): { body: JsonObject; target: UpdateTarget } {
  const target = rng.weighted<UpdateTarget>([['oneTime', 4], ['recurring', 4], ['cron', 2]]);
  const recurring = target === 'recurring';
  const body: JsonObject = { plan_id: target === 'recurring' ? ctx.recurringPlanId : target === 'cron' ? ctx.cronPlanId : ctx.oneTimePlanId };
  // A Cron plan's schedule is its expression: PATCH keeps it (null or missing), and refuses a period.
  if (target === 'cron') {
    if (rng.chance(0.3)) body.period_time = null;
  } else if (rng.chance(0.5)) {
    const periods = [...LONG_PERIODS, ...SHORT_PERIODS].filter(([, ms]) => !recurring || ms >= RULES.minRecurringPeriodMs);
    body.period_time = rng.pick(periods)[0];
  }
  if (rng.chance(0.4)) body.max_failure_retry = rng.pick<Json>([0, 5, 100, '5', '0', null]);
  if (rng.chance(0.5)) body.hooks = Array.from({ length: rng.int(0, 2) }, () => validHook(rng, ctx, 1));
  return { body, target };
}

// ------------------------------------------------------------------ slots

export type FieldKind =
  | { k: 'uuid'; role: 'user' | 'nestedUser' | 'plan' }
  | { k: 'text'; max?: number; nonEmpty?: boolean }
  | { k: 'period'; recurring: boolean }
  /** A Cron plan's period_time: optional, and when given it must repeat `plan_type.expression` exactly. */
  | { k: 'cronPeriod' }
  | { k: 'cronExpr' }
  | { k: 'timeZone' }
  | { k: 'baseUrl' }
  | { k: 'enum'; values: readonly string[] }
  | { k: 'int'; min: number; max: number }
  /** The `type` key of a polymorphic object. */
  | { k: 'disc'; union: Union }
  /** A polymorphic object itself. */
  | { k: 'poly'; union: Union }
  | { k: 'headers' }
  | { k: 'headerValue' }
  | { k: 'hooks' }
  | { k: 'hookItem' }
  | { k: 'request' };

export interface Slot {
  path: Path;
  kind: FieldKind;
  required: boolean;
  present: boolean;
  /** null is accepted (IsOptional): missing or null means the default (submit) or "keep" (PATCH). */
  nullOk: boolean;
  /** What the server fills in when the (optional) field is missing or, for nullable ones, null. */
  fallback?: Json;
}

export function submitSlots(req: JsonObject, base: Path, topLevel: boolean, out: Slot[]): Slot[] {
  const add = (key: string, kind: FieldKind, required: boolean, fallback?: Json) =>
    out.push({ path: [...base, key], kind, required, present: key in req, nullOk: key === 'hooks' || key === 'max_failure_retry', fallback });
  const pt = req.plan_type;
  const recurring = isObj(pt) && pt.type === T.Recurring;
  const cron = isObj(pt) && pt.type === CRON;
  add('user_id', { k: 'uuid', role: topLevel ? 'user' : 'nestedUser' }, true);
  add('description', { k: 'text', max: 255 }, true);
  // A Cron plan's stored and echoed period_time is its expression.
  if (cron) add('period_time', { k: 'cronPeriod' }, false, isObj(pt) ? (pt.expression ?? null) : null);
  else add('period_time', { k: 'period', recurring }, true);
  add('plan_type', { k: 'poly', union: 'planType' }, true);
  add('action', { k: 'poly', union: 'action' }, true);
  add('hooks', { k: 'hooks' }, false, []);
  add('max_failure_retry', { k: 'int', min: 0, max: 100 }, false, 3);
  if (isObj(pt)) {
    const typePath = [...base, 'plan_type'];
    const typeSlot = (key: string, kind: FieldKind, required: boolean, nullOk: boolean, fallback?: Json) =>
      out.push({ path: [...typePath, key], kind, required, present: key in pt, nullOk, fallback });
    out.push({ path: [...typePath, 'type'], kind: { k: 'disc', union: 'planType' }, required: true, present: true, nullOk: false });
    if (cron) {
      typeSlot('expression', { k: 'cronExpr' }, true, false);
      typeSlot('time_zone', { k: 'timeZone' }, false, false, 'UTC');
    }
    if (recurring || cron) {
      typeSlot('end_at', { k: 'int', min: 0, max: MAX_END_AT }, false, true, null);
      // Optional with no filled-in default: missing stays missing (and means ALLOW).
      typeSlot('overlap', { k: 'enum', values: OVERLAPS }, false, true);
    }
  }
  if (isObj(req.action)) actionSlots(req.action, [...base, 'action'], out);
  if (Array.isArray(req.hooks)) hookListSlots(req.hooks, [...base, 'hooks'], out);
  return out;
}

export function updateSlots(req: JsonObject, target: UpdateTarget): Slot[] {
  const out: Slot[] = [];
  const add = (key: string, kind: FieldKind, required: boolean) =>
    out.push({ path: [key], kind, required, present: key in req, nullOk: !required });
  add('plan_id', { k: 'uuid', role: 'plan' }, true);
  // For a Cron plan a valid period is refused too (the update rules say so).
  add('period_time', { k: 'period', recurring: target === 'recurring' }, false);
  add('max_failure_retry', { k: 'int', min: 0, max: 100 }, false);
  add('hooks', { k: 'hooks' }, false);
  if (Array.isArray(req.hooks)) hookListSlots(req.hooks, ['hooks'], out);
  return out;
}

function hookListSlots(hooks: Json[], base: Path, out: Slot[]): void {
  hooks.forEach((h, i) => {
    if (!isObj(h)) return;
    const p = [...base, i];
    out.push({ path: p, kind: { k: 'hookItem' }, required: false, present: true, nullOk: false });
    out.push({ path: [...p, 'trigger'], kind: { k: 'enum', values: TRIGGERS }, required: true, present: 'trigger' in h, nullOk: false });
    out.push({ path: [...p, 'action'], kind: { k: 'poly', union: 'action' }, required: true, present: 'action' in h, nullOk: false });
    out.push({
      path: [...p, 'max_retry'], kind: { k: 'int', min: 0, max: 100 }, required: false, present: 'max_retry' in h, nullOk: false, fallback: 3,
    });
    if (isObj(h.action)) actionSlots(h.action, [...p, 'action'], out);
  });
}

function actionSlots(a: JsonObject, base: Path, out: Slot[]): void {
  const add = (key: string, kind: FieldKind, required: boolean, fallback?: Json) =>
    out.push({ path: [...base, key], kind, required, present: key in a, nullOk: key === 'key', fallback });
  add('type', { k: 'disc', union: 'action' }, true);
  switch (a.type) {
    case T.Rest: {
      add('base_url', { k: 'baseUrl' }, true);
      add('protocol', { k: 'enum', values: PROTOCOLS }, false, 'HTTP');
      add('method', { k: 'enum', values: METHODS }, false, 'GET');
      add('headers', { k: 'headers' }, false, { 'content-type': 'application/json' });
      add('body', { k: 'poly', union: 'body' }, false, { type: T.EmptyBody });
      add('timeout', { k: 'int', min: 1, max: 600_000 }, false, 2000);
      if (isObj(a.headers)) {
        for (const name of Object.keys(a.headers)) {
          out.push({ path: [...base, 'headers', name], kind: { k: 'headerValue' }, required: false, present: true, nullOk: false });
        }
      }
      const body = a.body;
      if (isObj(body)) {
        out.push({ path: [...base, 'body', 'type'], kind: { k: 'disc', union: 'body' }, required: true, present: true, nullOk: false });
        if (body.type === T.JsonBody) {
          out.push({ path: [...base, 'body', 'json_string'], kind: { k: 'text' }, required: true, present: 'json_string' in body, nullOk: false });
        }
      }
      break;
    }
    case T.Slack:
      add('channel', { k: 'text', max: 255, nonEmpty: true }, true);
      add('message', { k: 'text', max: 100_000 }, true);
      break;
    case T.Email:
      add('recipient', { k: 'text', max: 320, nonEmpty: true }, true);
      add('subject', { k: 'text', max: 998 }, true);
      add('message', { k: 'text', max: 100_000 }, true);
      break;
    case T.Kafka:
      add('topic', { k: 'text', max: 249, nonEmpty: true }, true);
      add('message', { k: 'text', max: 100_000 }, true);
      add('key', { k: 'text' }, false, null);
      break;
    case T.Chained:
      add('request', { k: 'request' }, true);
      if (isObj(a.request)) submitSlots(a.request, [...base, 'request'], false, out);
      break;
  }
}

/** Every object of a request tree (where unknown keys may be added), except string maps (headers). */
export function objectPaths(root: Json, base: Path = [], out: Path[] = []): Path[] {
  if (Array.isArray(root)) root.forEach((v, i) => objectPaths(v, [...base, i], out));
  else if (isObj(root)) {
    out.push(base);
    for (const [k, v] of Object.entries(root)) if (k !== 'headers') objectPaths(v, [...base, k], out);
  }
  return out;
}

// ------------------------------------------------------------------ rules oracle

function chainLength(action: Json | undefined): number {
  let n = 0;
  let cur = action;
  while (isObj(cur) && cur.type === T.Chained) {
    n++;
    cur = isObj(cur.request) ? cur.request.action : undefined;
  }
  return n;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Where a nested request's rule message says it is: `` (top level), `action.request.`, `hooks[0].action.request.`. */
function prefix(path: Path): string {
  const l = label(path);
  return l === '' ? '' : `${l}.`;
}

/** The Cron checks of a request whose fields are individually valid: a given period_time must repeat the expression. */
function cronViolations(req: JsonObject, path: Path): string[] {
  const pt = req.plan_type;
  if (!isObj(pt) || pt.type !== CRON) return [];
  const out: string[] = [];
  const expression = pt.expression;
  if (typeof expression === 'string') {
    if (WRONG_FIELD_COUNT_CRONS.includes(expression) || BAD_VALUE_CRONS.includes(expression) || NEVER_CRONS.includes(expression)) {
      out.push(`${escapeRegExp(prefix(path))}plan_type\\.expression: `);
    }
  }
  if (typeof pt.time_zone === 'string' && BAD_ZONES.includes(pt.time_zone)) out.push(`${escapeRegExp(prefix(path))}plan_type\\.time_zone: `);
  if ('period_time' in req && req.period_time !== expression) out.push(`${escapeRegExp(prefix(path))}period_time: `);
  return out;
}

function actionViolations(action: Json | undefined, path: Path): string[] {
  const out: string[] = [];
  if (chainLength(action) > RULES.maxChainedDepth) out.push('Depth exceeded for chained request --- passed: \\d+ \\| allowed: \\d+');
  if (isObj(action) && action.type === T.Chained && isObj(action.request)) out.push(...submitViolations(action.request, [...path, 'request']));
  return out;
}

function hooksViolations(hooks: Json | undefined, path: Path): string[] {
  return Array.isArray(hooks) ? hooks.flatMap((h, i) => (isObj(h) ? actionViolations(h.action, [...path, i, 'action']) : [])) : [];
}

/**
 * The contract's configured rules (strictMode, maxChainedDepth 2, minRecurringPeriod 1 s, a Cron plan's
 * period_time), applied to the request and every request nested in it: the messages (as regular expression
 * sources) a 400 may carry. Only meaningful for requests whose fields are individually valid; when several
 * rules are broken, any one of them may be the one reported.
 */
export function submitViolations(req: JsonObject, path: Path = []): string[] {
  const pt = req.plan_type;
  const out: string[] = [];
  const recurring = isObj(pt) && pt.type === T.Recurring;
  if (recurring && typeof req.period_time === 'string' && (periodMs(req.period_time) ?? Infinity) < RULES.minRecurringPeriodMs) {
    out.push(`${escapeRegExp(prefix(path))}period_time: a Recurring plan's period must be at least`);
  }
  out.push(...cronViolations(req, path));
  if (isObj(pt) && pt.type !== T.OneTime && isObj(req.action) && req.action.type === T.Chained) out.push('Chained requests cannot be recurring');
  out.push(...actionViolations(req.action, [...path, 'action']), ...hooksViolations(req.hooks, [...path, 'hooks']));
  return out;
}

/** The PATCH rules: a Recurring plan's period, a Cron plan's (any period is refused), the hooks' chained requests. */
export function updateViolations(req: JsonObject, target: UpdateTarget): string[] {
  const out: string[] = [];
  const period = req.period_time;
  if (target === 'recurring' && typeof period === 'string' && (periodMs(period) ?? Infinity) < RULES.minRecurringPeriodMs) {
    out.push("period_time: a Recurring plan's period must be at least");
  }
  if (target === 'cron' && typeof period === 'string') out.push('period_time: ');
  out.push(...hooksViolations(req.hooks, ['hooks']));
  return out;
}

/** A 400 carrying one of the violations' messages; undefined when there is none. */
export function violationText(violations: string[]): RegExp | undefined {
  return violations.length === 0 ? undefined : new RegExp(`(^|; )(${violations.map((v) => `(${v})`).join('|')})`);
}
