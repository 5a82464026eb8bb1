import { Agent, request, type Dispatcher } from 'undici';
import { ConnectorType } from '../../config/karya-config';
import { JsonObject, JsonValue } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';
import { errorText, MAX_TIMER_MS, pause, socketBackInPool, untilAborted } from '../call-utils';
import { headerSecrets, redactSecrets, urlSecrets } from '../redact';

/** executor.yml `connectors: [{ type: slack, configs: {...} }]`. */
export interface SlackPluginConfigs {
  /** Bot token (`xoxb-…`). Without it the connector still starts, but every run fails with a clear reason. */
  token?: string;
  /** Web API base URL (default https://slack.com/api); tests point it at a local server. */
  apiUrl?: string;
}

/** Knobs for tests only: production code constructs the plugin with its configs alone and gets these defaults. */
export interface SlackPluginOptions {
  /** Overrides SLACK_CALL_DEADLINE_MS. */
  deadlineMs?: number;
  /** Overrides SLACK_MAX_RATE_LIMIT_RETRIES. */
  maxRateLimitRetries?: number;
}

export const SLACK_DEFAULT_API_URL = 'https://slack.com/api';

/**
 * The whole of one run(): every HTTP try and every Retry-After wait. A SlackMessageRequest has no timeout
 * field of its own (original-karya.md §4), yet run() must always end so an executor slot is never held
 * forever; 10 s is far above Slack's usual latency and well below any scheduler lease.
 */
export const SLACK_CALL_DEADLINE_MS = 10_000;

/**
 * Extra tries after an HTTP 429. A 429 means Slack refused the request, so re-sending cannot post twice.
 * A few tries ride out a short burst limit; past that the scheduler's own retry (with backoff) takes over.
 */
export const SLACK_MAX_RATE_LIMIT_RETRIES = 3;

/** Used when a 429 carries no (readable) Retry-After; Slack always sends one, and its tier-1 window is ~1 s. */
const DEFAULT_RETRY_AFTER_S = 1;

/** Failure texts end up in the error log (a DB row): a quoted response body is cut to this many characters. */
export const MAX_ERROR_BODY_CHARS = 2_000;

/**
 * The most of a response body we read. chat.postMessage echoes the posted message (at most 50 blocks), which
 * stays far below this; the cap only stops a misbehaving endpoint from making us buffer without bound.
 */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The block the original appends to every message (original-karya.md §4). */
export const KARYA_FOOTER_BLOCK = {
  type: 'context',
  elements: [{ type: 'mrkdwn', text: '_sent via <https://github.com/Saumya-Bhatt/karya|Karya>_' }],
} as const;

/** Top-level `text`: Slack shows it in notifications and to clients that cannot render blocks. */
const DEFAULT_FALLBACK_TEXT = 'Karya notification';

export const INVALID_MESSAGE_PREFIX = 'Slack message is not a JSON array of Block Kit blocks: ';

type Block = { [key: string]: JsonValue };

/** Thrown inside run() for a malformed action; becomes a failure result, never escapes. */
class InvalidActionError extends Error {}

/** The abort reason of the per-call deadline, so it is told apart from every other error. */
class DeadlineError extends Error {}

/**
 * Runs `karya.core.entities.Action.SlackMessageRequest` actions: `message` (a string holding a JSON array
 * of Block Kit blocks) is posted to `channel` with chat.postMessage, followed by KARYA_FOOTER_BLOCK.
 *
 * Results (semantics.md "Actions"):
 * - HTTP 200 with `ok: true` → `{ ok: true }`;
 * - HTTP 200 with `ok: false` → `Slack API error: <error>` (plus Slack's detail messages when it gives any);
 * - HTTP 429 → waits Retry-After and tries again, up to SLACK_MAX_RATE_LIMIT_RETRIES times within the
 *   deadline, then `Slack rate limited (429), retry after <N> s`;
 * - another status → `Slack API call failed: HTTP <status> | <body>`;
 * - no response (network error, deadline) → `Slack API call failed: <message>`.
 *
 * Nothing else is retried here: Slack has no idempotency key, so re-sending a request it may have received
 * could post the message twice. The scheduler's retry (recorded in the error log) handles those cases.
 * The token is sent only in the Authorization header and is scrubbed from every failure text.
 */
