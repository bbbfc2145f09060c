"""One raw record -> its dataset and ECS document, through the real parsers.

Rule evidence and tests give events as they arrive (a syslog line, a CloudTrail record); this runs
them through exactly the code path intake and `soc ingest` use (`LogParser.parse_records`), so a rule is
tested against what the collectors really produce, redaction and field mapping included.

    dataset, doc = parse_raw("syslog", "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root ...",
                             tenant="council", year=2026)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from collectors.base import ParserOptions, get_parser, parser_names
from collectors.columns import table_docs
from collectors.errors import UnknownParserError, UnparsableRecordError
from collectors.records import RawRecord

# A dataset names the parser that produces it, so evidence may say either.
DATASET_PARSERS: dict[str, str] = {
    "system.auth": "syslog",
    "system.syslog": "syslog",
    "aws.cloudtrail": "aws.cloudtrail",
}
# Fixed reference time for year-less syslog lines when no year is given (reproducible results).
DEFAULT_REFERENCE = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


def parser_name_for(source_or_dataset: str) -> str:
    """The registered parser name for a source kind (`syslog`, `cloudtrail`) or a dataset it writes."""
    name = DATASET_PARSERS.get(source_or_dataset, source_or_dataset)
    try:
        return get_parser(name).name
    except UnknownParserError:
        writers = sorted({get_parser(n).name for n in parser_names() if name in get_parser(n).datasets})
        if len(writers) == 1:
            return writers[0]
        raise


def _raw_bytes(parser: str, raw: Any) -> bytes:
    if parser == "syslog":
        if not isinstance(raw, str):
            raise UnparsableRecordError(f"a syslog event is one line of text, not {type(raw).__name__}")
        if "\n" in raw.strip():
            raise UnparsableRecordError("a syslog event is one line: give several events as several entries")
        return raw.strip().encode("utf-8")
    if isinstance(raw, str):
        return raw.encode("utf-8")  # JSON text, parsed by the collector as it would parse a file
    if isinstance(raw, Mapping):
        return orjson.dumps(dict(raw), default=str)
    raise UnparsableRecordError(f"a {parser} event is one JSON object, not {type(raw).__name__}")


def parse_raw(source_or_dataset: str, raw: Any, *, tenant: str, year: int | None = None,
              now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """Parse one raw record as `soc ingest` would: returns (dataset, nested ECS document).

    `source_or_dataset` is a parser name or alias (`syslog`, `aws.cloudtrail`, `cloudtrail`) or a
    dataset (`system.auth`). Raises `UnparsableRecordError` with the collector's reason when the
    record would be dead-lettered, and when it holds more or less than one event.
    """
    parser_class = get_parser(parser_name_for(source_or_dataset))
    options = ParserOptions(year=year, reference=DEFAULT_REFERENCE, now=now or DEFAULT_REFERENCE)
    parser = parser_class(options)
    record = RawRecord(_raw_bytes(parser_class.name, raw), "record", options.ingested())
    batch = parser.parse_records([record], tenant=tenant, source=parser_class.name)
    if batch.dead:
        raise UnparsableRecordError(f"the {parser_class.name} collector refuses it: {batch.dead[0].reason}")
    events = [(dataset, doc) for dataset, table in batch.tables.items() for doc in table_docs(table)]
    if len(events) != 1:
        raise UnparsableRecordError(f"expected one {parser_class.name} event, the record holds {len(events)}")
    return events[0]
