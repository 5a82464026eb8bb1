import * as http from 'node:http';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionResult } from '../action-plugin';
import { INVALID_MESSAGE_PREFIX, KARYA_FOOTER_BLOCK, MAX_ERROR_BODY_CHARS, SlackPlugin, SlackPluginOptions } from './slack.plugin';
import { Received, startHttpServer } from '../../../test/support/recording-http-server';
import { closedPort } from '../../../test/support/tcp-server';

// ---------------------------------------------------------------- a fake Slack Web API

/** What the fake answers to one request: status, headers and body (an object is sent as JSON). */
interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Never answer (the response is ended when the server closes). */
  hang?: boolean;
}

type Responder = (req: Received) => Reply;

interface FakeSlack {
  port: number;
  requests: Received[];
  /** Sockets currently open. */
  open: () => number;
  /** Replaces the responder for the following requests. */
  respond: (responder: Responder) => void;
  close: () => Promise<void>;
}

const OK: Responder = () => ({ body: { ok: true, channel: 'C123', ts: '1700000000.000100' } });

async function startFakeSlack(): Promise<FakeSlack> {
  const held: http.ServerResponse[] = [];
  let responder: Responder = OK;
  const server = await startHttpServer((received, res) => {
    const reply = responder(received);
    if (reply.hang) {
      held.push(res);
      return;
    }
    const isText = typeof reply.body === 'string';
    res.writeHead(reply.status ?? 200, {
      'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      ...reply.headers,
    });
    res.end(isText ? (reply.body as string) : JSON.stringify(reply.body ?? {}));
  });
  return {
    port: server.port,
    requests: server.requests,
    open: server.open,
    respond: (r) => {
      responder = r;
    },
    close: async () => {
      for (const res of held) res.destroy();
      await server.close();
    },
  };
}

// ---------------------------------------------------------------- helpers

const TOKEN = 'xoxb-123456789012-1234567890123-SeCrEtToKeNvAlUe';
const CONTEXT: ActionContext = { planId: '6f1c1c3e-0000-4000-8000-000000000001', taskId: '7a2d2d4f-0000-4000-8000-000000000002', attempt: 1 };

const BLOCKS: JsonObject[] = [
  { type: 'header', text: { type: 'plain_text', text: 'Nightly report' } },
  { type: 'section', text: { type: 'mrkdwn', text: '*42* jobs ran, _0_ failed' } },
  { type: 'divider' },
];

function slackAction(message: string, channel = '#alerts'): JsonObject {
  return { type: ACTION_TYPE.Slack, channel, message };
}

function errorOf(result: ActionResult): string {
  if (result.ok) throw new Error('expected a failure, got ok');
  return result.error;
}

