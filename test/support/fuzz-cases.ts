import { gzipSync } from 'node:zlib';
import { Rng } from './fuzz-rng';
import {
  BAD_BASE_URLS,
  BAD_ENUMS,
  BAD_PERIODS,
  badUuids,
  BODY_LIMIT_BYTES,
  clone,
  deleteAt,
  EXTRA_KEYS,
  FieldKind,
  FuzzContext,
  getAt,
  GOOD_BASE_URLS,
  isObj,
  isTrimWhitespace,
  Json,
  JsonObject,
  label,
  LONG_PERIODS,
  objectPaths,
  Path,
  periodMs,
  randomJson,
  responsePath,
  RULES,
  setAt,
  SHORT_PERIODS,
  Slot,
  SPECIAL_CHARS,
  submitSlots,
  T,
  UNIONS,
  updateSlots,
  validAction,
  validatorLength,
  validHook,
  validRestAction,
  validSubmit,
  validUpdate,
  updateViolations,
  submitViolations,
  violationText,
  CRON,
  escapeRegExp,
  validCronType,
  GOOD_CRONS,
  WRONG_FIELD_COUNT_CRONS,
  BAD_VALUE_CRONS,
  NEVER_CRONS,
  ODD_CRONS,
  GOOD_ZONES,
  BAD_ZONES,
  oddCaseZone,
  GOOD_END_ATS,
  goodEndAt,
  MAX_END_AT,
  QUOTED_NON_INTS,
  readInt,
  OVERLAPS,
  PlanFacts,
  PLAN_STATUSES,
  TASK_STATUSES,
  LIST_FILTERS,
  PLAN_KEYS,
  TASK_KEYS,
  PLAN_STATE_KEYS,
} from './fuzz-model';

/**
 * Generates the API fuzz test's cases: each starts from a valid request and applies one mutation, and says
 * what the contract requires the server to answer.
 */

export interface Expectation {
  statuses: readonly number[];
  /** A 4xx message must contain this (the field at fault). */
  names?: string;
  /** A 4xx message must match this. */
  text?: RegExp;
}

export interface RunState {
  /** Names of users created so far (as the server decodes and stores them). */
  createdNames: Set<string>;
  /** Plans created per user id (lower case), counted from the server's 200 answers. */
  plansByUser: Map<string, number>;
  /** Every plan a 200 acknowledged, by id (lower case), as its 200 answers left it (status, paused). */
  plans: Map<string, PlanFacts>;
}

export type Method = 'get' | 'post' | 'patch';

export interface FuzzCase {
  n: number;
  endpoint: string;
  /** The kind of mutation (for grouping), e.g. wrongType. */
  family: string;
  /** What was done to the valid request, with the path and value. */
  mutation: string;
  method: Method;
  url: string;
  /** undefined: no Content-Type header at all. */
  contentType?: string;
  headers?: Record<string, string>;
  /** undefined: no body at all. */
  body?: Buffer;
  expect: Expectation | ((s: RunState) => Expectation);
  /** Further checks of a 200 body; returns the problem, if any. */
  checkOk?: (body: unknown, s: RunState) => string | undefined;
  /** After a 200 submit, read the plan back and compare it with the echo (storage round trip). */
  roundTrip?: boolean;
}

type CaseSpec = Omit<FuzzCase, 'n' | 'endpoint' | 'family'> & { family?: string };

const ok = (): Expectation => ({ statuses: [200] });
const bad = (names?: string, text?: RegExp): Expectation => ({ statuses: [400], names, text });
const MALFORMED = /^Malformed JSON body/;
const NO_MAIN_USER = 'fz-';

function jsonBuffer(body: Json): Buffer {
  return Buffer.from(JSON.stringify(body), 'utf8');
}

function shortJson(v: Json | undefined): string {
  const s = JSON.stringify(v) ?? 'undefined';
  return s.length > 60 ? `${s.slice(0, 57)}...(${s.length} chars)` : s;
}

/** Percent-encodes every byte of the UTF-8 form except unreserved characters (lone surrogates become U+FFFD). */
export function pct(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** What a server decoding percent-encoded UTF-8 sees for `s`. */
export function decoded(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/**
 * What a 400 about a string value must show of it ("naming the field and the value"): its JSON form, or the
 * start of it for a long one. None for a value with NUL, which is refused as unstorable before it is read.
 */
function shownValue(value: string): RegExp | undefined {
  if (value.includes('\u0000')) return undefined;
  return new RegExp(escapeRegExp(JSON.stringify(value).slice(0, 40)));
}

/** Values a Cron plan's period_time may not have: anything but its expression, exactly. */
function cronPeriodMismatches(rng: Rng, expression: string): string[] {
  const out = ['PT1H', 'P1D', '', ' ', `${expression} `, ` ${expression}`, expression.trim(), expression.replace(/ /g, '  '),
    expression.toUpperCase(), expression.toLowerCase(), expression.replace(/ /g, '\t'), rng.pick(GOOD_CRONS), `${expression}\u0000`, 'null'];
  return out.filter((v) => v !== expression);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function prop(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
}

function at(body: unknown, path: Path): unknown {
  let cur = body;
  for (const key of path) {
    if (Array.isArray(cur) && typeof key === 'number') cur = cur[key] as unknown;
    else cur = prop(cur, String(key));
  }
  return cur;
}

// ------------------------------------------------------------------ body models

/** One JSON-body endpoint: how to make a valid body, its slots, and which valid bodies the rules still reject. */
interface BodyModel {
  endpoint: 'POST /v1/plan' | 'PATCH /v1/plan' | 'POST /v1/user';
  method: Method;
  url: string;
  body: JsonObject;
  slots: Slot[];
  /** The rule messages (regular expression sources) a body whose fields are each valid may still get a 400 for. */
  rules(body: JsonObject): string[];
  /** Checks of a 200 answer common to the endpoint. */
  checkOk?: (body: unknown) => string | undefined;
}

function submitModel(rng: Rng, ctx: FuzzContext): BodyModel {
  const body = validSubmit(rng, ctx, { topLevel: true, chainBudget: RULES.maxChainedDepth, size: rng.int(1, 3) });
  return {
    endpoint: 'POST /v1/plan', method: 'post', url: '/v1/plan', body,
    slots: submitSlots(body, [], true, []),
    rules: (b) => submitViolations(b),
  };
}

function updateModel(rng: Rng, ctx: FuzzContext): BodyModel {
  const { body, target } = validUpdate(rng, ctx);
  const planId = String(body.plan_id);
  return {
    endpoint: 'PATCH /v1/plan', method: 'patch', url: '/v1/plan', body,
    slots: updateSlots(body, target),
    rules: (b) => updateViolations(b, target),
    checkOk: (res) => (prop(res, 'id') === planId ? undefined : `id ${String(prop(res, 'id'))} is not the patched plan ${planId}`),
  };
}

function userModel(rng: Rng): BodyModel {
  const body: JsonObject = { name: `${NO_MAIN_USER}${rng.pick(['user', '\u00e9l\u00e8ve', '\u4e2d\u6587', 'x y', 'a+b&c=d'])}-${rng.hex(6)}` };
  return {
    endpoint: 'POST /v1/user', method: 'post', url: '/v1/user', body,
    slots: [{ path: ['name'], kind: { k: 'text', max: 255, nonEmpty: true }, required: true, present: true, nullOk: false }],
    rules: () => [],
  };
}

// ------------------------------------------------------------------ slot helpers

function nameOf(slot: Slot): string {
  const k = slot.kind.k;
  return label(k === 'disc' || k === 'hookItem' || k === 'headerValue' ? slot.path.slice(0, -1) : slot.path);
}

function isStringKind(kind: FieldKind): boolean {
  return ['uuid', 'text', 'period', 'cronPeriod', 'cronExpr', 'timeZone', 'baseUrl', 'enum', 'disc', 'headerValue'].includes(kind.k);
}

function validOf(union: 'action' | 'planType' | 'body', rng: Rng): JsonObject {
  if (union === 'planType') return { type: T.OneTime };
  if (union === 'body') return { type: T.EmptyBody };
  return validRestAction(rng);
}

/** A value of the wrong JSON type for the field (null only where null is not accepted). */
function wrongTypeValue(rng: Rng, kind: FieldKind, nullOk: boolean): Json {
  const nul: Json[] = nullOk ? [] : [null];
  if (isStringKind(kind)) return rng.pick<Json>([0, -1, 1.5, 1e308, true, false, ...nul, [], ['x'], [null], {}, { a: 'x' }]);
  switch (kind.k) {
    case 'int':
      // A quoted decimal integer ("3") is read as the number (see QUOTED_INT); other strings are still refused.
      return rng.chance(0.4) ? rng.pick(QUOTED_NON_INTS) : rng.pick<Json>([1.5, -0.5, true, ...nul, [], [1], {}, { value: 1 }]);
    case 'poly':
      return rng.pick<Json>(['x', kind.union === 'action' ? T.Rest : T.OneTime, 0, true, null, [], [null], [validOf(kind.union, rng)], [{}], [[]], [1]]);
    case 'headers':
      return rng.pick<Json>(['x', 1, true, null, [], [['a', 'b']], { a: 1 }, { a: null }, { a: {} }, { a: [] }, { a: true }]);
    case 'hooks':
      return rng.pick<Json>(['x', 1, true, {}, { trigger: 'ON_FAILURE' }, [1], ['x'], [null], [[]], [true]]);
    case 'hookItem':
      return rng.pick<Json>([1, 'x', null, true, [], [{}]]);
    default: // request
      return rng.pick<Json>(['x', 0, true, null, [], [null], [[]], [{}], ['x']]);
  }
}

function unknownDiscriminator(rng: Rng, union: 'action' | 'planType' | 'body'): string {
  const valid = rng.pick(UNIONS[union]);
  const others = (Object.keys(UNIONS) as (keyof typeof UNIONS)[]).filter((u) => u !== union).flatMap((u) => [...UNIONS[u]]);
  return rng.pick([
    `${valid}Nope`, '', valid.split('.').pop() ?? 'x', valid.toUpperCase(), valid.toLowerCase(), ` ${valid}`, `${valid} `,
    rng.pick(others), valid.slice(0, valid.lastIndexOf('.')), `${valid}\u0000`, valid.replace('a', '\u0430'), 'null',
    'undefined', '__proto__', 'constructor', 'toString', 'hasOwnProperty', valid.replace(/\./g, '$'), `${valid}.${valid}`,
  ]);
}

// ------------------------------------------------------------------ body mutations

interface Mutated {
  body: Json;
  mutation: string;
  expect: Expectation;
  checkOk?: (body: unknown) => string | undefined;
  roundTrip?: boolean;
}

/** A mutation that keeps every field valid: 200, unless the configured rules now reject the request. */
function stillValid(m: BodyModel, body: JsonObject, mutation: string, checkOk?: (b: unknown) => string | undefined): Mutated {
  const rule = violationText(m.rules(body));
  if (rule) return { body, mutation, expect: bad(undefined, rule) };
  return { body, mutation, expect: ok(), checkOk };
}

function pickSlot(rng: Rng, slots: Slot[], filter: (s: Slot) => boolean): Slot | undefined {
  const c = slots.filter(filter);
  return c.length === 0 ? undefined : rng.pick(c);
}

function deleteRequired(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => s.required && s.present);
  if (!slot) return undefined;
  const body = clone(m.body);
  deleteAt(body, slot.path);
  const names = slot.kind.k === 'disc' ? `${nameOf(slot)}: must carry a "type"` : `${nameOf(slot)}: required`;
  return { body, mutation: `delete required ${label(slot.path)}`, expect: bad(names) };
}

function deleteOptional(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => !s.required && s.present && s.kind.k !== 'hookItem');
  if (!slot) return undefined;
  const body = clone(m.body);
  deleteAt(body, slot.path);
  // A missing optional field takes its default (submit); in PATCH, missing means "keep". A nested Cron request's
  // period_time is filled in when the child plan is created, not in the stored request; an overlap is not filled in.
  const topOverlap = m.endpoint === 'POST /v1/plan' && label(slot.path) === 'plan_type.overlap';
  const check = topOverlap
    ? (res: unknown) => (isObj(prop(res, 'type') as Json) && 'overlap' in (prop(res, 'type') as object) ? `a missing overlap came back as ${JSON.stringify(at(res, ['type', 'overlap']))}` : undefined)
    : m.endpoint === 'POST /v1/plan' && slot.fallback !== undefined && (slot.kind.k !== 'cronPeriod' || slot.path.length === 1)
    ? (res: unknown) => {
      const got = at(res, responsePath(slot.path));
      return deepEqual(got, slot.fallback) ? undefined : `default of ${label(slot.path)}: expected ${shortJson(slot.fallback ?? null)}, got ${JSON.stringify(got)}`;
    }
    : undefined;
  return stillValid(m, body, `delete optional ${label(slot.path)}`, check);
}

function nullOptional(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => s.nullOk);
  if (!slot) return undefined;
  const body = clone(m.body);
  setAt(body, slot.path, null);
  // Top level: null means the default. Inside a stored action (a nested request) the contract says nothing about
  // echoing null or the default, so only the top level is checked.
  const check = m.endpoint === 'POST /v1/plan' && slot.fallback !== undefined && slot.path.length === 1
    ? (res: unknown) => {
      const got = at(res, responsePath(slot.path));
      return deepEqual(got, slot.fallback) ? undefined : `null ${label(slot.path)}: expected ${shortJson(slot.fallback ?? null)}, got ${JSON.stringify(got)}`;
    }
    : undefined;
  return stillValid(m, body, `null for optional ${label(slot.path)}`, check);
}

