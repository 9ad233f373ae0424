-- MARTS: what people look at (daily bars, indicators, movers).
create schema if not exists MARTS;
