{#- An incremental model's temporary table without database and schema.

    dbt-snowflake names them <database>.<schema>.<model>__dbt_tmp. A temporary table lives
    in the session and Snowflake creates an unqualified one in the session's current schema,
    which the profile sets, so leaving the qualification out changes nothing there; the
    embedded warehouse (fakesnow) refuses database-qualified temporary tables ("TEMPORARY
    table names can *only* use the temp catalog"). -#}
{% macro snowflake__resolve_incremental_tmp_relation(tmp_relation) %}
    {{ return(tmp_relation.include(database=false, schema=false)) }}
{% endmacro %}