function wrongType(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, () => true);
  if (!slot) return undefined;
  const value = wrongTypeValue(rng, slot.kind, slot.nullOk);
  const body = clone(m.body);
  setAt(body, slot.path, value);
  return { body, mutation: `wrong type ${label(slot.path)} = ${shortJson(value)}`, expect: bad(nameOf(slot)) };
}

/** An object-valued field given as a list: empty, holding null, holding the (valid) object itself, or nested. */
function listForObject(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => ['poly', 'request', 'headers', 'hookItem'].includes(s.kind.k) && s.present);
  if (!slot) return undefined;
  const current = getAt(m.body, slot.path) ?? null;
  const value = rng.pick<Json>([[], [null], [clone(current)], [[]], [current, current]]);
  const body = clone(m.body);
  setAt(body, slot.path, value);
  return { body, mutation: `list for object ${label(slot.path)} = ${shortJson(value)}`, expect: bad(nameOf(slot)) };
}

function badValue(rng: Rng, m: BodyModel, ctx: FuzzContext): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => !['headers', 'headerValue', 'hookItem'].includes(s.kind.k) &&
    !(s.kind.k === 'text' && s.kind.max === undefined && !s.kind.nonEmpty));
  if (!slot) return undefined;
  const kind = slot.kind;
  const body = clone(m.body);
  let value: Json;
  let expect = bad(nameOf(slot));
  switch (kind.k) {
    case 'uuid': {
      if (rng.chance(0.25)) {
        value = rng.chance(0.5) ? rng.uuid() : rng.uuid().toUpperCase();
        // A chained request nested in the body is for the old owner: the chain rule (403) is checked before the user is looked up.
        if (kind.role === 'user' && JSON.stringify(body).includes(T.Chained)) {
          expect = { statuses: [403], text: /^[\w.[\]]+\.request\.user_id: a chained request creates plans only for the plan's owner / };
        } else if (kind.role === 'user') expect = { statuses: [404], text: new RegExp(`^User \\(${value}\\) not found$`, 'i') };
        else if (kind.role === 'plan') expect = { statuses: [404], text: new RegExp(`^Plan not found --- ${value}$`, 'i') };
        // A nested (chained) request may only be for the plan's owner: any other id, known or not, is a 403.
        else expect = { statuses: [403], text: new RegExp(`^${escapeRegExp(label(slot.path))}: a chained request creates plans only for the plan's owner `) };
      } else {
        value = rng.pick(badUuids(rng, String(getAt(body, slot.path) ?? ctx.userId)));
      }
      break;
    }
    case 'text':
      value = kind.nonEmpty && (kind.max === undefined || rng.chance(0.5))
        ? ''
        : ((kind.max ?? 0) > 1000 ? 'x' : rng.pick(['x', '\ud83d\ude00', '\u00e9'])).repeat((kind.max ?? 0) + 1);
      break;
    case 'period': {
      const tooShort = SHORT_PERIODS.filter(([, ms]) => ms < RULES.minRecurringPeriodMs).map(([p]) => p);
      value = kind.recurring && rng.chance(0.3) ? rng.pick(tooShort) : rng.pick(BAD_PERIODS);
      break;
    }
    case 'cronPeriod':
      value = rng.pick(cronPeriodMismatches(rng, String(getAt(body, [...slot.path.slice(0, -1), 'plan_type', 'expression']))));
      break;
    case 'cronExpr': {
      value = rng.pick(rng.weighted<readonly string[]>([[WRONG_FIELD_COUNT_CRONS, 3], [BAD_VALUE_CRONS, 4], [NEVER_CRONS, 2], [[`0 0 * * ${'1,'.repeat(130)}1`], 1]]));
      expect = bad(nameOf(slot), shownValue(value));
      // A period_time repeats the bad expression, so the expression is the one thing wrong.
      const owner = getAt(body, slot.path.slice(0, -2));
      if (isObj(owner) && 'period_time' in owner) owner.period_time = value;
      break;
    }
    case 'timeZone':
      value = rng.pick(BAD_ZONES);
      expect = bad(nameOf(slot), shownValue(value));
      break;
    case 'baseUrl':
      value = rng.pick(BAD_BASE_URLS);
      break;
    case 'enum':
      value = rng.pick(BAD_ENUMS);
      break;
    case 'int':
      value = rng.pick<Json>([kind.min - 1, kind.max + 1, 1.5, kind.min - 0.5, 1e21, -1e21, 2 ** 53, kind.max + 0.5]);
      // Quoted, the same range checks apply (and a number too big for a double is no integer).
      if (rng.chance(0.3)) value = rng.pick([String(kind.min - 1), String(kind.max + 1), '1'.repeat(25), '9'.repeat(400)]);
      break;
    case 'disc': {
      const union = kind.union;
      value = unknownDiscriminator(rng, union);
      break;
    }
    case 'poly':
      value = rng.pick<Json>([{}, { type: null }, { Type: UNIONS[kind.union][0] }, { type: [UNIONS[kind.union][0]] }]);
      break;
    case 'hooks':
      value = Array.from({ length: 51 }, () => ({ trigger: 'ON_FAILURE', action: { type: T.Rest, base_url: 'localhost:9' } }));
      expect = bad(nameOf(slot), /50/);
      break;
    case 'request':
      value = rng.pick<Json>([{}, { user_id: ctx.otherUserId }]);
      break;
    default:
      return undefined;
  }
  setAt(body, slot.path, value);
  return { body, mutation: `bad value ${label(slot.path)} = ${shortJson(value)}`, expect };
}

