/* Stripe events delivered through an Amazon EventBridge partner event source, one envelope */
/* per line: {"detail-type": "<event type>", "detail": {<Stripe event>}}. */
/* Key parity: the event id (evt_...) is both the log id and the idempotency key that the */
/* signed push carried. detail.data.object.customer is a struct path such as detail.data.object.customer. */
/* Parameters, in order: dt_from, dt_to (YYYY-MM-DD arrival partitions), start, end */
/* (ISO 8601 window bounds in UTC). Athena (Trino) dialect. */
WITH mapped AS (
  SELECT
    detail.id AS log_id,
    detail.type AS event_type,
    detail.data.object.customer AS subject,
    TO_TIMESTAMP(detail.created) AS occurred_at,
    detail.id AS idempotency_key,
    CAST(NULL AS TEXT) AS transaction_id,
    CAST(NULL AS TEXT) AS session_id,
    CAST(NULL AS TEXT) AS client_id,
    CAST(TO_JSON(CAST(detail AS JSON)) AS TEXT) AS payload,
    dt
  FROM log_table
  WHERE
    dt BETWEEN ? AND ?
    AND NOT detail.id IS NULL
    AND NOT detail.type IS NULL
    AND TO_TIMESTAMP(detail.created) >= CAST(? AS TIMESTAMPTZ)
    AND TO_TIMESTAMP(detail.created) < CAST(? AS TIMESTAMPTZ)
), ranked AS (
  /* Stripe and EventBridge deliver at least once: keep one row per event id. */
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
