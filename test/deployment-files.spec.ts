import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/config.loader';

/**
 * No Docker engine runs on the build machine, so docker-compose.yml and the Dockerfile are checked by
 * reading them: every Karya service comes from the one Dockerfile, with its role, and the config files it
 * points at exist and load for that role with the port the compose file publishes.
 */
const ROOT = join(__dirname, '..');

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};

describe('docker-compose.yml', () => {
  it('defines the three services and the three Karya roles', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ['karya-executor', 'karya-scheduler', 'karya-server', 'postgres', 'rabbitmq', 'redis'].sort(),
    );
    for (const infra of ['postgres', 'redis', 'rabbitmq']) expect(compose.services[infra].healthcheck).toBeDefined();
  });

  it.each([
    ['karya-server', 'server', 8080],
    ['karya-scheduler', 'scheduler', 8081],
    ['karya-executor', 'executor', 8082],
  ])('%s is built from the one Dockerfile, runs role %s and its config loads for it on port %d', (name, role, port) => {
    const svc = compose.services[name];
    expect(svc.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    expect(svc.environment?.KARYA_ROLE).toBe(role);
    expect(svc.ports).toEqual([`${port}:${port}`]);
    expect(Object.keys(svc.depends_on ?? {}).sort()).toEqual(['postgres', 'rabbitmq', 'redis']);

    // Map the container paths back to the host directory mounted there, then load them as Karya would.
    const [hostDir, containerDir] = (svc.volumes ?? [])[0].split(':');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(svc.environment ?? {})) {
      env[k] = v.startsWith(`${containerDir}/`) ? join(ROOT, hostDir, v.slice(containerDir.length + 1)) : v;
    }
    const { config } = loadConfig(env);
    expect(config.port).toBe(port);
    expect(config.providers.repo.url).toBe('postgres://karya:karya@postgres:5432/karya');
    expect(config.providers.lock.clusterNodes).toEqual(['redis://redis:6379']);
    expect(config.providers.queue).toMatchObject({ username: 'karya', password: 'karya', clusterNodes: ['rabbitmq:5672'] });
  });

  it('matches the credentials the infrastructure services are created with', () => {
    expect(compose.services.postgres.environment).toMatchObject({ POSTGRES_USER: 'karya', POSTGRES_PASSWORD: 'karya', POSTGRES_DB: 'karya' });
    expect(compose.services.rabbitmq.environment).toMatchObject({ RABBITMQ_DEFAULT_USER: 'karya', RABBITMQ_DEFAULT_PASS: 'karya' });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  it('builds with the same install and build commands as CI and runs dist/main.js', () => {
    expect(dockerfile).toContain('npm install --no-audit --no-fund');
    expect(dockerfile).toContain('npm run build');
    expect(dockerfile).toMatch(/CMD \["node", "dist\/main\.js"\]/);
    expect(dockerfile).toContain('COPY configs ./configs');
  });

  it('builds and runs on Node 24 LTS (Node 20 is end of life)', () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
  });
});
