/**
 * Scrubbing a call's own credentials out of the text recorded when it fails. A failure text is stored in the
 * error log (a DB row the API lists) and travels in dead-letter reasons, and targets do echo what they were
 * sent: a debug 500 page dumping the request's headers, a Slack-like server quoting the token, an SMTP server
 * quoting the AUTH line. So each plugin collects the secrets it sends and passes its failure texts through
 * `redactSecrets` before returning them.
 */

export const REDACTED = '[REDACTED]';

/**
 * Shorter values are not scrubbed: redacting every "a" or "1" would mangle the text and protects nothing, a
 * 3-character secret being no secret.
 */
export const MIN_SECRET_LENGTH = 4;

/**
 * What the plugins write right after a quoted body they cut short (` … [truncated: …]`, ` … [response body
 * incomplete: …]`). A secret can be cut there, so the text just before it is also checked for a secret's
 * beginning (see redactSecrets).
 */
export const CUT_MARK = ' … [';

const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
/** Credential names too short to look for inside longer names ("sig" is in "design"): Azure SAS's `sig`. */
const CREDENTIAL_EXACT_NAMES = new Set(['sig']);
const CREDENTIAL_WORDS = /token|secret|key|auth|password|passwd|session|signature|credential/i;
/**
 * Names that contain a credential word but never carry one. Idempotency-Key is the task id, which Karya itself
 * sends and shows everywhere; scrubbing it would only make failure texts harder to read.
 */
const NOT_CREDENTIALS = new Set(['idempotency-key']);

/** True for a header or query-parameter name whose value is a credential (Authorization, X-Api-Key, access_token, …). */
export function isCredentialName(name: string): boolean {
  const lower = name.trim().toLowerCase();
  if (NOT_CREDENTIALS.has(lower)) return false;
  return CREDENTIAL_HEADERS.has(lower) || CREDENTIAL_EXACT_NAMES.has(lower) || CREDENTIAL_WORDS.test(lower);
}

/**
 * The secrets a call sends in these headers: the value of every credential-like header, plus the parts a target
 * may echo on their own: the credentials after an auth scheme (`Bearer <token>`), for Basic also the decoded
 * `user:pass` and the password, and the value of each cookie.
 */
export function headerSecrets(headers: Readonly<Record<string, string>>): string[] {
  const secrets: string[] = [];
  for (const [name, raw] of Object.entries(headers)) {
    if (!isCredentialName(name)) continue;
    const value = String(raw).trim();
    secrets.push(value);
    const scheme = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+(\S.*)$/.exec(value);
    if (scheme) {
      const credentials = scheme[2].trim();
      secrets.push(credentials);
      if (scheme[1].toLowerCase() === 'basic') secrets.push(...basicSecrets(credentials));
    }
    if (name.trim().toLowerCase() === 'cookie') {
      for (const pair of value.split(';')) {
        const eq = pair.indexOf('=');
        if (eq > 0) secrets.push(pair.slice(eq + 1).trim());
      }
    }
  }
  return secrets;
}

/** The decoded `user:pass` of a Basic credential and the password alone; nothing when it is not valid base64. */
function basicSecrets(token: string): string[] {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return [];
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decoded.includes('\uFFFD')) return [];
  return [decoded, decoded.slice(colon + 1)];
}

/**
 * The secrets a URL carries: its userinfo (`user:pass`, and the password) and the values of credential-like
 * query parameters (`?access_token=…`, `&api_key=…`), each as written and decoded. Read with a pattern rather
 * than `new URL()` so that a URL too malformed to parse (one that ends in an "Invalid URL" error quoting it) is
 * still covered.
 */
