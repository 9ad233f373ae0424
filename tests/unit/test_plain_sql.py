"""The Snowflake test server's reading of a statement (tests/snowflake/privileges.py): comments
go, string literals stay whole, "--" in them included (a Kafka cluster id may hold it: the
privilege check once parsed an offsets UPDATE cut off inside its cluster id)."""

from tests.snowflake.privileges import plain_sql


def test_comments_go_and_literals_with_dashes_stay_whole() -> None:
    sql = (
        "update RAW.KAFKA_OFFSETS set cluster_id = 'F-X4gjpu--V2Y97l' -- a comment\n"
        "/* dbt's\ncomment */ where note = 'it''s -- kept' and raw = 'a\\'--b'"
    )
    assert plain_sql(sql) == (
        "update RAW.KAFKA_OFFSETS set cluster_id = 'F-X4gjpu--V2Y97l' "
        "where note = 'it''s -- kept' and raw = 'a\\'--b'"
    )
