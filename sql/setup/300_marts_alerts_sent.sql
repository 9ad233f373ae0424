-- Alerts already published to the stock_alerts topic: one row per (symbol, session, rule),
-- so a condition is announced once per symbol and session however often trends run.
create table if not exists MARTS.ALERTS_SENT (
    symbol        varchar(15)   not null,
    session_date  date          not null,
    rule          varchar(64)   not null,
    message       varchar(1000) not null,
    sent_at       timestamp_ntz not null
);
