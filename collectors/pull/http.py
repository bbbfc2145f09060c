"""The REST pullers' shared HTTP: one httpx client per source, rate limits obeyed, errors that say what to do.

Throttling: a 429 (or 503) waits `Retry-After` (seconds or an HTTP date), else the provider's reset header
(Okta `X-Rate-Limit-Reset`, GitHub `x-ratelimit-reset`: epoch seconds), else a doubling pause; GitHub's
exhausted primary limit is a 403 with `x-ratelimit-remaining: 0` and is treated the same. After
`MAX_ATTEMPTS` refusals the pull stops with `ThrottledError` and resumes from its checkpoint at the next poll.
A provider that says the rate limit is nearly spent (`remaining` 0 on a 200) gets no request before its reset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from collectors.pull.base import PullError, ThrottledError

MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 300.0
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_RESET_HEADERS = ("x-rate-limit-reset", "x-ratelimit-reset")
_REMAINING_HEADERS = ("x-rate-limit-remaining", "x-ratelimit-remaining")


class RateLimitedClient:
    """GETs and POSTs through httpx with the provider's rate limits obeyed (see the module doc)."""

    def __init__(self, *, where: str, headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None], clock: Callable[[], datetime] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.where = where
        self.sleep = sleep
        self.clock = clock or (lambda: datetime.now(UTC))
        self.client = httpx.Client(headers=dict(headers or {}), timeout=TIMEOUT, transport=transport,
                                   follow_redirects=False)
        self._wait_until: float | None = None
        self.waits: list[float] = []  # the pauses taken, for the operator's log line and the tests

    def request(self, method: str, url: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        pause = 1.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._wait_for_reset()
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.HTTPError as error:
                raise PullError(f"{method} {_shown(url)} failed: {error}", where=self.where) from None
            self._note_remaining(response)
            if response.status_code in ok:
                return response
            if not _throttled(response):
                raise PullError(f"{method} {_shown(url)} answered {response.status_code}: {_detail(response)}",
                                where=self.where)
            if attempt == MAX_ATTEMPTS:
                break
            wait = self._retry_after(response, default=pause)
            self.waits.append(wait)
            self.sleep(wait)
            pause = min(pause * 2, MAX_WAIT_SECONDS)
        raise ThrottledError(f"{method} {_shown(url)} still throttled after {MAX_ATTEMPTS} attempts; "
                             "the pull resumes from its checkpoint at the next poll", where=self.where)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        self.client.close()

    def _retry_after(self, response: httpx.Response, *, default: float) -> float:
        header = response.headers.get("retry-after")
        if header:
            try:
                return _bounded(float(header))
            except ValueError:
                try:
                    return _bounded((parsedate_to_datetime(header) - self.clock()).total_seconds())
                except (TypeError, ValueError):
                    pass
        reset = _reset_epoch(response)
        if reset is not None:
            return _bounded(reset - self.clock().timestamp())
        return default

    def _note_remaining(self, response: httpx.Response) -> None:
        remaining = next((response.headers[name] for name in _REMAINING_HEADERS if name in response.headers), None)
        reset = _reset_epoch(response)
        self._wait_until = reset if remaining == "0" and reset is not None and response.status_code < 400 else None

    def _wait_for_reset(self) -> None:
        if self._wait_until is not None:
            wait = _bounded(self._wait_until - self.clock().timestamp())
            self._wait_until = None
            if wait > 0:
                self.waits.append(wait)
                self.sleep(wait)


def _throttled(response: httpx.Response) -> bool:
    if response.status_code in (429, 503):
        return True
    # GitHub's primary rate limit: 403 with nothing remaining
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"


def _reset_epoch(response: httpx.Response) -> float | None:
    for name in _RESET_HEADERS:
        if name in response.headers:
            try:
                return float(response.headers[name])
            except ValueError:
                return None
    return None


def _bounded(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def _detail(response: httpx.Response) -> str:
    text = response.text[:300].strip()
    return text or response.reason_phrase


def _shown(url: str) -> str:
    """The URL without its query (cursors and filters make log lines long; no secret is ever in it)."""
    return url.split("?", 1)[0]
