"""The parser extension point: a small ABC with one hook, and a name -> class registry.

A parser turns one file into ECS documents (`ParsedEvent`) and dead letters, never raising for bad
content: every record either becomes an event or a `DeadLetter` that says why and where.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from citysoc.deadletter import DeadLetter
from collectors.errors import UnknownParserError


class ParsedEvent(NamedTuple):
    """One normalised event: the dataset it belongs to and its nested ECS document."""

    dataset: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class ParserOptions:
    """Settings a parser may need; each parser reads only those that concern it.

    `year` / `reference` fix the year of timestamps that carry none (syslog); `tz` is the zone of
    timestamps that carry none (UTC when not given).
    """

    year: int | None = None
    reference: datetime | None = None
    tz: tzinfo = UTC
    now: datetime | None = field(default=None, compare=False)

    def ingested(self) -> datetime:
        """`event.ingested`: the fixed `now` when given (reproducible tests), else the current UTC time."""
        return self.now or datetime.now(UTC)


class LogParser(ABC):
    """Parses files of one source kind into ECS events."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    datasets: ClassVar[tuple[str, ...]]

    def __init__(self, options: ParserOptions | None = None) -> None:
        self.options = options or ParserOptions()
        self.skipped = 0  # records left out on purpose (blank lines), counted rather than dead-lettered

    @abstractmethod
    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        """Yield one `ParsedEvent` or `DeadLetter` per record of the file; never raise for bad content."""


_REGISTRY: dict[str, type[LogParser]] = {}


def register_parser(cls: type[LogParser]) -> type[LogParser]:
    """Class decorator: make a parser selectable by its `name` (and aliases) as a `--source`."""
    for key in (cls.name, *cls.aliases):
        _REGISTRY[key] = cls
    return cls


def get_parser(name: str) -> type[LogParser]:
    """The parser class registered under `name`, or an error listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownParserError(name, _REGISTRY) from None


def parser_names() -> list[str]:
    """Every name and alias a parser is registered under."""
    return sorted(_REGISTRY)
