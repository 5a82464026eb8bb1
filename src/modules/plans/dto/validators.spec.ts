import { BadRequestException } from '@nestjs/common';
import { karyaValidationPipe } from '../../../common/validation.pipe';
import { ACTION_TYPE, PLAN_TYPE } from './discriminators';
import { SubmitPlanRequestDto, UpdatePlanRequestDto } from './plan-request.dto';
import { parseQuotedInteger } from './validators';

describe('parseQuotedInteger', () => {
  it('reads a string holding a decimal integer as that number', () => {
    expect(parseQuotedInteger('5')).toBe(5);
    expect(parseQuotedInteger('0')).toBe(0);
    expect(parseQuotedInteger('-1')).toBe(-1);
    expect(parseQuotedInteger('007')).toBe(7);
    expect(parseQuotedInteger('253402300799999')).toBe(253_402_300_799_999);
  });

  it('leaves every other value as sent, for the integer check to refuse', () => {
    for (const v of ['5.5', 'five', '', ' 5', '5 ', '+5', '1e3', '0x10', '-', '--1', '\u0665', '5\n']) expect(parseQuotedInteger(v)).toBe(v);
    for (const v of [5, 1.5, null, undefined, true]) expect(parseQuotedInteger(v)).toBe(v);
    const list = ['5'];
    expect(parseQuotedInteger(list)).toBe(list);
  });
});

const USER = '00000000-0000-4000-8000-000000000001';
const PLAN = '00000000-0000-4000-8000-000000000002';

function submitBody(extra: Record<string, unknown> = {}, action: Record<string, unknown> = {}, planType: Record<string, unknown> = { type: PLAN_TYPE.OneTime }) {
  return {
    user_id: USER,
    description: 'd',
    period_time: 'PT1H',
    plan_type: planType,
    action: { type: ACTION_TYPE.RestApi, base_url: 'localhost:9', ...action },
    ...extra,
  };
}

async function submit(body: unknown): Promise<SubmitPlanRequestDto> {
  return (await karyaValidationPipe().transform(body, { type: 'body', metatype: SubmitPlanRequestDto })) as SubmitPlanRequestDto;
}

async function update(body: unknown): Promise<UpdatePlanRequestDto> {
  return (await karyaValidationPipe().transform(body, { type: 'body', metatype: UpdatePlanRequestDto })) as UpdatePlanRequestDto;
}

async function refusal(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (e) {
    if (e instanceof BadRequestException) return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('quoted integers in plan requests (karya-ui sends numbers as strings)', () => {
  it('reads quoted max_failure_retry, hook max_retry, REST timeout and end_at as numbers', async () => {
    const hook = { trigger: 'ON_FAILURE', action: { type: ACTION_TYPE.RestApi, base_url: 'localhost:9', timeout: '100' }, max_retry: '7' };
    const req = await submit(submitBody({ max_failure_retry: '5', hooks: [hook] }, { timeout: '1500' }, { type: PLAN_TYPE.Recurring, end_at: '4102444800000' }));
    expect(req.max_failure_retry).toBe(5);
    expect((req.action as { timeout: unknown }).timeout).toBe(1500);
    expect(req.hooks[0].max_retry).toBe(7);
    expect((req.hooks[0].action as { timeout: unknown }).timeout).toBe(100);
    expect((req.plan_type as { end_at: unknown }).end_at).toBe(4_102_444_800_000);
    const cron = await submit(submitBody({}, {}, { type: PLAN_TYPE.Cron, expression: '0 9 * * *', end_at: '0' }));
    expect((cron.plan_type as { end_at: unknown }).end_at).toBe(0);
  });

  it('reads quoted integers inside a chained request too', async () => {
    const inner = submitBody({ max_failure_retry: '2' }, { timeout: '42' });
    const req = await submit({ ...submitBody(), action: { type: ACTION_TYPE.Chained, request: inner } });
    const nested = (req.action as { request: SubmitPlanRequestDto }).request;
    expect(nested.max_failure_retry).toBe(2);
    expect((nested.action as { timeout: unknown }).timeout).toBe(42);
  });

  it('refuses a quoted non-integer naming the field and the value, as for a number', async () => {
    expect(await refusal(submit(submitBody({ max_failure_retry: '5.5' })))).toBe('max_failure_retry: must be an integer, got "5.5"');
    expect(await refusal(submit(submitBody({ max_failure_retry: 'five' })))).toBe('max_failure_retry: must be an integer, got "five"');
    expect(await refusal(submit(submitBody({ max_failure_retry: '' })))).toBe('max_failure_retry: must be an integer, got ""');
    expect(await refusal(submit(submitBody({ max_failure_retry: ' 5' })))).toBe('max_failure_retry: must be an integer, got " 5"');
    expect(await refusal(submit(submitBody({}, { timeout: '2s' })))).toBe('action.timeout: must be an integer number of milliseconds, got "2s"');
    expect(await refusal(submit(submitBody({}, {}, { type: PLAN_TYPE.Recurring, end_at: '1.0' })))).toBe(
      'plan_type.end_at: must be an integer epoch ms or null, got "1.0"',
    );
    const hooks = [{ trigger: 'ON_FAILURE', action: { type: ACTION_TYPE.RestApi, base_url: 'localhost:9' }, max_retry: '3x' }];
    expect(await refusal(submit(submitBody({ hooks })))).toBe('hooks[0].max_retry: must be an integer, got "3x"');
  });

  it('applies the number range checks to a quoted integer, showing the value as sent', async () => {
    expect(await refusal(submit(submitBody({ max_failure_retry: '101' })))).toBe('max_failure_retry: must be at most 100, got "101"');
    expect(await refusal(submit(submitBody({ max_failure_retry: '-1' })))).toBe('max_failure_retry: must be at least 0, got "-1"');
    expect(await refusal(submit(submitBody({}, { timeout: '0' })))).toBe('action.timeout: must be at least 1 ms, got "0"');
    expect(await refusal(submit(submitBody({}, {}, { type: PLAN_TYPE.Recurring, end_at: '99999999999999999999' })))).toBe(
      'plan_type.end_at: must be at most 253402300799999 (epoch ms), got "99999999999999999999"',
    );
  });

  it('reads a quoted max_failure_retry in PATCH, keeps null as "keep", and refuses a quoted non-integer', async () => {
    expect((await update({ plan_id: PLAN, max_failure_retry: '5' })).max_failure_retry).toBe(5);
    expect((await update({ plan_id: PLAN, max_failure_retry: null })).max_failure_retry).toBeNull();
    expect(await refusal(update({ plan_id: PLAN, max_failure_retry: '5.0' }))).toBe('max_failure_retry: must be an integer, got "5.0"');
  });
});