function goodValue(rng: Rng, m: BodyModel, ctx: FuzzContext): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => s.kind.k !== 'hookItem');
  if (!slot) return undefined;
  const kind = slot.kind;
  const body = clone(m.body);
  const topLevel = m.endpoint === 'POST /v1/plan' && slot.path.length === 1;
  let value: Json;
  switch (kind.k) {
    case 'uuid': {
      // Chained requests may only be for the plan's owner, so another user stays valid only where the body has
      // none to disagree with it.
      const owners = kind.role === 'user' && !JSON.stringify(body).includes(T.Chained) ? [ctx.userId.toUpperCase(), ctx.otherUserId] : [ctx.userId.toUpperCase()];
      value = kind.role === 'plan' ? String(getAt(body, slot.path)).toUpperCase() : rng.pick(owners);
      break;
    }
    case 'text': {
      const max = kind.max ?? 300;
      value = rng.pick([
        'x'.repeat(Math.min(max, 99_000)), (max <= 1000 ? '\ud83d\ude00' : 'y').repeat(Math.min(max, 99_000)), ' ',
        '\u00dcn\u00efc\u00f6d\u00e9 \u4e2d\u6587 \u05e2\u05d1\u05e8\u05d9\u05ea', 'tab\there', '0', 'null', '{"a":1}',
      ]);
      if (slot.nullOk && rng.chance(0.2)) value = null;
      break;
    }
    case 'period':
      value = rng.pick(m.endpoint === 'POST /v1/plan' && slot.path.length === 1 ? LONG_PERIODS : [...LONG_PERIODS, ...SHORT_PERIODS])[0];
      break;
    case 'cronPeriod': {
      const expression = getAt(body, [...slot.path.slice(0, -1), 'plan_type', 'expression']) ?? null;
      setAt(body, slot.path, expression);
      return stillValid(m, body, `period_time repeats the expression ${shortJson(expression)}`, topLevel
        ? (res) => (prop(res, 'period_time') === expression ? undefined : `period_time came back as ${JSON.stringify(prop(res, 'period_time'))}, not the expression`)
        : undefined);
    }
    case 'cronExpr': {
      value = rng.pick(GOOD_CRONS);
      setAt(body, slot.path, value);
      // A period_time the request repeats the expression in follows it, mostly: left behind, it is a 400.
      const periodPath = [...slot.path.slice(0, -2), 'period_time'];
      const owner = getAt(body, slot.path.slice(0, -2));
      const follows = isObj(owner) && 'period_time' in owner && rng.chance(0.7);
      if (follows) setAt(body, periodPath, value);
      const expression = value;
      return stillValid(m, body, `valid ${label(slot.path)} = ${shortJson(value)}${follows ? ', period_time too' : ''}`,
        slot.path.length === 2 && m.endpoint === 'POST /v1/plan'
          ? (res) => (prop(res, 'period_time') === expression && at(res, ['type', 'expression']) === expression
            ? undefined : `expression ${JSON.stringify(expression)} came back as period_time ${JSON.stringify(prop(res, 'period_time'))}, type.expression ${JSON.stringify(at(res, ['type', 'expression']))}`)
          : undefined);
    }
    case 'timeZone':
      value = rng.chance(0.8) ? rng.pick(GOOD_ZONES) : oddCaseZone(rng);
      setAt(body, slot.path, value);
      if (!GOOD_ZONES.includes(value)) {
        // IANA names match in any case (ECMA-402): accepting one is fine, if it is stored as echoed.
        const mutation = `odd-case zone ${label(slot.path)} = ${JSON.stringify(value)}`;
        const v = stillValid(m, body, mutation);
        return v.expect.statuses.includes(200) ? { ...v, expect: { statuses: [200, 400], names: nameOf(slot) }, roundTrip: true } : v;
      }
      break;
    case 'baseUrl':
      value = rng.pick(GOOD_BASE_URLS);
      break;
    case 'enum':
      value = rng.oddCase(rng.pick(kind.values));
      break;
    case 'int': {
      const n = rng.pick([kind.min, kind.max]);
      value = rng.chance(0.5) ? String(n) : n;
      setAt(body, slot.path, value);
      // A quoted integer is stored and echoed as the number (the Plan echoes every submitted or patched field).
      const echoed = m.endpoint !== 'POST /v1/user';
      return stillValid(m, body, `valid ${label(slot.path)} = ${shortJson(value)}`, echoed
        ? (res) => (at(res, responsePath(slot.path)) === n ? undefined : `${label(slot.path)} sent as ${shortJson(value)} came back as ${JSON.stringify(at(res, responsePath(slot.path)))}, expected ${n}`)
        : undefined);
    }
    case 'disc': {
      const parentPath = slot.path.slice(0, -1);
      const current = getAt(body, slot.path);
      const other = UNIONS[kind.union].filter((t) => t !== current);
      value = rng.pick(other);
      setAt(body, slot.path, value);
      const mutation = `swap ${label(slot.path)} ${shortJson(current ?? null)} -> ${value}`;
      // To Cron: no expression. From Cron: its period_time (missing, or the expression) is no ISO period.
      if (kind.union === 'planType' && value === CRON) return { body, mutation, expect: bad(`${label(parentPath)}.expression: required`) };
      if (kind.union === 'planType' && current === CRON) return { body, mutation, expect: bad(label([...slot.path.slice(0, -2), 'period_time'])) };
      if (kind.union === 'planType') return stillValid(m, body, mutation);
      // JsonBody -> EmptyBody drops json_string (an unknown key now); every other swap lacks required fields.
      if (kind.union === 'body' && value === T.EmptyBody) return stillValid(m, body, mutation);
      return { body, mutation, expect: bad(label(parentPath)) };
    }
    case 'poly':
      value = kind.union === 'action' ? validAction(rng, ctx, slot.path.includes('request') ? 0 : 1, 1) : validOf(kind.union, rng);
      if (kind.union === 'planType') {
        value = rng.weighted<Json>([
          [value, 1], [{ type: T.Recurring, end_at: rng.pick<Json>([null, 0, 4_102_444_800_000]) }, 1],
          [{ type: T.Recurring, overlap: rng.pick(OVERLAPS) }, 1], [validCronType(rng), 1],
        ]);
        setAt(body, slot.path, value);
        // The request's period_time must suit the new type (an ISO period; for Cron, missing or the expression).
        const owner = getAt(body, slot.path.slice(0, -1));
        const pp = [...slot.path.slice(0, -1), 'period_time'];
        if (isObj(value) && isObj(owner) && rng.chance(0.8)) {
          if (value.type === CRON) {
            if (rng.chance(0.5)) deleteAt(body, pp);
            else setAt(body, pp, value.expression ?? null);
          } else if (typeof owner.period_time !== 'string' || periodMs(owner.period_time) === undefined) setAt(body, pp, 'PT1H');
        }
        const period = isObj(owner) ? owner.period_time : undefined;
        const mutation = `valid ${label(slot.path)} = ${shortJson(value)}, period_time ${shortJson(period)}`;
        if (isObj(value) && value.type !== CRON && (typeof period !== 'string' || periodMs(period) === undefined)) {
          return { body, mutation, expect: bad(label(pp)) };
        }
        return stillValid(m, body, mutation);
      }
      break;
    case 'headers':
      value = rng.chance(0.5) ? {} : Object.fromEntries(Array.from({ length: rng.int(1, 200) }, (_, i) => [`x-h${i}`, `v${i}`]));
      break;
    case 'headerValue':
      value = rng.pick(['', '\u00e9', 'a'.repeat(5000), ' ']);
      break;
    case 'hooks':
      value = rng.chance(0.5) ? [] : Array.from({ length: rng.chance(0.3) ? 50 : rng.int(1, 4) }, () => validHook(rng, ctx, 0));
      break;
    default: // request
      value = validSubmit(rng, ctx, { topLevel: false, chainBudget: 0, size: 1 });
  }
  setAt(body, slot.path, value);
  const mutation = `valid ${label(slot.path)} = ${shortJson(value)}`;
  if (topLevel && slot.kind.k === 'uuid' && typeof value === 'string') {
    return stillValid(m, body, mutation, (res) =>
      String(prop(res, 'user_id')).toLowerCase() === String(value).toLowerCase() ? undefined : `user_id echoed as ${String(prop(res, 'user_id'))}`);
  }
  return stillValid(m, body, mutation);
}

function oddCaseEnum(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => s.kind.k === 'enum');
  if (!slot || slot.kind.k !== 'enum') return undefined;
  const canonical = rng.pick(slot.kind.values);
  const value = rng.oddCase(canonical);
  const body = clone(m.body);
  setAt(body, slot.path, value);
  return stillValid(m, body, `odd-case enum ${label(slot.path)} = ${JSON.stringify(value)}`, (res) => {
    const got = at(res, responsePath(slot.path));
    return got === canonical ? undefined : `enum ${label(slot.path)} sent as ${JSON.stringify(value)} came back as ${JSON.stringify(got)}, expected ${canonical}`;
  });
}

function extraKeys(rng: Rng, m: BodyModel): Mutated {
  const body = clone(m.body);
  const paths = objectPaths(body);
  const added: string[] = [];
  for (let i = rng.int(1, 3); i > 0; i--) {
    const where = rng.pick(paths);
    const key = rng.pick(EXTRA_KEYS);
    const target = getAt(body, where);
    // Only keys the contract does not define for that object (a real field name would not be "unknown").
    if (!isObj(target) || key in target || (where.length === 0 && ['hooks', 'max_failure_retry'].includes(key))) continue;
    setAt(body, [...where, key], randomJson(rng, 3));
    added.push(`${label([...where, key]) || key}`);
  }
  return stillValid(m, body, `extra keys ${added.join(', ') || '(none)'}`, (res) =>
    JSON.stringify(res).includes('fuzz_extra') ? 'an unknown input key was stored and echoed back' : undefined);
}

function hugeString(rng: Rng, m: BodyModel): Mutated | undefined {
  const overLimit = rng.chance(0.12);
  const slot = pickSlot(rng, m.slots, (s) => isStringKind(s.kind));
  const body = clone(m.body);
  const extra = !slot || rng.chance(0.15);
  const path: Path = extra ? ['fuzz_extra_huge'] : slot.path;
  const unit = rng.pick(['x', 'abcdefghij', '\u00e9', '\u4e2d', '\ud83d\ude00', 'a\\"', 'p\u0001']);
  setAt(body, path, '');
  const baseBytes = jsonBuffer(body).length;
  const unitBytes = Buffer.byteLength(JSON.stringify(unit), 'utf8') - 2;
  const target = overLimit ? rng.int(BODY_LIMIT_BYTES + 1000, 200_000) : rng.int(20_000, BODY_LIMIT_BYTES - 1500);
  const value = unit.repeat(Math.max(1, Math.floor((target - baseBytes) / unitBytes)));
  setAt(body, path, value);
  const bytes = jsonBuffer(body).length;
  const mutation = `huge string (${value.length} chars, body ${bytes} bytes) at ${label(path)}`;
  if (bytes > BODY_LIMIT_BYTES) return { body, mutation, expect: { statuses: [413], text: /too large/i } };
  if (extra || !slot) return stillValid(m, body, mutation);
  const kind = slot.kind;
  const fits = (kind.k === 'text' && validatorLength(value) <= (kind.max ?? Infinity)) || kind.k === 'headerValue';
  return fits ? stillValid(m, body, mutation) : { body, mutation, expect: bad(nameOf(slot)) };
}

