'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, test } = require('node:test');

const { decodeSecret, signDelivery } = require('../post-login.js');
const { FIXTURES } = require('../testing/events.js');

const VECTORS = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'vectors.json'), 'utf8')).vectors;
const SIGNING_VECTORS = VECTORS.filter(
  (vector) =>
    (vector.scheme === 'standard-webhooks-v1' || vector.scheme === 'svix') &&
    vector.should_verify === true &&
    typeof vector.expected_signature === 'string',
);

describe('signDelivery against published vectors', () => {
  test('vector file has signing vectors', () => {
    assert.ok(SIGNING_VECTORS.length >= 5, `found ${SIGNING_VECTORS.length} vectors`);
  });

  for (const vector of SIGNING_VECTORS) {
    test(vector.id, () => {
      const signature = signDelivery({
        secret: vector.secret,
        webhookId: vector.msg_id,
        timestamp: vector.timestamp,
        body: vector.payload,
      });

      assert.equal(signature, vector.expected_signature);
    });
  }
});

describe('signDelivery', () => {
  const base = {
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    webhookId: 'login_abc',
    timestamp: 1705314600,
    body: '{"type":"login"}',
  };

  test('string and buffer bodies sign alike', () => {
    const fromString = signDelivery(base);
    const fromBuffer = signDelivery({ ...base, body: Buffer.from(base.body, 'utf8') });

    assert.equal(fromString, fromBuffer);
  });

  test('signature binds the id', () => {
    assert.notEqual(signDelivery(base), signDelivery({ ...base, webhookId: 'login_abd' }));
  });

  test('signature binds the timestamp', () => {
    assert.notEqual(signDelivery(base), signDelivery({ ...base, timestamp: 1705314601 }));
  });

  test('signature binds the body', () => {
    assert.notEqual(signDelivery(base), signDelivery({ ...base, body: '{"type":"login" }' }));
  });

  test('non-ascii body is signed as utf-8', () => {
    const body = '{"user_agent":"Zürich ✓ 😀"}';
    const signature = signDelivery({ ...base, body });
    const bytes = signDelivery({ ...base, body: Buffer.from(body, 'utf8') });

    assert.equal(signature, bytes);
  });

  test('empty secret throws', () => {
    assert.throws(() => signDelivery({ ...base, secret: 'whsec_' }), /empty/);
  });
});

describe('decodeSecret', () => {
  test('prefix is optional', () => {
    const withPrefix = decodeSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const withoutPrefix = decodeSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');

    assert.deepEqual(withPrefix, withoutPrefix);
    assert.equal(withPrefix.length, 24);
  });

  test('missing padding is tolerated', () => {
    const padded = decodeSecret('whsec_AAECAwQ=');
    const unpadded = decodeSecret('whsec_AAECAwQ');

    assert.deepEqual(unpadded, padded);
    assert.deepEqual([...unpadded], [0, 1, 2, 3, 4]);
  });
});
