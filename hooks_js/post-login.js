/**
 * Auth0 post-login Action that pushes one signed login event to hookledger.
 *
 * Runtime: Auth0 Actions, Node 18 or Node 22, no npm dependencies (global
 * `fetch`, `node:crypto`). Secrets read from `event.secrets`:
 *
 *   HOOKLEDGER_URL         full push URL, e.g. https://ledger.example.com/v1/hooks/auth0
 *   HOOKLEDGER_SECRET      Standard Webhooks secret, `whsec_` + base64
 *   HOOKLEDGER_TIMEOUT_MS  optional total time budget in milliseconds (default 3000,
 *                          clamped to 100..10000)
 *
 * Post-login Actions block the login, and an uncaught error or a trigger
 * running past 20 seconds fails it with `access_denied`. So this Action never
 * throws, never rejects, never calls `api.access.deny`, and spends at most the
 * time budget on the push. Every outcome is logged as exactly one
 * `console.log` line without secrets or the payload. A push that fails is a gap
 * that the reconciliation from Auth0 tenant logs fills later.
 */
'use strict';

const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');

const DEFAULT_TIMEOUT_MS = 3000;
const MIN_TIMEOUT_MS = 100;
const MAX_TIMEOUT_MS = 10000;
// A retry starts only if at least this much of the budget is left after its wait.
const MIN_ATTEMPT_MS = 100;
// Wait before a retry when the response carries no Retry-After header.
const DEFAULT_RETRY_DELAY_MS = 100;
const ID_PREFIX = 'login_';
// 56 hex characters (224 bits of SHA-256) keep `login_` + digest at 62 characters.
const ID_DIGEST_HEX_CHARS = 56;
const ID_DERIVATION_VERSION = 'hookledger.auth0.login.v1';
const USER_AGENT = 'hookledger-auth0-action/1';

const KIND_LOGIN = 'login';
const KIND_SILENT_LOGIN = 'silent_login';
const KIND_REFRESH = 'refresh';
const KIND_PASSWORD_GRANT = 'password_grant';

const REFRESH_PROTOCOL = 'oauth2-refresh-token';
const PASSWORD_PROTOCOL = 'oauth2-password';
const PASSWORD_GRANT_TYPES = new Set([
  'password',
  'http://auth0.com/oauth/grant-type/password-realm',
]);

/** Return `value` if it is a non-empty string, else null. */
function stringOrNull(value) {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Return `value` if it is a plain object, else null. */
function objectOrNull(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
}

// ISO 8601 UTC date-time with a `Z` or `±HH:MM` offset, as Auth0 writes them.
// Parsed by hand instead of with Date.parse, which accepts 2024-02-30 and
// reads offset-less times as local time; the Python port parses the same way.
const ISO_TIMESTAMP =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})$/;
// Times are kept only from 1970-01-01 up to, not including, 10000-01-01,
// so that every kept time has a four-digit-year ISO form in both languages.
const MAX_TIMESTAMP_MS = 253402300800000;

function inTimestampRange(ms) {
  return Number.isFinite(ms) && ms >= 0 && ms < MAX_TIMESTAMP_MS;
}

/** Parse an ISO 8601 date-time with an offset into epoch ms, or null. */
function parseIsoTimestampMs(text) {
  const match = ISO_TIMESTAMP.exec(text);
  if (match === null) {
    return null;
  }
  const [year, month, day, hour, minute] = match.slice(1, 6).map(Number);
  const second = match[6] === undefined ? 0 : Number(match[6]);
  const millisecond = match[7] === undefined ? 0 : Number(match[7].slice(0, 3).padEnd(3, '0'));
  // Day 0 of the next month is the last day of this one, leap years included.
  const lastDay = month >= 1 && month <= 12 ? new Date(Date.UTC(year, month, 0)).getUTCDate() : 0;
  if (year < 1970 || day < 1 || day > lastDay || hour > 23 || minute > 59 || second > 59) {
    return null;
  }
  let offsetMinutes = 0;
  if (match[8] !== 'Z') {
    const offsetHours = Number(match[8].slice(1, 3));
    const offsetRest = Number(match[8].slice(4, 6));
    if (offsetHours > 23 || offsetRest > 59) {
      return null;
    }
    offsetMinutes = (match[8][0] === '-' ? -1 : 1) * (offsetHours * 60 + offsetRest);
  }
  const ms =
    Date.UTC(year, month - 1, day, hour, minute, second, millisecond) - offsetMinutes * 60000;
  return inTimestampRange(ms) ? ms : null;
}

