import { isCredentialName, urlSecrets } from '../actions/redact';
import { DEFAULTS } from '../config/config.loader';
import { KaryaConfig } from '../config/karya-config';

/**
 * Values printed in the repository's own sample files and defaults (RabbitMQ's guest, the compose file's
 * karya). They protect nothing, and "karya" is in half the log lines (queue names, the logger context):
 * masking them would only garble the logs.
 */
const PUBLIC_DEFAULTS: ReadonlySet<string> = new Set([DEFAULTS.queue.password, DEFAULTS.psql.password]);

/**
 * Every secret the configuration holds, for the log redactor: connection passwords (also inside URLs), the
 * admin key, and in executor.yml's connector configs every value under a credential-like key (the Slack
 * token, the SMTP password) and every credential inside a URL value.
 */
export function configSecrets(config: KaryaConfig): string[] {
  const { repo, lock, queue } = config.providers;
  const secrets: string[] = [];
  if (repo.url) secrets.push(...urlSecrets(repo.url));
  if (lock.password) secrets.push(lock.password);
  for (const node of lock.clusterNodes) secrets.push(...urlSecrets(node));
  secrets.push(queue.password);
  if (config.server.auth.adminKey) secrets.push(config.server.auth.adminKey);
  for (const connector of config.executor.connectors) collect(connector.configs, secrets);
  return [...new Set(secrets)].filter((secret) => !PUBLIC_DEFAULTS.has(secret));
}

function collect(map: Record<string, unknown>, out: string[]): void {
  for (const [key, value] of Object.entries(map)) {
    if (typeof value === 'string') {
      if (isCredentialName(key) && value.trim() !== '') out.push(value, value.trim());
      if (value.includes('://')) out.push(...urlSecrets(value));
    } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      // Pass-through maps (email's smtp.*) nest: `mail: { smtp: { password } }`.
      collect(value as Record<string, unknown>, out);
    }
  }
}
