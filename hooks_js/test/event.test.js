'use strict';

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');

const { buildLoginEvent, classifyKind, serializeLoginEvent } = require('../post-login.js');
const events = require('../testing/events.js');

const NOW_MS = Date.parse('2024-01-15T10:30:07.250Z');

function build(event) {
  return buildLoginEvent(event, { now: NOW_MS });
}

describe('buildLoginEvent', () => {
  test('sample event fields', () => {
    const body = build(events.sampleEvent());

    assert.deepEqual(Object.keys(body), ['type', 'timestamp', 'data']);
    assert.equal(body.type, 'login');
    assert.equal(body.timestamp, '2024-01-15T10:30:07.250Z');
    assert.deepEqual(body.data, {
      kind: 'login',
      user_id: 'auth0|000000000000000000000001',
      client_id: 'FAKEclientID00000000000000000001',
      client_name: 'Example Web App',
      connection: 'Username-Password-Authentication',
      connection_id: 'con_FAKE0000000001',
      strategy: 'auth0',
      ip: '203.0.113.10',
      user_agent: 'Mozilla/5.0 (X11; Linux x86_64) ExampleBrowser/1.0',
      transaction_id: 'FAKEtxn_00000000000000000000001',
      session_id: 'FAKEsession_000000000000000001',
      logins_count: 42,
      protocol: 'oidc-basic-profile',
      prompt: [],
      authentication_methods: [
        { name: 'pwd', timestamp: '2024-01-15T10:30:00.000Z' },
        { name: 'mfa', timestamp: '2024-01-15T10:30:05.000Z' },
      ],
      authenticated_at: '2024-01-15T10:30:05.000Z',
      tenant: 'example-tenant',
    });
  });

  test('body carries no secrets or profile data', () => {
    const text = serializeLoginEvent(build(events.sampleEvent()));

    assert.ok(!text.includes('fake-secret-value'));
    assert.ok(!text.includes('alice@example.com'));
    assert.ok(!text.includes('PUSH_HMAC_KEY'));
  });

  test('missing session gives null session_id', () => {
    const body = build(events.noSessionEvent());

    assert.equal(body.data.session_id, null);
    assert.equal(body.data.transaction_id, 'FAKEtxn_00000000000000000000001');
    assert.equal(body.type, 'login');
  });

  test('missing transaction gives null transaction fields', () => {
    const body = build(events.noTransactionEvent());

    assert.equal(body.data.transaction_id, null);
    assert.equal(body.data.protocol, null);
    assert.equal(body.data.prompt, null);
    assert.equal(body.type, 'login');
  });

  test('silent authentication is silent_login', () => {
    const body = build(events.silentEvent());

    assert.equal(body.type, 'silent_login');
    assert.equal(body.data.kind, 'silent_login');
    assert.deepEqual(body.data.prompt, ['none']);
  });

  test('refresh token exchange', () => {
    const body = build(events.refreshEvent());

    assert.equal(body.type, 'refresh');
    assert.equal(body.data.protocol, 'oauth2-refresh-token');
    assert.equal(body.data.session_id, null);
    assert.equal(body.data.transaction_id, null);
    assert.equal(body.data.user_agent, null);
    assert.equal(body.timestamp, '2024-01-15T10:30:07.250Z');
  });

  test('password grant', () => {
    const body = build(events.passwordGrantEvent());

    assert.equal(body.type, 'password_grant');
    assert.equal(body.data.protocol, 'oauth2-password');
    assert.equal(body.data.authenticated_at, '2024-01-15T11:00:00.000Z');
    assert.equal(body.data.session_id, null);
  });

  test('minimal event gives nulls', () => {
    const body = build(events.minimalEvent());

    assert.equal(body.type, 'login');
    assert.equal(body.data.session_id, null);
    assert.equal(body.data.transaction_id, null);
    assert.equal(body.data.user_agent, null);
    assert.deepEqual(body.data.authentication_methods, []);
    assert.equal(body.data.authenticated_at, null);
    assert.equal(body.data.user_id, 'auth0|000000000000000000000001');
  });

  test('malformed optional fields never throw', () => {
    const shapes = [
      undefined,
      null,
      {},
      { session: null, transaction: null, authentication: null, request: null },
      { authentication: { methods: 'pwd' }, stats: { logins_count: '7' } },
      { authentication: { methods: [null, 3, { name: 'pwd', timestamp: 'not a date' }] } },
      { transaction: { prompt: 'login none' }, request: { query: null, body: null } },
      { tenant: 'flat-string', user: [], client: 5, connection: true },
    ];
    for (const shape of shapes) {
      const body = build(shape);
      assert.equal(typeof serializeLoginEvent(body), 'string');
      assert.equal(body.timestamp, '2024-01-15T10:30:07.250Z');
    }
  });

  test('unparsable method timestamp becomes null', () => {
    const event = events.sampleEvent();
    event.authentication.methods = [{ name: 'pwd', timestamp: 'yesterday' }];

    const body = build(event);

    assert.deepEqual(body.data.authentication_methods, [{ name: 'pwd', timestamp: null }]);
    assert.equal(body.data.authenticated_at, null);
  });

  test('non-integer logins_count becomes null', () => {
    const event = events.sampleEvent();
    event.stats.logins_count = '42';

    assert.equal(build(event).data.logins_count, null);
  });

  test('latest method sets authenticated_at', () => {
    const event = events.sampleEvent();
    event.authentication.methods = [
      { name: 'mfa', timestamp: '2024-01-15T10:31:00.000Z' },
      { name: 'pwd', timestamp: '2024-01-15T10:30:00.000Z' },
    ];

    assert.equal(build(event).data.authenticated_at, '2024-01-15T10:31:00.000Z');
  });
});