/** Parse a timestamp (ISO 8601 string, Date or epoch milliseconds) into epoch ms, or null. */
function parseTimestampMs(value) {
  if (value instanceof Date) {
    const ms = value.getTime();
    return inTimestampRange(ms) ? ms : null;
  }
  if (typeof value === 'number') {
    const ms = Math.trunc(value);
    return inTimestampRange(ms) ? ms : null;
  }
  if (typeof value !== 'string') {
    return null;
  }
  return parseIsoTimestampMs(value);
}

function toIso(ms) {
  return new Date(ms).toISOString();
}

/** Normalize `event.transaction.prompt` (array or space-separated string) to a string array. */
function readPrompt(event) {
  const transaction = objectOrNull(event.transaction);
  const raw = transaction ? transaction.prompt : undefined;
  if (Array.isArray(raw)) {
    return raw.filter((item) => typeof item === 'string');
  }
  if (typeof raw === 'string') {
    return raw.split(' ').filter((item) => item !== '');
  }
  const query = objectOrNull(objectOrNull(event.request) && event.request.query);
  if (query && typeof query.prompt === 'string') {
    return query.prompt.split(' ').filter((item) => item !== '');
  }
  return null;
}

/**
 * Classify the flow that ran the trigger.
 *
 * `refresh` and `password_grant` come from `event.transaction.protocol`, or
 * from the token request's `grant_type` when the transaction is missing.
 * `silent_login` is a browser flow with `prompt=none`. Everything else is an
 * interactive `login`, SSO logins included.
 */
function classifyKind(event) {
  const safeEvent = objectOrNull(event) || {};
  const transaction = objectOrNull(safeEvent.transaction);
  const protocol = transaction ? stringOrNull(transaction.protocol) : null;
  if (protocol === REFRESH_PROTOCOL) {
    return KIND_REFRESH;
  }
  if (protocol === PASSWORD_PROTOCOL) {
    return KIND_PASSWORD_GRANT;
  }
  const body = objectOrNull(objectOrNull(safeEvent.request) && safeEvent.request.body);
  const grantType = body ? stringOrNull(body.grant_type) : null;
  if (protocol === null && grantType === 'refresh_token') {
    return KIND_REFRESH;
  }
  if (protocol === null && grantType !== null && PASSWORD_GRANT_TYPES.has(grantType)) {
    return KIND_PASSWORD_GRANT;
  }
  const prompt = readPrompt(safeEvent);
  if (prompt !== null && prompt.includes('none')) {
    return KIND_SILENT_LOGIN;
  }
  return KIND_LOGIN;
}

/**
 * Read `event.authentication.methods` as `{name, timestamp}` pairs with
 * timestamps normalized to ISO 8601 UTC (null when missing or unparsable),
 * and the epoch ms of the latest method (null when no method has a time).
 */
function readAuthenticationMethods(event) {
  const authentication = objectOrNull(event.authentication);
  const raw = authentication && Array.isArray(authentication.methods) ? authentication.methods : [];
  const methods = [];
  let latestMs = null;
  for (const item of raw) {
    const method = objectOrNull(item);
    if (method === null) {
      continue;
    }
    const ms = parseTimestampMs(method.timestamp);
    if (ms !== null && (latestMs === null || ms > latestMs)) {
      latestMs = ms;
    }
    methods.push({
      name: stringOrNull(method.name),
      timestamp: ms === null ? null : toIso(ms),
    });
  }
  return { methods, latestMs };
}

/** Read the identifying fields of a login, each null when the event lacks it. */
function readIdentity(event) {
  const safeEvent = objectOrNull(event) || {};
  const transaction = objectOrNull(safeEvent.transaction);
  const session = objectOrNull(safeEvent.session);
  const user = objectOrNull(safeEvent.user);
  const client = objectOrNull(safeEvent.client);
  const tenant = objectOrNull(safeEvent.tenant);
  const { latestMs } = readAuthenticationMethods(safeEvent);
  return {
    kind: classifyKind(safeEvent),
    tenant: tenant ? stringOrNull(tenant.id) : null,
    transactionId: transaction ? stringOrNull(transaction.id) : null,
    sessionId: session ? stringOrNull(session.id) : null,
    userId: user ? stringOrNull(user.user_id) : null,
    clientId: client ? stringOrNull(client.client_id) : null,
    protocol: transaction ? stringOrNull(transaction.protocol) : null,
    authenticatedAt: latestMs === null ? null : toIso(latestMs),
  };
}