function unicode(rng: Rng, m: BodyModel): Mutated | undefined {
  const slot = pickSlot(rng, m.slots, (s) => isStringKind(s.kind) && s.present && typeof getAt(m.body, s.path) === 'string');
  if (!slot) return undefined;
  const body = clone(m.body);
  let value = String(getAt(body, slot.path));
  const inserted: string[] = [];
  for (let i = rng.int(1, 4); i > 0; i--) {
    const piece = rng.pick(SPECIAL_CHARS);
    const pos = rng.chance(0.5) ? rng.pick([0, value.length]) : rng.int(0, value.length);
    value = value.slice(0, pos) + piece + value.slice(pos);
    inserted.push(piece);
  }
  setAt(body, slot.path, value);
  const mutation = `special characters ${JSON.stringify(inserted.join(''))} in ${label(slot.path)}`;
  const kind = slot.kind;
  const either: Expectation = { statuses: [200, 400], names: nameOf(slot) };
  let expect: Expectation;
  if (kind.k === 'text') expect = validatorLength(value) > (kind.max ?? Infinity) ? bad(nameOf(slot)) : either;
  else if (kind.k === 'headerValue' || kind.k === 'baseUrl') expect = either;
  else if (kind.k === 'period') expect = inserted.every(isTrimWhitespace) ? either : bad(nameOf(slot));
  else if (kind.k === 'cronExpr' && inserted.every((c) => /^\s+$/.test(c))) {
    // Whitespace separates fields: the expression may still be valid (then a period_time repeating the old one is not).
    const owner = getAt(body, slot.path.slice(0, -2));
    expect = isObj(owner) && 'period_time' in owner
      ? bad(undefined, new RegExp(`(^|; )${escapeRegExp(nameOf(slot))}|(^|; )${escapeRegExp(label([...slot.path.slice(0, -2), 'period_time']))}`))
      : either;
  } else expect = bad(nameOf(slot));
  // Accepting it is fine; then the server must also store exactly what it echoed (or reject it with a 400).
  const rule = expect.statuses.includes(200) ? violationText(m.rules(body)) : undefined;
  if (rule) expect = bad(undefined, rule);
  return { body, mutation, expect, roundTrip: true };
}

function deepChain(rng: Rng, m: BodyModel, ctx: FuzzContext): Mutated {
  const levels = rng.pick([1, 2, 3, 3, 4, 5, 8, 10, 20, 25, 28, 30, 31, 32, 40, 100, 200]);
  let action: JsonObject = { type: T.Rest, base_url: 'localhost:9' };
  for (let i = 0; i < levels; i++) {
    action = {
      type: T.Chained,
      request: { user_id: ctx.userId, description: `level ${levels - i}`, period_time: 'PT1H', plan_type: { type: T.OneTime }, action },
    };
  }
  const body = clone(m.body);
  const spots: Path[] = m.endpoint === 'PATCH /v1/plan' ? [['hooks', 0, 'action']] : [['action'], ['hooks', 0, 'action']];
  const spot = rng.pick(spots);
  if (spot[0] === 'hooks') setAt(body, ['hooks'], [{ trigger: 'ON_FAILURE', action: {} }]);
  if (spot[0] === 'action' && isObj(body.plan_type)) {
    body.plan_type = { type: T.OneTime };
    // A Cron request's period_time (missing, or its expression) is no ISO period.
    if (typeof body.period_time !== 'string' || periodMs(body.period_time) === undefined) body.period_time = 'PT1H';
  }
  setAt(body, spot, action);
  const mutation = `${levels} nested chained requests at ${label(spot)}`;
  if (levels <= RULES.maxChainedDepth) return stillValid(m, body, mutation);
  const exact = spot[0] === 'action' && levels <= 25
    ? /^Depth exceeded for chained request --- passed: 3 \| allowed: 2$/
    : /Depth exceeded for chained request --- passed: 3 \| allowed: 2|nested more than \d+ levels deep/;
  return { body, mutation, expect: bad(undefined, exact) };
}

function recurringChained(rng: Rng, m: BodyModel, ctx: FuzzContext): Mutated {
  const body = clone(m.body);
  const chained: JsonObject = { type: T.Chained, request: validSubmit(rng, ctx, { topLevel: false, chainBudget: 0, size: 0 }) };
  // Cron plans are recurring too (strictMode: only a OneTime plan may have a chained action).
  const cron = rng.chance(0.4);
  const planType = cron ? validCronType(rng) : { type: T.Recurring };
  const what = cron ? 'cron' : 'recurring';
  if (m.endpoint === 'PATCH /v1/plan' || rng.chance(0.4)) {
    // Nested: a hook's chained request that is itself Recurring or Cron with a chained action.
    const inner: JsonObject = { user_id: ctx.userId, description: 'r', plan_type: planType, action: chained };
    if (!cron) inner.period_time = 'PT1H';
    setAt(body, ['hooks'], [{ trigger: 'ON_COMPLETION', action: { type: T.Chained, request: inner } }]);
    return { body, mutation: `${what} plan with a chained action, nested in a hook`, expect: bad(undefined, /Chained requests cannot be recurring/) };
  }
  body.plan_type = planType;
  if (cron) delete body.period_time;
  else if (typeof body.period_time !== 'string' || periodMs(body.period_time) === undefined) body.period_time = 'PT1H';
  body.action = chained;
  return { body, mutation: `${what} plan with a chained action`, expect: bad(undefined, /^Chained requests cannot be recurring$/) };
}

/** The plan type a valid Cron or Recurring type comes back as: defaults filled in, overlap upper-cased (or left out). */
function echoedType(sent: JsonObject): JsonObject {
  const out: JsonObject = { type: sent.type ?? null };
  if (sent.type === CRON) {
    out.expression = sent.expression ?? null;
    out.time_zone = sent.time_zone ?? 'UTC';
  }
  out.end_at = readInt(sent.end_at) ?? null;
  if ('overlap' in sent) out.overlap = typeof sent.overlap === 'string' ? sent.overlap.toUpperCase() : null;
  return out;
}

function sameType(res: unknown, expected: JsonObject): string | undefined {
  const got = prop(res, 'type');
  const canon = (v: unknown) => JSON.stringify(Object.fromEntries(Object.entries((v ?? {}) as object).sort(([a], [b]) => a.localeCompare(b))));
  return canon(got) === canon(expected) ? undefined : `type came back as ${shortJson(got as Json)}, expected ${shortJson(expected)}`;
}

/**
 * The new plan type at the top level of a submit (issue 13): expressions with 5, 6 or other field counts, bad
 * values, never-firing ones; zones known, unknown, odd-case, with NUL, very long; end_at edges; overlap valid,
 * invalid, odd-case (on Cron and Recurring, ignored on OneTime); period_time missing, repeating the expression,
 * or not. A valid one must come back with its defaults and the expression as period_time, and be stored so.
 */
function cronFamily(rng: Rng, m: BodyModel): Mutated {
  const body = clone(m.body);
  // A chained action needs a OneTime plan (strictMode): the plain case here is not about that rule.
  if (isObj(body.action) && body.action.type === T.Chained) body.action = validRestAction(rng);
  const t = validCronType(rng);
  body.plan_type = t;
  delete body.period_time;
  if (rng.chance(0.4)) body.period_time = String(t.expression);
  const variant = rng.weighted<string>([
    ['valid', 6], ['fieldCount', 3], ['badValue', 3], ['never', 2], ['odd', 2], ['zone', 4], ['endAt', 3], ['overlap', 3],
    ['recurringOverlap', 3], ['oneTimeOverlap', 1], ['period', 4], ['wrongTypes', 2],
  ]);
  const named = (field: string, value: string): Expectation => bad(`plan_type.${field}`, shownValue(value));
  let mutation: string;
  let expect: Expectation | undefined;
  // A period_time given repeats the expression, whatever it becomes: only the variant's field is wrong.
  const repeat = 'period_time' in body;
  switch (variant) {
    case 'fieldCount': {
      t.expression = rng.pick(WRONG_FIELD_COUNT_CRONS);
      mutation = `cron expression with ${String(t.expression).trim().split(/\s+/).filter((f) => f !== '').length} fields ${JSON.stringify(t.expression)}`;
      expect = named('expression', t.expression);
      break;
    }
    case 'badValue':
      t.expression = rng.pick(BAD_VALUE_CRONS);
      mutation = `cron expression with a bad value ${JSON.stringify(t.expression)}`;
      expect = named('expression', t.expression);
      break;
    case 'never':
      t.expression = rng.pick(NEVER_CRONS);
      mutation = `never-firing cron expression ${JSON.stringify(t.expression)}`;
      expect = named('expression', t.expression);
      break;
    case 'odd': {
      t.expression = rng.pick(ODD_CRONS);
      mutation = `unusual cron expression ${JSON.stringify(t.expression)}`;
      if ('period_time' in body) body.period_time = t.expression;
      return { body, mutation, expect: { statuses: [200, 400], names: 'plan_type.expression' }, roundTrip: true };
    }
    case 'zone': {
      const r = rng.next();
      if (r < 0.35) {
        t.time_zone = rng.pick(GOOD_ZONES);
        mutation = `cron time zone ${JSON.stringify(t.time_zone)}`;
      } else if (r < 0.5) {
        t.time_zone = oddCaseZone(rng);
        mutation = `odd-case cron time zone ${JSON.stringify(t.time_zone)}`;
        return { body, mutation, expect: { statuses: [200, 400], names: 'plan_type.time_zone' }, roundTrip: true };
      } else {
        t.time_zone = rng.chance(0.15) ? `${rng.pick(GOOD_ZONES)}\u0000` : rng.pick(BAD_ZONES);
        mutation = `bad cron time zone ${shortJson(t.time_zone)}`;
        expect = named('time_zone', t.time_zone);
      }
      break;
    }
    case 'endAt': {
      if (rng.chance(0.5)) {
        t.end_at = goodEndAt(rng);
        mutation = `cron end_at ${JSON.stringify(t.end_at)}`;
      } else {
        t.end_at = rng.pick<Json>([
          -1, MAX_END_AT + 1, 1.5, -0.5, 1e21, 2 ** 63, '1700000000000.5', '1.7e12', '', true, [], {}, 'null', '-1', String(MAX_END_AT + 1),
        ]);
        mutation = `bad cron end_at ${JSON.stringify(t.end_at)}`;
        expect = bad('plan_type.end_at');
      }
      break;
    }
    case 'overlap':
    case 'recurringOverlap':
    case 'oneTimeOverlap': {
      const good = rng.chance(0.5);
      const value: Json = good
        ? (rng.chance(0.5) ? rng.pick(OVERLAPS) : rng.oddCase(rng.pick(OVERLAPS)))
        : rng.pick<Json>(['', ' SKIP', 'SKIP ', 'BUFFER', 'BUFFER ONE', 'BUFFER-ONE', 'BUFFERONE', 'NONE', 'skip\u0000', 'ALLOW,SKIP', 'CANCEL_OTHER',
          'TERMINATE', 0, 1, true, [], ['SKIP'], {}, 'null', 'x'.repeat(300)]);
      if (variant !== 'overlap') {
        const planType: JsonObject = { type: variant === 'recurringOverlap' ? T.Recurring : T.OneTime };
        if (rng.chance(0.3) && variant === 'recurringOverlap') planType.end_at = rng.pick(GOOD_END_ATS);
        body.plan_type = planType;
        body.period_time = rng.pick(LONG_PERIODS)[0];
      }
      const pt = body.plan_type as JsonObject;
      pt.overlap = value;
      mutation = `overlap ${shortJson(value)} on ${variant === 'overlap' ? 'Cron' : variant === 'recurringOverlap' ? 'Recurring' : 'OneTime'}`;
      // OneTime has no overlap: an unknown key there, dropped (but no input may hold NUL, known key or not).
      if (variant === 'oneTimeOverlap' && typeof value === 'string' && value.includes('\u0000')) return { body, mutation, expect: bad('plan_type.overlap') };
      if (variant === 'oneTimeOverlap') {
        return stillValid(m, body, mutation, (res) => (isObj(prop(res, 'type') as Json) && 'overlap' in (prop(res, 'type') as object) ? 'a OneTime plan came back with an overlap' : undefined));
      }
      if (!good) expect = bad('plan_type.overlap');
      break;
    }
    case 'period': {
      const r = rng.next();
      if (r < 0.3) {
        delete body.period_time;
        mutation = 'cron plan without period_time';
      } else if (r < 0.5) {
        body.period_time = String(t.expression);
        mutation = 'cron plan with period_time repeating the expression';
      } else {
        body.period_time = rng.chance(0.15) ? rng.pick<Json>([null, 0, [], {}, true]) : rng.pick(cronPeriodMismatches(rng, String(t.expression)));
        mutation = `cron plan with period_time ${shortJson(body.period_time)} (expression ${JSON.stringify(t.expression)})`;
        expect = bad('period_time');
      }
      break;
    }
    default: {
      // wrongTypes
      const field = rng.pick(['expression', 'time_zone']);
      const value = rng.pick<Json>([0, 5, true, null, [], ['* * * * *'], {}, { expression: '* * * * *' }]);
      t[field] = value;
      mutation = `cron ${field} of the wrong type ${shortJson(value)}`;
      expect = bad(`plan_type.${field}`);
      break;
    }
    case 'valid':
      mutation = `valid cron plan ${shortJson(t)}${'period_time' in body ? ' with period_time' : ''}`;
  }
  if (repeat && variant !== 'period' && isObj(body.plan_type) && body.plan_type.type === CRON) body.period_time = t.expression ?? null;
  if (expect) return { body, mutation, expect };
  // Still valid: the type comes back with its defaults, and a Cron plan's period_time is its expression.
  const sent = body.plan_type as JsonObject;
  const v = stillValid(m, body, mutation, (res) => {
    if (sent.type === CRON && prop(res, 'period_time') !== sent.expression) return `period_time came back as ${JSON.stringify(prop(res, 'period_time'))}, not the expression`;
    return sameType(res, echoedType(sent));
  });
  return { ...v, roundTrip: true };
}

