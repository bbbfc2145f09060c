"""Errors the collectors raise on purpose. Each carries where the problem is and reads like advice."""

from __future__ import annotations

from collections.abc import Iterable

from citysoc.errors import CitySocError


class CollectorError(CitySocError):
    """Root of every collector error; `where` names the file (and line or record) at fault."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


class UnknownParserError(CollectorError):
    """A source kind was asked for that no registered parser handles."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown source kind {name!r}; known parsers: {', '.join(sorted(known))}")
        self.name = name


class InputPathError(CollectorError):
    """A path given to ingest does not exist or cannot be read."""


class UnparsableRecordError(CollectorError):
    """One record or line cannot be normalised; parsers turn it into a dead letter, never let it escape."""
