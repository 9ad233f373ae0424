{#- `function`(`column`) over the last `rows` rows of the symbol's series, this one included,
    or NULL while fewer than `rows` values are in the window: no partial figures. Windows
    count rows (sessions, bars), not clock time. The frame is written out: Snowflake has no
    WINDOW clause.

    Args:
        function: an aggregate (avg, max, min, stddev_samp).
        column: what it aggregates; the window's count is of this column's values.
        rows: the window's length.
        order_by: the series' order (ts, session_date); partitioned by symbol. -#}
{% macro full_window(function, column, rows, order_by) -%}
    {%- set frame -%}
        over (
            partition by symbol order by {{ order_by }}
            rows between {{ rows - 1 }} preceding and current row
        )
    {%- endset -%}
    case
        when count({{ column }}) {{ frame }} = {{ rows }}
            then {{ function }}({{ column }}) {{ frame }}
    end
{%- endmacro %}
