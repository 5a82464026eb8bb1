import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { INestApplication } from '@nestjs/common';
import { ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { waitFor } from './support/http-sink';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';

/**
 * Slack and email through the whole pipeline, configured by executor.yml as a user would: a plan whose
 * action posts to a local server that answers like Slack, with an ON_COMPLETION email hook delivered to a
 * real SMTP server on 127.0.0.1 (the plugins' own specs cover every answer and failure in detail).
 */
describe.each(stacks())('Slack action and email hook on $name', (target) => {
  const tmp = new TempDir();
  const slackCalls: { path: string; auth: string; body: { channel: string; blocks: unknown[] } }[] = [];
  const mails: ParsedMail[] = [];
  let slack: Server;
  let smtp: SMTPServer;
  let app: INestApplication;

  beforeAll(async () => {
    slack = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        slackCalls.push({ path: req.url ?? '', auth: String(req.headers.authorization), body: JSON.parse(raw) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => slack.listen(0, '127.0.0.1', () => r()));
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, callback) {
        simpleParser(stream).then((m) => { mails.push(m); callback(); }, callback);
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const smtpPort = (smtp.server.address() as AddressInfo).port;
    const slackPort = (slack.address() as AddressInfo).port;
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: await target.providers(tmp),
      KARYA_SCHEDULER_CONFIG_PATH: tmp.write('s.yml', 'application:\n  fetcher:\n    pollFrequency: 100\n'),
      KARYA_EXECUTOR_CONFIG_PATH: tmp.write('e.yml', [
        'application:',
        '  connectors:',
        '    - type: slack',
        '      configs:',
        '        token: "xoxb-test-token"',
        `        apiUrl: "http://127.0.0.1:${slackPort}/api"`,
        '    - type: email',
        '      configs:',
        '        username: "karya@example.com"',
        '        password: "unused"',
        '        smtp:',
        '          mail.smtp.auth: "false"',
        '          mail.smtp.host: "127.0.0.1"',
        `          mail.smtp.port: "${smtpPort}"`,
        '',
      ].join('\n')),
    });
    app = await createApp(config, { logger: false });
  });
  afterAll(async () => {
    await app?.close();
    await new Promise<void>((r) => slack.close(() => r()));
    await new Promise<void>((r) => smtp.close(() => r()));
    await target.cleanup();
    tmp.cleanup();
  });

  it('posts the Slack blocks with the footer and bearer token, then e-mails the ON_COMPLETION hook', async () => {
    const http = app.getHttpServer();
    const user = (await request(http).post('/v1/user').send({ name: 'notify' }).expect(200)).body.id;
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: 'Nightly export *done*' } }];
    const plan = (await request(http).post('/v1/plan').send({
      user_id: user, description: 'notify', period_time: 'PT0.2S',
      plan_type: { type: 'karya.core.entities.PlanType.OneTime' },
      action: { type: 'karya.core.entities.Action.SlackMessageRequest', channel: '#ops', message: JSON.stringify(blocks) },
      hooks: [{ trigger: 'ON_COMPLETION', action: { type: 'karya.core.entities.Action.EmailRequest', recipient: 'oncall@example.com', subject: 'Plan done', message: 'The <b>export</b> ran.' } }],
    }).expect(200)).body;

    await waitFor(() => mails.length === 1, 15_000, 'the completion e-mail');
    expect(slackCalls).toHaveLength(1);
    expect(slackCalls[0].path).toBe('/api/chat.postMessage');
    expect(slackCalls[0].auth).toBe('Bearer xoxb-test-token');
    expect(slackCalls[0].body.channel).toBe('#ops');
    expect(slackCalls[0].body.blocks).toEqual([...blocks, expect.objectContaining({ type: 'context' })]);
    expect(JSON.stringify(slackCalls[0].body.blocks[1])).toContain('Karya');

    const mail = mails[0];
    expect(mail.subject).toBe('Plan done');
    expect((mail.to && !Array.isArray(mail.to) ? mail.to.text : '')).toBe('oncall@example.com');
    expect(mail.from?.text).toContain('karya@example.com');
    expect(mail.html).toContain('<p>The <b>export</b> ran.</p>');
    expect(mail.html).toContain('Karya');
    expect(mail.headers.get('x-karya-plan-id')).toBe(plan.id);
    expect(mail.headers.get('x-karya-trigger')).toBe('ON_COMPLETION');
    const summary = (await request(http).get(`/v1/plan/${plan.id}/summary`).expect(200)).body;
    expect(summary.plan.status).toBe('COMPLETED');
    expect(summary.tasks[0].status).toBe('SUCCESS');
    expect(summary.error_logs).toEqual([]);
  });
});