/**
 * Build the JSON body that is pushed, with a fixed key order so that the
 * Python port in `app/demo/action.py` produces the same bytes.
 *
 * `timestamp` is `now`, the moment the Action ran, because that is when Auth0
 * records the login in its tenant log. The authentication methods can be much
 * older: SSO, silent authentication and refresh-token exchanges reuse the
 * methods of an earlier login.
 */
function buildLoginEvent(event, { now } = {}) {
  const safeEvent = objectOrNull(event) || {};
  const nowMs = parseTimestampMs(now);
  const sentAt = toIso(nowMs === null ? Date.now() : nowMs);
  const kind = classifyKind(safeEvent);
  const identity = readIdentity(safeEvent);
  const { methods } = readAuthenticationMethods(safeEvent);
  const client = objectOrNull(safeEvent.client) || {};
  const connection = objectOrNull(safeEvent.connection) || {};
  const request = objectOrNull(safeEvent.request) || {};
  const stats = objectOrNull(safeEvent.stats) || {};
  const loginsCount = Number.isSafeInteger(stats.logins_count) ? stats.logins_count : null;

  return {
    type: kind,
    timestamp: sentAt,
    data: {
      kind,
      user_id: identity.userId,
      client_id: identity.clientId,
      client_name: stringOrNull(client.name),
      connection: stringOrNull(connection.name),
      connection_id: stringOrNull(connection.id),
      strategy: stringOrNull(connection.strategy),
      ip: stringOrNull(request.ip),
      user_agent: stringOrNull(request.user_agent),
      transaction_id: identity.transactionId,
      session_id: identity.sessionId,
      logins_count: loginsCount,
      protocol: identity.protocol,
      prompt: readPrompt(safeEvent),
      authentication_methods: methods,
      authenticated_at: identity.authenticatedAt,
      tenant: identity.tenant,
    },
  };
}

/** Serialize the body once; the signature covers exactly these bytes. */
function serializeLoginEvent(body) {
  return JSON.stringify(body);
}

/**
 * Derive the `webhook-id` (the ledger's idempotency key) from the login.
 *
 * A login that has a stable identity gets
 *   `login_` + the first 56 hex characters of SHA-256 over the UTF-8 JSON array
 *   [version tag, tenant, "transaction" | "session" | "authentication",
 *    transaction id | session id | null, user id, client id, protocol,
 *    latest authentication method time (ISO 8601 UTC) or null]
 * so that sending the same login again yields the same id, which the ledger
 * stores once. The JSON array keeps the fields unambiguous.
 *
 * The stable identity is, in this order:
 * - the transaction id, which Auth0 sets for every browser-based login;
 * - else, for `login` and `password_grant` only, the session id or the
 *   latest authentication method time (these flows authenticate the user in
 *   this execution, so that time belongs to this login).
 * `refresh` and `silent_login` without a transaction id reuse the session id
 * and the methods of an earlier login, so a derived id would be shared by
 * several of them. They get a random id instead, as does any login with none
 * of the fields. A random id means a resend of that login is stored twice.
 */
function deriveWebhookId(event, { randomBytes = crypto.randomBytes } = {}) {
  const identity = readIdentity(event);
  let anchorType = null;
  let anchorValue = null;
  if (identity.transactionId !== null) {
    anchorType = 'transaction';
    anchorValue = identity.transactionId;
  } else if (identity.kind === KIND_LOGIN || identity.kind === KIND_PASSWORD_GRANT) {
    if (identity.sessionId !== null) {
      anchorType = 'session';
      anchorValue = identity.sessionId;
    } else if (identity.authenticatedAt !== null) {
      anchorType = 'authentication';
    }
  }
  if (anchorType === null) {
    return ID_PREFIX + randomBytes(ID_DIGEST_HEX_CHARS / 2).toString('hex');
  }
  const material = JSON.stringify([
    ID_DERIVATION_VERSION,
    identity.tenant,
    anchorType,
    anchorValue,
    identity.userId,
    identity.clientId,
    identity.protocol,
    identity.authenticatedAt,
  ]);
  const digest = crypto.createHash('sha256').update(material, 'utf8').digest('hex');
  return ID_PREFIX + digest.slice(0, ID_DIGEST_HEX_CHARS);
}

