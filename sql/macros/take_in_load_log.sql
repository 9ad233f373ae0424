{#- on-run-end: delete the load-log entries this build took in (its pending_loads
    snapshot), only when every model and test of the build succeeded. Until then they stay,
    and the next build rebuilds what they name again: a build that stopped half way never
    loses a commit, and an empty log means the marts are complete. -#}
{% macro take_in_load_log(results) %}
    {#- Outside the conditions below: dbt resolves refs at parse time, when nothing runs. -#}
    {%- set load_log = source("raw", "load_log") -%}
    {%- set pending_loads = ref("pending_loads") -%}
    {%- if not execute -%}
        {{ return("") }}
    {%- endif -%}
    {%- set failed = results | selectattr("status", "in", ["error", "fail", "skipped"]) | list -%}
    {%- set built = results | selectattr("node.name", "equalto", "pending_loads") | list -%}
    {%- if failed or not built -%}
        {{ return("") }}
    {%- endif -%}
    delete from {{ load_log }}
    where load_id in (select load_id from {{ pending_loads }})
{% endmacro %}
