import { Logger } from '@nestjs/common';
import { createTransport, type SendMailOptions, type SMTPPoolOptions, type SMTPPoolSentMessageInfo, type Transporter } from 'nodemailer';
import { ConnectorType } from '../../config/karya-config';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';
import { redactSecrets } from '../redact';

/**
 * executor.yml `connectors: [{ type: email, configs: {...} }]` (config.schema.ts `EmailConnectorConfigs`):
 *
 * ```yaml
 * configs:
 *   username: "your-email@gmail.com"
 *   password: "your-app-password"
 *   from: "Karya <alerts@example.com>"   # optional, defaults to username
 *   smtp:
 *     mail.smtp.auth: "true"
 *     mail.smtp.starttls.enable: "true"
 *     mail.smtp.host: "smtp.gmail.com"
 *     mail.smtp.port: "587"
 * ```
 *
 * `smtp` holds JavaMail `mail.smtp.*` properties, mapped onto nodemailer's pooled SMTP transport:
 *
 * | JavaMail property                | nodemailer option                  | notes |
 * |----------------------------------|------------------------------------|-------|
 * | `mail.smtp.host`                 | `host`                             | **required** (JavaMail would silently fall back to localhost). |
 * | `mail.smtp.port`                 | `port`                             | "587" or 587. Default as in JavaMail: 25, or 465 with `ssl.enable`. |
 * | `mail.smtp.auth`                 | `auth: { user: username, pass: password }` | "true"/true → log in with `username`/`password` (both then required), when the server offers AUTH (as JavaMail). Otherwise no login. |
 * | `mail.smtp.starttls.required`    | `requireTLS: true`                 | fail unless the server offers STARTTLS and the upgrade succeeds. |
 * | `mail.smtp.starttls.enable`      | (nodemailer default)               | STARTTLS is used whenever the server offers it, whatever this says (opportunistic: never downgrades; JavaMail without `enable` would stay in clear text). |
 * | `mail.smtp.ssl.enable`           | `secure: true`                     | implicit TLS from the first byte (SMTPS, usually port 465). |
 * | `mail.smtp.ssl.trust`            | `tls.rejectUnauthorized: false`    | "*" or a whitespace-separated host list containing `host`: accept that server's certificate without verification (JavaMail semantics). |
 * | `mail.smtp.connectiontimeout`    | `connectionTimeout`, `dnsTimeout`  | ms; nodemailer counts DNS, TCP connect, greeting and STARTTLS against it. Default 10 000. |
 * | `mail.smtp.timeout`              | `greetingTimeout`, `socketTimeout` | ms of waiting for one server reply (socket inactivity). Default 10 000. |
 * | `mail.smtp.localhost`            | `name`                             | the EHLO name. |
 *
 * Booleans are "true"/"false" (any case) or YAML booleans; numbers are integers or their decimal strings.
 * A nested map (`smtp: { mail: { smtp: { host: … } } }`) is read as the same dotted keys. Other properties
 * (`mail.smtp.writetimeout`, `mail.smtp.from`, `mail.smtp.sendpartial`, …) are ignored. JavaMail's
 * "0 = wait forever" timeouts are refused: every send must end.
 *
 * A configuration problem (no host, a malformed value, auth without credentials, no From address) does not
 * stop the executor: it is logged once at startup and every email action fails with the reason, e.g.
 * `Email failed --- error : email connector misconfigured: smtp mail.smtp.host is not set`.
 */
export interface EmailPluginConfigs {
  username?: unknown;
  password?: unknown;
  from?: unknown;
  smtp?: unknown;
}

/** Used when executor.yml leaves the timeouts out (JavaMail's own defaults are infinite). */
export const EMAIL_DEFAULTS = { connectionTimeout: 10_000, readTimeout: 10_000, port: 25, securePort: 465 } as const;

