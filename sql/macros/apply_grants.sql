{#- Grants from the models' grants config (READER's select, dbt_project.yml) on Snowflake;
    the embedded warehouse has no roles, so nothing to grant there. -#}
{% macro snowflake__apply_grants(relation, grant_config, should_revoke=True) %}
    {% if target.name != "embedded" %}
        {{ default__apply_grants(relation, grant_config, should_revoke) }}
    {% endif %}
{% endmacro %}
