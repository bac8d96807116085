/**
 * A scripted HTTP receiver on 127.0.0.1 for the delivery tests.
 *
 * Each request is recorded with its headers, raw body and whether its
 * Standard Webhooks signature verifies, recomputed here from the raw bytes
 * with the test secret. Responses follow `script`, one entry per request;
 * the last entry repeats. An entry is `{status, headers, body}` or the
 * string `'hang'`, which leaves the request without a response.
 */
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');

/** Verify a `webhook-signature` header against the raw body, as a receiver does. */
function verifySignature(secret, headers, rawBody) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatureHeader = headers['webhook-signature'];
  if (!id || !timestamp || !signatureHeader) {
    return false;
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto
    .createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), rawBody]))
    .digest();
  return signatureHeader.split(' ').some((entry) => {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) {
      return false;
    }
    const given = Buffer.from(value, 'base64');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

async function startReceiver({ secret, script }) {
  const requests = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const index = requests.length;
      requests.push({
        receivedAt: performance.now(),
        method: request.method,
        url: request.url,
        headers: request.headers,
        rawBody,
        signatureValid: verifySignature(secret, request.headers, rawBody),
      });
      const entry = script[Math.min(index, script.length - 1)];
      if (entry === 'hang') {
        return;
      }
      const body = entry.body === undefined ? '{"status":"accepted"}' : entry.body;
      response.writeHead(entry.status, { 'content-type': 'application/json', ...entry.headers });
      response.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1/hooks/auth0`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Start a TCP server that counts connections and resets each one at once. */
async function startResettingServer() {
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections += 1;
    socket.resetAndDestroy();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1/hooks/auth0`,
    state,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Return a 127.0.0.1 URL whose port had a listener a moment ago and has none now. */
async function closedPortUrl() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/v1/hooks/auth0`;
}

function makeSecret() {
  return `whsec_${crypto.randomBytes(32).toString('base64')}`;
}

/** An `api` stand-in that records every method call on any path, e.g. `api.access.deny`. */
function recordingApi() {
  const calls = [];
  function node(pathSoFar) {
    const target = function () {};
    return new Proxy(target, {
      get(_target, property) {
        // `then` stays undefined so that awaiting the stand-in does not record a call.
        if (typeof property === 'symbol' || property === 'then') {
          return undefined;
        }
        return node([...pathSoFar, property]);
      },
      apply(_target, _thisArg, args) {
        calls.push({ path: pathSoFar.join('.'), args });
        return undefined;
      },
    });
  }
  return { api: node([]), calls };
}

/** Run `fn` with console.log replaced by a recorder; return the recorded lines. */
async function captureConsoleLog(fn) {
  const lines = [];
  const original = console.log;
  console.log = (...args) => {
    lines.push(args.map(String).join(' '));
  };
  try {
    await fn();
  } finally {
    console.log = original;
  }
  return lines;
}

module.exports = {
  verifySignature,
  startReceiver,
  startResettingServer,
  closedPortUrl,
  makeSecret,
  recordingApi,
  captureConsoleLog,
};
