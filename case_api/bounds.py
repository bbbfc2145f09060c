"""Bounds every input of the API obeys, checked at the edge so that nothing past them reaches the database.

Path and query ids fit the database's 32-bit integer columns, offsets and limits are capped, strings in
request bodies carry no NUL character (PostgreSQL cannot store one in text or JSON) and have a length
limit, and free-form JSON (the extra keys of an alert) is bounded in string length, item count and depth.
A value outside these bounds is a 422 naming the field, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, model_validator

#: Largest value of a 32-bit signed integer column (``Integer`` on PostgreSQL): every id the API issues.
MAX_ID = 2**31 - 1
#: Deepest a queue may be paged; past this, filter instead.
MAX_OFFSET = 10_000_000
#: Most rows one page of a list may ask for, and what a page holds unless asked otherwise.
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
#: Whole request bodies (the alert batches are the largest).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: A string anywhere in a free-form JSON value (an alert's extra keys).
MAX_JSON_STRING = 32 * 1024
#: Keys of one object or items of one array in a free-form JSON value.
MAX_JSON_ITEMS = 1_000
#: Nesting of a free-form JSON value.
MAX_JSON_DEPTH = 16

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Object id (1 to 2^31-1)")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip (at most {MAX_OFFSET:,})")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows in the page (1 to {MAX_LIMIT:,})")]


class JsonBoundsError(ValueError):
    """A free-form JSON value breaks a bound; the message names where."""


def check_json(value: Any, *, where: str = "", depth: int = 0, max_string: int = MAX_JSON_STRING) -> None:
    """Raise :class:`JsonBoundsError` if ``value`` holds a NUL, an over-long string, too many items or levels."""
    if isinstance(value, str):
        if "\x00" in value:
            raise JsonBoundsError(f"{where or 'value'}: contains a NUL character (\\u0000), which cannot be stored")
        if len(value) > max_string:
            raise JsonBoundsError(f"{where or 'value'}: string of {len(value):,} characters, at most {max_string:,}")
        return
    if isinstance(value, dict | list):
        if depth >= MAX_JSON_DEPTH:
            raise JsonBoundsError(f"{where or 'value'}: nested deeper than {MAX_JSON_DEPTH} levels")
        if len(value) > MAX_JSON_ITEMS:
            raise JsonBoundsError(f"{where or 'value'}: {len(value):,} items, at most {MAX_JSON_ITEMS:,}")
        if isinstance(value, dict):
            for key, item in value.items():
                check_json(key, where=f"{where}.<key>" if where else "<key>", depth=depth + 1, max_string=200)
                check_json(item, where=f"{where}.{key}" if where else str(key), depth=depth + 1, max_string=max_string)
        else:
            for index, item in enumerate(value):
                check_json(item, where=f"{where}[{index}]", depth=depth + 1, max_string=max_string)


class BoundedInput(BaseModel):
    """Base of every request body: strings anywhere in it carry no NUL and are bounded before fields are read.

    Field-level ``max_length`` still applies and is usually tighter; this catches the strings a model
    keeps without a declared field (extra keys) and the NUL that no field constraint rejects.
    """

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        try:
            check_json(data)
        except JsonBoundsError as exc:
            raise ValueError(str(exc)) from None
        return data
