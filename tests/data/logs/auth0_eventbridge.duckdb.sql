/* Auth0 log records delivered by the Amazon EventBridge log stream, one envelope per line: */
/* {"detail-type": "Auth0 log", "detail": {"log_id": ..., "data": {<log record>}}}. */
/* Parameters, in order: dt_from, dt_to (YYYY-MM-DD arrival partitions), start, end */
/* (ISO 8601 window bounds in UTC). Athena (Trino) dialect; DuckDB runs it after sqlglot */
/* transpiles it. */
WITH mapped AS (
  SELECT
    detail.log_id AS log_id,
    CASE detail.data.type
      WHEN 's'
      THEN 'login'
      WHEN 'ssa'
      THEN 'silent_login'
      WHEN 'sertft'
      THEN 'refresh'
      WHEN 'sepft'
      THEN 'password_grant'
      WHEN 'ss'
      THEN 'signup'
    END AS event_type,
    detail.data.user_id AS subject,
    CAST(detail.data."date" AS TIMESTAMPTZ) AS occurred_at,
    CAST(NULL AS TEXT) AS idempotency_key,
    detail.data.details.transaction_id AS transaction_id,
    detail.data.details.session_id AS session_id,
    detail.data.client_id AS client_id,
    CAST(TO_JSON(CAST(detail.data AS JSON)) AS TEXT) AS payload,
    dt
  FROM log_table
  WHERE
    dt BETWEEN ? AND ?
    AND detail.data.type IN ('s', 'ssa', 'sertft', 'sepft', 'ss')
    AND NOT detail.log_id IS NULL
    AND CAST(detail.data."date" AS TIMESTAMPTZ) >= CAST(? AS TIMESTAMPTZ)
    AND CAST(detail.data."date" AS TIMESTAMPTZ) < CAST(? AS TIMESTAMPTZ)
), ranked AS (
  /* The log stream and EventBridge deliver at least once: keep one row per log_id. */
  SELECT
    mapped.*,
    ROW_NUMBER() OVER (PARTITION BY log_id ORDER BY dt, payload) AS copy_number
  FROM mapped
)
SELECT
  log_id,
  event_type,
  subject,
  occurred_at,
  idempotency_key,
  transaction_id,
  session_id,
  client_id,
  payload
FROM ranked
WHERE
  copy_number = 1
ORDER BY
  subject NULLS FIRST,
  occurred_at,
  log_id