/**
 * Pooled SMTP connections per executor. Actions beyond this wait in the pool's queue for a free connection
 * (that wait counts against the send deadline). Kept low: providers cap concurrent sessions per account.
 */
export const MAX_SMTP_CONNECTIONS = 5;

/**
 * The whole send (queueing for a pooled connection, connecting, greeting, STARTTLS, AUTH, the envelope and the
 * message data) must finish within `connectionTimeout + SEND_DEADLINE_READS × readTimeout` ms, 40 s with the
 * defaults. The per-phase timeouts alone do not bound it: socketTimeout is an inactivity timer, which a server
 * trickling its replies a byte at a time never trips.
 */
export const SEND_DEADLINE_READS = 3;

export const KARYA_REPO_URL = 'https://github.com/Saumya-Bhatt/karya';

/** The footer appended to every HTML body (original-karya.md §4: a small "Sent via Karya" link). */
export const EMAIL_FOOTER_HTML = `<p style="font-size:smaller;color:#888">Sent via <a href="${KARYA_REPO_URL}">Karya</a></p>`;
const EMAIL_FOOTER_TEXT = `--\nSent via Karya (${KARYA_REPO_URL})`;

const FAILURE_PREFIX = 'Email failed --- error : ';

/** setTimeout's ceiling (about 24.8 days); a larger delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The executor.yml problem that makes the connector unusable; reported by every run(). */
export class EmailConfigError extends Error {}

/** Thrown inside run() for a malformed action; becomes a failure result, never escapes. */
class InvalidActionError extends Error {}

/** What the configs resolve to. */
export interface EmailSettings {
  transport: SMTPPoolOptions & { pool: true };
  /** From header and envelope sender: `configs.from`, else `username`. */
  from: string;
  /** ms allowed for one whole send (see SEND_DEADLINE_READS). */
  sendDeadlineMs: number;
  /** `host:port`, for failure texts. */
  target: string;
}

/**
 * Runs `karya.core.entities.Action.EmailRequest` actions (`recipient`, `subject`, `message`) over a pooled
 * nodemailer SMTP transport.
 *
 * The HTML body is `<p>${message}</p>` followed by EMAIL_FOOTER_HTML, with a plain-text alternative. The
 * message is inserted as raw HTML, not escaped: the original did the same and users put markup (links, <b>,
 * <br>) in it. Its author is the plan's owner, who also chooses the recipient, so no trust boundary is crossed.
 * Every email carries `X-Karya-Plan-Id`, `X-Karya-Task-Id` and `X-Karya-Attempt` headers, plus `X-Karya-Trigger` and
 * `X-Karya-Task-Status` when it runs as a hook.
 *
 * Results:
 * - the SMTP server accepted the message for every recipient → `{ ok: true }`;
 * - anything else → `Email failed --- error : <message>` (rejected recipient, failed login, connection error,
 *   deadline, invalid action, misconfiguration). The password never appears in it.
 *
 * No retries here beyond what the nodemailer pool does for a message none of whose bytes were sent (a pooled
 * connection the server had closed, or a connection dropped before the greeting): the scheduler retries a
 * failed action itself, with backoff, and records every failed attempt in the error log.
 */
export class EmailPlugin extends ActionPlugin {
  readonly actionType = ACTION_TYPE.Email;
  readonly connector: ConnectorType = 'email';

  private readonly logger = new Logger('EmailPlugin');
  private readonly settings: EmailSettings | undefined;
  private readonly configError: string | undefined;
  private readonly transporter: Transporter<SMTPPoolSentMessageInfo, SMTPPoolOptions> | undefined;
  /** Strings scrubbed from every failure text and log line: the password and the forms an AUTH exchange uses. */
  private readonly secrets: string[];
  private readonly inFlight = new Set<Promise<ActionResult>>();
  private closing: Promise<void> | undefined;

