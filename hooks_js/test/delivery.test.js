'use strict';

const assert = require('node:assert/strict');
const { after, describe, test } = require('node:test');

const action = require('../post-login.js');
const events = require('../testing/events.js');
const {
  captureConsoleLog,
  closedPortUrl,
  makeSecret,
  recordingApi,
  startReceiver,
  startResettingServer,
} = require('../testing/server.js');

const NOW_MS = Date.parse('2024-01-15T10:30:07.250Z');

function eventFor(url, secret, extraSecrets = {}) {
  const event = events.sampleEvent();
  event.secrets = { HOOKLEDGER_URL: url, HOOKLEDGER_SECRET: secret, ...extraSecrets };
  return event;
}

/** Run the Action entry point; return its log lines, duration and the api calls. */
async function runAction(event) {
  const { api, calls } = recordingApi();
  const started = performance.now();
  let resolved = false;
  const lines = await captureConsoleLog(async () => {
    await action.onExecutePostLogin(event, api);
    resolved = true;
  });
  return { lines, calls, resolved, elapsedMs: performance.now() - started };
}

const receivers = [];
async function receiver(script) {
  const secret = makeSecret();
  const started = await startReceiver({ secret, script });
  receivers.push(started);
  return { ...started, secret };
}

after(async () => {
  await Promise.all(receivers.map((started) => started.close()));
});

describe('onExecutePostLogin delivery', () => {
  test('200 sends one signed request', async () => {
    const server = await receiver([{ status: 200 }]);
    const event = eventFor(server.url, server.secret);

    const run = await runAction(event);

    assert.equal(server.requests.length, 1);
    const [request] = server.requests;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/v1/hooks/auth0');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.signatureValid, true);
    assert.equal(request.headers['webhook-id'], action.deriveWebhookId(event));
    assert.match(request.headers['webhook-timestamp'], /^\d+$/);
    const sentSeconds = Number(request.headers['webhook-timestamp']);
    assert.ok(Math.abs(sentSeconds - Date.now() / 1000) < 60);
    assert.equal(JSON.parse(request.rawBody.toString('utf8')).type, 'login');
    assert.deepEqual(run.calls, []);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /^hookledger push sent: .*status=200 result=accepted$/);
  });

  test('body bytes equal the serialized event', async () => {
    const server = await receiver([{ status: 200 }]);
    const event = eventFor(server.url, server.secret);

    await action.pushLoginEvent(event, { now: () => NOW_MS, log: () => {} });

    const expected = action.serializeLoginEvent(action.buildLoginEvent(event, { now: NOW_MS }));
    assert.equal(server.requests[0].rawBody.toString('utf8'), expected);
    assert.equal(server.requests[0].headers['webhook-timestamp'], String(Date.parse('2024-01-15T10:30:07Z') / 1000));
    assert.equal(server.requests[0].signatureValid, true);
  });

  test('unpadded secret still verifies', async () => {
    const server = await receiver([{ status: 200 }]);
    const unpadded = server.secret.replace(/=+$/, '');
    assert.notEqual(unpadded, server.secret);

    await runAction(eventFor(server.url, unpadded));

    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0].signatureValid, true);
  });

  test('500 then 200 sends two requests', async () => {
    const server = await receiver([{ status: 500, body: '{}' }, { status: 200 }]);

    const run = await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 2);
    const [first, second] = server.requests;
    assert.equal(first.headers['webhook-id'], second.headers['webhook-id']);
    assert.deepEqual(first.rawBody, second.rawBody);
    assert.equal(first.signatureValid, true);
    assert.equal(second.signatureValid, true);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /attempts=2 status=200/);
  });

  test('500 twice gives up after two requests', async () => {
    const server = await receiver([{ status: 503, body: '{}' }]);

    const run = await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 2);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /^hookledger push failed: .*attempts=2 status=503/);
  });

  test('400 sends one request', async () => {
    const server = await receiver([{ status: 400, body: '{"code":"invalid_signature"}' }]);

    const run = await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 1);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /attempts=1 status=400/);
    assert.deepEqual(run.calls, []);
  });

  test('409 sends one request', async () => {
    const server = await receiver([{ status: 409, body: '{}' }]);

    await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 1);
  });

  test('429 is retried', async () => {
    const server = await receiver([{ status: 429, body: '{}' }, { status: 200 }]);

    const run = await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 2);
    assert.match(run.lines[0], /attempts=2 status=200/);
  });

  test('short Retry-After is honoured', async () => {
    const server = await receiver([
      { status: 503, headers: { 'retry-after': '1' }, body: '{}' },
      { status: 200 },
    ]);

    await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 2);
    const gapMs = server.requests[1].receivedAt - server.requests[0].receivedAt;
    assert.ok(gapMs >= 900, `retry came after ${gapMs} ms`);
  });

  test('Retry-After beyond the budget stops', async () => {
    const server = await receiver([{ status: 429, headers: { 'retry-after': '5' }, body: '{}' }]);

    const run = await runAction(eventFor(server.url, server.secret));

    assert.equal(server.requests.length, 1);
    assert.match(run.lines[0], /no_budget_for_retry/);
    assert.ok(run.elapsedMs < 3000, `took ${run.elapsedMs} ms`);
  });

  test('silent server costs at most the budget', async () => {
    const server = await receiver(['hang']);
    const event = eventFor(server.url, server.secret, { HOOKLEDGER_TIMEOUT_MS: '300' });

    const run = await runAction(event);

    assert.equal(run.resolved, true);
    assert.ok(run.elapsedMs < 400, `took ${run.elapsedMs} ms`);
    assert.equal(server.requests.length, 1);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /timed_out budget_ms=300/);
    assert.deepEqual(run.calls, []);
  });

  test('silent server after a 500 stays within budget', async () => {
    const server = await receiver([{ status: 500, body: '{}' }, 'hang']);
    const event = eventFor(server.url, server.secret, { HOOKLEDGER_TIMEOUT_MS: '400' });

    const run = await runAction(event);

    assert.ok(run.elapsedMs < 500, `took ${run.elapsedMs} ms`);
    assert.equal(server.requests.length, 2);
  });

  test('connection refused is retried once', async () => {
    const url = await closedPortUrl();
    const attempts = [];
    const countingFetch = (...args) => {
      attempts.push(args[0]);
      return fetch(...args);
    };
    const lines = [];

    const line = await action.pushLoginEvent(eventFor(url, makeSecret()), {
      fetch: countingFetch,
      log: (text) => lines.push(text),
    });

    assert.equal(attempts.length, 2);
    assert.deepEqual(lines, [line]);
    assert.match(line, /^hookledger push failed: .*attempts=2 network_error=/);
  });

  test('connection refused through the entry point is quiet', async () => {
    const url = await closedPortUrl();

    const run = await runAction(eventFor(url, makeSecret()));

    assert.equal(run.resolved, true);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /network_error=/);
    assert.deepEqual(run.calls, []);
  });

  test('connection reset is retried once', async () => {
    const server = await startResettingServer();
    try {
      const run = await runAction(eventFor(server.url, makeSecret()));

      assert.equal(server.state.connections, 2);
      assert.equal(run.lines.length, 1);
      assert.match(run.lines[0], /attempts=2 network_error=/);
    } finally {
      await server.close();
    }
  });

  test('log line has no secret or payload', async () => {
    const server = await receiver([{ status: 500, body: '{}' }, { status: 400, body: '{}' }]);
    const event = eventFor(server.url, server.secret);

    const run = await runAction(event);

    assert.equal(run.lines.length, 1);
    const [line] = run.lines;
    assert.ok(!line.includes(server.secret.slice('whsec_'.length, 20)));
    assert.ok(!line.includes(event.user.user_id));
    assert.ok(!line.includes(event.request.ip));
    assert.ok(line.length <= 256, `line has ${line.length} characters`);
  });
});

