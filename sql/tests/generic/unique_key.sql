{#- No two rows share the values of `columns` (a model's key). -#}
{% test unique_key(model, columns) %}
    select
        {{ columns | join(", ") }},
        count(*) as rows_with_key
    from {{ model }}
    group by {{ columns | join(", ") }}
    having count(*) > 1
{% endtest %}
