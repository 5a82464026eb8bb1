import { BadRequestException, ForbiddenException } from '@nestjs/common';
import { shown } from '../../common/params';
import { EgressPolicy } from '../../egress/egress-policy';
import { ACTION_TYPE, PLAN_TYPE } from './dto/discriminators';
import { ActionDto, ChainedRequestDto, HookDto, RestApiRequestDto, SubmitPlanRequestDto } from './dto/plan-request.dto';
import { checkTimeZone, CronError, CronSchedule } from './cron-schedule';
import { CronDto } from './dto/plan-request.dto';
import { parsePeriod } from './period';

export interface PlanRules {
  strictMode: boolean;
  maxChainedDepth: number;
  /** ms; a Recurring plan's period must be at least this. */
  minRecurringPeriod: number;
  /**
   * server.yml `application.egress`: a REST base_url whose host is a literal IP address it denies is refused
   * at submit, for quick feedback. The executor enforces its own policy on every connection regardless;
   * host names are not resolved here (what they resolve to at run time is what counts).
   */
  egress?: EgressPolicy;
}

function isChained(action: ActionDto): action is ChainedRequestDto {
  return action.type === ACTION_TYPE.Chained;
}

/** Consecutive ChainedRequest nesting from `action` down, counted up to `limit + 1` (the original's N). */
function chainDepth(action: ActionDto, limit: number): number {
  let depth = 0;
  let current: ActionDto | undefined = action;
  while (current && isChained(current) && depth <= limit) {
    depth++;
    current = current.request?.action;
  }
  return depth;
}

function at(path: string): string {
  return path ? ` (at ${path})` : '';
}

/**
 * The server-side rules that need configuration, applied to a plan request and to every plan request
 * nested in it (chained actions and hooks' chained actions), because each of those is submitted later
 * by an executor without another check. The original checked only the top level (fix).
 * Messages keep the original's exact texts; a nested violation adds where it is.
 */
export function checkPlanRequest(req: SubmitPlanRequestDto, rules: PlanRules, path = ''): void {
  if (req.plan_type.type === PLAN_TYPE.Recurring) checkRecurringPeriod(req.period_time, rules, `${path}period_time`);
  if (req.plan_type.type === PLAN_TYPE.Cron) checkCron(req, req.plan_type, rules, path);
  if (rules.strictMode && isChained(req.action) && req.plan_type.type !== PLAN_TYPE.OneTime) {
    throw new BadRequestException(`Chained requests cannot be recurring${at(path)}`);
  }
  checkAction(req.action, rules, `${path}action`);
  checkHooks(req.hooks ?? [], rules, `${path}hooks`);
}

export function checkHooks(hooks: HookDto[], rules: PlanRules, path = 'hooks'): void {
  hooks.forEach((hook, i) => checkAction(hook.action, rules, `${path}[${i}].action`));
}

function checkAction(action: ActionDto, rules: PlanRules, path: string): void {
  const depth = chainDepth(action, rules.maxChainedDepth);
  if (depth > rules.maxChainedDepth) {
    const where = path === 'action' ? '' : at(path);
    throw new BadRequestException(
      `Depth exceeded for chained request --- passed: ${depth} | allowed: ${rules.maxChainedDepth}${where}`,
    );
  }
  if (isChained(action)) checkPlanRequest(action.request, rules, `${path}.request.`);
  if (rules.egress && isRestApi(action)) checkBaseUrl(action, rules.egress, `${path}.base_url`);
}

function isRestApi(action: ActionDto): action is RestApiRequestDto {
  return action.type === ACTION_TYPE.RestApi;
}

/** Distinct URLs remembered per policy; past this the memo starts over (a bound, not an eviction policy). */
const EGRESS_MEMO_SIZE = 1024;
/**
 * What a policy said of each URL (the denial's message, or null when allowed). Submissions repeat a handful of
 * base URLs, and parsing one (WHATWG URL, ipaddr.js) was ~3 % of a submission's CPU; the decision depends only
 * on the URL and the policy, which is fixed at start-up. Kept per policy so that tests' policies never mix.
 */
const egressMemo = new WeakMap<EgressPolicy, Map<string, string | null>>();

function egressDenial(egress: EgressPolicy, url: string): string | null {
  let memo = egressMemo.get(egress);
  if (memo === undefined) egressMemo.set(egress, (memo = new Map()));
  let denial = memo.get(url);
  if (denial === undefined) {
    denial = egress.checkUrl(url)?.message ?? null;
    if (memo.size >= EGRESS_MEMO_SIZE) memo.clear();
    memo.set(url, denial);
  }
  return denial;
}

