/**
 * A connection the egress policy refused. Raised from the DNS lookup or the connector, before any socket is
 * opened, and recognised by the REST plugin as a permanent failure: the same policy would refuse every retry.
 */
export class EgressDeniedError extends Error {
  constructor(
    readonly host: string,
    readonly ip: string,
    readonly range: string,
  ) {
    // The text is the contract: it is the error log entry and the dead-letter reason, verbatim.
    super(`Egress denied --- ${host} resolved to ${ip} (${range})`);
    this.name = 'EgressDeniedError';
  }
}

/**
 * The EgressDeniedError in `err`, looking through the wrappers a connect failure can come in (an
 * AggregateError of happy-eyeballs attempts, a `cause`), or undefined.
 */
export function findEgressDenied(err: unknown, depth = 0): EgressDeniedError | undefined {
  if (typeof err !== 'object' || err === null || depth > 4) return undefined;
  if (err instanceof EgressDeniedError) return err;
  const e = err as { errors?: unknown; cause?: unknown };
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const found = findEgressDenied(inner, depth + 1);
      if (found) return found;
    }
  }
  return findEgressDenied(e.cause, depth + 1);
}
