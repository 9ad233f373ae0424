-- The set-up's own record: the checksum of each file of sql/setup/ as it last ran. Every
-- runtime process compares it with the files of its version and refuses to start when they
-- differ (stockpipe.warehouse.setup.require_setup). Files that ran before this table
-- existed (the account files above) are recorded as soon as it does.
create table if not exists RAW.SQL_APPLIED (
    file_name   varchar(255)  not null,
    checksum    varchar(64)   not null,
    applied_at  timestamp_ntz not null  -- UTC
);