function checkBaseUrl(action: RestApiRequestDto, egress: EgressPolicy, path: string): void {
  if (typeof action.base_url !== 'string') return;
  const protocol = typeof action.protocol === 'string' ? action.protocol.toLowerCase() : 'http';
  const denied = egressDenial(egress, `${protocol}://${action.base_url}`);
  if (denied !== null) throw new BadRequestException(`${path}: ${denied}; server.yml application.egress does not allow it`);
}

export function checkRecurringPeriod(periodTime: string, rules: PlanRules, path = 'period_time'): void {
  const ms = parsePeriod(periodTime);
  if (ms < rules.minRecurringPeriod) {
    throw new BadRequestException(
      `${path}: a Recurring plan's period must be at least ${rules.minRecurringPeriod} ms ` +
        `(server.yml minRecurringPeriod), got ${JSON.stringify(periodTime)}`,
    );
  }
}

/**
 * Every plan request nested in `req` (chained actions, and chained actions of hooks, at any depth) must be
 * for the same user as `req`: a plan can create plans only for its own owner. The 403 names the field.
 */
export function checkChainOwners(req: SubmitPlanRequestDto): void {
  const owner = req.user_id.toLowerCase();
  checkNestedOwner(req.action, owner, 'action');
  checkHookChainOwners(req.hooks ?? [], owner);
}

/** The same rule for hooks alone (PATCH replaces a stored plan's hooks; `owner` is that plan's user). */
export function checkHookChainOwners(hooks: HookDto[], owner: string, path = 'hooks'): void {
  hooks.forEach((hook, i) => checkNestedOwner(hook.action, owner, `${path}[${i}].action`));
}

function checkNestedOwner(action: ActionDto, owner: string, path: string): void {
  if (!isChained(action) || !action.request) return;
  const nested = action.request;
  if (typeof nested.user_id === 'string' && nested.user_id.toLowerCase() !== owner) {
    throw new ForbiddenException(
      `${path}.request.user_id: a chained request creates plans only for the plan's owner (${owner}), got ${shown(nested.user_id)}`,
    );
  }
  checkNestedOwner(nested.action, owner, `${path}.request.action`);
  checkHookChainOwners(nested.hooks ?? [], owner, `${path}.request.hooks`);
}

/** How many upcoming fires of a cron expression are examined for its tightest interval (minRecurringPeriod). */
const CRON_SAMPLES = 1000;

/**
 * A Cron plan's expression and zone, its tightest interval against minRecurringPeriod (over its next
 * CRON_SAMPLES fires in UTC: the fields repeat within a day, so that covers every gap but those a DST
 * transition makes), and a given
 * period_time, which must repeat the expression (it is what a Cron plan's period_time holds).
 */
function checkCron(req: SubmitPlanRequestDto, type: CronDto, rules: PlanRules, path: string): void {
  try {
    checkTimeZone(type.time_zone);
  } catch (e) {
    if (e instanceof CronError) throw new BadRequestException(`${path}plan_type.time_zone: ${e.message}, got ${shown(type.time_zone)}`);
    throw e;
  }
  let schedule: CronSchedule;
  try {
    schedule = new CronSchedule(type.expression, type.time_zone);
    if (schedule.next(Date.now()) === null) throw new CronError('never fires');
  } catch (e) {
    if (e instanceof CronError) throw new BadRequestException(`${path}plan_type.expression: ${e.message}, got ${shown(type.expression)}`);
    throw e;
  }
  // No expression fires more often than once a second (6 fields) or a minute (5): sample only when that matters.
  const floor = type.expression.trim().split(/\s+/).length === 6 ? 1000 : 60_000;
  // Measured in UTC, where the fields alone set the gaps (and croner answers fastest: ~1000 fires in 10 ms).
  const tightest = rules.minRecurringPeriod <= floor ? floor : new CronSchedule(type.expression, 'UTC').minInterval(Date.now(), CRON_SAMPLES);
  if (tightest < rules.minRecurringPeriod) {
    throw new BadRequestException(
      `${path}plan_type.expression: fires every ${tightest} ms at times, more often than server.yml minRecurringPeriod ` +
        `(${rules.minRecurringPeriod} ms), got ${shown(type.expression)}`,
    );
  }
  if (req.period_time !== undefined && req.period_time !== type.expression) {
    throw new BadRequestException(
      `${path}period_time: a Cron plan's period_time is its expression; leave it out or repeat plan_type.expression ` +
        `(${shown(type.expression)}), got ${shown(req.period_time)}`,
    );
  }
}
