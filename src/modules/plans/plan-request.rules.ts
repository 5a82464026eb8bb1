import { BadRequestException } from '@nestjs/common';
import { ACTION_TYPE, PLAN_TYPE } from './dto/discriminators';
import { ActionDto, ChainedRequestDto, HookDto, SubmitPlanRequestDto } from './dto/plan-request.dto';
import { parsePeriod } from './period';

export interface PlanRules {
  strictMode: boolean;
  maxChainedDepth: number;
  /** ms; a Recurring plan's period must be at least this. */
  minRecurringPeriod: number;
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
  if (rules.strictMode && isChained(req.action) && req.plan_type.type === PLAN_TYPE.Recurring) {
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
