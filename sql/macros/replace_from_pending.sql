{#- Incremental strategy "replace_from_pending": in one transaction, delete the target's
    rows of each symbol in the load log's pending entries from that symbol's first pending
    session on, then insert the model's rows (which the model computes for exactly those
    symbols and sessions). Bars removed from RAW disappear with the delete; bars that
    arrived late are in the insert. Rebuilding a symbol's sessions is idempotent, so an
    entry taken in twice (a build that stopped before deleting it) does no harm. -#}
{% macro get_incremental_replace_from_pending_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    begin;
    delete from {{ target }} as target_rows
    using {{ ref("pending_symbols") }} as pending
    where target_rows.symbol = pending.symbol
      and target_rows.session_date >= pending.first_session;
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
    commit;
{% endmacro %}
