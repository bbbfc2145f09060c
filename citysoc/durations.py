"""Durations in documents that members and operators write (SLA targets, retention periods): text such as `15m`,
`4h` or `400d`, or a bare whole number in the unit the field documents; held as a ``timedelta`` and written back as
text in the largest whole unit (:func:`~citysoc.schedule.format_duration`).

A field declares its unit and bounds once, as ``Annotated`` metadata::

    Target = Annotated[timedelta, Duration(number_unit=timedelta(seconds=1), ...), Field(description=...)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from annotated_types import GroupedMetadata
from pydantic import BeforeValidator, PlainSerializer

from citysoc.schedule import format_duration, parse_duration


@dataclass(frozen=True)
class Duration(GroupedMetadata):
    """A duration field: a ``timedelta``, text (:func:`~citysoc.schedule.parse_duration`) or a whole number of
    ``number_unit``, within ``[at_least, at_most]``.

    ``shape_error`` is the advice for a value of any other type (a bool is not a number here), ``bounds_error`` for
    one out of bounds; text that is not a duration gets ``parse_duration``'s own advice.
    """

    number_unit: timedelta
    at_least: timedelta
    at_most: timedelta
    shape_error: str
    bounds_error: str

    def parse(self, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            duration = value
        elif isinstance(value, str):
            duration = parse_duration(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                duration = value * self.number_unit
            except OverflowError:  # past timedelta's range (a billion days): out of bounds, not a server error
                raise ValueError(self.bounds_error) from None
        else:
            raise ValueError(self.shape_error)
        if not self.at_least <= duration <= self.at_most:
            raise ValueError(self.bounds_error)
        return duration

    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(self.parse)
        yield PlainSerializer(format_duration, return_type=str)