describe('onExecutePostLogin configuration', () => {
  test('missing URL logs and returns', async () => {
    const event = events.sampleEvent();
    event.secrets = { HOOKLEDGER_SECRET: makeSecret() };

    const run = await runAction(event);

    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /skipped: secret HOOKLEDGER_URL or HOOKLEDGER_SECRET is missing/);
    assert.deepEqual(run.calls, []);
  });

  test('missing secret sends nothing', async () => {
    const server = await receiver([{ status: 200 }]);
    const event = events.sampleEvent();
    event.secrets = { HOOKLEDGER_URL: server.url };

    const run = await runAction(event);

    assert.equal(server.requests.length, 0);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /skipped/);
  });

  test('bare whsec_ prefix sends nothing', async () => {
    const server = await receiver([{ status: 200 }]);

    const run = await runAction(eventFor(server.url, 'whsec_'));

    assert.equal(server.requests.length, 0);
    assert.match(run.lines[0], /empty key/);
  });

  test('missing secrets object', async () => {
    const event = events.sampleEvent();
    delete event.secrets;

    const run = await runAction(event);

    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /skipped/);
  });

  test('invalid URL is logged, not thrown', async () => {
    const run = await runAction(eventFor('not a url', makeSecret()));

    assert.equal(run.resolved, true);
    assert.equal(run.lines.length, 1);
    assert.match(run.lines[0], /^hookledger push failed/);
  });

  test('no event at all', async () => {
    const run = await runAction(undefined);

    assert.equal(run.resolved, true);
    assert.equal(run.lines.length, 1);
  });

  test('throwing fetch is swallowed', async () => {
    const lines = [];
    const line = await action.pushLoginEvent(eventFor('http://127.0.0.1:9/x', makeSecret()), {
      fetch: () => {
        throw new TypeError('boom');
      },
      log: (text) => lines.push(text),
    });

    assert.deepEqual(lines, [line]);
    assert.match(line, /network_error=TypeError/);
  });

  test('throwing logger is swallowed', async () => {
    const line = await action.pushLoginEvent(undefined, {
      log: () => {
        throw new Error('log sink down');
      },
    });

    assert.match(line, /skipped/);
  });
});

describe('resolveBudgetMs', () => {
  const cases = [
    [undefined, 3000],
    ['', 3000],
    ['abc', 3000],
    ['1500', 1500],
    [1500, 1500],
    ['50', 100],
    ['0', 100],
    ['-5', 100],
    ['60000', 10000],
    ['2500.9', 2500],
  ];
  for (const [raw, expected] of cases) {
    test(`${JSON.stringify(raw)} gives ${expected}`, () => {
      assert.equal(action.resolveBudgetMs(raw), expected);
    });
  }
});

describe('parseRetryAfterMs', () => {
  test('delay seconds', () => {
    assert.equal(action.parseRetryAfterMs('2', 0), 2000);
  });

  test('HTTP date', () => {
    const now = Date.parse('2024-01-15T10:30:00Z');

    assert.equal(action.parseRetryAfterMs('Mon, 15 Jan 2024 10:30:03 GMT', now), 3000);
  });

  test('past date is zero', () => {
    const now = Date.parse('2024-01-15T10:30:00Z');

    assert.equal(action.parseRetryAfterMs('Mon, 15 Jan 2024 10:29:00 GMT', now), 0);
  });

  test('missing or garbage is null', () => {
    assert.equal(action.parseRetryAfterMs(null, 0), null);
    assert.equal(action.parseRetryAfterMs('soon', 0), null);
  });
});
