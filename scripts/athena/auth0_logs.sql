-- Athena table over the Auth0 log stream as Firehose lands it from EventBridge:
-- s3://<bucket>/auth0-logs/dt=YYYY-MM-DD/*.gz, one EventBridge envelope per line.
-- dt is the UTC arrival date that Firehose puts in the prefix, not the event's date.
-- The columns must stay equal to AUTH0_EVENTBRIDGE_COLUMNS in app/reconciliation/mappings.py;
-- a test compares them. "detail-type" is not declared: Hive column names cannot contain "-".
CREATE EXTERNAL TABLE IF NOT EXISTS `hookledger`.`auth0_logs` (
  `version` string,
  `id` string,
  `source` string,
  `account` string,
  `time` string,
  `region` string,
  `detail` struct<
    log_id:string,
    data:struct<
      `date`:string,
      type:string,
      description:string,
      connection:string,
      connection_id:string,
      client_id:string,
      client_name:string,
      ip:string,
      user_agent:string,
      hostname:string,
      user_id:string,
      user_name:string,
      strategy:string,
      strategy_type:string,
      audience:string,
      organization_id:string,
      organization_name:string,
      tenant_name:string,
      environment_name:string,
      log_id:string,
      details:struct<
        session_id:string,
        transaction_id:string
      >
    >
  >
)
PARTITIONED BY (`dt` string)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://<bucket>/auth0-logs/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2024-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://<bucket>/auth0-logs/dt=${dt}/'
);
