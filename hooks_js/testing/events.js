/**
 * Post-login `event` objects for the tests: the sample event from the
 * fixtures folder and variants for the flows that change its shape.
 * Every function returns a fresh copy that a test may modify.
 */
'use strict';

const path = require('node:path');
const fs = require('node:fs');

const FIXTURES = path.join(__dirname, '..', 'test', 'fixtures');
const SAMPLE = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'post-login-event.json'), 'utf8'));

function sampleEvent() {
  return structuredClone(SAMPLE);
}

/** Browser login without a session, as in flows where Auth0 leaves `event.session` undefined. */
function noSessionEvent() {
  const event = sampleEvent();
  delete event.session;
  return event;
}

function noTransactionEvent() {
  const event = sampleEvent();
  delete event.transaction;
  return event;
}

/** Silent authentication: `prompt=none` on an existing session, same transaction shape. */
function silentEvent() {
  const event = sampleEvent();
  event.transaction.prompt = ['none'];
  event.request.query.prompt = 'none';
  return event;
}

/** Silent authentication where Auth0 sent no transaction id. */
function silentWithoutTransactionIdEvent() {
  const event = silentEvent();
  delete event.transaction.id;
  return event;
}

/** Refresh-token exchange: no session, a protocol-only transaction, the original methods. */
function refreshEvent() {
  const event = sampleEvent();
  delete event.session;
  event.transaction = {
    protocol: 'oauth2-refresh-token',
    requested_scopes: ['openid', 'profile', 'offline_access'],
  };
  event.request.method = 'POST';
  event.request.query = {};
  event.request.body = { grant_type: 'refresh_token', client_id: event.client.client_id };
  delete event.request.user_agent;
  return event;
}

/** Resource owner password grant: no session, no transaction id, a fresh `pwd` method. */
function passwordGrantEvent() {
  const event = sampleEvent();
  delete event.session;
  event.transaction = { protocol: 'oauth2-password', requested_scopes: ['openid'] };
  event.request.method = 'POST';
  event.request.query = {};
  event.request.body = { grant_type: 'password', username: 'alice@example.com' };
  event.authentication = { methods: [{ name: 'pwd', timestamp: '2024-01-15T11:00:00.000Z' }] };
  return event;
}

/** Only the fields that Auth0 documents as always present, and no optional sub-object. */
function minimalEvent() {
  const event = sampleEvent();
  delete event.session;
  delete event.transaction;
  delete event.authentication;
  delete event.authorization;
  delete event.request.user_agent;
  return event;
}

const VARIANTS = {
  sample: sampleEvent,
  no_session: noSessionEvent,
  no_transaction: noTransactionEvent,
  silent: silentEvent,
  silent_without_transaction_id: silentWithoutTransactionIdEvent,
  refresh: refreshEvent,
  password_grant: passwordGrantEvent,
  minimal: minimalEvent,
};

module.exports = {
  FIXTURES,
  VARIANTS,
  sampleEvent,
  noSessionEvent,
  noTransactionEvent,
  silentEvent,
  silentWithoutTransactionIdEvent,
  refreshEvent,
  passwordGrantEvent,
  minimalEvent,
};
