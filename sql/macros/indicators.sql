{#- The indicators read at minute grain, defined once for the marts (minute_bars,
    daily_bars) and the live tier's views (models/live).

    typical_price: (high + low + close) / 3.
    vwap: sum(typical_price * volume) / sum(volume); NULL when the volume is 0. With `over`
        (a window clause) a running VWAP, without it an aggregate.
    minute_moving_averages: ma5 / ma20, the mean of the last 5 / 20 closes including this
        one, over bars (rows) not clock time; NULL until the window is full. -#}
{% macro typical_price() -%}
    (high + low + close) / 3
{%- endmacro %}

{% macro vwap(over="") -%}
    sum({{ typical_price() }} * volume) {{ over }} / nullif(sum(volume) {{ over }}, 0)
{%- endmacro %}

{% macro minute_moving_averages() -%}
    {{ full_window("avg", "close", 5, "ts") }} as ma5,
    {{ full_window("avg", "close", 20, "ts") }} as ma20
{%- endmacro %}
