"""GitHub's audit log REST API (`GET /orgs/{org}/audit-log`, or `/enterprises/{enterprise}/audit-log`), oldest
first (`order=asc`), paged by the `Link: rel="next"` cursor. Within a poll the checkpoint is the next page's
URL; when the last page has no next link, it becomes the newest `@timestamp` stored and the `_document_id`s
stored at that instant, and the next poll asks `created:>=` that instant and skips those ids. Credential: a
token with `read:audit_log` (organisation owner) or `read:audit_log` on the enterprise. Rate limits: a 429
or a 403 with `x-ratelimit-remaining: 0` waits for `Retry-After` or `x-ratelimit-reset`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller
from collectors.pull.http import RateLimitedClient
from collectors.pull.rest import json_elements, next_link, parse_time

PER_PAGE = 100  # GitHub's maximum
MAX_PAGES_PER_POLL = 1000
API_VERSION = "2022-11-28"


@register_puller
class GitHubPuller(Puller):
    kind = "github"
    required_settings = ("token",)
    secret_settings = ("token",)

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        base = self.source.setting("api_url", "https://api.github.com").rstrip("/")
        client = RateLimitedClient(where=self.source.where, sleep=self.sleep, clock=self.clock, headers={
            "Authorization": f"Bearer {self.secret('token')}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION})
        state = dict(checkpoint or {})
        since_ms: int | None = state.get("since_ms")
        seen: set[str] = set(state.get("seen", []))
        try:
            url = state.get("next") or self._first_url(base, since_ms)
            for _ in range(MAX_PAGES_PER_POLL):
                response = client.get(url)
                following = next_link(response, base=base, where=self.source.where)
                elements = json_elements(response)
                if isinstance(elements, str):  # a proxy's error page, say: asked again at the next poll
                    raise PullError(f"{elements}; the page is asked again at the next poll", where=self.source.where)
                batch = PullBatch([])
                for element in elements:
                    moment, document_id = _position(element)
                    if moment is not None and since_ms is not None and (
                            moment < since_ms or (moment == since_ms and document_id in seen)):
                        continue  # stored by an earlier poll (created:>= repeats the boundary instant)
                    batch.records.append(self.record(element, f"github {document_id or 'record'}"))
                    if moment is not None and (since_ms is None or moment > since_ms):
                        since_ms, seen = moment, set()
                    if moment is not None and moment == since_ms and document_id:
                        seen.add(document_id)
                boundary = {"since_ms": since_ms, "seen": sorted(seen)}
                batch.checkpoint = {**boundary, "next": following} if following else boundary
                yield batch
                if following is None:
                    return
                url = following
        finally:
            client.close()

    def _first_url(self, base: str, since_ms: int | None) -> str:
        org, enterprise = self.source.setting("org"), self.source.setting("enterprise")
        if bool(org) == bool(enterprise):
            raise PullError("give the organisation (org=NAME) or the enterprise (enterprise=SLUG), one of them",
                            where=self.source.where)
        path = f"/orgs/{quote(org)}/audit-log" if org else f"/enterprises/{quote(enterprise)}/audit-log"
        if since_ms is None:
            since_text = self.source.setting("since")
            since = parse_time(since_text) if since_text else self.clock() - timedelta(days=1)
        else:
            since = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
        query: dict[str, Any] = {"phrase": f"created:>={since.strftime('%Y-%m-%dT%H:%M:%S')}Z", "order": "asc",
                                 "per_page": PER_PAGE, "include": self.source.setting("include", "all")}
        return f"{base}{path}?{urlencode(query)}"


def _position(element: bytes) -> tuple[int | None, str | None]:
    """(`@timestamp` in epoch milliseconds, `_document_id`) of an audit entry, None where absent."""
    try:
        document = orjson.loads(element)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    stamp = document.get("@timestamp", document.get("created_at"))
    document_id = document.get("_document_id")
    return (stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None,
            document_id if isinstance(document_id, str) else None)


__all__ = ["GitHubPuller"]