export function urlSecrets(url: string): string[] {
  const secrets: string[] = [];
  const userinfo = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#\s]*)@/.exec(url);
  if (userinfo) {
    const info = userinfo[1];
    secrets.push(info, ...decodedToo(info));
    const colon = info.indexOf(':');
    if (colon >= 0) {
      const password = info.slice(colon + 1);
      secrets.push(password, ...decodedToo(password));
    }
  }
  const query = url.indexOf('?');
  if (query >= 0) {
    for (const pair of url.slice(query + 1).split('#')[0].split(/[&;]/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = decodeOrSelf(pair.slice(0, eq));
      const value = pair.slice(eq + 1);
      if (isCredentialName(name)) secrets.push(value, ...decodedToo(value));
    }
  }
  return secrets;
}

function decodeOrSelf(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

function decodedToo(text: string): string[] {
  const decoded = decodeOrSelf(text);
  return decoded === text ? [] : [decoded];
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * The forms under which a target may quote a secret: as sent, percent-encoded (an echoed URL or form),
 * JSON-escaped (a JSON dump of the request) and HTML-escaped (a debug error page). Too-short values and
 * duplicates are dropped.
 */
export function secretForms(secrets: Iterable<string>): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_LENGTH) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(secret.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c));
  }
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH);
}

/**
 * `text` with every occurrence of each secret (in every form of secretForms) replaced by REDACTED. Overlapping
 * occurrences of different secrets are merged into one span, so replacing one cannot leave part of another
 * behind. Before each CUT_MARK, a tail that is the beginning of a secret (a secret cut by truncation) is
 * replaced too.
 */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  const forms = secretForms(secrets);
  if (forms.length === 0 || text.length === 0) return text;

  const spans: Array<[number, number]> = [];
  for (const form of forms) {
    for (let at = text.indexOf(form); at >= 0; at = text.indexOf(form, at + 1)) spans.push([at, at + form.length]);
  }
  for (let cut = text.indexOf(CUT_MARK); cut >= 0; cut = text.indexOf(CUT_MARK, cut + 1)) {
    const tail = cutSecretTail(text.slice(0, cut), forms);
    if (tail > 0) spans.push([cut - tail, cut]);
  }
  if (spans.length === 0) return text;

  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let copied = 0;
  let [start, end] = spans[0];
  for (const [s, e] of spans.slice(1)) {
    if (s <= end) {
      end = Math.max(end, e);
      continue;
    }
    out += text.slice(copied, start) + REDACTED;
    copied = end;
    [start, end] = [s, e];
  }
  return out + text.slice(copied, start) + REDACTED + text.slice(end);
}

