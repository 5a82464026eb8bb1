/** The roles a process can play; `all` is shorthand for every one of them. */
export enum Role {
  Server = 'server',
  Scheduler = 'scheduler',
  Executor = 'executor',
}

export const ROLE_ALL = 'all';
export const VALID_ROLE_NAMES: readonly string[] = [Role.Server, Role.Scheduler, Role.Executor, ROLE_ALL];

export class RoleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoleError';
  }
}

/**
 * Parses KARYA_ROLE: one role, a comma list, or `all` (the default when unset or blank).
 * Whitespace and case are forgiven; anything else is an error listing the valid names.
 */
export function parseRoles(raw: string | undefined): ReadonlySet<Role> {
  const text = (raw ?? '').trim();
  if (text === '') return new Set(Object.values(Role));
  const names = text.split(',').map((n) => n.trim().toLowerCase());
  const roles = new Set<Role>();
  const unknown: string[] = [];
  for (const name of names) {
    if (name === ROLE_ALL) Object.values(Role).forEach((r) => roles.add(r));
    else if ((Object.values(Role) as string[]).includes(name)) roles.add(name as Role);
    else unknown.push(name === '' ? '(empty)' : name);
  }
  if (unknown.length > 0) {
    throw new RoleError(
      `Unknown KARYA_ROLE value ${unknown.map((u) => `"${u}"`).join(', ')} in "${raw}": ` +
        `valid roles are ${VALID_ROLE_NAMES.join(', ')} (or a comma list of them)`,
    );
  }
  return roles;
}

export function isAllRoles(roles: ReadonlySet<Role>): boolean {
  return Object.values(Role).every((r) => roles.has(r));
}

export function describeRoles(roles: ReadonlySet<Role>): string {
  return isAllRoles(roles) ? ROLE_ALL : [...roles].join(',');
}
