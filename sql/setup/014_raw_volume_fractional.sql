-- Contract version 2: a bar's volume may be fractional (fractional-share prints, crypto
-- trades), so VOLUME becomes FLOAT (a double: whole volumes exact below 2**53) in tables
-- created as BIGINT before it (010 and 012 now create FLOAT). Snowflake cannot change a
-- NUMBER column's scale or make it FLOAT in place: a new column takes the values and the
-- name; the tables keep their grants. Re-running it converts again, changing nothing.
-- The column is nullable afterwards (SET NOT NULL is not portable to the embedded
-- warehouse); the drain never writes a NULL volume and validation checks it.
alter table RAW.STOCK_PRICES add column if not exists volume_v2 float;
update RAW.STOCK_PRICES set volume_v2 = volume;
alter table RAW.STOCK_PRICES drop column volume;
alter table RAW.STOCK_PRICES rename column volume_v2 to volume;
alter table RAW.STOCK_PRICES_BATCH add column if not exists volume_v2 float;
update RAW.STOCK_PRICES_BATCH set volume_v2 = volume;
alter table RAW.STOCK_PRICES_BATCH drop column volume;
alter table RAW.STOCK_PRICES_BATCH rename column volume_v2 to volume;
