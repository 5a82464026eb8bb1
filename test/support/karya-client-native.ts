import { execFile } from 'node:child_process';
import { join } from 'node:path';

/**
 * Inside Jest the client runs through @swc/jest (ESM rewritten to CommonJS, class fields lowered). To be sure
 * the server also works with the package exactly as npm ships it, this script runs the unmodified ESM
 * modules in a plain `node` child process (deep imports resolved from the project's node_modules, axios'
 * own ESM build), against the URL in KARYA_URL, and prints what each call returned (or threw) as JSON.
 */
const NATIVE_SCRIPT = `
import { ClientConfig } from 'karya-client/client/config.js';
import { KaryaRestClient } from 'karya-client/client/karya-rest-client.js';
import { CreateUserRequest, SubmitPlanRequest, UpdatePlanRequest } from 'karya-client/client/requests.js';
import { KafkaProducerRequest, RestApiRequest } from 'karya-client/entities/actions.js';
import { Trigger } from 'karya-client/entities/constants.js';
import { Hook } from 'karya-client/entities/models.js';
import { Recurring } from 'karya-client/entities/plan-types.js';

const name = process.env.KARYA_USER;
const out = {};
let client;
let user;
if (process.env.KARYA_ADMIN_KEY) {
  // apikey mode: the admin creates the user and issues its key; the user's client carries that key in the
  // URL (http://name:KEY@host), which axios sends as HTTP Basic. Nothing else in the client changes.
  const adminUrl = new URL(process.env.KARYA_URL);
  adminUrl.username = 'admin';
  adminUrl.password = process.env.KARYA_ADMIN_KEY;
  const admin = new KaryaRestClient(new ClientConfig(adminUrl));
  user = await admin.createUser(new CreateUserRequest(name));
  await admin.close();
  const issued = await fetch(new URL('/v1/user/' + user.id + '/keys', process.env.KARYA_URL), {
    method: 'POST',
    headers: { authorization: 'Bearer ' + process.env.KARYA_ADMIN_KEY },
  });
  const { key } = await issued.json();
  const userUrl = new URL(process.env.KARYA_URL);
  userUrl.username = name;
  userUrl.password = key;
  client = new KaryaRestClient(new ClientConfig(userUrl));
  const anonymous = new KaryaRestClient(new ClientConfig(new URL(process.env.KARYA_URL)));
  try {
    await anonymous.getUser(name);
    out.anonymous = null;
  } catch (e) {
    out.anonymous = { status: e.response?.status, data: e.response?.data, challenge: e.response?.headers?.['www-authenticate'] ?? null };
  }
  await anonymous.close();
} else {
  client = new KaryaRestClient(new ClientConfig(new URL(process.env.KARYA_URL)));
  user = await client.createUser(new CreateUserRequest(name));
}
out.user = { ...user, class: user.constructor.name };
out.found = await client.getUser(name);
const hook = new Hook(Trigger.ON_FAILURE, new RestApiRequest('hooks.example.com/failed', new RestApiRequest.JsonBody({ from: 'esm' })));
const plan = await client.submitPlan(
  new SubmitPlanRequest(user.id, 'native esm client', 'PT1H', new Recurring(), new KafkaProducerRequest('orders', 'hi'), [hook]),
);
out.plan = { ...plan, class: plan.constructor.name };
out.get = await client.getPlan(plan.id);
out.summary = await client.getSummary(plan.id);
out.list = await client.listPlans(user.id, 0);
out.updated = await client.updatePlan(new UpdatePlanRequest(plan.id, undefined, 5));
out.cancelled = await client.cancelPlan(plan.id);
try {
  await client.getUser(name + '-missing');
  out.error = null;
} catch (e) {
  out.error = { name: e.name, isAxiosError: e.isAxiosError, status: e.response?.status, data: e.response?.data };
}
await client.close();
process.stdout.write(JSON.stringify(out));
`;

/**
 * Reads plans the client never wrote (issue 13: cron and paused plans, submitted and paused over raw HTTP):
 * lists the user's first page, then gets each plan and its summary. Any throw (a crash in the client's
 * classes, an HTTP error) fails the script, so the run rejects with its stderr.
 */
const NATIVE_READER_SCRIPT = `
import { ClientConfig } from 'karya-client/client/config.js';
import { KaryaRestClient } from 'karya-client/client/karya-rest-client.js';

const client = new KaryaRestClient(new ClientConfig(new URL(process.env.KARYA_URL)));
const list = await client.listPlans(process.env.KARYA_USER_ID, 0);
const out = { list, listClass: list.constructor.name, plans: {} };
for (const id of JSON.parse(process.env.KARYA_PLAN_IDS)) {
  const get = await client.getPlan(id);
  const summary = await client.getSummary(id);
  out.plans[id] = { get, getClass: get.constructor.name, summary, summaryClass: summary.constructor.name };
}
await client.close();
process.stdout.write(JSON.stringify(out));
`;

/** The JSON the native script printed, keyed by step. */
export type NativeRun = Record<string, Record<string, unknown> | null>;

/** What the reader script printed: the client's objects as JSON, and the names of their classes. */
export interface NativeRead {
  list: Record<string, unknown>;
  listClass: string;
  plans: Record<string, { get: Record<string, unknown>; getClass: string; summary: Record<string, unknown>; summaryClass: string }>;
}

/** Runs `script` as an ES module in a plain node child, from the project root, and parses what it printed. */
function runScript<T>(script: string, env: Record<string, string>): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { cwd: join(__dirname, '../..'), env: { ...process.env, ...env, NODE_OPTIONS: '' }, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`native karya-client run failed: ${err.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(stdout) as T);
      },
    );
  });
}

/** With `adminKey`, runs the apikey-mode scenario: the admin creates the user and its key, the client uses the key. */
export function runNativeClient(baseUrl: URL, userName: string, adminKey?: string): Promise<NativeRun> {
  return runScript<NativeRun>(NATIVE_SCRIPT, { KARYA_URL: baseUrl.toString(), KARYA_USER: userName, KARYA_ADMIN_KEY: adminKey ?? '' });
}

/** Lists `userId`'s first page of plans, then gets and summarises each of `planIds`, with the unmodified package. */
export function runNativeReader(baseUrl: URL, userId: string, planIds: string[]): Promise<NativeRead> {
  return runScript<NativeRead>(NATIVE_READER_SCRIPT, { KARYA_URL: baseUrl.toString(), KARYA_USER_ID: userId, KARYA_PLAN_IDS: JSON.stringify(planIds) });
}