  constructor(configs: Record<string, unknown> = {}) {
    super();
    this.secrets = secretsOf(configs);
    try {
      this.settings = resolveEmailSettings(configs);
    } catch (err) {
      this.configError = redactSecrets(errorText(err), this.secrets);
      this.logger.error(`email connector misconfigured, every email action will fail: ${this.configError}`);
      return;
    }
    this.transporter = createTransport(this.settings.transport);
  }

  run(action: JsonObject, context: ActionContext): Promise<ActionResult> {
    const result = this.guardedRun(action, context);
    this.inFlight.add(result);
    void result.finally(() => this.inFlight.delete(result));
    return result;
  }

  /**
   * Stops taking actions and closes the pool: idle connections at once, a connection delivering a message once
   * that delivery ends (bounded by its send deadline). Resolves when every run() has returned.
   */
  override close(): Promise<void> {
    this.closing ??= (async () => {
      this.transporter?.close();
      await Promise.allSettled([...this.inFlight]);
    })();
    return this.closing;
  }

  private async guardedRun(action: JsonObject, context: ActionContext): Promise<ActionResult> {
    try {
      if (this.closing) return this.failed('the email connector is closed (executor shutting down)');
      if (!this.settings || !this.transporter) return this.failed(`email connector misconfigured: ${this.configError ?? 'unknown'}`);
      let mail: SendMailOptions;
      try {
        mail = composeMail(action, context, this.settings.from);
      } catch (err) {
        return this.failed(`invalid EmailRequest: ${errorText(err)}`);
      }
      return await this.send(this.transporter, this.settings, mail);
    } catch (err) {
      // Unreachable by design; the contract is that run() never throws.
      return this.failed(errorText(err));
    }
  }

