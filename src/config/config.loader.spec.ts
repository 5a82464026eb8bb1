import { join } from 'node:path';
import { Role } from '../role/role';
import { TempDir } from '../../test/support/temp-files';
import { ConfigError, loadConfig } from './config.loader';

const ORIGINAL = join(__dirname, '../../test/fixtures/original');
const CONFIGS = join(__dirname, '../../configs');

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  let tmp: TempDir;
  beforeEach(() => (tmp = new TempDir()));
  afterEach(() => tmp.cleanup());

  it('with nothing set runs the embedded all-in-one on 8080 with the documented defaults', () => {
    const { config, warnings } = loadConfig({});
    expect([...config.roles].sort()).toEqual([Role.Executor, Role.Scheduler, Role.Server]);
    expect(config.port).toBe(8080);
    expect(config.logLevel).toBe('info');
    expect(config.providers.repo).toMatchObject({ provider: 'pglite', partitions: 5, dataDir: './.karya/data' });
    expect(config.providers.lock).toMatchObject({ provider: 'memory', waitTime: 1000, leaseTime: 5000 });
    expect(config.providers.queue.provider).toBe('memory');
    expect(config.server).toEqual({
      port: 8080,
      host: undefined,
      strictMode: true,
      maxChainedDepth: 2,
      metricsEnabled: true,
      minRecurringPeriod: 1000,
      // The original's behaviour: an open API, no limits; the embedded stack may call localhost.
      auth: { mode: 'none', adminKey: undefined, protectMetrics: false },
      egress: { allowPrivateNetworks: true, allow: [] },
      rateLimit: { requestsPerMinute: 0, submissionsPerMinute: 0 },
      maxLivePlansPerUser: 0,
      requestTimeout: 8000,
      summaryLimit: 1000,
    });
    expect(config.executor.egress).toEqual({ allowPrivateNetworks: true, allow: [] });
    // Retention is on by default: 30 days (P30D).
    expect(config.scheduler).toMatchObject({ workers: 3, channelCapacity: 10, pollFrequency: 300, executionBuffer: 1000, retention: 30 * 24 * 3600 * 1000 });
    expect(config.scheduler.repoPartitions).toBeUndefined();
    expect(config.executor.connectors.map((c) => c.type)).toEqual(['restapi', 'chained']);
    expect(config.executor.retry).toEqual({ initialDelay: 1000, multiplier: 2, maxDelay: 300000, jitter: 0.2 });
    expect(warnings).toEqual([]);
  });

  it("loads the original Karya's four sample files unchanged", () => {
    const { config, warnings } = loadConfig({
      KARYA_ROLE: 'server',
      KARYA_PROVIDERS_CONFIG_PATH: join(ORIGINAL, 'psql-redis-rabbitmq.providers.yml'),
      KARYA_SERVER_CONFIG_PATH: join(ORIGINAL, 'server.yml'),
      KARYA_SCHEDULER_CONFIG_PATH: join(ORIGINAL, 'scheduler.yml'),
      KARYA_EXECUTOR_CONFIG_PATH: join(ORIGINAL, 'executor.yml'),
    });
    expect(warnings).toEqual([]);
    expect(config.providers.repo).toEqual({
      provider: 'psql',
      partitions: 5,
      url: 'postgres://karya:karya@localhost:5432/karya',
      poolSize: 10,
      connectionTimeout: 5000,
      connectTimeout: 3000,
      statementTimeout: 5000,
      dataDir: './.karya/data',
    });
    expect(config.providers.lock).toEqual({
      provider: 'redis',
      waitTime: 1000,
      leaseTime: 5000,
      clusterMode: false,
      clusterNodes: ['redis://localhost:6379'],
      password: 'karya',
      connectTimeout: 5000,
      commandTimeout: 2000,
    });
    expect(config.providers.queue).toEqual({
      provider: 'rabbitmq',
      username: 'karya',
      password: 'karya',
      virtualHost: '/',
      clusterNodes: ['localhost:5672'],
      heartbeat: 5,
      connectTimeout: 5000,
      publishTimeout: 10_000,
    });
    expect(config.server).toEqual({
      port: 8080,
      host: undefined,
      strictMode: true,
      maxChainedDepth: 2,
      metricsEnabled: true,
      minRecurringPeriod: 1000,
      auth: { mode: 'none', adminKey: undefined, protectMetrics: false },
      // A real database means a real network: private ranges are denied unless the files say otherwise.
      egress: { allowPrivateNetworks: false, allow: [] },
      rateLimit: { requestsPerMinute: 0, submissionsPerMinute: 0 },
      maxLivePlansPerUser: 0,
      requestTimeout: 8000,
      summaryLimit: 1000,
    });
    expect(config.executor.egress).toEqual({ allowPrivateNetworks: false, allow: [] });
    expect(config.scheduler).toEqual({
      threadCount: 2,
      workers: 3,
      channelCapacity: 10,
      pollFrequency: 300,
      executionBuffer: 1000,
      repoPartitions: [1, 2, 3, 4, 5],
      metricsEnabled: true,
      leaseTime: 30000,
      retention: 30 * 24 * 3600 * 1000,
    });
    expect(config.executor.metricsEnabled).toBe(true);
    expect(config.executor.connectors).toEqual([
      { type: 'restapi', configs: { keepAliveTime: 3000, connectionTimeout: 1000, connectionAttempts: 3 } },
      { type: 'slack', configs: { token: 'xoxb-your-slack-token' } },
      {
        type: 'email',
        configs: {
          username: 'your-email@gmail.com',
          password: 'your-app-password',
          smtp: {
            'mail.smtp.auth': 'true',
            'mail.smtp.starttls.enable': 'true',
            'mail.smtp.host': 'smtp.gmail.com',
            'mail.smtp.port': '587',
          },
        },
      },
      { type: 'kafka', configs: { 'bootstrap.servers': 'localhost:9092' } },
      { type: 'chained', configs: {} },
    ]);
  });

  it("loads the original's clustered providers file, using the first JDBC host and warning about the rest", () => {
    const { config, warnings } = loadConfig({
      KARYA_ROLE: 'all',
      KARYA_PROVIDERS_CONFIG_PATH: join(ORIGINAL, 'psql-redis-rabbitmq.clustered.providers.yml'),
    });
    expect(config.providers.repo.url).toBe('postgres://karya:karya@localhost:5432/karya');
    expect(warnings).toEqual([expect.stringContaining('lists 2 hosts')]);
    expect(config.providers.lock.clusterMode).toBe(true);
    expect(config.providers.lock.clusterNodes).toHaveLength(3);
    expect(config.providers.queue.clusterNodes).toEqual(['localhost:5672', 'localhost:5673']);
  });

  it.each(['embedded', 'postgres-redis-rabbitmq'])('loads the project sample set configs/%s', (set) => {
    const dir = join(CONFIGS, set);
    const { config } = loadConfig({
      KARYA_ROLE: set === 'embedded' ? 'all' : 'scheduler',
      KARYA_PROVIDERS_CONFIG_PATH: join(dir, 'providers.yml'),
      KARYA_SERVER_CONFIG_PATH: join(dir, 'server.yml'),
      KARYA_SCHEDULER_CONFIG_PATH: join(dir, 'scheduler.yml'),
      KARYA_EXECUTOR_CONFIG_PATH: join(dir, 'executor.yml'),
    });
    expect(config.providers.repo.provider).toBe(set === 'embedded' ? 'pglite' : 'psql');
  });

  it("accepts the original docs' spellings chainedDepth and monitoringEnabled", () => {
    const server = tmp.write('server.yml', 'application:\n  chainedDepth: 4\n  monitoringEnabled: false\n');
    const { config } = loadConfig({ KARYA_SERVER_CONFIG_PATH: server });
    expect(config.server.maxChainedDepth).toBe(4);
    expect(config.server.metricsEnabled).toBe(false);
  });

  it('reads the bounded waits of every connection and the request deadline, and rejects values out of range', () => {
    const providers = tmp.write(
      'providers.yml',
      [
        'repo:',
        '  provider: psql',
        '  properties:',
        '    url: postgres://k@db:5432/k',
        '    hikari: { connectionTimeout: 7000 }',
        '    acquireTimeout: 1500',
        '    connectTimeout: 1200',
        '    statementTimeout: 0',
        'lock:',
        '  provider: redis',
        '  properties: { commandTimeout: 750 }',
        'queue:',
        '  provider: rabbitmq',
        '  properties: { heartbeat: 2, connectTimeout: 2500, publishTimeout: 4000 }',
        '',
      ].join('\n'),
    );
    const server = tmp.write('server.yml', 'application:\n  requestTimeout: 6000\n');
    const { config } = loadConfig({ KARYA_ROLE: 'scheduler', KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_SERVER_CONFIG_PATH: server });
    // acquireTimeout is the same wait as HikariCP's connectionTimeout, and the explicit key wins.
    expect(config.providers.repo).toMatchObject({ connectionTimeout: 1500, connectTimeout: 1200, statementTimeout: 0 });
    expect(config.providers.lock.commandTimeout).toBe(750);
    expect(config.providers.queue).toMatchObject({ heartbeat: 2, connectTimeout: 2500, publishTimeout: 4000 });
    expect(config.server.requestTimeout).toBe(6000);

    const hikariOnly = tmp.write('hikari.yml', 'repo:\n  provider: psql\n  properties:\n    hikari: { connectionTimeout: 7000 }\n');
    expect(loadConfig({ KARYA_ROLE: 'all', KARYA_PROVIDERS_CONFIG_PATH: hikariOnly }).config.providers.repo.connectionTimeout).toBe(7000);

    const bad = tmp.write(
      'bad.yml',
      'repo:\n  provider: psql\n  properties:\n    statementTimeout: -1\n    acquireTimeout: 0\nlock:\n  provider: redis\n  properties: { commandTimeout: 0 }\nqueue:\n  provider: rabbitmq\n  properties: { heartbeat: 601, publishTimeout: 0 }\n',
    );
    const problems = problemsOf({ KARYA_ROLE: 'scheduler', KARYA_PROVIDERS_CONFIG_PATH: bad });
    for (const key of ['statementTimeout', 'acquireTimeout', 'commandTimeout', 'heartbeat', 'publishTimeout']) {
      expect(problems.some((p) => p.includes(key))).toBe(true);
    }
  });

  it('treats an empty file as all defaults', () => {
    const server = tmp.write('server.yml', '');
    expect(loadConfig({ KARYA_SERVER_CONFIG_PATH: server }).config.server.port).toBe(8080);
  });

  it('accepts repo.partitions under properties as config.md lists it', () => {
    const p = tmp.write('p.yml', 'repo:\n  provider: pglite\n  properties:\n    partitions: 7\n    dataDir: memory\n');
    expect(loadConfig({ KARYA_PROVIDERS_CONFIG_PATH: p }).config.providers.repo).toMatchObject({ partitions: 7, dataDir: 'memory' });
  });

  it('reports every problem of every file at once, naming file, key and expected type', () => {
    const providers = tmp.write(
      'providers.yml',
      'repo:\n  provider: psql\n  partitions: "five"\nlock:\n  provider: redis\n  properties:\n    waitTime: soon\n    colour: blue\nqueue:\n  provider: sqs\n',
    );
    const server = tmp.write('server.yml', 'application:\n  port: "8080"\n  strictMode: yes-please\n');
    const scheduler = tmp.write('scheduler.yml', 'application:\n  fetcher:\n    repoPartitions: [1, "two"]\n');
    const executor = tmp.write('executor.yml', 'application:\n  connectors:\n    - type: sms\n      configs: {}\n');
    const problems = problemsOf({
      KARYA_PROVIDERS_CONFIG_PATH: providers,
      KARYA_SERVER_CONFIG_PATH: server,
      KARYA_SCHEDULER_CONFIG_PATH: scheduler,
      KARYA_EXECUTOR_CONFIG_PATH: executor,
    });
    const expected = [
      /^providers\.yml \(KARYA_PROVIDERS_CONFIG_PATH=.*\): repo\.partitions: expected an integer.*got string "five"$/,
      /^providers\.yml .*: lock\.properties\.waitTime: expected an integer.*got string "soon"$/,
      /^providers\.yml .*: lock\.properties\.colour: unknown key$/,
      /^providers\.yml .*: queue\.provider: expected one of rabbitmq, memory, got string "sqs"$/,
      /^server\.yml .*: application\.port: expected an integer.*got string "8080"$/,
      /^server\.yml .*: application\.strictMode: expected a boolean.*got string "yes-please"$/,
      /^scheduler\.yml .*: application\.fetcher\.repoPartitions: .*list of integers.*got a list \[1,"two"\]$/,
      /^executor\.yml .*: application\.connectors\[0\]\.type: expected one of restapi, slack, email, kafka, chained, got string "sms"$/,
    ];
    for (const pattern of expected) expect(problems).toContainEqual(expect.stringMatching(pattern));
    expect(problems).toHaveLength(expected.length);
  });

  it('names the missing file, invalid YAML and a non-map document', () => {
    const bad = tmp.write('bad.yml', 'application: [unclosed\n');
    const list = tmp.write('list.yml', '- 1\n- 2\n');
    const problems = problemsOf({
      KARYA_PROVIDERS_CONFIG_PATH: join(tmp.path, 'nope.yml'),
      KARYA_SERVER_CONFIG_PATH: bad,
      KARYA_SCHEDULER_CONFIG_PATH: list,
    });
    expect(problems).toEqual([
      expect.stringMatching(/^providers\.yml \(KARYA_PROVIDERS_CONFIG_PATH=.*nope\.yml\): cannot read file: ENOENT$/),
      expect.stringMatching(/^server\.yml .*: not valid YAML: /),
      expect.stringMatching(/^scheduler\.yml .*: expected a map at the top level, got a list/),
    ]);
  });

  it('never prints a secret in an error message', () => {
    const p = tmp.write('p.yml', 'queue:\n  provider: rabbitmq\n  properties:\n    password: 12345678\n');
    const problems = problemsOf({ KARYA_PROVIDERS_CONFIG_PATH: p });
    expect(problems).toEqual([expect.stringContaining('queue.properties.password: expected a string, got (hidden)')]);
    expect(problems.join()).not.toContain('12345678');
  });

  it('never prints credentials inside node addresses or URLs, nor the text of a file that is not a map', () => {
    const p = tmp.write(
      'p.yml',
      'repo:\n  provider: psql\n  properties:\n    url: "mysql://root:Hunter2Hunter2@db/karya"\nlock:\n  provider: redis\n  properties:\n    clusterNodes: ["redis://:R3disPass-99@cache:6379"]\nqueue:\n  provider: rabbitmq\n  properties:\n    clusterNodes: ["karya:Rabb1tPass-77@mq:5672"]\n',
    );
    const keyFile = tmp.write('admin.key', 'Adm1n-K3y-0123456789abcdef\n');
    const problems = problemsOf({ KARYA_PROVIDERS_CONFIG_PATH: p, KARYA_SERVER_CONFIG_PATH: keyFile, KARYA_ROLE: 'server' });
    expect(problems).toEqual([
      expect.stringMatching(/^server\.yml .*: expected a map at the top level, got a string$/),
      expect.stringContaining('repo.properties.url: expected a postgres:// URL, got a mysql: URL'),
      expect.stringContaining('lock.properties.clusterNodes[0]: expected redis://host:port, got "redis://(hidden)@cache:6379"'),
      expect.stringContaining('queue.properties.clusterNodes[0]: expected host:port, got "(hidden)@mq:5672"'),
    ]);
    for (const secret of ['Hunter2', 'R3disPass', 'Rabb1tPass', 'Adm1n-K3y']) expect(problems.join('\n')).not.toContain(secret);
  });

  it('checks connector configs per type, unknown keys, duplicates and partition ranges', () => {
    const executor = tmp.write(
      'executor.yml',
      'application:\n  connectors:\n    - type: restapi\n      configs:\n        keepAliveTime: long\n        retries: 3\n    - type: restapi\n      configs: {}\n    - type: kafka\n      configs:\n        bootstrap.servers: 9092\n',
    );
    const scheduler = tmp.write('scheduler.yml', 'application:\n  fetcher:\n    repoPartitions: [1, 9]\n');
    const problems = problemsOf({ KARYA_EXECUTOR_CONFIG_PATH: executor, KARYA_SCHEDULER_CONFIG_PATH: scheduler });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/application\.connectors\[0\]\.configs\.keepAliveTime: expected an integer.*got string "long"/),
        expect.stringMatching(/application\.connectors\[0\]\.configs\.retries: unknown key/),
        expect.stringMatching(/application\.connectors\[1\]\.type: connector "restapi" is listed twice/),
        expect.stringMatching(/application\.connectors\[2\]\.configs\.bootstrap\.servers: expected a string, got number 9092/),
        expect.stringMatching(/repoPartitions\[1\]: expected a partition in 1\.\.5 .* got 9/),
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('rejects malformed node addresses and a non-postgres url', () => {
    const p = tmp.write(
      'p.yml',
      'repo:\n  provider: psql\n  properties:\n    url: "mysql://x"\nlock:\n  provider: redis\n  properties:\n    clusterNodes: ["localhost:6379"]\nqueue:\n  provider: rabbitmq\n  properties:\n    clusterNodes: ["amqp://localhost"]\n',
    );
    expect(problemsOf({ KARYA_PROVIDERS_CONFIG_PATH: p, KARYA_ROLE: 'server' })).toEqual([
      expect.stringContaining('repo.properties.url: expected a postgres:// URL'),
      expect.stringContaining('lock.properties.clusterNodes[0]: expected redis://host:port, got "localhost:6379"'),
      expect.stringContaining('queue.properties.clusterNodes[0]: expected host:port, got "amqp://localhost"'),
    ]);
  });

  describe('ports', () => {
    const real = join(ORIGINAL, 'psql-redis-rabbitmq.providers.yml');
    it.each([
      ['all', undefined, 8080],
      ['server', undefined, 8080],
      ['scheduler', undefined, 8081],
      ['executor', undefined, 8082],
      ['scheduler,executor', undefined, 8081],
      ['server,executor', undefined, 8080],
      ['scheduler', '9000', 9000],
    ])('role %s with PORT=%s listens on %d', (role, port, expected) => {
      const env: NodeJS.ProcessEnv = { KARYA_ROLE: role, KARYA_PROVIDERS_CONFIG_PATH: real };
      if (port) env.PORT = port;
      expect(loadConfig(env).config.port).toBe(expected);
    });

    it("uses server.yml's port when the role includes server", () => {
      const server = tmp.write('server.yml', 'application:\n  port: 9191\n');
      expect(loadConfig({ KARYA_SERVER_CONFIG_PATH: server }).config.port).toBe(9191);
    });

    it('reads LOG_LEVEL case-insensitively and rejects an unknown level, naming it', () => {
      expect(loadConfig({ LOG_LEVEL: 'warn' }).config.logLevel).toBe('warn');
      expect(loadConfig({ LOG_LEVEL: ' DEBUG ' }).config.logLevel).toBe('debug');
      expect(loadConfig({ LOG_LEVEL: '' }).config.logLevel).toBe('info');
      expect(problemsOf({ LOG_LEVEL: 'verbose' })).toEqual([
        'environment: LOG_LEVEL: expected one of trace, debug, info, warn, error, fatal, silent, got "verbose"',
      ]);
    });

    it('rejects a PORT that is not a port', () => {
      expect(problemsOf({ PORT: 'eighty' })).toEqual(['environment: PORT: expected an integer port 0..65535, got "eighty"']);
    });
  });

  it('refuses embedded providers with a role other than all, saying why', () => {
    const problems = problemsOf({ KARYA_ROLE: 'scheduler' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/KARYA_ROLE=scheduler cannot use the embedded provider\(s\) repo: pglite, lock: memory, queue: memory/);
    expect(problems[0]).toMatch(/inside one process/);
  });

  it('reports an unknown role together with file problems, listing the valid roles', () => {
    const server = tmp.write('server.yml', 'application:\n  port: x\n');
    const problems = problemsOf({ KARYA_ROLE: 'worker', KARYA_SERVER_CONFIG_PATH: server });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/Unknown KARYA_ROLE value "worker".*valid roles are server, scheduler, executor, all/),
        expect.stringMatching(/application\.port: expected an integer/),
      ]),
    );
  });

  it('turns the per-user rate limits on by default in apikey mode only, and reads the egress section of both files', () => {
    const server = tmp.write(
      'server.yml',
      'application:\n  auth:\n    mode: apikey\n  egress:\n    allowPrivateNetworks: true\n    allow: ["10.1.0.0/16", "billing.internal:8443", "[fd00::1]:443"]\n  maxLivePlansPerUser: 100\n',
    );
    const executor = tmp.write('executor.yml', 'application:\n  egress:\n    allow: ["192.168.7.0/24"]\n');
    const { config } = loadConfig({ KARYA_SERVER_CONFIG_PATH: server, KARYA_EXECUTOR_CONFIG_PATH: executor, KARYA_ADMIN_KEY: 'k'.repeat(32) });
    expect(config.server.rateLimit).toEqual({ requestsPerMinute: 6000, submissionsPerMinute: 3000 });
    expect(config.server.maxLivePlansPerUser).toBe(100);
    expect(config.server.egress).toEqual({ allowPrivateNetworks: true, allow: ['10.1.0.0/16', 'billing.internal:8443', '[fd00::1]:443'] });
    // The executor's own file decides what it connects to; the embedded default still allows private ranges.
    expect(config.executor.egress).toEqual({ allowPrivateNetworks: true, allow: ['192.168.7.0/24'] });
  });

  it('names each egress allow entry that is neither a CIDR nor host:port', () => {
    const executor = tmp.write('executor.yml', 'application:\n  egress:\n    allow: ["10.1.0.0/33", "no-port", "ok.example:80"]\n');
    expect(problemsOf({ KARYA_EXECUTOR_CONFIG_PATH: executor })).toEqual([
      'executor.yml: application.egress.allow[0]: expected a CIDR (10.1.0.0/16) or host:port, got "10.1.0.0/33"',
      'executor.yml: application.egress.allow[1]: expected a CIDR (10.1.0.0/16) or host:port, got "no-port"',
    ]);
  });
});
