"""Helpers the REST pullers share: JSON arrays of records, same-host paging links, time texts."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson

from collectors.pull.base import PullError
from collectors.records import RawRecord


def json_elements(response: httpx.Response) -> list[bytes] | str:
    """The elements of a JSON-array body, each as compact JSON; or why the body is not one."""
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError as error:
        return f"the page is not JSON ({error})"
    if not isinstance(document, list):
        return f"the page is a JSON {type(document).__name__}, not the array of records the API returns"
    return [orjson.dumps(element) for element in document]


def next_link(response: httpx.Response, *, base: str, where: str) -> str | None:
    """The `Link: <...>; rel="next"` URL, refused when it leaves the provider's host (the credential goes with
    every request, so a link elsewhere would hand it over)."""
    url = response.links.get("next", {}).get("url")
    if url is None:
        return None
    return same_host(url, base=base, where=where)


def same_host(url: str, *, base: str, where: str) -> str:
    if (urlsplit(url).scheme, urlsplit(url).netloc) != (urlsplit(base).scheme, urlsplit(base).netloc):
        raise PullError(f"the provider sent a paging link to another host ({urlsplit(url).netloc}); refusing to "
                        "send the credential there", where=where)
    return url


def page_dead_letter(record: RawRecord, reason: str) -> tuple[RawRecord, str]:
    return record, reason


def iso_seconds(moment: datetime) -> str:
    """`2024-05-01T12:00:00` in UTC: the form the Management Activity API takes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_z(moment: datetime) -> str:
    """`2024-05-01T12:00:00.000Z`: the form Okta and GitHub take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
