"""Case versions on the wire: the ``ETag`` of a case and the ``If-Match`` a change may carry."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from case_api.bounds import MAX_ID
from case_api.cases.models import Case
from case_api.errors import InvalidRequestError

IfMatch = Annotated[
    str | None,
    Header(
        max_length=200,
        description='The ETag of the case as last read (e.g. "7"); a case changed since is refused with 412',
    ),
]

_ENTITY_TAG = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')


def etag(case: Case) -> str:
    """The case's version as a strong entity tag (``"7"``)."""
    return f'"{case.version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` names; ``None`` when absent or ``*`` (any version)."""
    if value is None or value.strip() == "*":
        return None
    match = _ENTITY_TAG.match(value)
    if match is None or int(match.group(1)) > MAX_ID:
        raise InvalidRequestError(f'If-Match must be one case ETag such as "7", not {value[:40]!r}')
    return int(match.group(1))
