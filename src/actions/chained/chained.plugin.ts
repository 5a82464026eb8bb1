import { HttpException } from '@nestjs/common';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { SubmitPlanRequestDto } from '../../modules/plans/dto/plan-request.dto';
import { PlansService } from '../../modules/plans/plans.service';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';

/** Creates the embedded plan (and its first task, in one transaction) as a child of the plan that ran. */
export class ChainedPlugin extends ActionPlugin {
  readonly actionType = ACTION_TYPE.Chained;
  readonly connector = 'chained' as const;

  constructor(private readonly plans: PlansService) {
    super();
  }

  async run(action: JsonObject, context: ActionContext): Promise<ActionResult> {
    try {
      // Validated and normalised when the parent was submitted; the rules are checked again on submit.
      await this.plans.submit(action.request as unknown as SubmitPlanRequestDto, context.planId);
      return { ok: true };
    } catch (e) {
      const reason = e instanceof HttpException || e instanceof Error ? e.message : String(e);
      return { ok: false, error: `Chained plan failed --- error : ${reason}` };
    }
  }
}
