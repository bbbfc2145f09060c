"""Okta's System Log API (`GET /api/v1/logs`), polled as Okta documents it: `since` once, ascending order, then
the `Link: rel="next"` URL of every page, which Okta returns even when a page is empty so that it can be
polled for what comes later. The checkpoint is that next URL (its `after` cursor): a restart continues from
the last page stored. Credential: an API token (`Authorization: SSWS ...`) of a read-only administrator, or an
OAuth 2.0 access token with the `okta.logs.read` scope (`auth_scheme=Bearer`). Rate limits: `X-Rate-Limit-*`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import orjson

from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller
from collectors.pull.http import RateLimitedClient
from collectors.pull.rest import iso_z, json_elements, next_link, parse_time

PAGE_LIMIT = 1000  # the most Okta returns per page
MAX_PAGES_PER_POLL = 1000


@register_puller
class OktaPuller(Puller):
    kind = "okta"
    required_settings = ("domain", "token")
    secret_settings = ("token",)

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        base = self.source.setting("domain").rstrip("/")
        if not base.startswith(("https://", "http://")):
            base = f"https://{base}"
        scheme = self.source.setting("auth_scheme", "SSWS")
        client = RateLimitedClient(where=self.source.where, sleep=self.sleep, clock=self.clock, headers={
            "Authorization": f"{scheme} {self.secret('token')}", "Accept": "application/json"})
        try:
            url = (checkpoint or {}).get("next") or self._first_url(base)
            for _ in range(MAX_PAGES_PER_POLL):
                response = client.get(url)
                following = next_link(response, base=base, where=self.source.where)
                elements = json_elements(response)
                if isinstance(elements, str):  # a proxy's error page, say: asked again at the next poll
                    raise PullError(f"{elements}; the page is asked again at the next poll", where=self.source.where)
                batch = PullBatch([self.record(element, f"okta {_uuid(element)}") for element in elements],
                                  {"next": following or url})
                yield batch
                if following is None or following == url or not batch.records:
                    return  # caught up: the next poll asks the next URL again
                url = following
        finally:
            client.close()

    def _first_url(self, base: str) -> str:
        since_text = self.source.setting("since")
        since = parse_time(since_text) if since_text else self.clock() - timedelta(days=1)
        if since > self.clock():
            raise PullError(f"since {since_text} is in the future", where=self.source.where)
        query = urlencode({"since": iso_z(since), "sortOrder": "ASCENDING", "limit": PAGE_LIMIT})
        return f"{base}/api/v1/logs?{query}"


def _uuid(element: bytes) -> str:
    try:
        value = orjson.loads(element).get("uuid")
    except (orjson.JSONDecodeError, AttributeError):
        return "record"
    return str(value) if value else "record"
