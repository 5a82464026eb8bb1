import {
  CUT_MARK,
  headerSecrets,
  isCredentialName,
  recordableUrl,
  redactCredentialPatterns,
  redactSecrets,
  REDACTED,
  secretForms,
  urlSecrets,
  withoutUrlQueries,
} from './redact';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('isCredentialName', () => {
  it.each(['Authorization', 'proxy-authorization', 'Cookie', 'X-Api-Key', 'x-auth-token', 'X-Session-Id', 'client_secret', 'X-Hub-Signature-256', 'access_token', 'apikey', 'PASSWORD', 'sig', 'SIG'])(
    '%s is a credential name',
    (name) => expect(isCredentialName(name)).toBe(true),
  );

  it.each(['content-type', 'Accept', 'X-Karya-Plan-Id', 'Idempotency-Key', 'user-agent', 'page', 'design', 'signal'])('%s is not', (name) =>
    expect(isCredentialName(name)).toBe(false),
  );
});

describe('headerSecrets', () => {
  it('takes the values of credential-like headers only', () => {
    expect(headerSecrets({ 'content-type': 'application/json', 'X-Api-Key': 'k-123456', 'Idempotency-Key': 'task-1' })).toEqual(['k-123456']);
  });

  it('adds the token of a Bearer credential', () => {
    expect(headerSecrets({ Authorization: 'Bearer tok-abcdef' })).toEqual(['Bearer tok-abcdef', 'tok-abcdef']);
  });

  it('adds the base64 token, the decoded user:pass and the password of a Basic credential', () => {
    expect(headerSecrets({ authorization: `Basic ${b64('alice:s3cret-pw')}` })).toEqual([
      `Basic ${b64('alice:s3cret-pw')}`,
      b64('alice:s3cret-pw'),
      'alice:s3cret-pw',
      's3cret-pw',
    ]);
  });

  it('does not decode a Basic token that is not base64 of user:pass', () => {
    expect(headerSecrets({ authorization: 'Basic not*base64' })).toEqual(['Basic not*base64', 'not*base64']);
    expect(headerSecrets({ authorization: `Basic ${b64('no-colon-here')}` })).toHaveLength(2);
  });

  it('adds each cookie value', () => {
    expect(headerSecrets({ Cookie: 'sid=abc123456; theme=dark' })).toEqual(['sid=abc123456; theme=dark', 'abc123456', 'dark']);
  });
});

describe('urlSecrets', () => {
  it('takes userinfo, the password, and credential-like query values, raw and decoded', () => {
    expect(urlSecrets('https://bob:p%40ss-word@api.example.com/x?access_token=t0k%2Fen&page=2&api_key=k3y-9999#frag')).toEqual([
      'bob:p%40ss-word',
      'bob:p@ss-word',
      'p%40ss-word',
      'p@ss-word',
      't0k%2Fen',
      't0k/en',
      'k3y-9999',
    ]);
  });

  it('reads a URL too malformed for new URL()', () => {
    expect(urlSecrets('http://user:hunter2hunter2@[bad/path?token=abcd1234')).toEqual(['user:hunter2hunter2', 'hunter2hunter2', 'abcd1234']);
  });

  it('finds nothing in a plain URL', () => {
    expect(urlSecrets('http://127.0.0.1:8080/hook?page=2')).toEqual([]);
  });
});

describe('secretForms', () => {
  it('drops values shorter than 4 characters and duplicates', () => {
    expect(secretForms(['a', 'abc', 'abcd', 'abcd'])).toEqual(['abcd']);
  });

  it('adds the percent-encoded, JSON-escaped and HTML-escaped forms', () => {
    expect(secretForms(['a/b"c&d'])).toEqual(['a/b"c&d', 'a%2Fb%22c%26d', 'a/b\\"c&d', 'a/b&quot;c&amp;d']);
  });
});