/** Length of the longest end of `before` (at least MIN_SECRET_LENGTH) that is a proper beginning of a secret. */
function cutSecretTail(before: string, forms: readonly string[]): number {
  let longest = 0;
  for (const form of forms) {
    for (let n = Math.min(form.length - 1, before.length); n >= MIN_SECRET_LENGTH && n > longest; n--) {
      if (before.endsWith(form.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

/** An auth scheme followed by a credential-looking word (long enough not to be prose: "Basic auth"). */
const SCHEME_CREDENTIALS = /\b(Bearer|Basic|Digest|Token)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi;
/**
 * `://userinfo@`: whatever precedes the @ of a URL's authority. Anchored on `://` rather than on the scheme:
 * a scheme pattern is tried from every word boundary of a long dotted or hyphenated run (a target's response
 * body in a failure text), which is quadratic; every try here stops at the next `/`, so the scan is linear.
 */
const URL_USERINFO = /:\/\/[^\s/?#@'"]+@/g;
/**
 * `name: value`, `name=value`, `"name": "value"` and util.inspect's `'name': 'value'` (quotes possibly
 * backslash-escaped, as in JSON inside a JSON string): a name, a separator, then a quoted value (escapes
 * allowed) or a bare one up to whitespace or punctuation. The name is a whole run of name characters (the
 * lookbehind): tried from inside a run too, a long run without a separator would cost its length at each of
 * its characters.
 */
const NAMED_VALUE =
  /((?:\\)?["']?)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]+)\1(\s*[:=]\s*)(?:((?:\\)?["'])((?:(?!\4)(?:\\.|[^\\]))*)\4|([^\s"'\\,;&)}\]]+))/g;
/** Left alone as a bare value: SCHEME_CREDENTIALS has already masked what follows it. */
const SCHEME_WORD = /^(Bearer|Basic|Digest|Token)$/i;

/**
 * Credentials recognisable by their shape alone, for text whose secrets are not known beforehand (a log line,
 * an unexpected error's stack): the credentials after an auth scheme, URL userinfo, and values of
 * credential-like names (isCredentialName) written as `name: value`, `name=value` or JSON/inspect pairs.
 * Cheaper and blunter than redactSecrets; stored failure texts use redactSecrets with the call's own values.
 */
export function redactCredentialPatterns(text: string): string {
  return text
    .replace(SCHEME_CREDENTIALS, `$1$2${REDACTED}`)
    .replace(URL_USERINFO, `://${REDACTED}@`)
    .replace(
      NAMED_VALUE,
      (match: string, nameQuote: string, name: string, separator: string, valueQuote?: string, quoted?: string, bare?: string) => {
        const value = quoted ?? bare ?? '';
        if (!isCredentialName(name) || value.length < MIN_SECRET_LENGTH || value.startsWith(REDACTED)) return match;
        if (bare !== undefined && SCHEME_WORD.test(bare)) return match;
        // `password: expected a string` is prose (a config problem, a log sentence): a bare `name: value` counts
        // only in header form, a header name (X-Api-Key, Cookie); `=`, quotes and JSON always count.
        const headerForm = separator.trim() === ':' && !nameQuote && !valueQuote;
        if (headerForm && !name.includes('-') && !CREDENTIAL_HEADERS.has(name.toLowerCase())) return match;
        const masked = valueQuote ? `${valueQuote}${REDACTED}${valueQuote}` : REDACTED;
        return `${nameQuote}${name}${nameQuote}${separator}${masked}`;
      },
    );
}

/**
 * Slack's and Discord's incoming webhooks carry their credential as the last path segment (as in the
 * dashboard's maskUrl): the part kept, then the secret segment. Each starts at a literal host name, so it
 * costs one pass over the text.
 */
const WEBHOOK_PATH_SECRETS: readonly RegExp[] = [
  /(slack\.com(?::\d+)?\/services\/[^/?#\s]+\/[^/?#\s]+\/)[^/?#\s]+/gi,
  /(discord(?:app)?\.com(?::\d+)?\/api(?:\/v\d+)?\/webhooks\/[^/?#\s]+\/)[^/?#\s]+/gi,
];
/** What stands for a removed query string or webhook secret in a logged text. */
export const URL_ELIDED = '…';
/** A run of characters that can be part of a URL quoted in a failure text (`[500 | https://…]`). */
const URL_LIKE_TOKEN = /[^\s|\]"'<>]+/g;

/**
 * `text` with the query string of every URL in it replaced by `?…` and the secret segment of a known webhook
 * path by `…`: a query carries tokens whose names say nothing (an Azure SAS `sig`, a presigned URL), so none
 * is kept. For log lines, whose readers need the host and path, not the parameters. One pass over the text:
 * each run of URL characters is looked at once.
 */
export function withoutUrlQueries(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(URL_LIKE_TOKEN, (token) => {
    const scheme = token.indexOf('://');
    if (scheme < 0) return token;
    const q = token.indexOf('?', scheme);
    let url = q < 0 ? token : `${token.slice(0, q)}?${URL_ELIDED}`;
    for (const re of WEBHOOK_PATH_SECRETS) url = url.replace(re, `$1${URL_ELIDED}`);
    return url;
  });
}

/**
 * An outbound call's URL as a trace may record it: scheme, host, port and path, without userinfo, query
 * string or fragment, and with a known webhook path's secret segment elided; `secrets` (the call's own
 * credentials) redacted from what remains. An unparsable URL is cut at its query the same way.
 */
export function recordableUrl(url: string, secrets: readonly string[]): string {
  let bare: string;
  try {
    const u = new URL(url);
    bare = `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    bare = url.replace(/[?#].*$/s, '').replace(URL_USERINFO, `://${REDACTED}@`);
  }
  for (const re of WEBHOOK_PATH_SECRETS) bare = bare.replace(re, `$1${URL_ELIDED}`);
  return redactSecrets(bare, secrets);
}
