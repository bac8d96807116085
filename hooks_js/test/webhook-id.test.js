'use strict';

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');

const { deriveWebhookId } = require('../post-login.js');
const events = require('../testing/events.js');

const ID_PATTERN = /^login_[0-9a-f]{56}$/;

describe('deriveWebhookId', () => {
  test('format is prefix and hex', () => {
    const id = deriveWebhookId(events.sampleEvent());

    assert.match(id, ID_PATTERN);
    assert.ok(id.length <= 64);
    assert.ok(!id.includes('.'));
  });

  test('same login gives same id', () => {
    const randomVariants = new Set(['refresh', 'silent_without_transaction_id', 'minimal']);
    for (const [name, makeEvent] of Object.entries(events.VARIANTS)) {
      if (randomVariants.has(name)) {
        continue;
      }
      assert.equal(deriveWebhookId(makeEvent()), deriveWebhookId(makeEvent()), name);
    }
  });

  test('id ignores fields outside the identity', () => {
    const first = events.sampleEvent();
    const second = events.sampleEvent();
    second.request.ip = '198.51.100.7';
    second.stats.logins_count = 43;
    second.secrets.PUSH_URL = 'https://other.example.com/';

    assert.equal(deriveWebhookId(first), deriveWebhookId(second));
  });

  test('different transaction gives different id', () => {
    const other = events.sampleEvent();
    other.transaction.id = 'FAKEtxn_00000000000000000000002';

    assert.notEqual(deriveWebhookId(events.sampleEvent()), deriveWebhookId(other));
  });

  test('different session gives different id', () => {
    const first = events.noTransactionEvent();
    const second = events.noTransactionEvent();
    second.session.id = 'FAKEsession_000000000000000002';

    assert.notEqual(deriveWebhookId(first), deriveWebhookId(second));
  });

  test('different authentication time gives different id', () => {
    const withTransaction = events.sampleEvent();
    withTransaction.authentication.methods[1].timestamp = '2024-01-15T10:30:06.000Z';
    const withSession = events.noTransactionEvent();
    withSession.authentication.methods[1].timestamp = '2024-01-15T10:30:06.000Z';

    assert.notEqual(deriveWebhookId(events.sampleEvent()), deriveWebhookId(withTransaction));
    assert.notEqual(deriveWebhookId(events.noTransactionEvent()), deriveWebhookId(withSession));
  });

  test('different user gives different id', () => {
    const other = events.sampleEvent();
    other.user.user_id = 'auth0|000000000000000000000002';

    assert.notEqual(deriveWebhookId(events.sampleEvent()), deriveWebhookId(other));
  });

  test('different client, tenant or protocol gives different id', () => {
    const base = deriveWebhookId(events.sampleEvent());
    const client = events.sampleEvent();
    client.client.client_id = 'FAKEclientID00000000000000000002';
    const tenant = events.sampleEvent();
    tenant.tenant.id = 'other-tenant';
    const protocol = events.sampleEvent();
    protocol.transaction.protocol = 'samlp';

    assert.notEqual(deriveWebhookId(client), base);
    assert.notEqual(deriveWebhookId(tenant), base);
    assert.notEqual(deriveWebhookId(protocol), base);
  });

  test('transaction id equal to a session id stays distinct', () => {
    const byTransaction = events.sampleEvent();
    byTransaction.transaction.id = 'shared-value';
    delete byTransaction.session;
    const bySession = events.noTransactionEvent();
    bySession.session.id = 'shared-value';
    bySession.transaction = { protocol: 'oidc-basic-profile' };

    assert.notEqual(deriveWebhookId(byTransaction), deriveWebhookId(bySession));
  });

  test('password grants at different times differ', () => {
    const first = events.passwordGrantEvent();
    const second = events.passwordGrantEvent();
    second.authentication.methods[0].timestamp = '2024-01-15T11:00:00.001Z';

    assert.equal(deriveWebhookId(first), deriveWebhookId(events.passwordGrantEvent()));
    assert.notEqual(deriveWebhookId(first), deriveWebhookId(second));
  });

  test('no stable identity gives random ids', () => {
    const first = deriveWebhookId(events.minimalEvent());
    const second = deriveWebhookId(events.minimalEvent());

    assert.match(first, ID_PATTERN);
    assert.match(second, ID_PATTERN);
    assert.notEqual(first, second);
  });

  test('refresh without transaction id is random', () => {
    // Two exchanges of one refresh token carry the same user, client and
    // original methods, so a derived id would merge them.
    const first = deriveWebhookId(events.refreshEvent());
    const second = deriveWebhookId(events.refreshEvent());

    assert.match(first, ID_PATTERN);
    assert.notEqual(first, second);
  });

  test('silent login without transaction id is random', () => {
    const first = deriveWebhookId(events.silentWithoutTransactionIdEvent());
    const second = deriveWebhookId(events.silentWithoutTransactionIdEvent());

    assert.notEqual(first, second);
  });

  test('silent login with transaction id is derived', () => {
    assert.equal(deriveWebhookId(events.silentEvent()), deriveWebhookId(events.silentEvent()));
  });

  test('random id uses injected bytes', () => {
    const id = deriveWebhookId(events.minimalEvent(), {
      randomBytes: (size) => Buffer.alloc(size, 0xab),
    });

    assert.equal(id, `login_${'ab'.repeat(28)}`);
  });

  test('derivation never throws', () => {
    for (const shape of [undefined, null, {}, { transaction: 5, session: 'x', tenant: [] }]) {
      assert.match(deriveWebhookId(shape), ID_PATTERN);
    }
  });
});