/**
 * Decode a Standard Webhooks secret: strip an optional `whsec_` prefix and
 * base64-decode the rest. Missing `=` padding is accepted.
 */
function decodeSecret(secret) {
  const text = typeof secret === 'string' ? secret.trim() : '';
  const encoded = text.startsWith('whsec_') ? text.slice('whsec_'.length) : text;
  return Buffer.from(encoded, 'base64');
}

/**
 * Sign one delivery as Standard Webhooks v1: base64 HMAC-SHA256 over
 * `{webhookId}.{timestamp}.{body}` with the decoded secret. Returns the
 * `webhook-signature` header value, `v1,<base64>`.
 */
function signDelivery({ secret, webhookId, timestamp, body }) {
  const key = decodeSecret(secret);
  if (key.length === 0) {
    throw new Error('the webhook secret is empty after removing the whsec_ prefix');
  }
  const hmac = crypto.createHmac('sha256', key);
  hmac.update(`${webhookId}.${timestamp}.`, 'utf8');
  hmac.update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  return `v1,${hmac.digest('base64')}`;
}

/** Return the `webhook-timestamp` value, whole unix seconds, for epoch ms `nowMs`. */
function webhookTimestamp(nowMs) {
  return Math.floor(nowMs / 1000);
}

/** Return the budget in ms from the HOOKLEDGER_TIMEOUT_MS secret, clamped to 100..10000. */
function resolveBudgetMs(rawValue) {
  const parsed = typeof rawValue === 'number' ? rawValue : Number.parseInt(String(rawValue), 10);
  if (rawValue === undefined || rawValue === null || rawValue === '' || !Number.isFinite(parsed)) {
    return DEFAULT_TIMEOUT_MS;
  }
  return Math.min(MAX_TIMEOUT_MS, Math.max(MIN_TIMEOUT_MS, Math.trunc(parsed)));
}

/** Parse Retry-After (delay seconds or HTTP date) into ms from `nowMs`, or null. */
function parseRetryAfterMs(headerValue, nowMs) {
  if (typeof headerValue !== 'string' || headerValue.trim() === '') {
    return null;
  }
  const text = headerValue.trim();
  if (/^\d+$/.test(text)) {
    return Number.parseInt(text, 10) * 1000;
  }
  const dateMs = Date.parse(text);
  return Number.isFinite(dateMs) ? Math.max(0, dateMs - nowMs) : null;
}

function isRetryableStatus(status) {
  return status === 429 || status >= 500;
}

/** Resolve after `ms`, or at once when `signal` aborts. Never rejects. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Read the `status` member of a JSON response body, or null. */
async function readResultStatus(response) {
  try {
    const parsed = JSON.parse(await response.text());
    return parsed && typeof parsed.status === 'string' ? parsed.status.slice(0, 32) : null;
  } catch {
    return null;
  }
}

async function discardBody(response) {
  try {
    if (response.body) {
      await response.body.cancel();
    }
  } catch {
    // The connection is going away either way.
  }
}

/** Describe an error for the log line: its name and code, never its full message. */
function describeError(error) {
  if (error === null || typeof error !== 'object') {
    return 'error';
  }
  const cause = objectOrNull(error.cause);
  const code = (cause && cause.code) || error.code;
  return code ? `${error.name}/${code}` : String(error.name || 'error');
}

/**
 * Send the signed body, retrying once on a network error, 429 or 5xx when
 * the rest of the budget allows, and return an outcome for the log line.
 * One abort signal bounds all attempts and waits together.
 */
