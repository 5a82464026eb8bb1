/**
 * Default cap on a stored error text (executor.yml `application.maxErrorTextLength`), in bytes of UTF-8.
 * Large enough for a REST failure with its whole (10,000-character) body; small enough that a target
 * answering megabytes cannot fill the error log.
 */
export const DEFAULT_MAX_ERROR_TEXT_BYTES = 10 * 1024;

/**
 * What PostgreSQL's text type (and a UTF-8 encoder) cannot hold: NUL, which PostgreSQL refuses outright
 * (a result write that threw on it left the task PROCESSING), and surrogates that are not part of a pair,
 * which have no UTF-8 form (Node would silently write U+FFFD for them anyway; doing it here makes the
 * stored text and the length we measure agree).
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const REPLACEMENT = '\uFFFD';

/**
 * Text from outside (response bodies, error messages, header values) as it may be written: unstorable
 * characters replaced by U+FFFD, then cut to at most `maxBytes` bytes of UTF-8 on a character boundary,
 * with a note saying how long it was. The one place this is decided: the repositories and the queue
 * adapters call it last, just before writing (after redaction, which must see the text whole).
 */
export function storableText(text: string, maxBytes: number = DEFAULT_MAX_ERROR_TEXT_BYTES): string {
  const clean = text.replace(UNSTORABLE, REPLACEMENT);
  // A UTF-16 code unit never takes more than 3 bytes of UTF-8 (a pair takes 4 for 2 units).
  if (clean.length * 3 <= maxBytes) return clean;
  const bytes = Buffer.from(clean, 'utf8');
  if (bytes.length <= maxBytes) return clean;
  const note = `… [truncated, ${bytes.length} bytes in all]`;
  const room = maxBytes - Buffer.byteLength(note, 'utf8');
  // A cap too small for the note is cut bare: the cap is a promise about the stored size.
  const withNote = room > 0;
  let cut = withNote ? room : Math.max(0, maxBytes);
  // Step back over continuation bytes (10xxxxxx) so the cut never splits a character.
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
  const head = bytes.subarray(0, cut).toString('utf8');
  return withNote ? head + note : head;
}
