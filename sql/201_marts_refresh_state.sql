-- How far the materialised marts have been refreshed: the newest RAW.loaded_at taken in.
create table if not exists MARTS.REFRESH_STATE (
    mart          varchar(64)   not null,
    watermark     timestamp_ntz,
    refreshed_at  timestamp_ntz not null
);
