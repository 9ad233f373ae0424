{#- What an incremental build reads of RAW, as literals: the pending symbols, from the day
    before their earliest pending session on (UTC; a New York session starts after 13:00
    UTC of its date). Literals on the columns RAW is kept in order of let the warehouse
    prune RAW, and let DuckDB push the filter below valid_bars' window; a join on
    pending_symbols would not, and would deduplicate all of RAW first. The join on
    pending_symbols then picks each symbol's own first session. -#}
{% macro pending_bars_filter(relation) %}
    {%- if not execute -%}
        {{ return("true") }}
    {%- endif -%}
    {%- set pending = run_query(
        "select symbol, first_session from " ~ ref("pending_symbols")
    ) -%}
    {%- if pending.rows | length == 0 -%}
        {{ return("false") }}
    {%- endif -%}
    {%- set symbols = [] -%}
    {%- for symbol in pending.columns[0].values() -%}
        {%- do symbols.append("'" ~ symbol | replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {%- set earliest = pending.columns[1].values() | min -%}
    {{ return(
        relation ~ ".symbol in (" ~ symbols | join(", ") ~ ") and "
        ~ relation ~ ".ts >= dateadd('day', -1, '" ~ earliest ~ "'::timestamp_ntz)"
    ) }}
{% endmacro %}

{#- The first session MARTS.MINUTE_BARS keeps: `minute_bars_days` calendar days before the
    newest session in daily_bars, as a literal (same reason as above). -#}
{% macro minute_bars_first_session() %}
    {%- if not execute -%}
        {{ return("'1970-01-01'::date") }}
    {%- endif -%}
    {%- set newest = run_query("select max(session_date) from " ~ ref("daily_bars")) -%}
    {%- set last = newest.columns[0].values()[0] -%}
    {%- if last is none -%}
        {{ return("'1970-01-01'::date") }}
    {%- endif -%}
    {{ return(
        "dateadd('day', -" ~ var("minute_bars_days") ~ ", '" ~ last ~ "'::date)"
    ) }}
{% endmacro %}
