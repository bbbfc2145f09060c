"""One raw record -> its dataset and ECS document, through the real parsers.

Rule evidence and tests give events as they arrive (a syslog line, a CloudTrail record); this runs
them through exactly the code path `soc ingest` uses (`LogParser.parse` on a file), so a rule is
tested against what the collectors really produce, redaction and field mapping included.

    dataset, doc = parse_raw("syslog", "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root ...",
                             tenant="council", year=2026)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from citysoc.deadletter import DeadLetter
from collectors.base import ParserOptions, get_parser, parser_names
from collectors.errors import UnknownParserError, UnparsableRecordError

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
    data = _raw_bytes(parser_class.name, raw)
    with tempfile.TemporaryDirectory(prefix="citysoc-raw-") as folder:
        path = Path(folder) / "record"
        path.write_bytes(data)
        items = list(parser.parse(path, tenant=tenant, source=parser_class.name))
    letters = [item for item in items if isinstance(item, DeadLetter)]
    if letters:
        raise UnparsableRecordError(f"the {parser_class.name} collector refuses it: {letters[0].reason}")
    if len(items) != 1:
        raise UnparsableRecordError(f"expected one {parser_class.name} event, the record holds {len(items)}")
    event = items[0]
    assert not isinstance(event, DeadLetter)
    doc = dict(event.doc)
    log = doc.get("log")
    if isinstance(log, dict):
        log.pop("file", None)  # the scratch file's name means nothing to the caller
    return event.dataset, doc
