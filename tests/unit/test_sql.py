"""The set-up SQL as Snowflake reads it: views list their columns."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from stockpipe.settings import load_settings
from stockpipe.warehouse.setup import read_sql_dir, setup_variables


def test_no_view_ends_in_a_top_level_select_star() -> None:
    # Snowflake fixes a view's column list when the view is created: a `select *` at the
    # top would break the view as soon as the table under it gains a column.
    views = 0
    for sql_file in read_sql_dir(setup_variables(load_settings())):
        for statement in sql_file.statements:
            created = sqlglot.parse_one(statement, read="snowflake")
            if not (isinstance(created, exp.Create) and created.kind == "VIEW"):
                continue
            views += 1
            query = created.expression
            assert isinstance(query, exp.Select), sql_file.name
            starred = [e for e in query.expressions if isinstance(e, exp.Star)]
            assert not starred, f"{sql_file.name}: the view's final select has *"
    assert views >= 9
