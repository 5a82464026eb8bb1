import { ArgumentsHost, HttpException, Logger } from '@nestjs/common';
import { PlainTextExceptionFilter } from './plain-text-exception.filter';

/** A host over a fake Express request/response pair; `id` is what the logging middleware set. */
function httpHost(id: string | undefined) {
  const sent: { status?: number; body?: unknown; headers: Record<string, string> } = { headers: {} };
  const res = {
    getHeader: (name: string) => sent.headers[name],
    setHeader: (name: string, value: string) => void (sent.headers[name] = value),
    status(code: number) {
      sent.status = code;
      return this;
    },
    type() {
      return this;
    },
    send: (body: unknown) => void (sent.body = body),
  };
  const host = {
    getType: () => 'http',
    switchToHttp: () => ({ getRequest: () => ({ id }), getResponse: () => res }),
  } as unknown as ArgumentsHost;
  return { host, sent };
}

describe('PlainTextExceptionFilter', () => {
  afterEach(() => jest.restoreAllMocks());

  it("names the request in the lines it logs, as there is no per-request logging context", () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const filter = new PlainTextExceptionFilter();

    const unexpected = httpHost('req-500');
    filter.catch(new Error('boom'), unexpected.host);
    expect(unexpected.sent).toMatchObject({ status: 500, body: 'Internal server error' });
    expect(error).toHaveBeenCalledWith({ request_id: 'req-500' }, expect.stringContaining('boom'));

    const busy = httpHost('req-503');
    filter.catch(new HttpException('deadline', 503), busy.host);
    expect(busy.sent).toMatchObject({ status: 503, headers: { 'Retry-After': '2' } });
    expect(warn).toHaveBeenCalledWith({ request_id: 'req-503' }, '503: deadline');

    // Without the middleware (a test app), the field is there, null.
    filter.catch(new Error('bare'), httpHost(undefined).host);
    expect(error).toHaveBeenLastCalledWith({ request_id: null }, expect.stringContaining('bare'));
  });

  it('logs nothing for a 4xx', () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { host, sent } = httpHost('req-404');
    new PlainTextExceptionFilter().catch(new HttpException('not here', 404), host);
    expect(sent).toMatchObject({ status: 404, body: 'not here' });
    expect(warn).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
  });
});