export class SlackPlugin extends ActionPlugin {
  readonly actionType = ACTION_TYPE.Slack;
  readonly connector: ConnectorType = 'slack';

  private readonly token: string | undefined;
  private readonly endpoint: string;
  /** The token (alone and as the Authorization value) and any credentials in apiUrl: scrubbed from failure texts. */
  private readonly secrets: string[];
  private readonly deadlineMs: number;
  private readonly maxRateLimitRetries: number;
  private readonly agent: Agent;
  private closing: Promise<void> | undefined;

  constructor(configs: Record<string, unknown> = {}, options: SlackPluginOptions = {}) {
    super();
    const token = configs['token'];
    if (token !== undefined && token !== null && typeof token !== 'string') {
      // The value is not echoed: it may be a secret that merely has the wrong YAML type.
      throw new TypeError('slack connector: configs.token must be a string');
    }
    // An empty token (e.g. an unset env var substituted into executor.yml) counts as missing.
    this.token = typeof token === 'string' && token.trim() !== '' ? token.trim() : undefined;
    this.endpoint = `${apiBase(configs['apiUrl'])}/chat.postMessage`;
    this.secrets = [...(this.token ? headerSecrets({ authorization: `Bearer ${this.token}` }) : []), ...urlSecrets(this.endpoint)];
    this.deadlineMs = positiveInt(options.deadlineMs, 'deadlineMs', SLACK_CALL_DEADLINE_MS, 1);
    this.maxRateLimitRetries = positiveInt(options.maxRateLimitRetries, 'maxRateLimitRetries', SLACK_MAX_RATE_LIMIT_RETRIES, 0);
    // One keep-alive pool for the single Slack origin. 16 sockets: Slack's chat.postMessage limit is about one
    // message per second per channel, so more parallel calls would mostly earn 429s. The per-call deadline
    // bounds every phase, so undici's own per-phase timeouts (300 s defaults) are turned off.
    this.agent = new Agent({ connections: 16, headersTimeout: 0, bodyTimeout: 0 });
  }

  async run(action: JsonObject, _context: ActionContext): Promise<ActionResult> {
    let result: ActionResult;
    try {
      result = await this.send(action);
    } catch (err) {
      // Unreachable by design; the contract is that run() never throws.
      result = { ok: false, error: `Slack API call failed: ${errorText(err)}` };
    }
    // Belt and braces: no error message we build includes the token, but a server or library might echo it.
    return result.ok ? result : { ...result, error: redactSecrets(result.error, this.secrets) };
  }

  /** Closes the pooled sockets once in-flight calls finish (each bounded by the deadline). */
  override close(): Promise<void> {
    // Memoized: undici 7 rejects a second Agent.close() with ClientDestroyedError.
    this.closing ??= this.agent.close().then(() => undefined);
    return this.closing;
  }

