"""The raw row: the columns of ``RAW.STOCK_PRICES`` (``sql/010_raw_stock_prices.sql``) and
their Arrow types. The one definition of that row in Python: the drain builds it, the loader
inserts it, tests and benchmarks write it.
"""

from __future__ import annotations

import pyarrow as pa

# The table's columns, written and read by name (sql/setup/014 moved VOLUME to the table's
# end); TIMESTAMP_NTZ columns hold UTC wall-clock time.
RAW_ARROW_SCHEMA = pa.schema(
    [
        ("SYMBOL", pa.string()),
        ("TS", pa.timestamp("us")),
        ("BAR_INTERVAL", pa.string()),
        ("OPEN", pa.float64()),
        ("HIGH", pa.float64()),
        ("LOW", pa.float64()),
        ("CLOSE", pa.float64()),
        ("VOLUME", pa.float64()),
        ("SOURCE", pa.string()),
        ("FETCHED_AT", pa.timestamp("us")),
        ("SCHEMA_VERSION", pa.int64()),
        ("KAFKA_TOPIC", pa.string()),
        ("KAFKA_PARTITION", pa.int64()),
        ("KAFKA_OFFSET", pa.int64()),
        ("KAFKA_TIMESTAMP", pa.timestamp("ms")),
        ("LOADED_AT", pa.timestamp("us")),
    ]
)
RAW_COLUMNS = tuple(RAW_ARROW_SCHEMA.names)
