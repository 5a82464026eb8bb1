import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { endClientSpan, startClientSpan, traceExecution, traceSubmit } from './spans';
import { startTracing, Tracing } from './tracing';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('spans (tracing on, in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  beforeAll(() => {
    tracing = startTracing({ env: {}, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  });
  afterAll(() => tracing.shutdown());
  beforeEach(() => exporter.reset());

  /** The finished spans once `count` have been exported (SimpleSpanProcessor exports after the resource is ready). */
  const exported = async (count: number) => {
    for (const deadline = Date.now() + 5_000; exporter.getFinishedSpans().length < count; await new Promise((r) => setTimeout(r, 5))) {
      if (Date.now() > deadline) throw new Error(`${exporter.getFinishedSpans().length} of ${count} spans exported`);
    }
    return exporter.getFinishedSpans();
  };
  const submitSpan = async () => (await exported(1)).find((s) => s.name === 'POST /v1/plan');

  it('records an outbound URL as scheme, host, port and path: no userinfo, query (an Azure SAS sig) or fragment', async () => {
    await traceExecution({ traceparent: TRACEPARENT }, async () => {
      const client = startClientSpan('PUT', 'https://u:pw-1234@acct.blob.core.windows.net:8443/c/blob?sv=2024&sig=SaSsIg%2B99#x', ['pw-1234']);
      expect(client).toBeDefined();
      endClientSpan(client, 201);
      const hook = startClientSpan('POST', 'https://hooks.slack.com/services/T1/B2/slackPathSecret77', []);
      endClientSpan(hook, 200);
    });
    const urls = (await exported(3)).filter((s) => s.name !== 'karya.execute').map((s) => s.attributes['url.full']);
    expect(urls).toEqual(['https://acct.blob.core.windows.net:8443/c/blob', 'https://hooks.slack.com/services/T1/B2/…']);
  });

  it('takes the status of an answer that went out before the submission ended (the request deadline 503)', async () => {
    const res = { headersSent: false, statusCode: 200 };
    await traceSubmit({}, async () => {
      // RequestDeadlineInterceptor answered meanwhile.
      Object.assign(res, { headersSent: true, statusCode: 503 });
      return 'stored late';
    }, res);
    expect((await submitSpan())?.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': '503' });
  });

  it('records 200 when the submission answered itself', async () => {
    await traceSubmit({}, async () => 'ok', { headersSent: false, statusCode: 200 });
    const span = await submitSpan();
    expect(span?.attributes).toMatchObject({ 'http.response.status_code': 200 });
    expect(span?.attributes['error.type']).toBeUndefined();
  });
});