describe('classifyKind', () => {
  const cases = [
    ['sample', events.sampleEvent(), 'login'],
    ['no session', events.noSessionEvent(), 'login'],
    ['no transaction', events.noTransactionEvent(), 'login'],
    ['prompt none', events.silentEvent(), 'silent_login'],
    ['refresh protocol', events.refreshEvent(), 'refresh'],
    ['password protocol', events.passwordGrantEvent(), 'password_grant'],
    ['query prompt none only', { request: { query: { prompt: 'none' } } }, 'silent_login'],
    ['prompt string', { transaction: { prompt: 'none' } }, 'silent_login'],
    ['prompt login', { transaction: { prompt: ['login'] } }, 'login'],
    ['refresh grant type', { request: { body: { grant_type: 'refresh_token' } } }, 'refresh'],
    ['password grant type', { request: { body: { grant_type: 'password' } } }, 'password_grant'],
    [
      'password realm grant type',
      { request: { body: { grant_type: 'http://auth0.com/oauth/grant-type/password-realm' } } },
      'password_grant',
    ],
    ['undefined event', undefined, 'login'],
  ];
  for (const [name, event, expected] of cases) {
    test(name, () => {
      assert.equal(classifyKind(event), expected);
    });
  }
});

describe('method timestamp parsing', () => {
  const cases = [
    ['2024-01-15T10:30:00Z', '2024-01-15T10:30:00.000Z'],
    ['2024-01-15T10:30Z', '2024-01-15T10:30:00.000Z'],
    ['2024-01-15T10:30:00.123456789Z', '2024-01-15T10:30:00.123Z'],
    ['2024-01-15T10:30:00+05:30', '2024-01-15T05:00:00.000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['2023-02-29T00:00:00Z', null],
    ['2024-04-31T00:00:00Z', null],
    ['2024-01-15T24:00:00Z', null],
    ['2024-01-15T10:30:00', null],
    ['Mon, 15 Jan 2024 10:30:00 GMT', null],
    ['1969-12-31T23:59:59Z', null],
    ['0099-01-01T00:00:00Z', null],
    [1705314600000.9, '2024-01-15T10:30:00.000Z'],
    [-1, null],
    [new Date('2024-01-15T10:30:00Z'), '2024-01-15T10:30:00.000Z'],
  ];
  for (const [value, expected] of cases) {
    test(`${JSON.stringify(value)} gives ${expected}`, () => {
      const event = { authentication: { methods: [{ name: 'pwd', timestamp: value }] } };

      const body = buildLoginEvent(event, { now: NOW_MS });

      assert.equal(body.data.authentication_methods[0].timestamp, expected);
      assert.equal(body.data.authenticated_at, expected);
    });
  }
});
