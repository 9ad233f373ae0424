{#-
    The quote contract's rules in SQL. stockpipe/quote_spec.py declares them;
    tests/unit/test_quote_spec.py holds these macros to it on generated bars.
-#}

{#- A UTC timestamp (TIMESTAMP_NTZ) as the exchange's wall-clock time. -#}
{% macro exchange_time(column) -%}
    convert_timezone('UTC', '{{ var("exchange_time_zone") }}', {{ column }})
{%- endmacro %}

{#- The exchange's calendar date of a UTC timestamp: a bar's session date. -#}
{% macro exchange_date(column) -%}
    to_date({{ exchange_time(column) }})
{%- endmacro %}

{#-
    The OHLCV rules a bar keeps (quote_spec.OHLCV_RULES): prices > 0, 0 <= volume < 2^53
    (FLOAT holds whole numbers exactly below it), high >= low, open and close inside
    [low, high].
-#}
{% macro valid_ohlcv() -%}
    open > 0 and high > 0 and low > 0 and close > 0
    and volume >= 0 and volume < 9007199254740992
    and high >= low
    and high >= greatest(open, close)
    and low <= least(open, close)
{%- endmacro %}