  private async send(
    transporter: Transporter<SMTPPoolSentMessageInfo, SMTPPoolOptions>,
    settings: EmailSettings,
    mail: SendMailOptions,
  ): Promise<ActionResult> {
    const { sendDeadlineMs, target } = settings;
    const deadline = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    // Resolves at the deadline even if the transport were to ignore the abort, so run() always ends.
    const expired = new Promise<{ kind: 'deadline' }>((resolve) => {
      timer = setTimeout(() => {
        deadline.abort(new Error(`timed out after ${sendDeadlineMs} ms`));
        resolve({ kind: 'deadline' });
      }, Math.min(sendDeadlineMs, MAX_TIMER_MS));
    });
    const sending = transporter.sendMail({ ...mail, signal: deadline.signal }).then(
      (info) => ({ kind: 'sent' as const, info }),
      (err: unknown) => ({ kind: 'error' as const, err }),
    );
    try {
      const outcome = await Promise.race([sending, expired]);
      if (outcome.kind === 'deadline' || (outcome.kind === 'error' && deadline.signal.aborted)) {
        return this.failed(`timed out after ${sendDeadlineMs} ms (smtp ${target})`);
      }
      if (outcome.kind === 'error') return this.failed(`${errorText(outcome.err)} (smtp ${target})`);
      const { accepted, rejected } = outcome.info;
      if (rejected.length > 0) {
        // nodemailer delivers to the accepted recipients and only fails when all were rejected. Reported as a
        // failure (JavaMail's default, sendpartial=false, would not send at all) so the error log shows it.
        return this.failed(
          `recipient(s) rejected: ${rejected.join(', ')}; delivered to ${accepted.join(', ') || 'none'} (smtp ${target})`,
        );
      }
      return { ok: true };
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(message: string): ActionResult {
    return { ok: false, error: FAILURE_PREFIX + redactSecrets(message, this.secrets) };
  }
}

// ---------------------------------------------------------------- configs

/** Maps the connector's configs onto nodemailer options (see EmailPluginConfigs); throws EmailConfigError. */
export function resolveEmailSettings(configs: EmailPluginConfigs): EmailSettings {
  const username = optionalConfigString(configs.username, 'username');
  const password = optionalConfigString(configs.password, 'password');
  const from = optionalConfigString(configs.from, 'from') ?? username;
  if (from === undefined) throw new EmailConfigError('no From address: set configs.from or configs.username');

  const props = smtpProperties(configs.smtp);
  const host = props.get('mail.smtp.host');
  if (host === undefined || host === null || (typeof host === 'string' && host.trim() === '')) {
    throw new EmailConfigError('smtp mail.smtp.host is not set');
  }
  if (typeof host !== 'string') throw new EmailConfigError(`smtp mail.smtp.host must be a string, got ${JSON.stringify(host)}`);

  const secure = booleanProperty(props, 'mail.smtp.ssl.enable') ?? false;
  const port = integerProperty(props, 'mail.smtp.port', 1, 65535) ?? (secure ? EMAIL_DEFAULTS.securePort : EMAIL_DEFAULTS.port);
  const requireTLS = booleanProperty(props, 'mail.smtp.starttls.required') ?? false;
  booleanProperty(props, 'mail.smtp.starttls.enable'); // validated only: STARTTLS is always used when offered
  const useAuth = booleanProperty(props, 'mail.smtp.auth') ?? false;
  const connectionTimeout = integerProperty(props, 'mail.smtp.connectiontimeout', 1, MAX_TIMER_MS) ?? EMAIL_DEFAULTS.connectionTimeout;
  const readTimeout = integerProperty(props, 'mail.smtp.timeout', 1, MAX_TIMER_MS) ?? EMAIL_DEFAULTS.readTimeout;
  const name = stringProperty(props, 'mail.smtp.localhost');
  const trust = stringProperty(props, 'mail.smtp.ssl.trust');
  const trusted = trust !== undefined && (trust.trim() === '*' || trust.trim().split(/\s+/).includes(host.trim()));

  if (useAuth && (username === undefined || username === '')) {
    throw new EmailConfigError('smtp mail.smtp.auth is true but configs.username is not set');
  }
  if (useAuth && (password === undefined || password === '')) {
    throw new EmailConfigError('smtp mail.smtp.auth is true but configs.password is not set');
  }

  const transport: SMTPPoolOptions & { pool: true } = {
    pool: true,
    maxConnections: MAX_SMTP_CONNECTIONS,
    host: host.trim(),
    port,
    secure,
    requireTLS,
    ...(useAuth ? { auth: { user: username, pass: password } } : {}),
    ...(name ? { name } : {}),
    ...(trusted ? { tls: { rejectUnauthorized: false } } : {}),
    connectionTimeout,
    dnsTimeout: connectionTimeout,
    greetingTimeout: readTimeout,
    socketTimeout: readTimeout,
    // An aborted or failed connection is torn down at once rather than waiting for the server's FIN.
    socketCloseTimeout: 1000,
    logger: false,
  };
  return {
    transport,
    from,
    sendDeadlineMs: Math.min(connectionTimeout + SEND_DEADLINE_READS * readTimeout, MAX_TIMER_MS),
    target: `${host.trim()}:${port}`,
  };
}

/** `smtp` as dotted-key → value; nested maps are flattened (`{mail: {smtp: {host}}}` → `mail.smtp.host`). */
function smtpProperties(smtp: unknown): Map<string, unknown> {
  const props = new Map<string, unknown>();
  if (smtp === undefined || smtp === null) return props;
  if (!isPlainObject(smtp)) throw new EmailConfigError('configs.smtp must be a map of mail.smtp.* properties');
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [key, value] of Object.entries(node)) {
      const name = prefix + key;
      if (isPlainObject(value)) walk(value, `${name}.`);
      else props.set(name, value);
    }
  };
  walk(smtp, '');
  return props;
}