  private async send(action: JsonObject): Promise<ActionResult> {
    if (this.closing) return { ok: false, error: 'Slack API call failed: the slack connector is closed (executor shutting down)' };
    if (!this.token) {
      return { ok: false, error: 'Slack connector has no bot token: set configs.token of the slack connector in executor.yml' };
    }
    let payload: string;
    try {
      payload = buildPayload(action);
    } catch (err) {
      if (err instanceof InvalidActionError) return { ok: false, error: err.message };
      throw err;
    }

    const startedAt = performance.now();
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DeadlineError(`timed out after ${this.deadlineMs} ms`)),
      Math.min(this.deadlineMs, MAX_TIMER_MS),
    );
    const { signal } = deadline;
    const timedOut = (phase: string): ActionResult => ({
      ok: false,
      error: `Slack API call failed: timed out after ${this.deadlineMs} ms ${phase}`,
    });

    try {
      for (let retries = 0; ; retries++) {
        let response: Dispatcher.ResponseData;
        try {
          response = await untilAborted(
            request(this.endpoint, {
              dispatcher: this.agent,
              method: 'POST',
              headers: {
                authorization: `Bearer ${this.token}`,
                'content-type': 'application/json; charset=utf-8',
              },
              body: payload,
              signal,
            }),
            signal,
          );
        } catch (err) {
          if (signal.aborted) return timedOut('before Slack answered');
          return { ok: false, error: `Slack API call failed: ${errorText(err)}` };
        }

        const { statusCode, headers, body } = response;
        let read: ReadBody;
        try {
          read = await readBody(body, MAX_RESPONSE_BYTES);
        } catch (err) {
          if (signal.aborted) return timedOut(`while reading the HTTP ${statusCode} response`);
          return { ok: false, error: `Slack API call failed: HTTP ${statusCode} response interrupted: ${errorText(err)}` };
        }
        // Lets the socket go back to the pool before the next call (a 429 retry, or the caller's next run()).
        await socketBackInPool();

        if (statusCode === 429) {
          const retryAfterS = retryAfterSeconds(headers['retry-after']);
          const rateLimited: ActionResult = { ok: false, error: `Slack rate limited (429), retry after ${retryAfterS} s` };
          if (retries >= this.maxRateLimitRetries) return rateLimited;
          // Waiting past the deadline only to be cut off would waste the executor slot: give up now and
          // let the scheduler's retry come back later.
          const remainingMs = this.deadlineMs - (performance.now() - startedAt);
          if (retryAfterS * 1000 >= remainingMs) return rateLimited;
          await pause(retryAfterS * 1000, signal);
          if (signal.aborted) return timedOut('while waiting out a 429 Retry-After');
          continue;
        }

        if (statusCode !== 200) {
          return { ok: false, error: `Slack API call failed: HTTP ${statusCode} | ${quote(read)}` };
        }
        return interpret(read);
      }
    } finally {
      clearTimeout(timer);
    }
  }

}

// ---------------------------------------------------------------- action JSON

/** The chat.postMessage JSON body, or InvalidActionError. */
function buildPayload(action: JsonObject): string {
  if (typeof action !== 'object' || action === null || Array.isArray(action)) {
    throw new InvalidActionError('invalid SlackMessageRequest: the action is not a JSON object');
  }
  const channel = action['channel'];
  if (typeof channel !== 'string' || channel.trim() === '') {
    throw new InvalidActionError('invalid SlackMessageRequest: channel is required');
  }
  const blocks = parseBlocks(action['message']);
  return JSON.stringify({ channel, blocks: [...blocks, KARYA_FOOTER_BLOCK], text: fallbackText(blocks) });
}

