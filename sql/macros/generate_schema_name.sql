{#- Models land in the schema they name (STAGING, MARTS), not in "<target schema>_<name>":
    the schemas are fixed by the set-up and the grants. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim | upper }}
{%- endmacro %}