function booleanProperty(props: Map<string, unknown>, key: string): boolean | undefined {
  const value = props.get(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  throw new EmailConfigError(`smtp ${key} must be "true" or "false", got ${JSON.stringify(value)}`);
}

function integerProperty(props: Map<string, unknown>, key: string, min: number, max: number): number | undefined {
  const value = props.get(key);
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new EmailConfigError(`smtp ${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function stringProperty(props: Map<string, unknown>, key: string): string | undefined {
  const value = props.get(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new EmailConfigError(`smtp ${key} must be a string, got ${JSON.stringify(value)}`);
  return value;
}

function optionalConfigString(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  // Never echo the value: it may be the password.
  if (typeof value !== 'string') throw new EmailConfigError(`configs.${key} must be a string`);
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The password as it could appear in an error: verbatim, as `user:pass`, base64 (AUTH LOGIN) and the AUTH PLAIN
 * token. The username alone is not a secret (it is usually the From address, which failure texts may name).
 */
function secretsOf(configs: Record<string, unknown>): string[] {
  const password = configs['password'];
  if (typeof password !== 'string' || password === '') return [];
  const username = typeof configs['username'] === 'string' ? configs['username'] : '';
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return [
    b64(`\u0000${username}\u0000${password}`),
    b64(`${username}\u0000${username}\u0000${password}`),
    b64(password),
    `${username}:${password}`,
    password,
  ];
}

// ---------------------------------------------------------------- action JSON

function composeMail(action: JsonObject, context: ActionContext, from: string): SendMailOptions {
  if (!isPlainObject(action)) throw new InvalidActionError('the action is not a JSON object');
  const recipient = requiredString(action['recipient'], 'recipient');
  if (recipient.trim() === '') throw new InvalidActionError('recipient is required');
  const subject = requiredString(action['subject'], 'subject');
  const message = requiredString(action['message'], 'message');
  return {
    from,
    to: recipient,
    subject,
    // Raw HTML on purpose (see the class comment).
    html: `<p>${message}</p>${EMAIL_FOOTER_HTML}`,
    text: `${htmlToText(message)}\n\n${EMAIL_FOOTER_TEXT}`,
    headers: {
      'X-Karya-Plan-Id': context.planId,
      'X-Karya-Task-Id': context.taskId,
      'X-Karya-Attempt': String(context.attempt),
      // As the REST plugin: a hook's email says what happened to the task.
      ...(context.hook ? { 'X-Karya-Trigger': context.hook.trigger, 'X-Karya-Task-Status': context.hook.taskStatus } : {}),
    },
  };
}

function requiredString(value: unknown, field: string): string {
  if (value === undefined || value === null) throw new InvalidActionError(`${field} is required`);
  if (typeof value !== 'string') throw new InvalidActionError(`${field} must be a string`);
  return value;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** A rough plain-text rendering of the (HTML) message for the text/plain alternative. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|tr|h[1-6])\s*>/gi, '\n')
    .replace(/<a\b[^>]*\bhref\s*=\s*["']([^"']*)["'][^>]*>([\s\S]*?)<\/a\s*>/gi, (_m, href: string, label: string) =>
      label.trim() && label.trim() !== href ? `${label} (${href})` : href,
    )
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (entity: string, code: string) => {
      if (code[0] === '#') {
        const n = code[1] === 'x' || code[1] === 'X' ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
        return Number.isInteger(n) && n >= 0 && n <= 0x10ffff ? String.fromCodePoint(n) : entity;
      }
      return ENTITIES[code.toLowerCase()] ?? entity;
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

// ---------------------------------------------------------------- errors

interface ErrorLike {
  message?: unknown;
  code?: unknown;
}

/** An error's message, with its code when the message does not already say it. */
function errorText(err: unknown): string {
  const e: ErrorLike = typeof err === 'object' && err !== null ? (err as ErrorLike) : {};
  let message = typeof e.message === 'string' ? e.message.trim() : '';
  if (!message) message = typeof err === 'string' ? err : String(err);
  const code = typeof e.code === 'string' ? e.code : undefined;
  return code && !message.includes(code) ? `${message} [${code}]` : message;
}
