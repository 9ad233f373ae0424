-- MARTS: what people look at (minute and daily bars, indicators, movers), built by the dbt
-- project in sql/models; ALERTS_SENT (below) is state, and set-up's.
create schema if not exists MARTS;