async function timed(p: Promise<ActionResult>): Promise<{ result: ActionResult; ms: number }> {
  const start = performance.now();
  const result = await p;
  return { result, ms: performance.now() - start };
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------- suite state

let slack: FakeSlack;
const plugins: SlackPlugin[] = [];
/** Every failure text any test saw: none may contain the token (checked in afterAll). */
const failures: string[] = [];

function plugin(configs: Record<string, unknown> = {}, options: SlackPluginOptions = {}): SlackPlugin {
  const p = new SlackPlugin({ token: TOKEN, apiUrl: `http://127.0.0.1:${slack.port}/api`, ...configs }, options);
  plugins.push(p);
  return p;
}

async function run(p: SlackPlugin, action: JsonObject): Promise<ActionResult> {
  const result = await p.run(action, CONTEXT);
  if (!result.ok) failures.push(result.error);
  return result;
}

beforeAll(async () => {
  slack = await startFakeSlack();
});

beforeEach(() => {
  slack.requests.length = 0;
  slack.respond(OK);
});

afterEach(async () => {
  await Promise.all(plugins.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  await slack.close();
  expect(failures.length).toBeGreaterThan(10);
  for (const text of failures) expect(text).not.toContain(TOKEN);
});

// ---------------------------------------------------------------- tests

describe('SlackPlugin: identity and config', () => {
  it('runs SlackMessageRequest for the slack connector', () => {
    const p = plugin();
    expect(p.actionType).toBe('karya.core.entities.Action.SlackMessageRequest');
    expect(p.actionType).toBe(ACTION_TYPE.Slack);
    expect(p.connector).toBe('slack');
  });

  it('rejects a malformed apiUrl or a non-string token at construction, without echoing the token', () => {
    expect(() => new SlackPlugin({ token: TOKEN, apiUrl: 'not a url' })).toThrow(/configs\.apiUrl must be an http\(s\) URL/);
    expect(() => new SlackPlugin({ token: TOKEN, apiUrl: 'ftp://example.com/api' })).toThrow(/configs\.apiUrl/);
    expect(() => new SlackPlugin({ token: TOKEN, apiUrl: 42 })).toThrow(/configs\.apiUrl/);
    // The message reaches the start-up log: credentials in the rejected URL are masked.
    expect(() => new SlackPlugin({ apiUrl: 'https://bot:pw-123456@slack.test/api?token=xoxb-leak-123' })).toThrow(
      'got "https://[REDACTED]@slack.test/api?token=[REDACTED]"',
    );
    expect(() => new SlackPlugin({ token: 12345 })).toThrow('slack connector: configs.token must be a string');
  });

  it('constructs with the default apiUrl and no token', async () => {
    const p = new SlackPlugin({});
    await expect(p.close()).resolves.toBeUndefined();
  });
});

describe('SlackPlugin: what Slack receives', () => {
  it('POSTs channel, blocks + footer and a fallback text to <apiUrl>/chat.postMessage with the bearer token', async () => {
    const result = await run(plugin(), slackAction(JSON.stringify(BLOCKS), 'C0123456789'));
    expect(result).toEqual({ ok: true });
    expect(slack.requests).toHaveLength(1);
    const [req] = slack.requests;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/api/chat.postMessage');
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req.headers['content-type']).toBe('application/json; charset=utf-8');
    const sent = JSON.parse(req.body) as Record<string, unknown>;
    expect(sent).toEqual({
      channel: 'C0123456789',
      blocks: [
        ...BLOCKS,
        { type: 'context', elements: [{ type: 'mrkdwn', text: '_sent via <https://github.com/Saumya-Bhatt/karya|Karya>_' }] },
      ],
      text: 'Nightly report',
    });
    expect(KARYA_FOOTER_BLOCK).toEqual((sent.blocks as unknown[])[BLOCKS.length]);
  });

  it('tolerates a trailing slash on apiUrl', async () => {
    const p = plugin({ apiUrl: `http://127.0.0.1:${slack.port}/api/` });
    expect(await run(p, slackAction(JSON.stringify(BLOCKS)))).toEqual({ ok: true });
    expect(slack.requests.map((r) => r.url)).toEqual(['/api/chat.postMessage']);
  });

  it('works with an apiUrl at the server root', async () => {
    const p = plugin({ apiUrl: `http://127.0.0.1:${slack.port}` });
    expect(await run(p, slackAction(JSON.stringify(BLOCKS)))).toEqual({ ok: true });
    expect(slack.requests.map((r) => r.url)).toEqual(['/chat.postMessage']);
  });

  it("falls back to 'Karya notification' when no block has a section or header text", async () => {
    const blocks = [{ type: 'divider' }, { type: 'image', image_url: 'https://example.com/a.png', alt_text: 'a' }];
    expect(await run(plugin(), slackAction(JSON.stringify(blocks)))).toEqual({ ok: true });
    const sent = JSON.parse(slack.requests[0].body) as Record<string, unknown>;
    expect(sent.text).toBe('Karya notification');
    expect(sent.blocks).toEqual([...blocks, KARYA_FOOTER_BLOCK]);
  });

  it('sends an empty block array as just the footer', async () => {
    expect(await run(plugin(), slackAction('[]'))).toEqual({ ok: true });
    expect((JSON.parse(slack.requests[0].body) as Record<string, unknown>).blocks).toEqual([KARYA_FOOTER_BLOCK]);
  });
});

describe('SlackPlugin: results', () => {
  it('ok: true → success', async () => {
    expect(await run(plugin(), slackAction(JSON.stringify(BLOCKS)))).toEqual({ ok: true });
  });

  it("ok: false → failure with Slack's error", async () => {
    slack.respond(() => ({ body: { ok: false, error: 'channel_not_found' } }));
    const result = await run(plugin(), slackAction(JSON.stringify(BLOCKS)));
    expect(result).toEqual({ ok: false, error: 'Slack API error: channel_not_found' });
    expect(slack.requests).toHaveLength(1);
  });

  it("ok: false keeps Slack's response_metadata messages", async () => {
    slack.respond(() => ({
      body: {
        ok: false,
        error: 'invalid_blocks',
        response_metadata: { messages: ['[ERROR] must be less than 51 items [json-pointer:/blocks]'] },
      },
    }));
    expect(errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))))).toBe(
      'Slack API error: invalid_blocks ([ERROR] must be less than 51 items [json-pointer:/blocks])',
    );
  });

  it('HTTP 500 → failure with the status and the body', async () => {
    slack.respond(() => ({ status: 500, body: 'upstream exploded' }));
    expect(errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))))).toBe(
      'Slack API call failed: HTTP 500 | upstream exploded',
    );
    expect(slack.requests).toHaveLength(1);
  });

  it('a long error body is truncated', async () => {
    slack.respond(() => ({ status: 502, body: 'x'.repeat(MAX_ERROR_BODY_CHARS * 3) }));
    const error = errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))));
    expect(error).toBe(
      `Slack API call failed: HTTP 502 | ${'x'.repeat(MAX_ERROR_BODY_CHARS)} … [truncated: first ${MAX_ERROR_BODY_CHARS} characters shown]`,
    );
  });

  it('HTTP 200 that is not a Slack API response → failure', async () => {
    slack.respond(() => ({ body: '<html>captive portal</html>' }));
    expect(errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))))).toBe(
      'Slack API call failed: HTTP 200 without a Slack API response | <html>captive portal</html>',
    );
  });

  it('server down → failure with the network error', async () => {
    const p = plugin({ apiUrl: `http://127.0.0.1:${await closedPort()}/api` });
    const error = errorOf(await run(p, slackAction(JSON.stringify(BLOCKS))));
    expect(error).toMatch(/^Slack API call failed: .*ECONNREFUSED/);
  });

  it('a server that never answers → failure at the per-call deadline', async () => {
    slack.respond(() => ({ hang: true }));
    const { result, ms } = await timed(run(plugin({}, { deadlineMs: 300 }), slackAction(JSON.stringify(BLOCKS))));
    expect(errorOf(result)).toBe('Slack API call failed: timed out after 300 ms before Slack answered');
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(2000);
  });
});

