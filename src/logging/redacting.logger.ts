import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { redactCredentialPatterns, redactSecrets } from '../actions/redact';

/** The SGR escapes ConsoleLogger and util.inspect colour with. */
const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

/**
 * Nest's console logger with every line scrubbed before it is written: the secrets the configuration holds
 * (configSecrets: Slack token, SMTP password, admin key, broker passwords) wherever they appear, and
 * credentials recognisable by their shape (`Bearer …`, URL userinfo, `"x-api-key": "…"`), which covers an
 * action's headers quoted in an unexpected error. main.ts installs it as the process-wide logger, so it also
 * scrubs what Nest itself logs (bootstrap failures, the HTTP filter's stack traces, microservice errors).
 */
export class RedactingLogger extends ConsoleLogger {
  constructor(private readonly secrets: readonly string[]) {
    super();
  }

  scrub(text: string): string {
    const known = redactSecrets(text, this.secrets);
    // Colours split `'name': 'value'` pairs (util.inspect colours each string), hiding them from the patterns:
    // they are matched on the plain text, and a line that needed masking is printed without its colours.
    const plain = known.replace(ANSI_COLOUR, '');
    const masked = redactCredentialPatterns(plain);
    return masked === plain ? known : masked;
  }

  protected override formatMessage(
    logLevel: LogLevel,
    message: unknown,
    pidMessage: string,
    formattedLogLevel: string,
    contextMessage: string,
    timestampDiff: string,
    params?: Record<string, unknown>,
  ): string {
    return this.scrub(super.formatMessage(logLevel, message, pidMessage, formattedLogLevel, contextMessage, timestampDiff, params));
  }

  protected override printStackTrace(stack: string): void {
    super.printStackTrace(stack ? this.scrub(stack) : stack);
  }

  /** JSON mode (`json: true`) writes through here instead of formatMessage. */
  protected override stringifyJsonLogObject(logObject: Record<string, unknown>): string {
    return this.scrub(super.stringifyJsonLogObject(logObject));
  }
}