// ------------------------------------------------------------------ raw-body mutations

function rawCase(m: BodyModel, mutation: string, body: Buffer | undefined, contentType: string | undefined, expect: Expectation,
  headers?: Record<string, string>): CaseSpec {
  return { mutation, method: m.method, url: m.url, body, contentType, headers, expect, checkOk: m.checkOk };
}

function malformedJson(rng: Rng, m: BodyModel): CaseSpec {
  const text = JSON.stringify(m.body);
  for (let attempt = 0; attempt < 20; attempt++) {
    const op = rng.int(0, 11);
    let t: string;
    switch (op) {
      case 0: t = text.slice(0, rng.int(1, text.length - 1)); break;
      case 1: { const i = rng.int(0, text.length - 1); t = text.slice(0, i) + text.slice(i + 1); break; }
      case 2: { const i = rng.int(1, text.length - 1); t = text.slice(0, i) + rng.pick(['{', '}', '[', ']', ':', ',', '"', "'", '\\']) + text.slice(i); break; }
      case 3: t = text.replace(/"/g, "'"); break;
      case 4: t = `${text.slice(0, -1)},}`; break;
      case 5: t = text + rng.pick(['x', text, '}', ' // comment']); break;
      case 6: t = rng.pick(['// c\n', ")]}'\n", 'garbage', '\u0000']) + text; break;
      case 7: t = text.replace(/:(\d+|"[^"]*")/, `:${rng.pick(['NaN', 'Infinity', 'undefined', '01', '0x10', '.5', '+1', "'v'"])}`); break;
      case 8: t = text.replace(/"([^"]*)"/, `"$1\\x41"`); break;
      case 9: t = text.replace(/:"/, ':"\u0001'); break;
      case 10: t = rng.pick(['{', '}', '[', 'nul', 'tru', '"unterminated', '{"a":}', '{,}', '{"a" 1}', '   ', '\n', '"string"', '123', 'null', 'true', '{"a":1}}']); break;
      default: t = text.replace(/\{/, '{{'); break;
    }
    let parses = true;
    try {
      JSON.parse(t);
    } catch {
      parses = false;
    }
    // Valid JSON that is not an object (123, "s", null, true) is refused by body-parser's strict mode too.
    const strictRejects = parses && !/^[\s]*[{[]/.test(t);
    if (!parses || strictRejects) {
      return rawCase(m, `malformed JSON (${JSON.stringify(t.length > 50 ? `${t.slice(0, 47)}...` : t)})`, Buffer.from(t, 'utf8'),
        'application/json', bad(undefined, MALFORMED));
    }
  }
  return rawCase(m, 'malformed JSON (truncated)', Buffer.from(text.slice(0, -1), 'utf8'), 'application/json', bad(undefined, MALFORMED));
}

function jsonTopLevelNotObject(rng: Rng, m: BodyModel): CaseSpec {
  const t = rng.pick(['[]', '[{}]', `[${JSON.stringify(m.body)}]`, '[null]']);
  return rawCase(m, `JSON list body ${t.slice(0, 30)}`, Buffer.from(t), 'application/json', bad(undefined, /must be a JSON object/));
}

function firstRequired(m: BodyModel): string {
  return m.endpoint === 'POST /v1/plan' ? 'user_id' : m.endpoint === 'PATCH /v1/plan' ? 'plan_id' : 'name';
}

function expectValidBody(m: BodyModel, statuses: number[] = [200]): Expectation {
  const rule = violationText(m.rules(m.body));
  if (rule) return bad(undefined, rule);
  return { statuses };
}

function contentType(rng: Rng, m: BodyModel): CaseSpec {
  const json = jsonBuffer(m.body);
  const variant = rng.int(0, 19);
  const either4xx: Expectation = { statuses: [400, 415] };
  switch (variant) {
    case 0: return rawCase(m, 'JSON sent as text/plain', json, 'text/plain', bad());
    case 1: return rawCase(m, 'JSON sent as application/xml', json, 'application/xml', bad());
    case 2: return rawCase(m, 'JSON sent as multipart/form-data', json, 'multipart/form-data; boundary=x', bad());
    case 3: return rawCase(m, 'JSON sent without a Content-Type', json, undefined, bad());
    case 4: return rawCase(m, 'JSON sent as application/vnd.api+json', json, 'application/vnd.api+json', bad());
    case 5: return rawCase(m, 'JSON sent as application/octet-stream', json, 'application/octet-stream', bad());
    case 6: return rawCase(m, 'JSON declared utf-16', json, 'application/json; charset=utf-16', either4xx);
    case 7: return rawCase(m, 'JSON declared latin1', json, 'application/json; charset=latin1', either4xx);
    case 8: return rawCase(m, 'JSON declared charset=x-fuzz', json, 'application/json; charset=x-fuzz', either4xx);
    case 9: return rawCase(m, 'Content-Type APPLICATION/JSON', json, 'APPLICATION/JSON', expectValidBody(m));
    case 10: return rawCase(m, 'Content-Type application/json;charset=UTF-8', json, 'application/json;charset=UTF-8', expectValidBody(m));
    case 11: return rawCase(m, 'JSON text sent as a form', json, 'application/x-www-form-urlencoded', bad());
    case 12: {
      // Flat string fields as a form (extended qs makes nested objects): a form with only string fields can be valid.
      const form = m.endpoint === 'POST /v1/user'
        ? `name=${pct(String(m.body.name))}`
        : m.endpoint === 'POST /v1/plan'
          ? `user_id=${pct(String(m.body.user_id))}&description=d&period_time=PT1H&plan_type%5Btype%5D=${T.OneTime}&action%5Btype%5D=${T.Rest}&action%5Bbase_url%5D=localhost%3A9`
          : `plan_id=${pct(String(m.body.plan_id))}`;
      return rawCase(m, 'string fields sent as a form', Buffer.from(form), 'application/x-www-form-urlencoded', { statuses: [200, 400] });
    }
    case 13: return rawCase(m, 'form with nested garbage', Buffer.from('a[b][c][d][e][f][g]=1&hooks[0]=x&plan_type=y&name[]=1'), 'application/x-www-form-urlencoded', bad());
    case 14: return rawCase(m, 'Content-Encoding gzip on a plain body', json, 'application/json', bad(), { 'Content-Encoding': 'gzip' });
    case 15: return rawCase(m, 'Content-Encoding deflate on a plain body', json, 'application/json', bad(), { 'Content-Encoding': 'deflate' });
    case 16: return rawCase(m, 'Content-Encoding x-fuzz', json, 'application/json', either4xx, { 'Content-Encoding': 'x-fuzz' });
    case 17: return rawCase(m, 'gzip-compressed JSON', gzipSync(json), 'application/json', expectValidBody(m), { 'Content-Encoding': 'gzip' });
    case 18: return rawCase(m, 'UTF-8 BOM before the JSON', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json]), 'application/json', expectValidBody(m, [200, 400]));
    default: {
      // Invalid UTF-8 inside a string value: decoded as U+FFFD (fine) or refused (fine); never a 5xx.
      const text = JSON.stringify(m.body);
      const i = text.indexOf('":"') + 3;
      const buf = Buffer.concat([Buffer.from(text.slice(0, i)), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from(text.slice(i))]);
      return rawCase(m, 'invalid UTF-8 bytes inside a string', buf, 'application/json', expectValidBody(m, [200, 400]));
    }
  }
}

function emptyBody(rng: Rng, m: BodyModel): CaseSpec {
  const variant = rng.int(0, 3);
  const required = bad(`${firstRequired(m)}: required`);
  if (variant === 0) return rawCase(m, 'no body, no Content-Type', undefined, undefined, bad());
  if (variant === 1) return rawCase(m, 'empty body with Content-Type application/json', Buffer.alloc(0), 'application/json', required);
  if (variant === 2) return rawCase(m, 'empty JSON object', Buffer.from('{}'), 'application/json', required);
  return rawCase(m, 'empty form body', Buffer.alloc(0), 'application/x-www-form-urlencoded', required);
}

function duplicateKeys(rng: Rng, m: BodyModel): CaseSpec {
  const text = JSON.stringify(m.body);
  const slot = rng.pick(m.slots.filter((s) => s.path.length === 1 && s.present));
  const key = String(slot.path[0]);
  const wrong = JSON.stringify(wrongTypeValue(rng, slot.kind, slot.nullOk));
  if (rng.chance(0.5)) {
    // JSON.parse keeps the last duplicate: the valid value wins.
    const t = `{${JSON.stringify(key)}:${wrong},${text.slice(1)}`;
    return rawCase(m, `duplicate key "${key}", the valid value last`, Buffer.from(t), 'application/json', expectValidBody(m));
  }
  const t = `${text.slice(0, -1)},${JSON.stringify(key)}:${wrong}}`;
  return rawCase(m, `duplicate key "${key}", a wrong value (${wrong}) last`, Buffer.from(t), 'application/json', bad(key));
}

// ------------------------------------------------------------------ endpoints

function bodyEndpointCase(rng: Rng, ctx: FuzzContext, m: BodyModel, weights: readonly (readonly [string, number])[]): CaseSpec {
  for (let attempt = 0; attempt < 10; attempt++) {
    const family = rng.weighted(weights);
    let mutated: Mutated | undefined;
    switch (family) {
      case 'deleteRequired': mutated = deleteRequired(rng, m); break;
      case 'deleteOptional': mutated = deleteOptional(rng, m); break;
      case 'nullOptional': mutated = nullOptional(rng, m); break;
      case 'wrongType': mutated = wrongType(rng, m); break;
      case 'listForObject': mutated = listForObject(rng, m); break;
      case 'badValue': mutated = badValue(rng, m, ctx); break;
      case 'goodValue': mutated = goodValue(rng, m, ctx); break;
      case 'unknownDiscriminator': {
        const slot = pickSlot(rng, m.slots, (s) => s.kind.k === 'disc');
        if (slot && slot.kind.k === 'disc') {
          const body = clone(m.body);
          const value = unknownDiscriminator(rng, slot.kind.union);
          setAt(body, slot.path, value);
          mutated = { body, mutation: `unknown discriminator ${label(slot.path)} = ${JSON.stringify(value)}`, expect: bad(nameOf(slot)) };
        }
        break;
      }
      case 'oddCaseEnum': mutated = oddCaseEnum(rng, m); break;
      case 'extraKeys': mutated = extraKeys(rng, m); break;
      case 'huge': mutated = hugeString(rng, m); break;
      case 'unicode': mutated = unicode(rng, m); break;
      case 'deepChain': mutated = deepChain(rng, m, ctx); break;
      case 'recurringChained': mutated = recurringChained(rng, m, ctx); break;
      case 'cron': if (m.endpoint === 'POST /v1/plan') mutated = cronFamily(rng, m); break;
      case 'valid': mutated = stillValid(m, clone(m.body), 'unmodified valid request'); break;
      case 'malformedJson': return { ...malformedJson(rng, m), family };
      case 'notObject': return { ...jsonTopLevelNotObject(rng, m), family };
      case 'contentType': return { ...contentType(rng, m), family };
      case 'emptyBody': return { ...emptyBody(rng, m), family };
      case 'duplicateKeys': return { ...duplicateKeys(rng, m), family };
    }
    if (mutated) {
      const { body, mutation, checkOk, roundTrip } = mutated;
      const buffer = jsonBuffer(body);
      // body-parser refuses anything over its limit before the app sees it, whatever the mutation.
      const expect = buffer.length > BODY_LIMIT_BYTES ? { statuses: [413], text: /too large/i } : mutated.expect;
      const common = m.checkOk;
      return {
        family, mutation, method: m.method, url: m.url, body: buffer, contentType: 'application/json', expect, roundTrip,
        checkOk: (res) => common?.(res) ?? checkOk?.(res),
      };
    }
  }
  return {
    family: 'valid', mutation: 'unmodified valid request', method: m.method, url: m.url, body: jsonBuffer(m.body),
    contentType: 'application/json', expect: expectValidBody(m), checkOk: m.checkOk,
  };
}

const PLAN_BODY_WEIGHTS = [
  ['deleteRequired', 12], ['deleteOptional', 5], ['nullOptional', 3], ['wrongType', 14], ['listForObject', 3], ['badValue', 13],
  ['goodValue', 7],
  ['unknownDiscriminator', 10], ['oddCaseEnum', 5], ['extraKeys', 8], ['huge', 6], ['unicode', 8], ['deepChain', 5],
  ['recurringChained', 2], ['valid', 2], ['malformedJson', 4], ['notObject', 1], ['contentType', 4], ['emptyBody', 1],
  ['duplicateKeys', 2], ['cron', 16],
] as const;
const USER_BODY_WEIGHTS = [
  ['deleteRequired', 4], ['wrongType', 10], ['badValue', 6], ['goodValue', 5], ['extraKeys', 5], ['huge', 5], ['unicode', 10],
  ['valid', 2], ['malformedJson', 5], ['notObject', 1], ['contentType', 5], ['emptyBody', 2], ['duplicateKeys', 2],
] as const;

function userGetCase(rng: Rng, ctx: FuzzContext): CaseSpec {
  const variant = rng.int(0, 9);
  const lookup = (name: string, mutation: string, extra = ''): CaseSpec => {
    const seen = decoded(name);
    return {
      mutation, method: 'get', url: `/v1/user?username=${pct(name)}${extra}`,
      // A name with NUL can never have been stored (PostgreSQL text refuses it): refused as malformed.
      expect: (s) => (seen.includes('\u0000') ? bad('username')
        : s.createdNames.has(seen) ? ok() : { statuses: [404], text: new RegExp(`^User \\(${escapeRegExp(seen)}\\) not found$`) }),
    };
  };
  switch (variant) {
    case 0: {
      const c = lookup(ctx.userName, 'existing user name', rng.chance(0.5) ? '&fuzz_extra=1&page=-1' : '');
      return { ...c, checkOk: (res) => (prop(res, 'id') === ctx.userId ? undefined : `found ${String(prop(res, 'id'))}, not the first user ${ctx.userId}`) };
    }
    case 1: return lookup(`nobody-${rng.hex(6)}`, 'unknown user name');
    case 2: {
      const name = Array.from({ length: rng.int(1, 4) }, () => rng.pick(SPECIAL_CHARS)).join('') + rng.pick(['', 'x', ctx.userName]);
      return lookup(name, `user name with special characters ${JSON.stringify(name)}`);
    }
    case 3: return lookup('n'.repeat(rng.int(256, 2500)), 'very long user name');
    case 4: return lookup(rng.pick(['', ' ', '+', '%', '&', '=', '#', '?', '/', '*', '_', "'", '"', '\\', ctx.userName.toUpperCase(), ` ${ctx.userName}`]), 'odd user name');
    case 5: return { mutation: 'no username parameter', method: 'get', url: rng.pick(['/v1/user', '/v1/user?', '/v1/user?name=x', '/v1/user?USERNAME=x']), expect: bad('username') };
    case 6: return { mutation: 'username given twice', method: 'get', url: `/v1/user?username=a&username=${pct(ctx.userName)}`, expect: bad('username') };
    case 7: return { mutation: 'username as a bracketed key', method: 'get', url: `/v1/user?username[]=${pct(ctx.userName)}`, expect: bad('username') };
    case 8: {
      const raw = rng.pick(['%', '%zz', '%E0%A4%A', '%C0%AF', '%FF', '%ED%A0%80', '%F0%9F%98', '%00']);
      return { mutation: `malformed percent-encoding username=${raw}`, method: 'get', url: `/v1/user?username=${raw}`, expect: { statuses: [400, 404] } };
    }
    // No stored name can hold NUL (PostgreSQL text refuses it), so the lookup is refused as malformed.
    default: return { mutation: 'user name with NUL', method: 'get', url: `/v1/user?username=${pct(`${NO_MAIN_USER}${rng.hex(4)}\u0000`)}`, expect: bad('username') };
  }
}

const VALID_PAGES: readonly (readonly [string | undefined, number])[] = [
  [undefined, 0], ['', 0], ['0', 0], ['1', 1], ['2', 2], ['7', 7], ['100000000', 100_000_000], ['0001', 1], ['00', 0],
];
const BAD_PAGES: readonly string[] = [
  '-1', '-0', '1.5', '1e3', '0x10', 'abc', ' 1', '1 ', '+1', '99999999999', '100000001', '\u0661', '\uff11', 'NaN', 'Infinity',
  'null', 'true', '\u0000', '1,2', '[]', '2.0', '\u00bd', '9'.repeat(400),
];

/** GET /v1/plan's `status` values that are not one of the filters in any case: a 400 naming `status`. */
const BAD_LIST_FILTERS: readonly string[] = [
  'PAUSE', 'ACTIVE', 'ALL', ' CREATED', 'CREATED ', 'SUCCESS', 'FAILURE', 'PROCESSING', 'BUFFERED', 'CANCELED', 'null', '0', '*',
  'CREATED\u0000', '\u0000', 'CREATED,RUNNING', 'CREATED|RUNNING', '\uff23\uff32\uff25\uff21\uff34\uff25\uff24', 'created%', 'PAUSED;DROP TABLE plans',
  'x'.repeat(5000), '\u00e9', '\ud83d\ude00', 'true', '[]', '\u017fucce\u017f\u017f',
];
/** Letters whose upper case is ASCII (long s, dotless i): "any case" may or may not take them. */
const FOLDING_FILTERS: readonly (readonly [string, string])[] = [['pau\u017fed', 'PAUSED'], ['runn\u0131ng', 'RUNNING']];

function liveOf(f: PlanFacts): boolean {
  return f.status === 'CREATED' || f.status === 'RUNNING';
}

function matchesFilter(f: PlanFacts, filter: string | undefined): boolean {
  if (filter === undefined) return true;
  return filter === 'PAUSED' ? f.paused && liveOf(f) : f.status === filter;
}

function listCase(rng: Rng, ctx: FuzzContext): CaseSpec {
  // A third of the cases are about the status filter alone (the user and the page valid), so that it is seen
  // answered, not only refused for another parameter.
  const aboutStatus = rng.chance(1 / 3);
  type Who = { query: string; id?: string; bad?: boolean; mutation: string };
  const own: Who = { query: `user_id=${ctx.userId}`, id: ctx.userId, mutation: 'own user' };
  const who: Who = aboutStatus ? own : rng.weighted<Who>([
    [own, 4],
    [{ query: `user_id=${ctx.userId.toUpperCase()}`, id: ctx.userId, mutation: 'own user, upper case' }, 1],
    [{ query: `user_id=${ctx.otherUserId}`, id: ctx.otherUserId, mutation: 'other user' }, 1],
    [(() => { const u = rng.uuid(); return { query: `user_id=${u}`, id: u, mutation: 'unknown user' }; })(), 2],
    [(() => { const b = rng.pick(badUuids(rng, ctx.userId)); return { query: `user_id=${pct(b)}`, bad: true, mutation: `bad user_id ${shortJson(b)}` }; })(), 3],
    [{ query: '', bad: true, mutation: 'no user_id' }, 1],
    [{ query: `user_id=${ctx.userId}&user_id=${ctx.userId}`, bad: true, mutation: 'user_id twice' }, 1],
    [{ query: `user_id[]=${ctx.userId}`, bad: true, mutation: 'user_id as a bracketed key' }, 1],
    [{ query: `user_id=${rng.pick(['%', '%zz', '%E0%A4%A'])}`, bad: true, mutation: 'malformed percent-encoding in user_id' }, 1],
  ]);
  let pageQuery = '';
  let page: number | undefined;
  let pageMutation: string;
  const r = rng.next();
  if (r < 0.45 || aboutStatus) {
    const [p, idx] = rng.pick(VALID_PAGES);
    pageQuery = p === undefined ? '' : `page=${p}`;
    page = idx;
    pageMutation = p === undefined ? 'no page' : `page=${JSON.stringify(p)}`;
  } else if (r < 0.9) {
    const p = rng.pick(BAD_PAGES);
    pageQuery = `page=${pct(p)}`;
    pageMutation = `bad page ${shortJson(p)}`;
  } else if (r < 0.95) {
    pageQuery = `page=${rng.int(0, 3)}&page=${rng.int(0, 3)}`;
    pageMutation = 'page given twice';
  } else {
    pageQuery = 'page[]=1';
    page = 0;
    pageMutation = 'page as a bracketed key (another parameter: page defaults to 0)';
  }
  // The status filter (issue 13): optional; one of the v1 statuses or PAUSED, in any case; anything else a 400.
  type Filter = { query: string; filter?: string; bad?: boolean; either?: boolean; mutation: string };
  // About the status: never left out.
  const sf = aboutStatus ? 0.45 + rng.next() * 0.55 : rng.next();
  let f: Filter;
  if (sf < 0.45) f = { query: '', mutation: 'no status' };
  else if (sf < 0.72) {
    const canonical = rng.pick(LIST_FILTERS);
    const value = rng.chance(0.5) ? canonical : rng.oddCase(canonical);
    f = { query: `status=${pct(value)}`, filter: canonical, mutation: `status=${value}` };
  } else if (sf < 0.75) f = { query: 'status=', either: true, mutation: 'empty status' };
  else if (sf < 0.78) {
    const [value, canonical] = rng.pick(FOLDING_FILTERS);
    f = { query: `status=${pct(value)}`, filter: canonical, either: true, mutation: `status=${JSON.stringify(value)} (Unicode case)` };
  } else if (sf < 0.93) {
    const value = rng.pick(BAD_LIST_FILTERS);
    f = { query: `status=${pct(value)}`, bad: true, mutation: `bad status ${shortJson(value)}` };
  } else if (sf < 0.96) {
    f = { query: `status=${rng.pick(LIST_FILTERS)}&status=${rng.pick(LIST_FILTERS).toLowerCase()}`, bad: true, mutation: 'status given twice' };
  } else if (sf < 0.98) {
    f = { query: `status=${rng.pick(['%', '%zz', '%E0%A4%A', '%C0%AF'])}`, bad: true, mutation: 'malformed percent-encoding in status' };
  } else {
    f = { query: `status[]=${rng.pick(LIST_FILTERS)}`, mutation: 'status as a bracketed key (another parameter: no filter)' };
  }
  const extra = rng.chance(0.1) ? '&fuzz_extra=1&offset=5' : '';
  const parts = [who.query, pageQuery, f.query].filter((q) => q !== '');
  // The parameters in another order now and then: query parameters have no order.
  if (rng.chance(0.2)) parts.reverse();
  const query = parts.join('&') + extra;
  // Checked in order: user_id, then page, then status.
  const statusExpect: Expectation = f.bad ? bad('status') : f.either ? { statuses: [200, 400], names: 'status' } : ok();
  const expect: Expectation = who.bad ? bad('user_id') : page === undefined ? bad('page') : statusExpect;
  const id = who.id;
  const filter = f.filter;
  const empty = f.query === 'status=';
  return {
    mutation: `${who.mutation}, ${pageMutation}, ${f.mutation}`, method: 'get', url: `/v1/plan${query ? `?${query}` : ''}`, expect,
    checkOk: (res, s) => {
      const keys = Object.keys(res as object).sort().join(',');
      if (keys !== 'offset,plans,total') return `list keys are ${keys}`;
      if (prop(res, 'offset') !== page) return `offset ${String(prop(res, 'offset'))}, expected ${String(page)}`;
      const own = [...s.plans.values()].filter((p) => p.owner === String(id).toLowerCase());
      const total = filter === undefined || empty ? (s.plansByUser.get(String(id)) ?? 0) : own.filter((p) => matchesFilter(p, filter)).length;
      if (prop(res, 'total') !== total) {
        return `total ${String(prop(res, 'total'))}, but ${total} plans of ${String(id)} ${filter ? `are ${filter}` : 'were accepted'}`;
      }
      const plans = prop(res, 'plans');
      const expectedLen = Math.max(0, Math.min(20, total - 20 * (page ?? 0)));
      if (!Array.isArray(plans) || plans.length !== expectedLen) return `page holds ${Array.isArray(plans) ? plans.length : 'no list'}, expected ${expectedLen}`;
      const times = plans.map((p: unknown) => Number(prop(p, 'created_at')));
      if (times.some((t, i) => i > 0 && t > times[i - 1])) return 'plans are not newest first';
      for (const p of plans as unknown[]) {
        const pk = Object.keys(p as object).sort().join(',');
        if (pk !== [...PLAN_KEYS].sort().join(',')) return `a listed Plan has keys ${pk}`;
        const st = String(prop(p, 'status'));
        if (!(PLAN_STATUSES as readonly string[]).includes(st)) return `a listed plan has status ${st}, not a v1 Plan status`;
        const facts = s.plans.get(String(prop(p, 'id')));
        if (!facts) return `listed plan ${String(prop(p, 'id'))} was never acknowledged`;
        if (st !== facts.status) return `listed plan ${String(prop(p, 'id'))} is ${st}, but its answers left it ${facts.status}`;
        if (filter !== undefined && !empty && !matchesFilter(facts, filter)) return `plan ${String(prop(p, 'id'))} (${st}${facts.paused ? ', paused' : ''}) listed under status ${filter}`;
      }
      return undefined;
    },
  };
}

type PlanRoute = 'get' | 'summary' | 'cancel' | 'state' | 'pause' | 'resume' | 'run';

const ROUTE_SUFFIX: Record<PlanRoute, string> = { get: '', summary: '/summary', cancel: '', state: '/state', pause: '/pause', resume: '/resume', run: '/run' };

/** A message naming the plan and its status (409s), in any order. */
function namingPlan(id: string, what: string): RegExp {
  return new RegExp(`^(?=[\\s\\S]*${escapeRegExp(id)})(?=[\\s\\S]*${what})`, 'i');
}

function keysAre(res: unknown, keys: readonly string[], what: string): string | undefined {
  const got = Object.keys((res ?? {}) as object).sort().join(',');
  return got === [...keys].sort().join(',') ? undefined : `${what} keys are ${got}`;
}

/** A v1 Task: exact keys, one of the five wire statuses (a paused or buffered occurrence shows CREATED). */
function taskProblem(task: unknown, what: string): string | undefined {
  const k = keysAre(task, TASK_KEYS, what);
  if (k) return k;
  const st = String(prop(task, 'status'));
  return (TASK_STATUSES as readonly string[]).includes(st) ? undefined : `${what} status ${st} is not a v1 Task status`;
}

/** The PlanState the run's facts say `id` has: exact keys, PAUSED only while paused, no next run while paused or final. */
function stateProblem(res: unknown, id: string, f: PlanFacts, expectedStatus: string, pausedAt: 'same' | 'any' | 'none'): string | undefined {
  const k = keysAre(res, PLAN_STATE_KEYS, 'PlanState');
  if (k) return k;
  const got = (key: string) => prop(res, key);
  if (got('plan_id') !== id) return `plan_id ${String(got('plan_id'))}, not ${id}`;
  if (got('status') !== expectedStatus) return `status ${String(got('status'))}, expected ${expectedStatus}`;
  if (got('overlap') !== f.overlap) return `overlap ${JSON.stringify(got('overlap'))}, expected ${JSON.stringify(f.overlap)}`;
  const at = got('paused_at');
  if (pausedAt === 'none' && at !== null) return `paused_at ${String(at)} on a plan that is not paused`;
  if (pausedAt !== 'none' && (typeof at !== 'number' || !Number.isInteger(at))) return `paused_at ${JSON.stringify(at)} on a paused plan`;
  if (pausedAt === 'same' && at !== f.pausedAt) return `paused_at moved from ${String(f.pausedAt)} to ${String(at)} (pausing a paused plan changes nothing)`;
  const next = got('next_execution_at');
  const scheduled = expectedStatus === 'CREATED' || expectedStatus === 'RUNNING';
  // Nothing runs in the fuzz run, so a live plan that is not paused always has its next occurrence pending.
  if (scheduled && (typeof next !== 'number' || !Number.isInteger(next))) return `next_execution_at ${JSON.stringify(next)} on a ${expectedStatus} plan`;
  if (!scheduled && next !== null) return `next_execution_at ${String(next)} on a ${expectedStatus} plan`;
  return undefined;
}

function planIdCase(rng: Rng, ctx: FuzzContext, route: PlanRoute): CaseSpec {
  const pool = route === 'cancel'
    ? [ctx.cancelPlanId]
    : route === 'get' || route === 'summary'
      ? [ctx.oneTimePlanId, ctx.recurringPlanId, ctx.cancelPlanId, ctx.cronPlanId, ctx.completedPlanId]
      : [ctx.oneTimePlanId, ctx.recurringPlanId, ctx.cronPlanId, ctx.oneTimePlanId, ctx.recurringPlanId, ctx.cronPlanId, ctx.cancelPlanId, ctx.completedPlanId];
  const real = rng.pick(pool);
  type Id = { seg: string; id?: string; expect?: Expectation; mutation: string };
  const unknown = rng.uuid();
  const badId = rng.pick(badUuids(rng, real).filter((b) => b !== ''));
  const malformed = rng.pick(['%', '%zz', '%E0%A4%A', '%C0', '%ED%A0%80']);
  const pick: Id = rng.weighted<Id>([
    [{ seg: real, id: real, mutation: 'real plan id' }, route === 'cancel' || route === 'get' || route === 'summary' ? 3 : 6],
    [{ seg: real.toUpperCase(), id: real, mutation: 'real plan id, upper case' }, 1],
    [{ seg: unknown, expect: { statuses: [404], text: new RegExp(`^Plan not found --- ${unknown}$`) }, mutation: 'unknown plan id' }, 3],
    [{ seg: pct(badId), expect: bad('plan_id'), mutation: `bad plan id ${shortJson(badId)}` }, 5],
    [{ seg: malformed, expect: bad(undefined, /^Malformed URL/), mutation: `malformed percent-encoding ${malformed}` }, 1],
  ]);
  const slashes = rng.chance(0.1) ? rng.pick(['//v1//plan//', '/v1/plan///']) : '/v1/plan/';
  const url = `${slashes}${pick.seg}${ROUTE_SUFFIX[route]}${rng.chance(0.1) ? '?fuzz_extra=1&user_id=x' : ''}`;
  const id = pick.id;
  // The plan's facts when the request is sent (the expectation is computed then, before any answer updates them).
  let before: PlanFacts | undefined;
  const expectFor = (s: RunState): Expectation => {
    if (pick.expect) return pick.expect;
    before = s.plans.get(String(id));
    const f = before;
    if (!f) return ok();
    const final = !liveOf(f);
    switch (route) {
      case 'pause':
      case 'resume':
        return final ? { statuses: [409], text: namingPlan(String(id), f.status) } : ok();
      case 'run':
        if (final) return { statuses: [409], text: namingPlan(String(id), f.status) };
        return f.paused ? { statuses: [409], text: namingPlan(String(id), 'paus') } : ok();
      default:
        return ok();
    }
  };
  const check = (res: unknown, s: RunState): string | undefined => {
    const f = before ?? s.plans.get(String(id));
    if (route === 'get') {
      const keys = Object.keys(res as object).sort().join(',');
      if (keys !== 'latest_task,plan') return `GetPlanResponse keys are ${keys}`;
      if (prop(prop(res, 'plan'), 'id') !== id) return 'another plan came back';
      const p = keysAre(prop(res, 'plan'), PLAN_KEYS, 'Plan');
      if (p) return p;
      // A paused plan's v1 status stays CREATED or RUNNING (the published enums are fixed).
      if (f && prop(prop(res, 'plan'), 'status') !== f.status) return `plan status ${String(prop(prop(res, 'plan'), 'status'))}, expected ${f.status}${f.paused ? ' (paused)' : ''}`;
      if (prop(prop(res, 'latest_task'), 'plan_id') !== id) return 'latest_task is not a task of the plan';
      return taskProblem(prop(res, 'latest_task'), 'latest_task');
    }
    if (route === 'summary') {
      const keys = Object.keys(res as object).sort().join(',');
      if (keys !== 'error_logs,plan,tasks') return `GetSummaryResponse keys are ${keys}`;
      const tasks = prop(res, 'tasks');
      if (!Array.isArray(tasks) || tasks.length < 1) return 'a plan without tasks';
      if (f && prop(prop(res, 'plan'), 'status') !== f.status) return `plan status ${String(prop(prop(res, 'plan'), 'status'))}, expected ${f.status}${f.paused ? ' (paused)' : ''}`;
      for (const t of tasks as unknown[]) {
        const problem = taskProblem(t, 'summary task');
        if (problem) return problem;
      }
      return undefined;
    }
    if (route === 'cancel') {
      if (prop(res, 'id') !== id) return 'another plan came back';
      if (prop(res, 'status') !== 'CANCELLED') return `status ${String(prop(res, 'status'))} after cancel`;
      return undefined;
    }
    if (!f) return undefined;
    const idText = String(id);
    switch (route) {
      case 'state':
        return stateProblem(res, idText, f, !liveOf(f) ? f.status : f.paused ? 'PAUSED' : f.status, liveOf(f) && f.paused ? 'same' : 'none');
      case 'pause':
        return stateProblem(res, idText, f, 'PAUSED', f.paused ? 'same' : 'any');
      case 'resume':
        return stateProblem(res, idText, f, f.status, 'none');
      default: {
        const problem = taskProblem(res, 'Task');
        if (problem) return problem;
        if (prop(res, 'plan_id') !== id) return `the task is of plan ${String(prop(res, 'plan_id'))}`;
        if (prop(res, 'status') !== 'CREATED') return `run now answered a ${String(prop(res, 'status'))} task`;
        const due = Number(prop(res, 'next_execution_at'));
        if (!(Math.abs(due - Date.now()) < 60_000)) return `run now's task is due at ${String(prop(res, 'next_execution_at'))}, not now`;
        return prop(res, 'executed_at') === null ? undefined : `run now's task has executed_at ${String(prop(res, 'executed_at'))}`;
      }
    }
  };
  const base: CaseSpec = { mutation: pick.mutation, method: route === 'get' || route === 'summary' || route === 'state' ? 'get' : 'post', url, expect: expectFor, checkOk: check };
  if (base.method === 'get') {
    // A POST to a GET-only sub-path (and a GET to a POST-only one) matches no route.
    if (route === 'state' && rng.chance(0.05)) return { ...base, mutation: `${base.mutation}, POST to GET-only /state`, method: 'post', expect: { statuses: [400, 404, 405] } };
    return base;
  }
  if (route !== 'cancel' && rng.chance(0.05)) return { ...base, mutation: `${base.mutation}, GET to POST-only ${ROUTE_SUFFIX[route]}`, method: 'get', expect: { statuses: [400, 404, 405] } };
  // The published clients send an empty form body; anything else in the body is ignored, unless it is unparseable.
  const b = rng.int(0, 6);
  if (b === 0) return { ...base, mutation: `${base.mutation}, no body` };
  if (b === 1) return { ...base, mutation: `${base.mutation}, empty form body`, body: Buffer.alloc(0), contentType: 'application/x-www-form-urlencoded' };
  if (b === 2) return { ...base, mutation: `${base.mutation}, form body`, body: Buffer.from('a=b&plan_id=x&status=PAUSED'), contentType: 'application/x-www-form-urlencoded' };
  if (b === 3) return { ...base, mutation: `${base.mutation}, JSON body`, body: Buffer.from('{"status":"RUNNING","paused":false,"fuzz_extra":[1]}'), contentType: 'application/json' };
  if (b === 4) return { ...base, mutation: `${base.mutation}, text body`, body: Buffer.from('\u0000garbage'), contentType: 'text/plain' };
  if (b === 5) return { ...base, mutation: `${base.mutation}, JSON list body`, body: Buffer.from('[1,2]'), contentType: 'application/json' };
  // Body parsing comes first: whatever the id, an unparseable JSON body is a 400.
  return { ...base, mutation: `${base.mutation}, malformed JSON body`, body: Buffer.from('{"a":'), contentType: 'application/json', expect: bad(undefined, MALFORMED) };
}

const ENDPOINT_WEIGHTS = [
  ['POST /v1/plan', 40], ['PATCH /v1/plan', 13], ['POST /v1/user', 7], ['GET /v1/user', 5], ['GET /v1/plan', 11],
  ['GET /v1/plan/{id}', 4], ['GET /v1/plan/{id}/summary', 4], ['POST /v1/plan/{id}', 4], ['GET /v1/plan/{id}/state', 3],
  ['POST /v1/plan/{id}/pause', 3], ['POST /v1/plan/{id}/resume', 3], ['POST /v1/plan/{id}/run', 3],
] as const;

/** `count` cases from `seed`: the same seed and context always give the same requests. */
export function generateCases(seed: number, count: number, ctx: FuzzContext): FuzzCase[] {
  const rng = new Rng(seed);
  const cases: FuzzCase[] = [];
  for (let n = 1; n <= count; n++) {
    const endpoint = rng.weighted(ENDPOINT_WEIGHTS);
    let spec: CaseSpec;
    switch (endpoint) {
      case 'POST /v1/plan': spec = bodyEndpointCase(rng, ctx, submitModel(rng, ctx), PLAN_BODY_WEIGHTS); break;
      case 'PATCH /v1/plan': spec = bodyEndpointCase(rng, ctx, updateModel(rng, ctx), PLAN_BODY_WEIGHTS); break;
      case 'POST /v1/user': spec = bodyEndpointCase(rng, ctx, userModel(rng), USER_BODY_WEIGHTS); break;
      case 'GET /v1/user': spec = userGetCase(rng, ctx); break;
      case 'GET /v1/plan': spec = listCase(rng, ctx); break;
      case 'GET /v1/plan/{id}': spec = planIdCase(rng, ctx, 'get'); break;
      case 'GET /v1/plan/{id}/summary': spec = planIdCase(rng, ctx, 'summary'); break;
      case 'GET /v1/plan/{id}/state': spec = planIdCase(rng, ctx, 'state'); break;
      case 'POST /v1/plan/{id}/pause': spec = planIdCase(rng, ctx, 'pause'); break;
      case 'POST /v1/plan/{id}/resume': spec = planIdCase(rng, ctx, 'resume'); break;
      case 'POST /v1/plan/{id}/run': spec = planIdCase(rng, ctx, 'run'); break;
      default: spec = planIdCase(rng, ctx, 'cancel'); break;
    }
    cases.push({ n, endpoint, ...spec, family: spec.family ?? spec.mutation.replace(/ [("{\[].*$/, '') });
  }
  return cases;
}