describe('SlackPlugin: rate limiting (429)', () => {
  it('honours Retry-After and succeeds on the next try', async () => {
    slack.respond(() =>
      slack.requests.length === 1
        ? { status: 429, headers: { 'retry-after': '1' }, body: { ok: false, error: 'ratelimited' } }
        : OK(slack.requests[0]),
    );
    const { result, ms } = await timed(run(plugin(), slackAction(JSON.stringify(BLOCKS))));
    expect(result).toEqual({ ok: true });
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(slack.requests).toHaveLength(2);
    // The retry is the same request.
    expect(slack.requests[1].body).toBe(slack.requests[0].body);
    expect(slack.requests[1].headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('still limited after the bounded retries → failure (1 try + 3 retries)', async () => {
    slack.respond(() => ({ status: 429, headers: { 'retry-after': '0' }, body: { ok: false, error: 'ratelimited' } }));
    const result = await run(plugin(), slackAction(JSON.stringify(BLOCKS)));
    expect(result).toEqual({ ok: false, error: 'Slack rate limited (429), retry after 0 s' });
    expect(slack.requests).toHaveLength(4);
  });

  it('waits out Retry-After: 1 on every retry, then gives up', async () => {
    slack.respond(() => ({ status: 429, headers: { 'retry-after': '1' }, body: '' }));
    const { result, ms } = await timed(
      run(plugin({}, { maxRateLimitRetries: 1 }), slackAction(JSON.stringify(BLOCKS))),
    );
    expect(result).toEqual({ ok: false, error: 'Slack rate limited (429), retry after 1 s' });
    expect(slack.requests).toHaveLength(2);
    expect(ms).toBeGreaterThanOrEqual(1000);
  });

  it('a Retry-After beyond the per-call deadline fails at once instead of waiting', async () => {
    slack.respond(() => ({ status: 429, headers: { 'retry-after': '60' }, body: { ok: false, error: 'ratelimited' } }));
    const { result, ms } = await timed(run(plugin(), slackAction(JSON.stringify(BLOCKS))));
    expect(result).toEqual({ ok: false, error: 'Slack rate limited (429), retry after 60 s' });
    expect(slack.requests).toHaveLength(1);
    expect(ms).toBeLessThan(1000);
  });
});

describe('SlackPlugin: invalid actions and config (no HTTP call)', () => {
  it.each([
    ['invalid JSON', 'not json at all'],
    ['a truncated array', '[{"type":"section"'],
    ['a JSON object', '{"type":"section","text":{"type":"mrkdwn","text":"hi"}}'],
    ['a JSON string', '"hello"'],
    ['an array of strings', '["hello"]'],
    ['an array with a block lacking "type"', '[{"text":{"type":"mrkdwn","text":"hi"}}]'],
  ])('message that is %s → failure', async (_what, message) => {
    const error = errorOf(await run(plugin(), slackAction(message)));
    expect(error.startsWith(INVALID_MESSAGE_PREFIX)).toBe(true);
    expect(error.length).toBeGreaterThan(INVALID_MESSAGE_PREFIX.length);
    expect(slack.requests).toHaveLength(0);
  });

  it('includes the JSON parse error', async () => {
    const error = errorOf(await run(plugin(), slackAction('[oops]')));
    let parseError = '';
    try {
      JSON.parse('[oops]');
    } catch (err) {
      parseError = (err as Error).message;
    }
    expect(error).toBe(`Slack message is not a JSON array of Block Kit blocks: ${parseError}`);
  });

  it('says what a non-array parsed to', async () => {
    expect(errorOf(await run(plugin(), slackAction('{"a":1}')))).toBe(
      'Slack message is not a JSON array of Block Kit blocks: expected a JSON array, got an object',
    );
    expect(errorOf(await run(plugin(), slackAction('[{"type":"divider"}, 3]')))).toBe(
      'Slack message is not a JSON array of Block Kit blocks: element 1 is a number, not a block object',
    );
  });

  it('a message that is not a string → failure', async () => {
    const action: JsonObject = { type: ACTION_TYPE.Slack, channel: '#alerts', message: BLOCKS };
    expect(errorOf(await run(plugin(), action))).toBe(
      'Slack message is not a JSON array of Block Kit blocks: message must be a string, got an array',
    );
    expect(slack.requests).toHaveLength(0);
  });

  it('a missing channel → failure', async () => {
    const action: JsonObject = { type: ACTION_TYPE.Slack, message: JSON.stringify(BLOCKS) };
    expect(errorOf(await run(plugin(), action))).toBe('invalid SlackMessageRequest: channel is required');
    expect(slack.requests).toHaveLength(0);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['blank', '   '],
  ])('a %s token → every run fails with a clear reason, no request', async (_what, token) => {
    const p = plugin({ token });
    for (let i = 0; i < 2; i++) {
      expect(errorOf(await run(p, slackAction(JSON.stringify(BLOCKS))))).toBe(
        'Slack connector has no bot token: set configs.token of the slack connector in executor.yml',
      );
    }
    expect(slack.requests).toHaveLength(0);
  });
});

describe('SlackPlugin: the token never leaks', () => {
  it('is scrubbed from a 500 body that echoes the Authorization header', async () => {
    slack.respond((req) => ({ status: 500, body: `bad auth: ${req.headers.authorization ?? ''}` }));
    const error = errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))));
    expect(error).toBe('Slack API call failed: HTTP 500 | bad auth: [REDACTED]');
  });

  it("is scrubbed from Slack's error and metadata", async () => {
    slack.respond(() => ({ body: { ok: false, error: `invalid_auth ${TOKEN}`, response_metadata: { messages: [TOKEN] } } }));
    const error = errorOf(await run(plugin(), slackAction(JSON.stringify(BLOCKS))));
    expect(error).not.toContain(TOKEN);
    expect(error).toBe('Slack API error: invalid_auth [REDACTED] ([REDACTED])');
  });
});

describe('SlackPlugin: connections', () => {
  it('reuses one keep-alive connection and close() releases it', async () => {
    const p = plugin();
    for (let i = 0; i < 3; i++) expect(await run(p, slackAction(JSON.stringify(BLOCKS)))).toEqual({ ok: true });
    expect(slack.requests).toHaveLength(3);
    expect(slack.open()).toBe(1);
    await p.close();
    await waitFor(() => slack.open() === 0);
  });

  it('close() is idempotent and later runs fail without a request', async () => {
    const p = plugin();
    await p.close();
    await p.close();
    expect(errorOf(await run(p, slackAction(JSON.stringify(BLOCKS))))).toMatch(/connector is closed/);
    expect(slack.requests).toHaveLength(0);
  });
});
