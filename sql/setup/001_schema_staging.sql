-- STAGING: RAW cleaned up (deduplicated, invalid rows out). The dbt project in sql/models
-- builds what is in it; set-up creates the schema so the transformer role needs no
-- privilege on the database.
create schema if not exists STAGING;