describe('redactSecrets', () => {
  it('replaces every occurrence of every secret', () => {
    const text = 'REST call failed --- [500 | http://h/x] | {"authorization":"Bearer tok-abcdef","again":"tok-abcdef"}';
    expect(redactSecrets(text, headerSecrets({ Authorization: 'Bearer tok-abcdef' }))).toBe(
      `REST call failed --- [500 | http://h/x] | {"authorization":"${REDACTED}","again":"${REDACTED}"}`,
    );
  });

  it('ignores values too short to be secrets', () => {
    expect(redactSecrets('a b c abc', ['a', 'abc'])).toBe('a b c abc');
  });

  it('replaces the encoded forms a target may echo', () => {
    const secret = 'pa ss/wo"rd';
    const text = `url=http://h/?password=${encodeURIComponent(secret)} json={"p":${JSON.stringify(secret)}}`;
    const out = redactSecrets(text, [secret]);
    expect(out).toBe(`url=http://h/?password=${REDACTED} json={"p":"${REDACTED}"}`);
  });

  it('merges overlapping secrets into one span, leaving no part of either', () => {
    expect(redactSecrets('xx abcd1234wxyz yy', ['abcd1234', '1234wxyz'])).toBe(`xx ${REDACTED} yy`);
    expect(redactSecrets('Bearer tok-abcdef', ['tok-abcdef', 'Bearer tok-abcdef'])).toBe(REDACTED);
  });

  it('replaces the beginning of a secret cut by truncation', () => {
    const text = `… Authorization: Bearer tok-abc${CUT_MARK}truncated: first 100 characters shown]`;
    expect(redactSecrets(text, headerSecrets({ Authorization: 'Bearer tok-abcdef' }))).toBe(
      `… Authorization: ${REDACTED}${CUT_MARK}truncated: first 100 characters shown]`,
    );
  });

  it('leaves a text without secrets, or with no secrets given, unchanged', () => {
    expect(redactSecrets('nothing here', ['tok-abcdef'])).toBe('nothing here');
    expect(redactSecrets('nothing here', [])).toBe('nothing here');
    expect(redactSecrets('', ['tok-abcdef'])).toBe('');
  });
});

describe('redactCredentialPatterns', () => {
  it('masks the credentials after an auth scheme', () => {
    expect(redactCredentialPatterns('sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y')).toBe(`sent Authorization: Bearer ${REDACTED}`);
    expect(redactCredentialPatterns(`basic ${b64('alice:s3cret-pw')} here`)).toBe(`basic ${REDACTED} here`);
  });

  it('leaves prose alone', () => {
    expect(redactCredentialPatterns('Basic auth failed for the token store; key: ok')).toBe('Basic auth failed for the token store; key: ok');
  });

  it('masks URL userinfo', () => {
    expect(redactCredentialPatterns('connect postgres://karya:hunter22@db:5432/karya failed')).toBe(
      `connect postgres://${REDACTED}@db:5432/karya failed`,
    );
  });

  it('masks values of credential-like names in JSON, util.inspect, header and query form', () => {
    expect(redactCredentialPatterns('{"x-api-key":"k-12345678","content-type":"application/json"}')).toBe(
      `{"x-api-key":"${REDACTED}","content-type":"application/json"}`,
    );
    expect(redactCredentialPatterns("{ 'X-Api-Key': 'k-12345678', token: 'xoxb-1-2' }")).toBe(
      `{ 'X-Api-Key': '${REDACTED}', token: '${REDACTED}' }`,
    );
    expect(redactCredentialPatterns('x-api-key: k-12345678\nAccept: */*')).toBe(`x-api-key: ${REDACTED}\nAccept: */*`);
    expect(redactCredentialPatterns('GET /x?page=2&access_token=abcd1234&q=1')).toBe(`GET /x?page=2&access_token=${REDACTED}&q=1`);
    expect(redactCredentialPatterns('{\\"password\\":\\"hunter22\\"}')).toBe(`{\\"password\\":\\"${REDACTED}\\"}`);
  });

  it('leaves prose after a bare name and colon alone (config problems, log sentences)', () => {
    const text = 'queue.properties.password: expected a string, got (hidden); token: missing';
    expect(redactCredentialPatterns(text)).toBe(text);
    expect(redactCredentialPatterns('Cookie: sid=abcd1234')).toBe(`Cookie: ${REDACTED}`);
    expect(redactCredentialPatterns('password=hunter22')).toBe(`password=${REDACTED}`);
  });

  it('does not touch Idempotency-Key or other ordinary names', () => {
    const text = 'Idempotency-Key: 5f0c-task, X-Karya-Plan-Id: 1234-plan, status=FAILURE';
    expect(redactCredentialPatterns(text)).toBe(text);
  });
});

