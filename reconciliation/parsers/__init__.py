"""Reading provider exports: pure and streaming. No database, no Django, never a float.

`provider_file_open(stream, source=None)` reads the head of a binary file, tells its format (CSV or a JSON page) and
its source (from the header, or the one named), and returns a ProviderFile whose `rows` yield, in file order, one
typed row per record: BucketRow (an aggregate: day x model x project), RequestRow (one gateway request),
EmptyBucket (a bucket with only its time columns: skipped and counted) or RowError (a record that cannot be read,
with its line number and why). Only a file that cannot be read at all raises, as UnreadableFile; once the rows
start, nothing in the file makes them raise.

Files are read as they come: UTF-8 with or without a BOM, CRLF or LF, numbers written `10.0` or
`0.8958740000000000` (read as Decimal from the text), columns in any order, unknown columns ignored. CSV is read with
the csv module over a text wrapper (`newline=""`); a JSON page with `json.load(parse_float=Decimal)`.

The package's modules: `rows` (the row types, sources and token-type parts), `opening` (bytes in, format and
source), `csv_files`, `json_pages` (one typed row per record) and `values` (one value of a record).
"""

from reconciliation.parsers.csv_files import source_detect
from reconciliation.parsers.opening import provider_file_open
from reconciliation.parsers.rows import (
    ANTHROPIC_COSTS,
    BUCKET_SOURCES,
    CACHE_WRITE,
    CACHE_WRITE_1H,
    CACHED_INPUT,
    INPUT,
    OPENAI_COSTS,
    OPENAI_USAGE,
    OUTPUT,
    REQUESTS,
    SOURCE_PROVIDER,
    SOURCES,
    BinaryReadable,
    BucketRow,
    EmptyBucket,
    ParsedRow,
    ProviderFile,
    RequestRow,
    RowError,
    UnreadableFile,
)
from reconciliation.parsers.values import count_read, decimal_read, line_item_split, time_read, undated_model_name

__all__ = [
    "ANTHROPIC_COSTS", "BUCKET_SOURCES", "CACHED_INPUT", "CACHE_WRITE", "CACHE_WRITE_1H", "INPUT", "OPENAI_COSTS",
    "OPENAI_USAGE", "OUTPUT", "REQUESTS", "SOURCES", "SOURCE_PROVIDER", "BinaryReadable", "BucketRow", "EmptyBucket",
    "ParsedRow", "ProviderFile", "RequestRow", "RowError", "UnreadableFile", "count_read", "decimal_read",
    "line_item_split", "provider_file_open", "source_detect", "time_read", "undated_model_name",
]  # fmt: skip