/** `message` parsed as a JSON array of objects with a string `type` (every Block Kit block has one). */
function parseBlocks(message: JsonValue | undefined): Block[] {
  const invalid = (why: string) => new InvalidActionError(`${INVALID_MESSAGE_PREFIX}${why}`);
  if (typeof message !== 'string') throw invalid(`message must be a string, got ${describe(message)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch (err) {
    throw invalid(errorText(err));
  }
  if (!Array.isArray(parsed)) throw invalid(`expected a JSON array, got ${describe(parsed)}`);
  return parsed.map((block: unknown, i) => {
    if (typeof block !== 'object' || block === null || Array.isArray(block)) {
      throw invalid(`element ${i} is ${describe(block)}, not a block object`);
    }
    // JSON.parse of an object literal yields exactly a JSON object.
    const b = block as Block;
    if (typeof b['type'] !== 'string') throw invalid(`element ${i} has no string "type"`);
    return b;
  });
}

/** The first header/section text, else DEFAULT_FALLBACK_TEXT. */
function fallbackText(blocks: Block[]): string {
  for (const block of blocks) {
    if (block['type'] !== 'section' && block['type'] !== 'header') continue;
    const text = block['text'];
    if (typeof text === 'object' && text !== null && !Array.isArray(text)) {
      const value = text['text'];
      if (typeof value === 'string' && value.trim() !== '') return value;
    }
  }
  return DEFAULT_FALLBACK_TEXT;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

// ---------------------------------------------------------------- config

/** `<apiUrl>` without trailing slashes; a malformed URL is a config error and fails startup. */
function apiBase(raw: unknown): string {
  if (raw === undefined || raw === null) return SLACK_DEFAULT_API_URL;
  let url: URL | undefined;
  if (typeof raw === 'string') {
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash) {
    // Goes to the start-up log: a URL may carry credentials (userinfo, ?token=).
    const shown = typeof raw === 'string' ? redactSecrets(raw, urlSecrets(raw)) : raw;
    throw new RangeError(`slack connector: configs.apiUrl must be an http(s) URL without query, got ${JSON.stringify(shown)}`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function positiveInt(value: number | undefined, key: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`slack connector: ${key} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

// ---------------------------------------------------------------- responses

interface ReadBody {
  text: string;
  /** More than the cap arrived; `text` holds the first part. */
  truncated: boolean;
}

/** The body as UTF-8, reading at most `maxBytes` (then the connection is dropped rather than drained). */
async function readBody(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<ReadBody> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let truncated = false;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    bytes += chunk.length;
    if (bytes > maxBytes) {
      truncated = true;
      break; // leaving the loop destroys the body and its socket
    }
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated };
}

/** A body for a failure text: at most MAX_ERROR_BODY_CHARS characters, with a note when cut. */
function quote(read: ReadBody): string {
  let text = read.text;
  if (text.length <= MAX_ERROR_BODY_CHARS && !read.truncated) return text;
  text = text.slice(0, MAX_ERROR_BODY_CHARS);
  // Do not end on half a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(text)) text = text.slice(0, -1);
  return `${text} … [truncated: first ${text.length} characters shown]`;
}

/** A 200 from chat.postMessage: `{ok: true, …}` or `{ok: false, error: '<code>', …}`. */
function interpret(read: ReadBody): ActionResult {
  let parsed: unknown;
  try {
    parsed = read.truncated ? undefined : JSON.parse(read.text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !('ok' in parsed)) {
    return { ok: false, error: `Slack API call failed: HTTP 200 without a Slack API response | ${quote(read)}` };
  }
  const reply = parsed as { ok: unknown; error?: unknown; response_metadata?: { messages?: unknown } };
  if (reply.ok === true) return { ok: true };

  const code = typeof reply.error === 'string' && reply.error !== '' ? reply.error : 'unknown_error';
  // invalid_blocks and similar carry the reason (e.g. "[ERROR] must be less than 51 items [json-pointer:/blocks]")
  // in response_metadata.messages: worth keeping in the error log.
  const messages = reply.response_metadata?.messages;
  const details = Array.isArray(messages) ? messages.filter((m): m is string => typeof m === 'string') : [];
  const suffix = details.length ? ` (${quote({ text: details.join('; '), truncated: false })})` : '';
  return { ok: false, error: `Slack API error: ${code}${suffix}` };
}

/**
 * Seconds to wait from a Retry-After header: delta-seconds (what Slack sends) or an HTTP date; missing or
 * unreadable → DEFAULT_RETRY_AFTER_S. Rounded up to whole seconds, as the failure text reports them.
 */
function retryAfterSeconds(header: string | string[] | undefined): number {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!value) return DEFAULT_RETRY_AFTER_S;
  if (/^\d+$/.test(value)) return Number(value);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return DEFAULT_RETRY_AFTER_S;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

// ---------------------------------------------------------------- errors and timing