describe('redactCredentialPatterns on adversarial text', () => {
  // Log lines quote up to kilobytes of a target's response body. A pattern retried from every position of a
  // long run is quadratic: 32 KB took ~600 ms. Linear scans take about 1 ms; 50 ms only catches the blow-up.
  const KB32 = 32 * 1024;
  const fill = (unit: string) => unit.repeat(Math.ceil(KB32 / unit.length)).slice(0, KB32);
  it.each([
    ['dotted run', 'a.'],
    ['hyphenated run', 'a-'],
    ['plus run', 'a+'],
    ['letters', 'a'],
    ['scheme fragments', 'a://b'],
    ['unclosed quoted values', `token='\\'`],
    ['names and separators', 'key=a:'],
    ['quoted names', '"a":"b\\"'],
    ['auth schemes', 'Bearer '],
    ['URL userinfo without @', 'http://user:pass'],
    ['whitespace after a name', 'password    '],
  ])('%s', (_shape, unit) => {
    const text = fill(unit);
    redactCredentialPatterns(text.slice(0, 1024)); // compiled and warm
    const started = process.hrtime.bigint();
    redactCredentialPatterns(text);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(ms).toBeLessThan(50);
  });

  it('still masks userinfo after a long dotted run and names after a digit', () => {
    expect(redactCredentialPatterns(`${'a.'.repeat(100)}https://user:pw-12345@host/x`)).toBe(`${'a.'.repeat(100)}https://${REDACTED}@host/x`);
    expect(redactCredentialPatterns('x1access_token=abcd1234 and 9api_key=abcd1234')).toBe(`x1access_token=${REDACTED} and 9api_key=${REDACTED}`);
    expect(redactCredentialPatterns(`${'n'.repeat(80)}_token=abcd1234`)).toBe(`${'n'.repeat(80)}_token=${REDACTED}`);
    expect(redactCredentialPatterns('?sv=2024&sig=SaSsIgNaTuRe1')).toBe(`?sv=2024&sig=${REDACTED}`);
  });
});

describe('withoutUrlQueries', () => {
  it('replaces the query of every URL in a text, keeps the rest', () => {
    expect(withoutUrlQueries('REST call failed --- [500 | http://127.0.0.1:9/a/b?sig=x&sv=1#frag] body? yes')).toBe(
      'REST call failed --- [500 | http://127.0.0.1:9/a/b?…] body? yes',
    );
    expect(withoutUrlQueries('"url":"https://h/p?a=1" and https://h/q')).toBe('"url":"https://h/p?…" and https://h/q');
  });

  it('is linear on adversarial text', () => {
    for (const unit of ['://a?', 'a://', '?://', 'slack.com/services/a/b/']) {
      const text = unit.repeat(Math.ceil(32768 / unit.length));
      const started = process.hrtime.bigint();
      withoutUrlQueries(text);
      expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50);
    }
  });
});

describe('recordableUrl', () => {
  it('keeps scheme, host, port and path only', () => {
    expect(recordableUrl('https://user:pw@acct.blob.core.windows.net:8443/c/b?sv=1&sig=abc#f', [])).toBe('https://acct.blob.core.windows.net:8443/c/b');
    expect(recordableUrl('http://127.0.0.1/x', [])).toBe('http://127.0.0.1/x');
  });

  it("elides a webhook's secret path segment and redacts the call's secrets", () => {
    expect(recordableUrl('https://hooks.slack.com/services/T1/B2/slackSecret123', [])).toBe('https://hooks.slack.com/services/T1/B2/…');
    expect(recordableUrl('https://discord.com/api/webhooks/42/discordSecret123?wait=true', [])).toBe('https://discord.com/api/webhooks/42/…');
    expect(recordableUrl('https://h/tenant/pathSecret99', ['pathSecret99'])).toBe(`https://h/tenant/${REDACTED}`);
  });

  it('cuts an unparsable URL at its query too', () => {
    expect(recordableUrl('http://user:pw@[bad/x?sig=abc', [])).toBe(`http://${REDACTED}@[bad/x`);
  });
});
