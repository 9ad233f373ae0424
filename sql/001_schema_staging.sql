-- STAGING: RAW cleaned up (deduplicated, invalid rows out, spikes flagged). Views only.
create schema if not exists STAGING;
