/**
 * Run the Auth0 post-login Action for many logins in one Node process.
 *
 * Usage: node action_driver.js <path of post-login.js> <concurrency> [warm-up URL]
 *
 * stdin carries one JSON object per line: {"index", "now_ms", "event"}, where
 * `event` is the post-login `event` with its `secrets` already set. For each
 * line the driver calls the Action's `onExecutePostLogin(event, api)` and
 * writes one JSON line to stdout: {"index", "lines", "api_calls", "ms"}.
 * `lines` contains what the Action logged and `api_calls` the `api` methods it
 * called. The demo checks that `api_calls` is empty, because the Action must
 * never block a login.
 * At most <concurrency> executions run at once.
 *
 * The logins belong to a past day, so each execution runs on a clock that
 * starts at its `now_ms`. The Action reads `Date.now` once, when it starts
 * (`options.now || Date.now` in `pushLoginEvent`), and keeps that function
 * for the body's `timestamp` and every `webhook-timestamp`. So the driver
 * replaces `Date.now` only while `onExecutePostLogin` runs synchronously and
 * restores it before anything else runs. The warm-up request loads Node's
 * fetch implementation before the first swap, so that no library starts its
 * timers on the simulated clock.
 */
'use strict';

const path = require('node:path');
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');
const { AsyncLocalStorage } = require('node:async_hooks');

const [actionPath, concurrencyText, warmUpUrl] = process.argv.slice(2);
const concurrency = Number.parseInt(concurrencyText || '16', 10);
if (!actionPath || !Number.isSafeInteger(concurrency) || concurrency < 1) {
  process.stderr.write('usage: node action_driver.js <post-login.js> <concurrency> [warm-up URL]\n');
  process.exit(2);
}

const action = require(path.resolve(actionPath));
const execution = new AsyncLocalStorage();
const realDateNow = Date.now;

// The Action logs with console.log; each line goes to the execution that wrote it.
console.log = (...parts) => {
  const store = execution.getStore();
  const line = parts.map(String).join(' ');
  if (store) {
    store.lines.push(line);
  } else {
    process.stderr.write(`${line}\n`);
  }
};

/** Build a post-login `api` stub that records each call; the Action should make none. */
function recordingApi(calls) {
  const record = (name) => () => {
    calls.push(name);
  };
  const group = (prefix, names) =>
    Object.fromEntries(names.map((name) => [name, record(`${prefix}.${name}`)]));
  return {
    access: group('access', ['deny']),
    accessToken: group('accessToken', ['setCustomClaim', 'addScope', 'removeScope']),
    idToken: group('idToken', ['setCustomClaim']),
    multifactor: group('multifactor', ['enable']),
    user: group('user', ['setAppMetadata', 'setUserMetadata']),
    redirect: group('redirect', ['sendUserToUrl', 'encodeToken', 'validateToken']),
    authentication: group('authentication', ['challengeWith', 'enrollWith', 'recordMethod']),
    session: group('session', ['revoke', 'setExpiresAt', 'setIdleExpiresAt']),
    refreshToken: group('refreshToken', ['revoke', 'setExpiresAt', 'setIdleExpiresAt']),
    cache: { get: () => undefined, set: () => ({ type: 'success' }), delete: () => ({ type: 'success' }) },
  };
}

/** Run one execution and write its result line. Never rejects. */
async function runOne(item) {
  const store = { lines: [] };
  const calls = [];
  const started = performance.now();
  const simulatedNow = () => item.now_ms + Math.floor(performance.now() - started);
  let pending;
  execution.run(store, () => {
    Date.now = simulatedNow;
    try {
      pending = action.onExecutePostLogin(item.event, recordingApi(calls));
    } catch (error) {
      pending = Promise.reject(error);
    } finally {
      Date.now = realDateNow;
    }
  });
  try {
    await pending;
  } catch (error) {
    store.lines.push(`action threw: ${error && error.name}`);
  }
  const result = {
    index: item.index,
    lines: store.lines,
    api_calls: calls,
    ms: Math.round(performance.now() - started),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function warmUp() {
  if (!warmUpUrl) {
    return;
  }
  try {
    const response = await fetch(warmUpUrl, { signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
  } catch (error) {
    process.stderr.write(`warm-up request to ${warmUpUrl} failed: ${error && error.name}\n`);
  }
}

async function main() {
  await warmUp();
  const running = new Set();
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const text of input) {
    if (text.trim() === '') {
      continue;
    }
    const item = JSON.parse(text);
    const task = runOne(item).finally(() => running.delete(task));
    running.add(task);
    if (running.size >= concurrency) {
      await Promise.race(running);
    }
  }
  await Promise.all(running);
}

main().catch((error) => {
  process.stderr.write(`action driver failed: ${error && error.stack}\n`);
  process.exit(1);
});