async function deliver({ url, secret, webhookId, bodyText, budgetMs, fetchImpl, now, signal }) {
  // The budget runs on the monotonic clock, and `now` only dates the signature.
  const deadlineMs = performance.now() + budgetMs;
  let attempts = 0;
  let lastProblem = null;

  while (attempts < 2) {
    attempts += 1;
    const timestamp = webhookTimestamp(now());
    const headers = {
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'webhook-id': webhookId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signDelivery({ secret, webhookId, timestamp, body: bodyText }),
    };
    let retryDelayMs = DEFAULT_RETRY_DELAY_MS;
    try {
      const response = await fetchImpl(url, { method: 'POST', headers, body: bodyText, signal });
      if (response.status >= 200 && response.status < 300) {
        const result = await readResultStatus(response);
        return { ok: true, attempts, status: response.status, result };
      }
      await discardBody(response);
      lastProblem = `status=${response.status}`;
      if (!isRetryableStatus(response.status)) {
        return { ok: false, attempts, problem: lastProblem };
      }
      const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'), now());
      if (retryAfterMs !== null) {
        retryDelayMs = retryAfterMs;
      }
    } catch (error) {
      lastProblem = signal.aborted ? 'timed_out' : `network_error=${describeError(error)}`;
      if (signal.aborted) {
        return { ok: false, attempts, problem: lastProblem };
      }
    }
    if (attempts >= 2) {
      break;
    }
    const remainingMs = deadlineMs - performance.now();
    if (remainingMs - retryDelayMs < MIN_ATTEMPT_MS) {
      return { ok: false, attempts, problem: `${lastProblem} no_budget_for_retry` };
    }
    await sleep(retryDelayMs, signal);
    if (signal.aborted) {
      return { ok: false, attempts, problem: `${lastProblem} timed_out` };
    }
  }
  return { ok: false, attempts, problem: lastProblem };
}

/**
 * Build, sign and push the login event. Resolves to the log line it wrote;
 * never rejects. `options` replaces the outside world in tests: `fetch`,
 * `now` (returns epoch ms), `randomBytes` and `log`.
 */
async function pushLoginEvent(event, options = {}) {
  const log = options.log || ((line) => console.log(line));
  const fetchImpl = options.fetch || globalThis.fetch;
  const now = options.now || Date.now;
  let line;
  try {
    line = await pushOrDescribe(event, { fetchImpl, now, randomBytes: options.randomBytes });
  } catch (error) {
    line = `hookledger push failed: unexpected ${describeError(error)}`;
  }
  try {
    log(line);
  } catch {
    // Logging must not fail the login either.
  }
  return line;
}

async function pushOrDescribe(event, { fetchImpl, now, randomBytes }) {
  const secrets = objectOrNull(objectOrNull(event) && event.secrets) || {};
  const url = stringOrNull(secrets.HOOKLEDGER_URL);
  const secret = stringOrNull(secrets.HOOKLEDGER_SECRET);
  if (url === null || secret === null) {
    return 'hookledger push skipped: secret HOOKLEDGER_URL or HOOKLEDGER_SECRET is missing';
  }
  if (decodeSecret(secret).length === 0) {
    return 'hookledger push skipped: secret HOOKLEDGER_SECRET decodes to an empty key';
  }
  if (typeof fetchImpl !== 'function') {
    return 'hookledger push skipped: this runtime has no global fetch';
  }
  const budgetMs = resolveBudgetMs(secrets.HOOKLEDGER_TIMEOUT_MS);
  const signal = AbortSignal.timeout(budgetMs);
  const body = buildLoginEvent(event, { now: now() });
  const bodyText = serializeLoginEvent(body);
  const webhookId = deriveWebhookId(event, randomBytes ? { randomBytes } : {});
  const outcome = await deliver({
    url, secret, webhookId, bodyText, budgetMs, fetchImpl, now, signal,
  });
  const summary = `id=${webhookId} kind=${body.type} attempts=${outcome.attempts}`;
  if (outcome.ok) {
    return `hookledger push sent: ${summary} status=${outcome.status} result=${outcome.result}`;
  }
  return `hookledger push failed: ${summary} ${outcome.problem} budget_ms=${budgetMs}`;
}

/**
 * Auth0 post-login entry point. Resolves once the push finished or its
 * budget ran out. The login goes on whatever happens to the push.
 */
exports.onExecutePostLogin = async (event, api) => {
  await pushLoginEvent(event);
};

exports.buildLoginEvent = buildLoginEvent;
exports.serializeLoginEvent = serializeLoginEvent;
exports.deriveWebhookId = deriveWebhookId;
exports.signDelivery = signDelivery;
exports.webhookTimestamp = webhookTimestamp;
exports.decodeSecret = decodeSecret;
exports.classifyKind = classifyKind;
exports.resolveBudgetMs = resolveBudgetMs;
exports.parseRetryAfterMs = parseRetryAfterMs;
exports.pushLoginEvent = pushLoginEvent;
