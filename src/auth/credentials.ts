/**
 * The key carried by an Authorization header, or undefined when there is none or it is malformed.
 * Accepted: `Bearer <key>`, and HTTP Basic with the key as the password (any user name): that is what the
 * unchanged karya-client sends for `http://user:KEY@host:8080` (axios turns URL credentials into Basic).
 */

/** Far above any real key; a longer header is refused before it is decoded. */
const MAX_HEADER_LENGTH = 1024;
/** What a key (ours, or an admin key from the config) can contain. */
const KEY_SYNTAX = /^[\x21-\x7e]{1,512}$/;

export function keyFromAuthorization(header: unknown): string | undefined {
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_HEADER_LENGTH) return undefined;
  const m = /^(\S+) +(\S+) *$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  const value = m[2];
  let key: string;
  if (scheme === 'bearer') {
    key = value;
  } else if (scheme === 'basic') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    // Taken as sent, not percent-decoded: generated keys are base64url, so they never need encoding.
    key = decoded.slice(colon + 1);
  } else {
    return undefined;
  }
  return KEY_SYNTAX.test(key) ? key : undefined;
}

