-- Load the raw zone's Parquet files into Snowflake with COPY INTO from an external stage.
-- Not applied by `stockpipe sql apply` (the embedded warehouse has no external stages):
-- run it yourself, e.g. `snowsql -f sql/snowflake/raw_zone_copy_into.sql`, after replacing
-- the bucket, prefix and storage integration with yours.
--
-- Use: rebuild or backfill RAW from the lake (the drain already loads every batch it
-- writes). COPY INTO remembers which files it loaded (64 days of load metadata) and the
-- raw zone never writes the same offsets twice, so re-running this loads nothing twice;
-- STAGING.STOCK_PRICES keeps the latest fetch per bar in any case.
create stage if not exists RAW.RAW_ZONE
    url = 's3://YOUR-BUCKET/raw/stock_prices/'
    storage_integration = YOUR_S3_INTEGRATION
    file_format = (type = parquet);

copy into RAW.STOCK_PRICES
from @RAW.RAW_ZONE
pattern = '.*/stock_prices-p[0-9]+-[0-9]+-[0-9]+[.]parquet'
file_format = (type = parquet)
match_by_column_name = case_insensitive
on_error = abort_statement;
